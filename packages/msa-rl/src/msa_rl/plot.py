"""`msa-rl plot`: the paper's Fig. 3 (total reward per step, several runs overlaid) and the hard / zero-std
fractions per step, from each run's ``metrics.jsonl``, as PNG files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from msa_core import DataError

REWARD_PNG = "reward_total.png"
FRACTIONS_PNG = "hard_zero_std.png"
FRACTION_KEYS = (
    ("hard_fraction", "hard groups"),
    ("zero_std_fraction_before", "zero-std groups, before hints"),
    ("zero_std_fraction_after", "zero-std groups, after hints"),
)


def smooth(values: Sequence[float | None], weight: float = 0.6) -> list[float]:
    """Exponential moving average (TensorBoard-style, debiased); gaps (None/NaN) carry the last value."""
    out, avg, norm = [], 0.0, 0.0
    for v in values:
        if v is not None and math.isfinite(v):
            avg = weight * avg + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out.append(avg / norm if norm else math.nan)
    return out


def load_run(run_dir: str | Path) -> tuple[str, list[dict]]:
    """(label, per-step lines) of a run directory (or a metrics.jsonl path)."""
    from msa_rl.grpo_trainer import METRICS_FILE, read_metrics

    p = Path(run_dir)
    path = p / METRICS_FILE if p.is_dir() else p
    if not path.is_file():
        raise DataError(f"no {METRICS_FILE} (is this a `msa-rl grpo` output directory?)", file=path)
    rows = [r for r in read_metrics(path) if isinstance(r.get("step"), int)]
    if not rows:
        raise DataError("no per-step metrics yet", file=path)
    label = (p if p.is_dir() else p.parent).name
    return label, sorted(rows, key=lambda r: r["step"])


def series(rows: list[dict], key: str) -> tuple[list[int], list[float | None]]:
    return [r["step"] for r in rows], [r.get(key) for r in rows]


def plot_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    smoothing: float = 0.6,
) -> list[Path]:
    """Write REWARD_PNG and FRACTIONS_PNG into ``out_dir``; raw values faint, smoothed curves solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(d) for d in run_dirs]
    if labels:
        if len(labels) != len(runs):
            raise DataError(f"{len(labels)} labels for {len(runs)} runs")
        runs = [(lab, rows) for lab, (_, rows) in zip(labels, runs, strict=True)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, rows) in enumerate(runs):
        steps, values = series(rows, "reward/total")
        c = colors[i % len(colors)]
        ax.plot(steps, [math.nan if v is None else v for v in values], color=c, alpha=0.25, linewidth=1)
        ax.plot(steps, smooth(values, smoothing), color=c, linewidth=2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("total reward (λ-weighted)")
    ax.set_title("Training reward")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    reward_png = out / REWARD_PNG
    fig.savefig(reward_png, dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(FRACTION_KEYS), figsize=(4 * len(FRACTION_KEYS), 3.6), sharey=True)
    for ax, (key, title) in zip(axes, FRACTION_KEYS, strict=True):
        for i, (label, rows) in enumerate(runs):
            steps, values = series(rows, key)
            ax.plot(steps, smooth(values, smoothing), color=colors[i % len(colors)], linewidth=2, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of groups")
    axes[0].legend()
    fig.tight_layout()
    fractions_png = out / FRACTIONS_PNG
    fig.savefig(fractions_png, dpi=120)
    plt.close(fig)
    return [reward_png, fractions_png]
