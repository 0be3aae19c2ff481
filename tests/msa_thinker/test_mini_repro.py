"""`msa-thinker mini-repro`: the recipe, the GRPO variants' shared start (fast), and the --quick run end to end (slow)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from msa_core import ConfigError, artifacts
from rich.console import Console

from msa_thinker import mini_repro as mr


def test_the_recipes_load_and_bad_keys_are_named(tmp_path: Path) -> None:
    v1 = mr.load_mini_recipe()
    v2 = mr.load_mini_recipe(mr.PROTOCOLS["v2"])
    quick = mr.load_mini_recipe(mr.QUICK_RECIPE)
    assert (v1.seed_list, v1.data.valid_clips, list(v1.arms)) == ([0, 1, 2], 0, list(mr.V1_ARMS))
    assert v2.seed_list == list(range(100, 110)) and not set(v2.seed_list) & set(v2.calibration.seeds)
    assert (v2.data.valid_clips, v2.rerun.seeds, v2.deterministic, v2.jobs) == (60, [100, 101], True, 2)
    assert quick.seed_list == [100] and quick.data.train_clips < v2.data.train_clips
    assert quick.data.incongruent_fraction == v2.data.incongruent_fraction  # extends: only sizes change
    assert quick.arms == v2.arms and quick.calibration == v2.calibration
    assert mr.load_mini_recipe(overrides=["data.train_clips=30"], seeds=2).seed_list == [0, 1]
    with pytest.raises(ConfigError, match=r"data\.train_clip"):
        mr.load_mini_recipe(overrides=["data.train_clip=30"])
    with pytest.raises(ConfigError, match=r"unknown arm.*grpo-other"):
        mr.load_mini_recipe(overrides=["arms.grpo-other=[]"])
    with pytest.raises(ConfigError, match=r"calibration.seeds \[100\] are also run seeds"):
        mr.load_mini_recipe(mr.PROTOCOLS["v2"], ["calibration.seeds=[0,100]"])
    bad = tmp_path / "r.yaml"
    bad.write_text("sft_recipe: nowhere/sft.yaml\n")
    with pytest.raises(ConfigError, match=r"sft_recipe: nowhere/sft\.yaml not found"):
        mr.load_mini_recipe(bad)


def test_a_rerun_must_keep_the_recipe_but_may_add_seeds(tmp_path: Path) -> None:
    recipe = mr.load_mini_recipe(mr.QUICK_RECIPE)
    from msa_core.recipe import write_resolved

    write_resolved(recipe, tmp_path / artifacts.MINI_REPRO_RECIPE)
    mr._check_same_recipe(tmp_path, recipe.model_copy(update={"seeds": 4, "jobs": 1}))
    changed = recipe.model_copy(update={"data": recipe.data.model_copy(update={"train_clips": 99})})
    with pytest.raises(ConfigError, match="differs in: data"):
        mr._check_same_recipe(tmp_path, changed)


def test_every_seed_has_one_sft_and_every_arm_from_it(tmp_path: Path, monkeypatch) -> None:
    import msa_rl.grpo

    paths = mr.MiniPaths(tmp_path)
    recipe = mr.load_mini_recipe(mr.PROTOCOLS["v2"], seeds=3)
    names = [s.name for s in mr.stages(paths, recipe)]
    for tag in ("s100", "s101", "s102", "s100-t2", "s101-t2"):
        for stage in ("tiny", "sft", *recipe.arms, "predict", "predict-valid"):
            assert f"{stage}-{tag}" in names
    assert names[-1] == mr.REPORT_STAGE and names.count("sft-s100") == 1
    # The reruns come right after their seeds: a partial run still has its tolerance.
    assert [j.name for j in mr.seed_jobs(paths, recipe)] == [
        "seed-100", "seed-101", "seed-100-t2", "seed-101-t2", "seed-102"
    ]  # fmt: skip
    assert mr.job_environment(2, True)["OMP_NUM_THREADS"] == "2"
    assert mr.job_environment(1, True)["PYTHONHASHSEED"] == "0"

    seen = []
    monkeypatch.setattr(msa_rl.grpo, "run_grpo", lambda r: seen.append(r))
    ctx = mr.StageContext(paths, recipe, io.StringIO(), tmp_path / "log")
    for row in recipe.arms:
        mr.stage_grpo(ctx, seed=101, row=row)
    assert {Path(r.model) for r in seen} == {paths.model(101, "sft")}  # one SFT start for every arm
    assert {(r.seed, r.max_steps, r.data, r.split) for r in seen} == {
        (101, seen[0].max_steps, str(paths.test_set("sims")), "train")
    }
    assert [r.hard_group_strategy for r in seen] == ["hint", "none", "drop", "dynamic_sampling"]
    assert seen[-1].max_resamples == 2


def test_the_validation_split_is_apart_from_both_test_sets_and_calibration_reads_only_it(
    tmp_path: Path, monkeypatch
) -> None:
    import hashlib

    import msa_eval.predict
    from msa_core import read_mmsa

    from msa_thinker.mini_repro_results import read_test_set

    recipe = mr.load_mini_recipe(
        mr.QUICK_RECIPE,
        ["data.train_clips=6", "data.valid_clips=6", "data.id_test_clips=6", "data.ood_test_clips=6"],
    )
    paths = mr.MiniPaths(tmp_path)
    ctx = mr.StageContext(paths, recipe, io.StringIO(), tmp_path / "log")
    mr.stage_data(ctx)
    sims = {s: read_mmsa(paths.test_set("sims"), "sims", split=s).clips for s in ("train", "valid", "test")}
    mosi = read_mmsa(paths.test_set("mosi"), "mosi", split="test").clips
    assert [len(sims[s]) for s in ("train", "valid", "test")] == [6, 6, 6]

    def ids(clips):
        return {c.id for c in clips}

    def media(clips):
        return {hashlib.sha256(c.video_path.read_bytes()).hexdigest() for c in clips}

    valid = sims["valid"]
    for other in (sims["train"], sims["test"], mosi):
        assert not ids(valid) & ids(other) and not media(valid) & media(other)
    assert read_test_set(paths.test_set("sims"), "sims", "valid").ids == sorted(ids(valid))

    calls = []

    def fake_predict(model, pairs, out, *, split="test", **kw):
        calls.append((split, [d for _, d in pairs]))
        return [SimpleNamespace(total=6, parse_failures=0)]

    monkeypatch.setattr(msa_eval.predict, "predict", fake_predict)
    for stage in mr.sft_calibration_stages(paths, recipe, 0, "S1")[2:]:
        stage.run(ctx)
    grpo = mr.grpo_calibration_stages(paths, recipe, 0, "S1", "G1")
    assert calls == [("valid", ["sims"])]  # calibration predicts the validation split only
    plan = mr.grpo_overrides(paths, recipe, 0, "grpo-G1", start="sft-S1")
    assert "split=train" in plan and f"model={paths.model(0, 'sft-S1')}" in plan and len(grpo) == 1


def test_protocol_v2_rules() -> None:
    from msa_thinker.mini_repro_results import quarter_means, sft_criterion, verdict

    assert quarter_means([0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 1.1]) == pytest.approx((0.05, 0.9))
    assert quarter_means([0.2]) is None
    # held only beyond half-width + tolerance; no tolerance: at most "direction only"
    assert verdict(0.05, 0.02, 0.01) == "held"
    assert verdict(0.05, 0.02, 0.04) == "direction only"
    assert verdict(-0.05, 0.02, None) == "direction only"
    assert verdict(0.01, 0.02, 0.0) == "not decided" == verdict(None, None, 0.0)
    ceiling = SimpleNamespace(text_only_acc3=0.75)
    assert sft_criterion({"acc3": 0.8, "parse_failures": 0}, ceiling)["passed"]
    assert not sft_criterion({"acc3": 0.8, "parse_failures": 1}, ceiling)["passed"]
    assert not sft_criterion({"acc3": 0.75, "parse_failures": 0}, ceiling)["passed"]


def _section(report: str, heading: str) -> str:
    start = report.index(heading)
    end = report.find("\n## ", start + 1)
    return report[start : end if end > 0 else None]


@pytest.mark.slow
def test_quick_run_writes_every_table_row_plot_and_the_results(tmp_path: Path) -> None:
    """Protocol v2's machinery: one seed and its 2-thread rerun in two processes, every arm, the validation check,
    the tolerance and its verdicts, Fig. 3; then a rerun makes only the report."""
    from msa_thinker.mini_repro_results import COLUMNS

    out = tmp_path / "mini"
    script = Path(sys.executable).parent / "msa-thinker"
    first = subprocess.run(
        [str(script), "mini-repro", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=900
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    recipe = mr.load_mini_recipe(mr.QUICK_RECIPE)
    report = (out / artifacts.REPORT_MARKDOWN).read_text()
    for table in mr.active_tables(recipe):
        section = _section(report, f"## Table {table.number}:")
        for title in ("**CH-SIMS (ID)**", "**CMU-MOSI (OOD)**"):
            assert title in section
        for _, label in table.rows:
            rows = [line for line in section.splitlines() if line.startswith(f"| {label} |")]
            assert len(rows) == 2, (table.number, label)  # one per test set
            assert all(any(c.isdigit() for c in r.split("|")[2]) for r in rows)  # scored
        assert "Paired tests" in section and section.count(" → ") >= 2 * len(table.comparisons)
    primary = _section(report, "## Primary comparisons")
    assert "Tolerance T: seeds [100]" in primary
    assert (
        sum(line.startswith("| SFT + ") or line.startswith("| DC-CoT") for line in primary.splitlines()) >= 2
    )
    fig3 = _section(report, "## Fig. 3")
    for png in ("fig3/reward_total.png", "fig3/hard_zero_std.png"):
        assert png in fig3 and (out / png).read_bytes().startswith(b"\x89PNG")

    results = json.loads((out / artifacts.MINI_REPRO_RESULTS).read_text())
    assert results["seeds"] == [100] == results["tolerance"]["seeds"]
    assert set(results["datasets"]) == {"sims", "mosi"}
    assert list(results["rows"]) == [r.key for r in mr.active_rows(recipe)]
    for row in results["rows"].values():
        for runs in (row["per_seed"]["100"], row["rerun_per_seed"]["100"]):
            for dataset, metrics in runs.items():
                assert metrics["n"] == results["datasets"][dataset]["test_clips"]
                assert 0 <= metrics["parse_failure_rate"] <= 1
                assert {k for k, _ in COLUMNS[dataset]} <= set(metrics)
        assert set(row["summary"]["mosi"]["acc7"]) == {"mean", "half_width", "n"}
    n_comparisons = sum(len(t.comparisons) for t in mr.active_tables(recipe)) * 2
    assert len(results["comparisons"]) == n_comparisons
    for c in results["comparisons"]:
        for m in c["metrics"].values():
            assert "p_clip_bootstrap" in m and m["verdict"] in ("held", "direction only", "not decided")
        assert c["metrics"]["mae"]["tolerance"] is not None  # measured from the rerun
    assert results["validation"]["per_seed"]["100"]["parse_failures"] >= 0
    assert set(results["reward_rise"]) == set(recipe.arms)
    timings = results["timings"]["stages"]
    assert {"sft-s100", "hint-grpo-s100", "predict-s100", "predict-valid-s100", "sft-s100-t2"} <= set(timings)
    assert all(t["cpu_s"] is not None and t["cpu_s"] >= 0 for t in timings.values())
    for row in recipe.arms:
        steps = (out / "seed-100" / "models" / row / artifacts.GRPO_METRICS).read_text().splitlines()
        assert steps and all("reward/total_sampled" in json.loads(s) for s in steps)

    # A rerun starts no seed process and makes only the report again.
    console = Console(file=io.StringIO(), width=200)
    again = mr.run_mini_repro(out, recipe, console=console)
    assert list(again.run.timings) == [mr.REPORT_STAGE]
    paths = mr.MiniPaths(out)
    skipped = len(mr.shared_stages(paths)) + len(mr.seed_jobs(paths, recipe))
    assert console.file.getvalue().count("done earlier") == skipped
