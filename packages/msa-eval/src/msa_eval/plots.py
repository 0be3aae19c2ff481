"""Report figures: per dataset a 3-class polarity confusion matrix and a prediction-vs-label scatter
(one panel per run), plus a summary bar chart. Figures are built on ``matplotlib.figure.Figure`` (Agg
canvas), never pyplot, so no GUI backend or global state is touched; matplotlib is imported only here,
inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from msa_core import POLARITIES, DatasetSpec


@dataclass(frozen=True)
class RunPanel:
    """What one run contributes to a dataset's figures (scores after the failure policy)."""

    run: str
    preds: np.ndarray
    labels: np.ndarray
    failed: np.ndarray  # bool per clip: a parse failure (plotted apart)
    pred_polarity: np.ndarray  # 0/1/2
    true_polarity: np.ndarray


def _figure(n_panels: int, panel_size: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(max(n_panels, 1), 3)
    nrows = math.ceil(max(n_panels, 1) / ncols)
    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def confusion_counts(true_pol: np.ndarray, pred_pol: np.ndarray) -> np.ndarray:
    """3×3 counts, rows = true polarity, columns = predicted polarity (negative, neutral, positive)."""
    counts = np.zeros((3, 3), dtype=np.int64)
    np.add.at(counts, (true_pol, pred_pol), 1)
    return counts


def plot_confusion(title: str, panels: Sequence[RunPanel], path: Path) -> Path:
    """One row-normalised confusion matrix per run, cells annotated with counts and row percentages."""
    fig, axes = _figure(len(panels))
    for ax, panel in zip(axes, panels, strict=False):
        counts = confusion_counts(panel.true_polarity, panel.pred_polarity)
        rows = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros((3, 3)), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(3):
            for j in range(3):
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(
                    j, i, f"{counts[i, j]}\n{100 * share[i, j]:.0f}%", ha="center", va="center", color=colour
                )
        ax.set_xticks(range(3), [p[:3] for p in POLARITIES])
        ax.set_yticks(range(3), [p[:3] for p in POLARITIES])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(panel.run, fontsize=10)
    fig.suptitle(f"{title}: polarity confusion")
    fig.savefig(path, dpi=110)
    return path


def plot_scatter(title: str, spec: DatasetSpec, panels: Sequence[RunPanel], path: Path) -> Path:
    """Prediction against label per run, the identity line, parse failures as red crosses."""
    fig, axes = _figure(len(panels))
    lo, hi = spec.score_range
    pad = 0.08 * (hi - lo)
    for ax, panel in zip(axes, panels, strict=False):
        ok = ~panel.failed
        ax.scatter(panel.labels[ok], panel.preds[ok], s=10, alpha=0.5, color="tab:blue", label="parsed")
        if panel.failed.any():
            ax.scatter(
                panel.labels[~ok], panel.preds[~ok], s=18, marker="x", color="tab:red", label="parse failure"
            )
            ax.legend(loc="upper left", fontsize=7)
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, linestyle="--")
        # Show out-of-range predictions, but not so far out that one wild score flattens the panel.
        span_lo = max(min(lo, float(panel.preds.min(initial=lo))), lo - 0.5 * (hi - lo)) - pad
        span_hi = min(max(hi, float(panel.preds.max(initial=hi))), hi + 0.5 * (hi - lo)) + pad
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(span_lo, span_hi)
        ax.set_xlabel("label")
        ax.set_ylabel("prediction")
        ax.set_title(panel.run, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: prediction vs label")
    fig.savefig(path, dpi=110)
    return path


def plot_summary(
    runs: Sequence[str],
    datasets: Sequence[tuple[str, str]],
    values: dict[tuple[str, str, str], float],
    path: Path,
) -> Path:
    """Grouped bars per dataset: Acc2 ×100 (Non0 for MOSI-style) and Corr, one bar per run.

    ``datasets`` holds (name, title); ``values[(run, dataset, "acc2"|"corr")]`` (missing keys are left out).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(
        figsize=(max(6.0, 1.6 * len(datasets) * max(len(runs), 1) / 2 + 3), 4.2), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, squeeze=False).ravel()
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(datasets))
    panels = (("acc2", "Acc2 ×100 (Non0 for MOSI-style)", 100.0), ("corr", "Corr", 1.0))
    for ax, (metric, label, scale) in zip(axes, panels, strict=True):
        for r, run in enumerate(runs):
            heights = [values.get((run, name, metric), np.nan) * scale for name, _ in datasets]
            ax.bar(x + (r - (len(runs) - 1) / 2) * width, heights, width, label=run)
        ax.set_xticks(x, [title for _, title in datasets], rotation=15, ha="right")
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(runs), 4), fontsize=8
    )
    fig.savefig(path, dpi=110)
    return path
