"""The generate / filter / stand-in-teacher commands."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml
from cot_distill.cli import app
from distill_helpers import read_lines
from typer.testing import CliRunner

runner = CliRunner()


def test_generate_flags_write_every_output(standin, dataset: Path, tmp_path: Path):
    server = standin(faults="short_think=0.3")
    out = tmp_path / "out"
    args = [
        "generate",
        "--data",
        str(dataset),
        "--dataset",
        "sims",
        "--split",
        "train",
        "--base-url",
        server.base_url,
        "--model",
        "Qwen/Qwen3-Omni-30B-A3B-Instruct",
        "--out",
        str(out),
        "--concurrency",
        "3",
        "--samples-per-clip",
        "2",
        "--max-attempts",
        "2",
        "--limit",
        "5",
        "--no-progress",
        "--set",
        "retry.backoff_base_s=0.01",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert re.search(r"\d+ accepted, \d+ rejected, 0 failed of 10", res.output)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["expected"] == 10 and stats["split"] == "train"
    assert set(stats["per_split"]) == {"train"}
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert (
        resolved["concurrency"] == 3
        and resolved["limit"] == 5
        and resolved["retry"]["backoff_base_s"] == 0.01
    )
    assert resolved["base_urls"] == [server.base_url]

    res = runner.invoke(
        app, ["filter", str(out), "--set", "filters.min_think_chars=1", "--set", "filters.min_modalities=0"]
    )
    assert res.exit_code == 0, res.output
    assert "10 accepted" in res.output  # "Positive." passes once no length or modality bound applies
    assert yaml.safe_load((out / "config.yaml").read_text())["filters"]["min_think_chars"] == 1
    assert len(read_lines(out / "accepted.jsonl")) == 10


def test_config_file_and_errors_are_clean(dataset: Path, tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {dataset}\nconcurrency: 2\nfilters:\n  min_thnk_chars: 3\n")
    res = runner.invoke(app, ["generate", "--config", str(cfg)])
    assert res.exit_code == 1
    assert "unknown key 'filters.min_thnk_chars'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["generate", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "--data" in res.output
    res = runner.invoke(app, ["generate", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "label.csv" in res.output
    res = runner.invoke(app, ["filter", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "config.yaml" in res.output


def test_unreachable_teacher_stops_before_the_batch(dataset: Path, tmp_path: Path):
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "generate",
            "--data",
            str(dataset),
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--out",
            str(out),
            "--limit",
            "2",
            "--no-progress",
            "--set",
            "retry.max_retries=0",
            "--set",
            "retry.connect_timeout_s=1",
        ],
    )
    assert res.exit_code == 1, res.output
    assert "http://127.0.0.1:9/v1: connection refused" in res.output and "timed out" not in res.output
    assert "Traceback" not in res.output
    assert read_lines(out / "failures.jsonl") == []  # nothing was asked


def test_standin_command_serves_over_http(dataset: Path, tmp_path: Path):
    res = runner.invoke(app, ["stand-in-teacher", "--help"])
    assert res.exit_code == 0 and "Qwen3-Omni-30B" in res.output
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cot_distill.cli",
            "stand-in-teacher",
            "--data",
            str(dataset),
            "--port",
            "0",
            "--faults",
            "http500=1.0",
            "--request-log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = re.search(r"(http://\S+/v1)", proc.stdout.readline()).group(1)

        async def probe() -> tuple[list[str], int]:
            async with aiohttp.ClientSession() as s:
                async with s.get(url + "/models") as r:
                    models = [m["id"] for m in (await r.json())["data"]]
                async with s.post(url + "/chat/completions", json={"model": models[0], "messages": []}) as r:
                    return models, r.status

        models, status = asyncio.run(probe())
        assert models == ["Qwen/Qwen3-Omni-30B-A3B-Instruct"] and status == 500
        assert read_lines(log)[0]["fault"] == "http500"
    finally:
        proc.terminate()
        proc.wait(10)
    res = runner.invoke(app, ["stand-in-teacher", "--data", str(dataset), "--faults", "bogus=1"])
    assert res.exit_code == 1 and "unknown fault 'bogus'" in res.output
