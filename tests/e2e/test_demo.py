"""`msa-thinker demo`: the whole pipeline end to end (slow), and the stage driver's skip / failure behaviour (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from msa_thinker import demo, stage_driver

DATASET_TITLES = {"sims": "CH-SIMS", "simsv2": "CH-SIMS v2", "mosi": "CMU-MOSI", "mosei": "CMU-MOSEI"}


def _table_rows(report: str, title: str) -> list[str]:
    """Rows of the markdown tables whose header names the dataset ``title`` (one per run)."""
    rows, in_table = [], False
    for line in report.splitlines():
        if line.startswith("| Model |"):
            in_table = f"{title} (" in line and "n (parse failures)" not in line
            continue
        if in_table and line.startswith("| ") and not line.startswith("|:"):
            rows.append(line)
        elif not line.startswith("|"):
            in_table = False
    return rows


@pytest.mark.slow
def test_demo_runs_to_a_report_then_a_rerun_skips_every_stage(demo_run):
    out, first = demo_run.out, demo_run.process
    script = Path(sys.executable).parent / "msa-thinker"
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report_path = out / "report" / "report.md"
    assert str(report_path) in first.stdout.replace("\n", "")

    report = report_path.read_text()
    for name, title in DATASET_TITLES.items():
        rows = _table_rows(report, title)
        assert {r.split("|")[1].strip() for r in rows} >= {"msa-thinker", "grpo-no-hint", "sft-only"}, name
        assert all(any(c.isdigit() for c in r.split("|")[2]) for r in rows), rows  # scored, not "–"
        assert (out / "runs" / "msa-thinker" / f"{name}.jsonl").is_file()
    assert "(ID)" in report and "(OOD)" in report
    assert any((out / "report" / "plots").glob("*.png"))
    assert list((out / "report" / "training").glob("*.png"))
    for run in ("hint-grpo", "grpo-no-hint"):
        steps = [
            json.loads(x) for x in (out / "models" / run / "metrics.jsonl").read_text().splitlines() if x
        ]
        assert steps and all("reward/total" in s for s in steps)
    timings = json.loads((out / "demo.json").read_text())
    assert set(timings["timings_s"]) == {s.name for s in demo.stages(demo.DemoPaths(out))}

    before = report_path.stat().st_mtime_ns
    second = subprocess.run(
        [str(script), "demo", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    rerun = json.loads((out / "demo.json").read_text())
    assert rerun["timings_s"] == {}  # nothing ran again
    assert len(rerun["skipped"]) == len(timings["timings_s"])
    assert second.stdout.count("done earlier") == len(timings["timings_s"])
    assert report_path.stat().st_mtime_ns == before


# ------------------------------------------------------------------------------------- the driver, with fake stages
def _fake_plan(calls: list[str], fail: set[str]):
    def make(name: str):
        def run(ctx: stage_driver.StageContext) -> str:
            calls.append(name)
            print(f"{name} says hello")  # in-process output goes to the stage log
            out = ctx.paths.out / name
            out.mkdir(exist_ok=True)
            (out / "partial").write_text("x")
            if name in fail:
                raise RuntimeError(f"{name} broke")
            return f"{name} ok"

        return run

    def plan(paths: demo.DemoPaths) -> list[stage_driver.Stage]:
        return [
            stage_driver.Stage(n, n, [paths.out / n], make(n), resumable=(n == "b")) for n in ("a", "b", "c")
        ]

    return plan


def test_a_failing_stage_names_itself_and_its_log_and_a_rerun_resumes_there(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(demo, "stages", _fake_plan(calls, fail={"b"}))
    with pytest.raises(stage_driver.StageFailed) as err:
        demo.run_demo(tmp_path)
    assert (err.value.stage, calls) == ("b", ["a", "b"])
    log = err.value.log_path.read_text()
    assert err.value.log_path == tmp_path / "logs" / "b.log"
    assert "b says hello" in log and "RuntimeError: b broke" in log
    assert (tmp_path / ".stages" / "a.json").is_file() and not (tmp_path / ".stages" / "b.json").exists()

    calls.clear()
    monkeypatch.setattr(demo, "stages", _fake_plan(calls, fail=set()))
    result = demo.run_demo(tmp_path)
    assert calls == ["b", "c"]  # a was finished: skipped
    assert (result.skipped, sorted(result.timings)) == (["a"], ["b", "c"])
    assert json.loads((tmp_path / ".stages" / "c.json").read_text())["summary"] == "c ok"


def test_a_non_resumable_stage_restarts_from_a_clean_folder(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(demo, "stages", _fake_plan(calls, fail={"c"}))
    with pytest.raises(stage_driver.StageFailed):
        demo.run_demo(tmp_path)
    stale = tmp_path / "c" / "stale"
    stale.write_text("left by the failed attempt")
    monkeypatch.setattr(demo, "stages", _fake_plan(calls, fail=set()))
    demo.run_demo(tmp_path)
    assert not stale.exists()


def test_fresh_starts_over_and_until_stops_early(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(demo, "stages", _fake_plan(calls, fail=set()))
    demo.run_demo(tmp_path, until="b")
    assert calls == ["a", "b"]
    calls.clear()
    demo.run_demo(tmp_path, fresh=True)
    assert calls == ["a", "b", "c"]
    with pytest.raises(demo.ConfigError, match="unknown stage"):
        demo.run_demo(tmp_path, until="nope")
