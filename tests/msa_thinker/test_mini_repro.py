"""`msa-thinker mini-repro`: the recipe, the GRPO variants' shared start (fast), and the --quick run end to end (slow)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from msa_core import ConfigError, artifacts
from rich.console import Console

from msa_thinker import mini_repro as mr


def test_the_recipes_load_and_bad_keys_are_named(tmp_path: Path) -> None:
    full = mr.load_mini_recipe()
    quick = mr.load_mini_recipe(mr.QUICK_RECIPE)
    assert full.seeds == 3 and quick.seeds == 1
    assert quick.data.train_clips < full.data.train_clips
    assert quick.data.incongruent_fraction == full.data.incongruent_fraction  # extends: only sizes change
    assert mr.load_mini_recipe(overrides=["data.train_clips=30"], seeds=2).seeds == 2
    with pytest.raises(ConfigError, match=r"data\.train_clip"):
        mr.load_mini_recipe(overrides=["data.train_clip=30"])
    bad = tmp_path / "r.yaml"
    bad.write_text("sft_recipe: nowhere/sft.yaml\n")
    with pytest.raises(ConfigError, match=r"sft_recipe: nowhere/sft\.yaml not found"):
        mr.load_mini_recipe(bad)


def test_a_rerun_must_keep_the_recipe_but_may_add_seeds(tmp_path: Path) -> None:
    recipe = mr.load_mini_recipe(mr.QUICK_RECIPE)
    from msa_core.recipe import write_resolved

    write_resolved(recipe, tmp_path / artifacts.MINI_REPRO_RECIPE)
    mr._check_same_recipe(tmp_path, recipe.model_copy(update={"seeds": 4}))
    changed = recipe.model_copy(update={"data": recipe.data.model_copy(update={"train_clips": 99})})
    with pytest.raises(ConfigError, match="differs in: data"):
        mr._check_same_recipe(tmp_path, changed)


def test_every_seed_has_one_sft_and_three_grpo_variants_from_it(tmp_path: Path, monkeypatch) -> None:
    import msa_rl.grpo

    paths = mr.MiniPaths(tmp_path)
    recipe = mr.load_mini_recipe(seeds=2)
    names = [s.name for s in mr.stages(paths, recipe)]
    for seed in (0, 1):
        for stage in ("tiny", "sft", "hint-grpo", "grpo-no-hint", "grpo-no-hard", "predict"):
            assert f"{stage}-s{seed}" in names
    assert names[-1] == mr.REPORT_STAGE and names.count("sft-s0") == 1

    seen = []
    monkeypatch.setattr(msa_rl.grpo, "run_grpo", lambda r: seen.append(r))
    ctx = mr.StageContext(paths, recipe, io.StringIO(), tmp_path / "log")
    for row in mr.GRPO_VARIANTS:
        mr.stage_grpo(ctx, seed=1, row=row)
    assert {Path(r.model) for r in seen} == {paths.model(1, "sft")}  # one SFT start for every variant
    assert {(r.seed, r.max_steps, r.data, r.split) for r in seen} == {
        (1, seen[0].max_steps, str(paths.test_set("sims")), "train")
    }
    assert [r.hard_group_strategy for r in seen] == ["hint", "none", "drop"]


def _section(report: str, heading: str) -> str:
    start = report.index(heading)
    end = report.find("\n## ", start + 1)
    return report[start : end if end > 0 else None]


@pytest.mark.slow
def test_quick_run_writes_every_table_row_plot_and_the_results(tmp_path: Path) -> None:
    out = tmp_path / "mini"
    script = Path(sys.executable).parent / "msa-thinker"
    first = subprocess.run(
        [str(script), "mini-repro", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=900
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = (out / artifacts.REPORT_MARKDOWN).read_text()
    for table in mr.TABLES:
        section = _section(report, f"## Table {table.number}:")
        for title in ("**CH-SIMS (ID)**", "**CMU-MOSI (OOD)**"):
            assert title in section
        for _, label in table.rows:
            rows = [line for line in section.splitlines() if line.startswith(f"| {label} |")]
            assert len(rows) == 2, (table.number, label)  # one per test set
            assert all(any(c.isdigit() for c in r.split("|")[2]) for r in rows)  # scored
        assert "Paired tests" in section and section.count(" → ") >= 2 * len(table.comparisons)
    fig3 = _section(report, "## Fig. 3")
    for png in ("fig3/reward_total.png", "fig3/hard_zero_std.png"):
        assert png in fig3 and (out / png).read_bytes().startswith(b"\x89PNG")

    results = json.loads((out / artifacts.MINI_REPRO_RESULTS).read_text())
    assert results["seeds"] == [0]
    assert set(results["datasets"]) == {"sims", "mosi"}
    assert set(results["rows"]) == {r.key for r in mr.ROWS}
    for row in results["rows"].values():
        for dataset, metrics in row["per_seed"]["0"].items():
            assert metrics["n"] == results["datasets"][dataset]["test_clips"]
            assert 0 <= metrics["parse_failure_rate"] <= 1
            assert {k for k, _ in mr.COLUMNS[dataset]} <= set(metrics)
        assert set(row["summary"]["mosi"]["acc7"]) == {"mean", "half_width", "n"}
    n_comparisons = sum(len(t.comparisons) for t in mr.TABLES) * 2
    assert len(results["comparisons"]) == n_comparisons
    assert all("p_clip_bootstrap" in m for c in results["comparisons"] for m in c["metrics"].values())
    timings = results["timings"]["stages"]
    assert {"sft-s0", "hint-grpo-s0", "predict-s0"} <= set(timings)
    assert all(t["cpu_s"] is not None and t["cpu_s"] >= 0 for t in timings.values())
    for row in ("hint-grpo", "grpo-no-hint", "grpo-no-hard"):
        steps = (out / "seed-0" / "models" / row / artifacts.GRPO_METRICS).read_text().splitlines()
        assert steps and all("reward/total_sampled" in json.loads(s) for s in steps)

    # A rerun skips every stage and makes only the report again.
    console = Console(file=io.StringIO(), width=200)
    again = mr.run_mini_repro(out, mr.load_mini_recipe(mr.QUICK_RECIPE), console=console)
    assert list(again.run.timings) == [mr.REPORT_STAGE]
    assert (
        len(again.run.skipped) == len(mr.stages(mr.MiniPaths(out), mr.load_mini_recipe(mr.QUICK_RECIPE))) - 1
    )
