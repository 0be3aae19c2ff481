"""Bootstrap intervals and the paired bootstrap test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from msa_eval.bootstrap import bootstrap_ci, bootstrap_distribution, paired_bootstrap
from msa_eval.metrics import compute_metrics, evaluate, prepare


def _case(seed: int, n: int = 150, noise: float = 0.4):
    rng = np.random.default_rng(seed)
    labels = np.round(rng.uniform(-1, 1, n) * 5) / 5
    return labels + rng.normal(0, noise, n), labels


def test_evaluate_on_all_clips_equals_compute_metrics():
    preds, labels = _case(0)
    point = {k: float(v[0]) for k, v in evaluate(prepare(preds, labels, "mosi")).items()}
    full = compute_metrics(preds, labels, "mosi")
    assert point == {k: full[k] for k in point}


def test_resample_row_equals_metrics_of_the_resampled_arrays():
    preds, labels = _case(1)
    ps = prepare(preds, labels, "sims")
    idx = np.random.default_rng(5).integers(0, ps.n, size=(3, ps.n))
    rows = evaluate(ps, idx)
    for r in range(3):
        direct = compute_metrics(preds[idx[r]], labels[idx[r]], "sims")
        for key, values in rows.items():
            assert values[r] == pytest.approx(direct[key], abs=1e-12), key


def test_interval_brackets_the_estimate_and_is_reproducible():
    preds, labels = _case(2)
    ps = prepare(preds, labels, "sims")
    ci = bootstrap_ci(ps, n_boot=300, seed=4)
    point = compute_metrics(preds, labels, "sims")
    for key, (lo, hi) in ci.items():
        assert lo < hi, key
        assert lo <= point[key] <= hi, key
    assert ci == bootstrap_ci(ps, n_boot=300, seed=4)
    assert ci != bootstrap_ci(ps, n_boot=300, seed=5)
    assert bootstrap_distribution(ps, 250, 0)["mae"].shape == (250,)  # more than one chunk of resamples


def test_paired_test_identical_runs_gives_p_one():
    preds, labels = _case(3)
    ps = prepare(preds, labels, "mosi")
    res = paired_bootstrap(ps, ps, n_boot=100, seed=0)
    assert all(r["p_value"] == 1.0 and r["diff"] == 0.0 for r in res.values())


def test_paired_test_detects_a_clearly_better_run():
    preds, labels = _case(4, n=200, noise=0.6)
    worse = prepare(preds, labels, "sims")
    better = prepare(labels + np.random.default_rng(9).normal(0, 0.05, labels.size), labels, "sims")
    res = paired_bootstrap(worse, better, n_boot=200, seed=0)
    assert res["mae"]["diff"] < 0 and res["mae"]["p_value"] < 0.02
    assert res["acc5"]["diff"] > 0 and res["acc5"]["p_value"] < 0.02
    assert math.isclose(res["mae"]["a"], compute_metrics(preds, labels, "sims")["mae"])


def test_paired_test_needs_the_same_clips():
    a = prepare(*_case(5, n=10), "sims")
    b = prepare(*_case(5, n=11), "sims")
    with pytest.raises(ValueError, match="same clips"):
        paired_bootstrap(a, b, n_boot=10)
