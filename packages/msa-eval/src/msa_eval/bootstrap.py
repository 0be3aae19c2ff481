"""Bootstrap over clips: percentile confidence intervals and a paired test between two runs.

Both resample clip indices with replacement and re-evaluate the very metrics of :mod:`msa_eval.metrics`
on each resample (they are averages of per-clip quantities, so a resample is an index row). Resamples on
which a metric is undefined (e.g. constant predictions for Corr) are left out of that metric's percentiles.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from msa_eval.metrics import PerSample, evaluate

_CHUNK = 200  # resamples evaluated at once: bounds memory at CHUNK × n per array


def _resamples(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        size = min(_CHUNK, n_boot - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _collect(per_chunk: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([c[k] for c in per_chunk]) for k in per_chunk[0]}


def bootstrap_distribution(ps: PerSample, n_boot: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Each metric on ``n_boot`` clip resamples (arrays of length n_boot)."""
    if n_boot < 1 or ps.n == 0:
        raise ValueError("the bootstrap needs n_boot >= 1 and at least one clip")
    return _collect([evaluate(ps, idx) for idx in _resamples(ps.n, n_boot, seed)])


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(finite, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return (float(lo), float(hi))


def bootstrap_ci(
    ps: PerSample, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile ``confidence`` interval of every metric from ``n_boot`` clip resamples."""
    dist = bootstrap_distribution(ps, n_boot, seed)
    return {k: _percentiles(v, confidence) for k, v in dist.items()}


def paired_bootstrap(ps_a: PerSample, ps_b: PerSample, n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Paired bootstrap test of B − A per metric on the same clips (row i of both must be the same clip).

    Both runs are evaluated on the same resampled indices. The two-sided p-value is twice the smaller share of
    resamples whose difference falls on either side of zero, with +1 smoothing so it is never exactly 0.
    Returns ``{metric: {"a", "b", "diff", "p_value"}}``.
    """
    if ps_a.n != ps_b.n or ps_a.family != ps_b.family:
        raise ValueError("a paired test needs two runs scored on the same clips of the same dataset")
    if ps_a.n == 0:
        raise ValueError("no common clips to compare")
    point_a = {k: float(v[0]) for k, v in evaluate(ps_a).items()}
    point_b = {k: float(v[0]) for k, v in evaluate(ps_b).items()}
    chunks_a, chunks_b = [], []
    for idx in _resamples(ps_a.n, n_boot, seed):
        chunks_a.append(evaluate(ps_a, idx))
        chunks_b.append(evaluate(ps_b, idx))
    dist_a, dist_b = _collect(chunks_a), _collect(chunks_b)
    out: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for key in point_a:
            diff = dist_b[key] - dist_a[key]
            diff = diff[np.isfinite(diff)]
            if diff.size == 0:
                p = float("nan")
            else:
                below = (np.count_nonzero(diff <= 0) + 1) / (diff.size + 1)
                above = (np.count_nonzero(diff >= 0) + 1) / (diff.size + 1)
                p = float(min(1.0, 2.0 * min(below, above)))
            out[key] = {
                "a": point_a[key],
                "b": point_b[key],
                "diff": point_b[key] - point_a[key],
                "p_value": p,
            }
    return out
