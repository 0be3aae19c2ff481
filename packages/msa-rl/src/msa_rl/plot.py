"""`msa-rl plot`: the paper's Fig. 3 (total reward per step, several runs overlaid) and the hard / zero-std
fractions per step, from each run's ``metrics.jsonl``, as PNG files.

Fig. 3's curve is the reward of what the policy sampled on its own, before any hint or re-sampling
(``reward/total_sampled``). The reward after hints (``reward/total``) contains the injected true polarity, so it
flatters the hint; it is drawn at most as a second, dashed and labelled line, for runs that hinted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from msa_core import DataError
from msa_core.outdir import ensure_writable_dir

REWARD_PNG = "reward_total.png"
SAMPLED_KEY, POST_HINT_KEY = "reward/total_sampled", "reward/total"
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


def hinted(rows: list[dict]) -> bool:
    """Whether a run injected hints in any step (its post-hint reward differs from what it sampled)."""
    return any((r.get("groups/hinted") or 0) > 0 or r.get("hint_success") is not None for r in rows)


@dataclass(frozen=True)
class Curve:
    """One line of Fig. 3: legend label, the metrics.jsonl key it reads, and whether it is the dashed one."""

    label: str
    key: str
    dashed: bool = False


def fig3_curves(runs: Sequence[tuple[str, list[dict]]], *, post_hint: bool = True) -> list[list[Curve]]:
    """Per run its Fig. 3 lines: the pre-hint sampled reward (solid); with ``post_hint`` and a run that hinted, the
    post-hint reward (dashed). A run logged before ``reward/total_sampled`` existed has only ``reward/total``,
    which then stands in, and its legend says so."""
    out = []
    for label, rows in runs:
        if not any(r.get(SAMPLED_KEY) is not None for r in rows):
            out.append([Curve(f"{label}: total (no pre-hint record)", POST_HINT_KEY)])
            continue
        curves = [Curve(f"{label}: sampled (before hints)", SAMPLED_KEY)]
        if post_hint and hinted(rows):
            curves.append(Curve(f"{label}: after hints (has the true polarity)", POST_HINT_KEY, dashed=True))
        out.append(curves)
    return out


def plot_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    smoothing: float = 0.6,
    post_hint: bool = True,
) -> list[Path]:
    """Write REWARD_PNG and FRACTIONS_PNG into ``out_dir``. Fig. 3: per run the pre-hint sampled reward, raw values
    faint and smoothed curve solid; with ``post_hint``, runs that hinted also get their post-hint reward, dashed."""
    out = ensure_writable_dir(out_dir, "--out")  # before any work
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(d) for d in run_dirs]
    if labels:
        if len(labels) != len(runs):
            raise DataError(f"{len(labels)} labels for {len(runs)} runs")
        runs = [(lab, rows) for lab, (_, rows) in zip(labels, runs, strict=True)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, ((_, rows), curves) in enumerate(zip(runs, fig3_curves(runs, post_hint=post_hint), strict=True)):
        c = colors[i % len(colors)]
        for curve in curves:
            steps, values = series(rows, curve.key)
            if curve.dashed:
                ax.plot(steps, smooth(values, smoothing), "--", color=c, linewidth=1.5, label=curve.label)
                continue
            ax.plot(steps, [math.nan if v is None else v for v in values], color=c, alpha=0.25, linewidth=1)
            ax.plot(steps, smooth(values, smoothing), color=c, linewidth=2, label=curve.label)
    ax.set_xlabel("step")
    ax.set_ylabel("total reward (λ-weighted)")
    ax.set_title("Training reward of the policy's own samples")
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


def _seed_band(
    runs: Sequence[list[dict]], key: str, smoothing: float
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per step: the mean over seeds of each seed's smoothed curve, and the lowest and highest seed. Steps some seed
    has not reached are cut."""
    curves = []
    for rows in runs:
        steps, values = series(rows, key)
        curves.append(dict(zip(steps, smooth(values, smoothing), strict=True)))
    common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    kept, mean, lo, hi = [], [], [], []
    for step in common:
        vals = [c[step] for c in curves if math.isfinite(c[step])]
        if vals:
            kept.append(step)
            mean.append(sum(vals) / len(vals))
            lo.append(min(vals))
            hi.append(max(vals))
    return kept, mean, lo, hi


def plot_seed_bands(
    groups: Sequence[tuple[str, Sequence[str | Path]]],
    out_dir: str | Path,
    *,
    post_hint: str | None = None,
    smoothing: float = 0.6,
) -> list[Path]:
    """Fig. 3 over seeds: for each (label, run dirs of its seeds), the reward of what the policy sampled on its own
    (``reward/total_sampled``, before any hint) as the mean over seeds, banded by the lowest and highest seed
    (each seed's curve smoothed first); ``post_hint`` names the
    group whose post-hint reward (``reward/total``: it contains the injected polarity) is drawn as a separate
    dashed curve. A second figure: the hard and zero-std fractions per step. Writes REWARD_PNG and FRACTIONS_PNG."""
    out = ensure_writable_dir(out_dir, "--out")  # before any work
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [(label, [load_run(d)[1] for d in dirs]) for label, dirs in groups]
    if any(not runs for _, runs in loaded):
        raise DataError("every curve needs at least one run")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n_seeds = max(len(runs) for _, runs in loaded)

    def draw(ax, runs, key, color, label, style="-") -> None:
        steps, mean, lo, hi = _seed_band(runs, key, smoothing)
        ax.plot(steps, mean, style, color=color, linewidth=2, label=label)
        ax.fill_between(steps, lo, hi, color=color, alpha=0.15, linewidth=0)

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (label, runs) in enumerate(loaded):
        draw(ax, runs, SAMPLED_KEY, colors[i % len(colors)], f"{label}: sampled (before hints)")
        if label == post_hint:
            draw(
                ax,
                runs,
                POST_HINT_KEY,
                colors[i % len(colors)],
                f"{label}: after hints (has the true polarity)",
                "--",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("total reward (λ-weighted)")
    ax.set_title(f"Training reward: mean of {n_seeds} seed(s), band = min-max (EMA {smoothing})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    reward_png = out / REWARD_PNG
    fig.savefig(reward_png, dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(FRACTION_KEYS), figsize=(4 * len(FRACTION_KEYS), 3.6), sharey=True)
    for ax, (key, title) in zip(axes, FRACTION_KEYS, strict=True):
        for i, (label, runs) in enumerate(loaded):
            draw(ax, runs, key, colors[i % len(colors)], label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of groups")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fractions_png = out / FRACTIONS_PNG
    fig.savefig(fractions_png, dpi=120)
    plt.close(fig)
    return [reward_png, fractions_png]
