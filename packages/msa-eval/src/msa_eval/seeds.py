"""Statistics over training seeds: the mean with a Student-t interval, and a paired test pooled over seeds.

A row trained with several seeds gives one metric value per seed. Its summary is the mean over seeds with a 95 %
Student-t interval (the spread between seeds: training randomness). Two rows compared on the same clips with the
same seeds get a paired clip bootstrap pooled over seeds: each resample draws clip indices once and applies them to
every seed (a clip is the same clip in every seed), and the statistic is the mean over seeds of B − A. That test
asks whether the difference outlives the choice of test clips for these trained models; the per-seed differences
(their own t interval, and in how many seeds B was better) show whether it outlives the training seed.
No scipy: the t quantiles come from a table (df 1-30), with a Cornish-Fisher expansion beyond it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msa_eval.bootstrap import _resamples
from msa_eval.metrics import LOWER_IS_BETTER, PerSample, evaluate

# Two-sided 95 % quantiles t_{0.975, df} of Student's t for df = 1..30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t975(df: int) -> float:
    """t_{0.975, df}: the half-width factor of a 95 % interval from ``df + 1`` values."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class SeedSummary:
    """Mean over seeds and the half-width of its 95 % t interval (NaN with fewer than two finite values)."""

    mean: float
    half_width: float
    n: int
    values: tuple[float, ...]

    def as_dict(self) -> dict:
        return {"mean": _json(self.mean), "half_width": _json(self.half_width), "n": self.n}


def _json(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def mean_interval(values: Sequence[float | None]) -> SeedSummary:
    """Mean and 95 % t half-width of the finite values (a seed whose metric is undefined is left out)."""
    vals = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not vals:
        return SeedSummary(math.nan, math.nan, 0, vals)
    mean = float(np.mean(vals))
    if len(vals) < 2:
        return SeedSummary(mean, math.nan, len(vals), vals)
    sd = float(np.std(vals, ddof=1))
    return SeedSummary(mean, t975(len(vals) - 1) * sd / math.sqrt(len(vals)), len(vals), vals)


def b_is_better(metric: str, diff: float) -> bool:
    """Whether B − A = ``diff`` favours B (lower MAE is better, higher everything else)."""
    return diff < 0 if metric in LOWER_IS_BETTER else diff > 0


def _diff(a: PerSample, b: PerSample, idx: np.ndarray | None) -> dict[str, np.ndarray]:
    ea, eb = evaluate(a, idx), evaluate(b, idx)
    return {k: eb[k] - ea[k] for k in ea}


def paired_over_seeds(
    pairs: Sequence[tuple[PerSample, PerSample]], n_boot: int = 2000, seed: int = 0
) -> dict[str, dict]:
    """Paired comparison B − A per metric, from one (A, B) pair of scored runs per seed on the same clips.

    Row i of every PerSample must be the same clip. Returns ``{metric: {"diff": mean over seeds of B − A,
    "per_seed": [B − A per seed], "seeds": SeedSummary of those, "b_better": seeds where B is better,
    "p_value": two-sided p of the clip bootstrap pooled over seeds}}``; the p-value follows
    :func:`msa_eval.bootstrap.paired_bootstrap` (+1 smoothing, never exactly 0).
    """
    if not pairs:
        raise ValueError("no seeds to compare")
    n, family = pairs[0][0].n, pairs[0][0].family
    if n == 0 or any(a.n != n or b.n != n or a.family != family or b.family != family for a, b in pairs):
        raise ValueError("a paired test needs every run scored on the same clips of the same dataset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        points = [{k: float(v[0]) for k, v in _diff(a, b, None).items()} for a, b in pairs]
        totals: dict[str, list[np.ndarray]] = {}
        for idx in _resamples(n, n_boot, seed):
            per_seed = [_diff(a, b, idx) for a, b in pairs]
            for key in per_seed[0]:
                totals.setdefault(key, []).append(np.mean([d[key] for d in per_seed], axis=0))
    out: dict[str, dict] = {}
    for key, chunks in totals.items():
        dist = np.concatenate(chunks)
        dist = dist[np.isfinite(dist)]
        if dist.size == 0:
            p = math.nan
        else:
            below = (np.count_nonzero(dist <= 0) + 1) / (dist.size + 1)
            above = (np.count_nonzero(dist >= 0) + 1) / (dist.size + 1)
            p = float(min(1.0, 2.0 * min(below, above)))
        diffs = [pt[key] for pt in points]
        summary = mean_interval(diffs)
        out[key] = {
            "diff": summary.mean,
            "per_seed": diffs,
            "seeds": summary,
            "b_better": sum(1 for d in diffs if math.isfinite(d) and b_is_better(key, d)),
            "p_value": p,
        }
    return out
