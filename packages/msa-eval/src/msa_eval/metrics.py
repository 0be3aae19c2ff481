"""MMSA-exact regression metrics (``thuiar/MMSA``, ``utils/metricsTop.py``), re-implemented for the bootstrap.

Every metric is an average over clips of a per-clip quantity (a hit, an absolute error, a confusion count),
so a clip resample is just an index array: :func:`prepare` computes the per-clip quantities once and
:func:`evaluate` averages them over one or many index rows. The point estimate is the row ``arange(n)``.

MMSA's rules, reproduced exactly (to 1e-9 before rounding):

* MOSI-style (``metric_family == "mosi"``): Acc7 = equal ``round(clip(x, ±3))``, Acc5 = equal
  ``round(clip(x, ±2))`` (``np.round`` rounds half to even), MAE and Corr on the unclipped values; Has0
  Acc2/F1 on ``x >= 0`` over all clips, Non0 Acc2/F1 on ``x > 0`` over clips whose label is not 0; weighted
  F1. Beyond MMSA: Acc3 = equal polarity under the dataset spec's neutral band (MOSI/MOSEI ``[-0.5, 0.5]``,
  i.e. ``round(clip(x, ±1))``).
* SIMS-style (``metric_family == "sims"``): clip both to [-1, 1] first (MAE and Corr too), then left-open /
  right-closed bins Acc2 ``[-1.01, 0, 1.01]``, Acc3 ``[-1.01, -0.1, 0.1, 1.01]``, Acc5
  ``[-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]``; weighted F1 on the two Acc2 classes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from msa_core import POLARITIES, DatasetSpec, get_spec, polarity_of

Family = Literal["mosi", "sims"]

MOSI_KEYS: tuple[str, ...] = (
    "acc2_has0",
    "f1_has0",
    "acc2_non0",
    "f1_non0",
    "acc3",
    "acc5",
    "acc7",
    "mae",
    "corr",
    "n",
    "parse_failures",
)
SIMS_KEYS: tuple[str, ...] = ("acc2", "f1", "acc3", "acc5", "mae", "corr", "n", "parse_failures")
KEYS_BY_FAMILY: dict[str, tuple[str, ...]] = {"mosi": MOSI_KEYS, "sims": SIMS_KEYS}
COUNT_KEYS = frozenset({"n", "parse_failures"})
# Fractions in [0, 1] that papers print ×100.
PERCENT_KEYS = frozenset(
    {"acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc2", "f1", "acc3", "acc5", "acc7"}
)
LOWER_IS_BETTER = frozenset({"mae"})

# MMSA's SIMS bin edges (left-open, right-closed); -1.01 / 1.01 so that ±1 fall inside the outer bins.
SIMS_BINS2 = (-1.01, 0.0, 1.01)
SIMS_BINS3 = (-1.01, -0.1, 0.1, 1.01)
SIMS_BINS5 = (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)
_POLARITY_INDEX = {p: i for i, p in enumerate(POLARITIES)}


class MetricWarning(UserWarning):
    """A metric is undefined on this data (constant predictions, no non-zero labels); reported as NaN."""


def metric_keys(family: str) -> tuple[str, ...]:
    """The metric keys (in output order) of a metric family, counts included."""
    return KEYS_BY_FAMILY[family]


def value_keys(family: str) -> tuple[str, ...]:
    """The metric keys of a family without the counts ``n`` and ``parse_failures``."""
    return tuple(k for k in KEYS_BY_FAMILY[family] if k not in COUNT_KEYS)


def sims_bin(x: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Index ``i`` of the left-open/right-closed bin ``(edges[i], edges[i+1]]`` of each value (MMSA)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left") - 1


def polarity_index(x: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """0/1/2 = negative/neutral/positive under the spec's neutral band (msa_core.polarity_of)."""
    return np.fromiter(
        (_POLARITY_INDEX[polarity_of(float(v), spec)] for v in x), dtype=np.int64, count=len(x)
    )


@dataclass(frozen=True)
class BinaryTask:
    """A two-class task scored by accuracy and weighted F1 over the clips where ``mask`` is true."""

    pred: np.ndarray  # bool
    true: np.ndarray  # bool
    mask: np.ndarray  # bool: the clip takes part (Non0 drops label == 0)


@dataclass(frozen=True)
class PerSample:
    """Per-clip quantities of one prediction file; every metric averages these over a row of clip indices."""

    family: str
    values: np.ndarray  # predictions entering MAE/Corr (clipped for SIMS)
    targets: np.ndarray  # labels entering MAE/Corr (clipped for SIMS)
    hits: dict[str, np.ndarray]  # metric key -> bool per clip (multi-class accuracies)
    binary: dict[str, tuple[str, BinaryTask]]  # acc key -> (f1 key, task)
    pred_polarity: np.ndarray  # 0/1/2 per clip, for confusion matrices
    true_polarity: np.ndarray
    n: int = field(default=0)


