"""`msa-rl plot`: Fig. 3-style reward curves of several runs and the hard / zero-std fractions, as PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from msa_core import DataError
from msa_rl.cli import app
from msa_rl.plot import (
    FRACTIONS_PNG,
    REWARD_PNG,
    Curve,
    _seed_band,
    fig3_curves,
    load_run,
    plot_runs,
    plot_seed_bands,
    smooth,
)
from typer.testing import CliRunner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(root: Path, name: str, slope: float, steps: int = 12) -> Path:
    run = root / name
    run.mkdir(parents=True)
    with (run / "metrics.jsonl").open("w") as fh:
        for step in range(1, steps + 1):
            fh.write(
                json.dumps(
                    {
                        "step": step,
                        "reward/total": 1.0 + slope * step,
                        "hard_fraction": max(0.0, 0.5 - 0.03 * step),
                        "zero_std_fraction_before": 0.6,
                        "zero_std_fraction_after": 0.2,
                        "hint_success": None if step % 3 else 0.5,
                    }
                )
                + "\n"
            )
        fh.write('{"step": 13, "reward/tot')  # a torn last line (killed run) is skipped
    return run


def test_smoothing_is_a_debiased_ema_that_bridges_gaps() -> None:
    assert smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no ramp-up from 0
    out = smooth([0.0, None, 1.0], weight=0.5)
    assert out[0] == 0.0 and out[1] == 0.0 and 0.0 < out[2] < 1.0
    assert math.isnan(smooth([None])[0])
    assert smooth([3.0, 5.0], weight=0.0) == [3.0, 5.0]


def test_plot_writes_both_figures(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path, n, s) for n, s in (("w-hint", 0.1), ("wo-hint", 0.02), ("wo-hard", 0.05))]
    paths = plot_runs(runs, tmp_path / "png", labels=["w/ Hint", "w/o Hint", "w/o Hard"])
    assert [p.name for p in paths] == [REWARD_PNG, FRACTIONS_PNG]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    with pytest.raises(DataError, match="2 labels for 3 runs"):
        plot_runs(runs, tmp_path / "png", labels=["a", "b"])


def with_sampled(run: Path, hinted: bool) -> Path:
    """The run's lines with a pre-hint sampled reward below the post-hint one, and its hinted-group counts."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()[:-1]]
    with (run / "metrics.jsonl").open("w") as fh:
        for line in lines:
            extra = {
                "reward/total_sampled": line["reward/total"] - 0.5,
                "groups/hinted": 1.0 if hinted else 0.0,
            }
            if not hinted:
                extra["hint_success"] = None
            fh.write(json.dumps({**line, **extra}) + "\n")
    return run


def test_fig3_draws_the_pre_hint_sampled_reward_and_the_post_hint_one_only_dashed(tmp_path: Path) -> None:
    hint = load_run(with_sampled(fake_run(tmp_path, "hint", 0.1), hinted=True))[1]
    plain = load_run(with_sampled(fake_run(tmp_path, "plain", 0.1), hinted=False))[1]
    legacy = load_run(fake_run(tmp_path, "legacy", 0.1))[1]  # before reward/total_sampled was logged
    runs = [("w/ Hint", hint), ("w/o Hint", plain), ("old", legacy)]
    assert fig3_curves(runs) == [
        [
            Curve("w/ Hint: sampled (before hints)", "reward/total_sampled"),
            Curve("w/ Hint: after hints (has the true polarity)", "reward/total", dashed=True),
        ],
        [Curve("w/o Hint: sampled (before hints)", "reward/total_sampled")],
        [Curve("old: total (no pre-hint record)", "reward/total")],
    ]
    assert [len(c) for c in fig3_curves(runs, post_hint=False)] == [1, 1, 1]


def test_plot_cli(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path, n, s) for n, s in (("a", 0.1), ("b", 0.0))]
    out = tmp_path / "figs"
    result = CliRunner().invoke(app, ["plot", *map(str, runs), "--out", str(out), "--smoothing", "0.3"])
    assert result.exit_code == 0, result.output
    assert (out / REWARD_PNG).is_file() and (out / FRACTIONS_PNG).is_file()
    result = CliRunner().invoke(app, ["plot", *map(str, runs), "--out", str(out / "solo"), "--no-post-hint"])
    assert result.exit_code == 0 and (out / "solo" / REWARD_PNG).is_file(), result.output
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "nope"), "--out", str(out)])
    assert result.exit_code == 1 and "metrics.jsonl" in result.output and "Traceback" not in result.output


def test_seed_bands_average_the_sampled_reward_over_seeds(tmp_path: Path) -> None:
    """Fig. 3 over seeds: mean of the (smoothed) sampled reward per step, banded by the lowest and highest seed."""
    seeds = []
    for i, offset in enumerate((0.0, 0.2, 0.4)):
        run = fake_run(tmp_path / f"s{i}", "hint", 0.0, steps=4 + i)  # seeds reached different steps
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()[:-1]]
        with (run / "metrics.jsonl").open("w") as fh:
            for line in lines:
                fh.write(json.dumps({**line, "reward/total_sampled": offset}) + "\n")
        seeds.append(run)
    steps, mean, lo, hi = _seed_band([load_run(r)[1] for r in seeds], "reward/total_sampled", 0.6)
    assert steps == [1, 2, 3, 4]  # cut to the steps every seed reached
    assert (
        mean == pytest.approx([0.2] * 4) and lo == pytest.approx([0.0] * 4) and hi == pytest.approx([0.4] * 4)
    )
    other = [fake_run(tmp_path / f"o{i}", "plain", 0.05) for i in range(2)]
    paths = plot_seed_bands([("w/ Hint", seeds), ("w/o Hint", other)], tmp_path / "fig3", post_hint="w/ Hint")
    assert [p.name for p in paths] == [REWARD_PNG, FRACTIONS_PNG]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)
    with pytest.raises(DataError, match="at least one run"):
        plot_seed_bands([("empty", [])], tmp_path / "fig3")
