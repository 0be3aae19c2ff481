"""Statistics over training seeds: the t interval and the paired clip bootstrap pooled over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from msa_eval.bootstrap import paired_bootstrap
from msa_eval.metrics import prepare
from msa_eval.seeds import b_is_better, mean_interval, paired_over_seeds, t975


def test_t_quantiles_from_the_table_and_beyond():
    assert t975(2) == pytest.approx(4.303)
    assert t975(30) == pytest.approx(2.042)
    assert t975(40) == pytest.approx(2.021, abs=2e-3)  # Student's t_{0.975, 40} = 2.0211
    assert t975(10**6) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError):
        t975(0)


def test_mean_interval_over_seeds():
    s = mean_interval([1.0, 2.0, 3.0])
    assert (s.mean, s.n) == (2.0, 3)
    assert s.half_width == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    one = mean_interval([0.5, None, float("nan")])
    assert (one.mean, one.n) == (0.5, 1) and math.isnan(one.half_width)
    assert one.as_dict() == {"mean": 0.5, "half_width": None, "n": 1}
    assert mean_interval([]).n == 0


def _scored(preds, labels):
    return prepare(np.asarray(preds, float), np.asarray(labels, float), "sims")


def test_one_seed_equals_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    labels = rng.uniform(-1, 1, 40)
    a, b = _scored(labels + rng.normal(0, 0.6, 40), labels), _scored(labels + rng.normal(0, 0.2, 40), labels)
    pooled = paired_over_seeds([(a, b)], n_boot=300, seed=3)
    single = paired_bootstrap(a, b, n_boot=300, seed=3)
    for key, value in single.items():
        assert pooled[key]["diff"] == pytest.approx(value["diff"], nan_ok=True)
        assert pooled[key]["p_value"] == pytest.approx(value["p_value"], nan_ok=True)


def test_pooled_test_finds_a_consistent_gain_and_no_gain_between_equal_runs():
    rng = np.random.default_rng(1)
    labels = rng.uniform(-1, 1, 60)
    seeds = []
    for _ in range(3):
        good = _scored(labels + rng.normal(0, 0.1, 60), labels)
        bad = _scored(-labels, labels)  # every polarity wrong
        seeds.append((bad, good))
    out = paired_over_seeds(seeds, n_boot=400)
    assert out["acc2"]["diff"] > 0.8 and out["acc2"]["p_value"] < 0.01
    assert out["acc2"]["b_better"] == 3 and len(out["acc2"]["per_seed"]) == 3
    assert out["mae"]["diff"] < 0 and out["mae"]["b_better"] == 3  # lower MAE is better
    same = paired_over_seeds([(good, good) for _, good in seeds], n_boot=200)
    assert same["acc2"]["diff"] == 0 and same["acc2"]["p_value"] == 1.0 and same["acc2"]["b_better"] == 0


def test_pairs_must_share_their_clips():
    a = _scored([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    b = _scored([0.1, 0.2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same clips"):
        paired_over_seeds([(a, b)])
    with pytest.raises(ValueError, match="no seeds"):
        paired_over_seeds([])


def test_better_direction():
    assert b_is_better("mae", -0.1) and not b_is_better("mae", 0.1)
    assert b_is_better("acc2", 0.1) and not b_is_better("corr", -0.1)