def _as_1d(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; resolve parse failures before scoring")
    return arr


def prepare(preds, labels, spec: DatasetSpec | str) -> PerSample:
    """Per-clip quantities for ``preds`` against ``labels`` under the spec's metric family."""
    spec = get_spec(spec)
    p, t = _as_1d(preds, "preds"), _as_1d(labels, "labels")
    if p.shape != t.shape:
        raise ValueError(f"preds ({p.size}) and labels ({t.size}) differ in length")
    pred_pol, true_pol = polarity_index(p, spec), polarity_index(t, spec)
    if spec.metric_family == "mosi":
        hits = {
            "acc3": pred_pol == true_pol,
            "acc5": np.round(np.clip(p, -2.0, 2.0)) == np.round(np.clip(t, -2.0, 2.0)),
            "acc7": np.round(np.clip(p, -3.0, 3.0)) == np.round(np.clip(t, -3.0, 3.0)),
        }
        everyone = np.ones(p.shape, dtype=bool)
        binary = {
            "acc2_has0": ("f1_has0", BinaryTask(p >= 0, t >= 0, everyone)),
            "acc2_non0": ("f1_non0", BinaryTask(p > 0, t > 0, t != 0)),
        }
        return PerSample("mosi", p, t, hits, binary, pred_pol, true_pol, p.size)
    pc, tc = np.clip(p, -1.0, 1.0), np.clip(t, -1.0, 1.0)
    hits = {
        "acc2": sims_bin(pc, SIMS_BINS2) == sims_bin(tc, SIMS_BINS2),
        "acc3": sims_bin(pc, SIMS_BINS3) == sims_bin(tc, SIMS_BINS3),
        "acc5": sims_bin(pc, SIMS_BINS5) == sims_bin(tc, SIMS_BINS5),
    }
    task = BinaryTask(
        sims_bin(pc, SIMS_BINS2) == 1, sims_bin(tc, SIMS_BINS2) == 1, np.ones(p.shape, dtype=bool)
    )
    binary = {"acc2": ("f1", task)}
    return PerSample("sims", pc, tc, hits, binary, pred_pol, true_pol, p.size)


def _weighted_f1(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Support-weighted F1 of a two-class task per row (sklearn's ``average='weighted'``).

    A class absent from the truth has weight 0; a row with no clips is NaN.
    """
    m = mask.astype(np.float64)
    tp1 = (m * (pred & true)).sum(axis=1)
    fp1 = (m * (pred & ~true)).sum(axis=1)
    fn1 = (m * (~pred & true)).sum(axis=1)
    tp0 = (m * (~pred & ~true)).sum(axis=1)
    fp0, fn0 = fn1, fp1
    support1, support0 = tp1 + fn1, tp0 + fn0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_1 = np.where(support1 > 0, 2 * tp1 / np.maximum(2 * tp1 + fp1 + fn1, 1e-300), 0.0)
        f1_0 = np.where(support0 > 0, 2 * tp0 / np.maximum(2 * tp0 + fp0 + fn0, 1e-300), 0.0)
        total = support0 + support1
        return np.where(
            total > 0, (support0 * f1_0 + support1 * f1_1) / np.where(total > 0, total, 1), np.nan
        )


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r per row, NaN where either side is constant (np.corrcoef would divide by ~0 there)."""
    constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0)
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))


def evaluate(ps: PerSample, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each non-count metric of the family per row of clip indices ``idx`` (B, m); None = all clips."""
    if idx is None:
        idx = np.arange(ps.n)[None, :]
    out: dict[str, np.ndarray] = {}
    for acc_key, (f1_key, task) in ps.binary.items():
        mask = task.mask[idx]
        pred, true = task.pred[idx], task.true[idx]
        kept = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[acc_key] = np.where(
                kept > 0, (mask & (pred == true)).sum(axis=1) / np.maximum(kept, 1), np.nan
            )
        out[f1_key] = _weighted_f1(pred, true, mask)
    for key, hit in ps.hits.items():
        out[key] = hit[idx].mean(axis=1)
    values, targets = ps.values[idx], ps.targets[idx]
    out["mae"] = np.abs(values - targets).mean(axis=1)
    out["corr"] = _pearson(values, targets)
    return {k: out[k] for k in value_keys(ps.family)}


def metrics_from_samples(ps: PerSample, *, parse_failures: int = 0) -> dict[str, float | int]:
    """The point estimate (all clips) as a flat dict in the family's key order; warns on NaN metrics."""
    if ps.n == 0:
        raise ValueError("no predictions to score")
    row = {k: float(v[0]) for k, v in evaluate(ps).items()}
    if math.isnan(row["corr"]):
        warnings.warn(
            "corr is undefined because the predictions or the labels are constant; reported as NaN",
            MetricWarning,
            stacklevel=2,
        )
    if ps.family == "mosi" and math.isnan(row["acc2_non0"]):
        warnings.warn(
            "every label is 0, so Non0 Acc2/F1 are undefined; reported as NaN", MetricWarning, stacklevel=2
        )
    row["n"] = ps.n
    row["parse_failures"] = int(parse_failures)
    return {k: row[k] for k in metric_keys(ps.family)}


def compute_metrics(
    preds, labels, spec: DatasetSpec | str, *, parse_failures: int = 0
) -> dict[str, float | int]:
    """MMSA's metrics (plus Acc3 for MOSI-style data, ``n`` and ``parse_failures``) as unrounded fractions.

    ``preds`` and ``labels`` must be finite (apply the parse-failure policy first); keys follow
    :data:`MOSI_KEYS`
    or :data:`SIMS_KEYS` depending on ``get_spec(spec).metric_family``.
    """
    return metrics_from_samples(prepare(preds, labels, spec), parse_failures=parse_failures)
