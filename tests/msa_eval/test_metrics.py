"""Metrics equal MMSA's: hand-computed bin edges, a plain pure-Python re-implementation, NaN corr."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from msa_eval.metrics import (
    MOSI_KEYS,
    SIMS_BINS2,
    SIMS_BINS3,
    SIMS_BINS5,
    SIMS_KEYS,
    MetricWarning,
    compute_metrics,
    prepare,
    sims_bin,
)
from sklearn.metrics import f1_score

# ------------------------------------------------------- a second, plain re-implementation (no numpy)


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _acc(pairs) -> float:
    pairs = list(pairs)
    return sum(1 for a, b in pairs if a == b) / len(pairs)


def _wf1(true: list, pred: list) -> float:
    """Support-weighted F1 over the classes present in either list (sklearn's 'weighted' average)."""
    total = 0.0
    for c in set(true) | set(pred):
        tp = sum(1 for t, p in zip(true, pred, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(true, pred, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(true, pred, strict=True) if t == c and p != c)
        support = tp + fn
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        total += support * f1
    return total / len(true)


def _pearson(x: list, y: list) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def _bin(x: float, edges) -> int:
    for i in range(len(edges) - 1):
        if edges[i] < x <= edges[i + 1]:
            return i
    raise AssertionError(x)


def reference_mosi(p: list, t: list) -> dict:
    nz = [i for i, v in enumerate(t) if v != 0]
    return {
        "acc2_has0": _acc((a >= 0, b >= 0) for a, b in zip(p, t, strict=True)),
        "f1_has0": _wf1([b >= 0 for b in t], [a >= 0 for a in p]),
        "acc2_non0": _acc((p[i] > 0, t[i] > 0) for i in nz),
        "f1_non0": _wf1([t[i] > 0 for i in nz], [p[i] > 0 for i in nz]),
        # Python's round() is round-half-to-even, like np.round.
        "acc3": _acc((round(_clip(a, -1, 1)), round(_clip(b, -1, 1))) for a, b in zip(p, t, strict=True)),
        "acc5": _acc((round(_clip(a, -2, 2)), round(_clip(b, -2, 2))) for a, b in zip(p, t, strict=True)),
        "acc7": _acc((round(_clip(a, -3, 3)), round(_clip(b, -3, 3))) for a, b in zip(p, t, strict=True)),
        "mae": sum(abs(a - b) for a, b in zip(p, t, strict=True)) / len(p),
        "corr": _pearson(p, t),
    }


def reference_sims(p: list, t: list) -> dict:
    p = [_clip(a, -1, 1) for a in p]
    t = [_clip(b, -1, 1) for b in t]
    e2, e3, e5 = (-1.01, 0.0, 1.01), (-1.01, -0.1, 0.1, 1.01), (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)
    b2p, b2t = [_bin(a, e2) for a in p], [_bin(b, e2) for b in t]
    return {
        "acc2": _acc(zip(b2p, b2t, strict=True)),
        "f1": _wf1(b2t, b2p),
        "acc3": _acc((_bin(a, e3), _bin(b, e3)) for a, b in zip(p, t, strict=True)),
        "acc5": _acc((_bin(a, e5), _bin(b, e5)) for a, b in zip(p, t, strict=True)),
        "mae": sum(abs(a - b) for a, b in zip(p, t, strict=True)) / len(p),
        "corr": _pearson(p, t),
    }


def _random_case(rng, family: str):
    n = int(rng.integers(5, 120))
    if family == "mosi":
        t = np.round(rng.uniform(-3, 3, n) * 3) / 3
        t[rng.random(n) < 0.15] = 0.0
        edges = [-3.5, -2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.5, -0.1, 0.1, 0.7, -0.7]
        p = np.where(rng.random(n) < 0.4, rng.choice(edges, n), rng.uniform(-3.8, 3.8, n))
    else:
        t = rng.choice([-1.0, -0.8, -0.7, -0.6, -0.2, -0.1, 0.0, 0.1, 0.2, 0.6, 0.7, 0.8, 1.0], n)
        edges = [-1.2, -1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0, 1.2]
        p = np.where(rng.random(n) < 0.4, rng.choice(edges, n), rng.uniform(-1.3, 1.3, n))
    return p, t


@pytest.mark.parametrize("family", ["mosi", "sims"])
def test_equals_plain_reimplementation_on_random_arrays(family):
    rng = np.random.default_rng(7)
    reference = reference_mosi if family == "mosi" else reference_sims
    for _ in range(60):
        p, t = _random_case(rng, family)
        ours = compute_metrics(p, t, family)
        ref = reference(p.tolist(), t.tolist())
        assert set(ours) == set(MOSI_KEYS if family == "mosi" else SIMS_KEYS)
        for key, value in ref.items():
            assert ours[key] == pytest.approx(value, abs=1e-9), key
        assert ours["n"] == len(p)


def test_weighted_f1_matches_sklearn_including_single_class_cases():
    rng = np.random.default_rng(3)
    cases = [(np.ones(6), np.ones(6)), (np.ones(6), -np.ones(6)), (np.ones(6), rng.uniform(-1, 1, 6))]
    cases += [(rng.uniform(-1, 1, 40), rng.uniform(-1, 1, 40)) for _ in range(10)]
    for t, p in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant arrays: corr NaN, not under test here
            ours = compute_metrics(p, t, "sims")["f1"]
        expected = f1_score(t > 0, p > 0, average="weighted")
        assert ours == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------- hand-computed MOSI-style cases


@pytest.mark.parametrize(
    ("pred", "label", "hit7", "hit5", "hit3"),
    [
        (-3.5, -3.0, True, True, True),  # outside the range: clipped to -3 (Acc7) and -2 (Acc5)
        (3.5, 2.6, True, True, True),
        (-2.5, -2.0, True, True, True),  # half to even: -2.5 -> -2
        (2.5, 3.0, False, True, True),  # 2.5 -> 2 (Acc7 miss); both clip to 2 for Acc5
        (-1.5, -1.0, False, False, True),  # -1.5 -> -2
        (1.5, 2.0, True, True, True),  # 1.5 -> 2
        (0.5, 0.0, True, True, True),  # 0.5 -> 0: neutral
        (-0.5, 1.0, False, False, False),  # -0.5 -> 0, neutral vs positive
        (0.6, 0.4, False, False, False),  # 0.6 -> 1 (positive) vs 0.4 -> 0 (neutral)
        (-0.1, 0.1, True, True, True),
        (-0.51, -1.0, True, True, True),
    ],
)
def test_mosi_bin_edges(pred, label, hit7, hit5, hit3):
    ps = prepare([pred], [label], "mosi")
    assert bool(ps.hits["acc7"][0]) is hit7
    assert bool(ps.hits["acc5"][0]) is hit5
    assert bool(ps.hits["acc3"][0]) is hit3


@pytest.mark.parametrize(
    ("pred", "label", "has0_hit", "in_non0", "non0_hit"),
    [
        (0.0, 0.0, True, False, None),  # Has0: 0 is >= 0 on both sides; Non0 drops label 0
        (-0.1, 0.0, False, False, None),
        (0.0, 1.0, True, True, False),  # Non0 uses > 0: a 0 prediction is negative
        (0.0, -1.0, False, True, True),  # Has0 uses >= 0: a 0 prediction is positive
    ],
)
def test_mosi_has0_non0_zero_handling(pred, label, has0_hit, in_non0, non0_hit):
    ps = prepare([pred], [label], "mosi")
    has0 = ps.binary["acc2_has0"][1]
    non0 = ps.binary["acc2_non0"][1]
    assert bool(has0.pred[0] == has0.true[0]) is has0_hit
    assert bool(non0.mask[0]) is in_non0
    if in_non0:
        assert bool(non0.pred[0] == non0.true[0]) is non0_hit


def test_mosi_hand_computed_aggregate():
    labels = [1.0, 2.0, -1.0, 0.0, -2.0]
    preds = [0.5, -0.3, -1.0, 0.2, 0.0]
    m = compute_metrics(preds, labels, "mosi", parse_failures=2)
    assert m["acc2_has0"] == pytest.approx(3 / 5)
    assert m["f1_has0"] == pytest.approx((3 * 2 / 3 + 2 * 0.5) / 5)
    assert m["acc2_non0"] == pytest.approx(3 / 4)
    assert m["f1_non0"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["mae"] == pytest.approx(1.0)
    # Acc7 classes: preds 0, 0, -1, 0, 0 vs labels 1, 2, -1, 0, -2 -> 2 hits; Acc3: neu,neu,neg,neu,neu vs
    # pos,pos,neg,neu,neg -> 2 hits
    assert m["acc7"] == pytest.approx(2 / 5)
    assert m["acc3"] == pytest.approx(2 / 5)
    assert (m["n"], m["parse_failures"]) == (5, 2)
    assert list(m) == list(MOSI_KEYS)


def test_mosi_acc3_is_round_of_clip_to_one():
    """Our MOSI Acc3 (the spec's neutral band) equals MMSA's computed-but-unreturned mult_a3."""
    rng = np.random.default_rng(11)
    p = np.concatenate([rng.uniform(-2, 2, 300), [-0.5, 0.5, -1.5, 1.5, 0.4999, 0.5001]])
    t = np.round(rng.uniform(-3, 3, p.size) * 3) / 3
    expected = np.mean(np.round(np.clip(p, -1, 1)) == np.round(np.clip(t, -1, 1)))
    assert compute_metrics(p, t, "mosi")["acc3"] == pytest.approx(expected, abs=1e-12)


def test_mosi_mae_and_corr_use_unclipped_values():
    m = compute_metrics([4.0, -4.0, 1.0], [3.0, -3.0, 1.0], "mosei")
    assert m["mae"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- hand-computed SIMS-style cases


@pytest.mark.parametrize(
    ("x", "b2", "b3", "b5"),
    [
        (-1.0, 0, 0, 0),
        (-0.7, 0, 0, 0),  # right-closed: -0.7 is in (-1.01, -0.7]
        (-0.69, 0, 0, 1),
        (-0.1, 0, 0, 1),  # -0.1 is negative for Acc3
        (-0.09, 0, 1, 2),
        (0.0, 0, 1, 2),  # 0 is the negative class of Acc2
        (0.01, 1, 1, 2),
        (0.1, 1, 1, 2),  # 0.1 is still neutral
        (0.11, 1, 2, 3),
        (0.7, 1, 2, 3),
        (0.71, 1, 2, 4),
        (1.0, 1, 2, 4),
    ],
)
def test_sims_bin_edges(x, b2, b3, b5):
    assert sims_bin(np.array([x]), SIMS_BINS2)[0] == b2
    assert sims_bin(np.array([x]), SIMS_BINS3)[0] == b3
    assert sims_bin(np.array([x]), SIMS_BINS5)[0] == b5


def test_sims_clips_out_of_range_before_everything():
    # 1.2 -> 1.0 and -1.2 -> -1.0: same bins as the labels, zero error, perfect correlation.
    m = compute_metrics([1.2, -1.2, 0.5, -0.5], [1.0, -1.0, 0.5, -0.5], "sims")
    assert m["acc2"] == m["acc3"] == m["acc5"] == m["f1"] == 1.0
    assert m["mae"] == 0.0
    assert m["corr"] == pytest.approx(1.0)


def test_sims_hand_computed_aggregate():
    labels = [-0.1, 0.1, 0.0, 0.7, -0.8, 1.0]
    preds = [-0.09, 0.11, 0.0, 0.71, -0.7, 1.5]
    m = compute_metrics(preds, labels, "simsv2")
    # Acc2 classes: labels 0,1,0,1,0,1 ; preds 0,1,0,1,0,1 -> all hit
    assert m["acc2"] == 1.0
    # Acc3: labels 0,1,1,2,0,2 ; preds 1,2,1,2,0,2 -> 4/6
    assert m["acc3"] == pytest.approx(4 / 6)
    # Acc5: labels 1,2,2,3,0,4 ; preds 2,3,2,4,0,4 -> 3/6
    assert m["acc5"] == pytest.approx(3 / 6)
    assert m["mae"] == pytest.approx((0.01 + 0.01 + 0 + 0.01 + 0.1 + 0) / 6)
    assert list(m) == list(SIMS_KEYS)


# ---------------------------------------------------------------- undefined metrics


@pytest.mark.parametrize("dataset", ["mosi", "sims"])
def test_constant_predictions_give_nan_corr_with_a_warning(dataset):
    with pytest.warns(MetricWarning, match="corr is undefined"):
        m = compute_metrics([0.3, 0.3, 0.3, 0.3], [0.1, -0.5, 0.9, 0.0], dataset)
    assert math.isnan(m["corr"])
    assert math.isfinite(m["mae"])


def test_all_zero_labels_give_nan_non0_with_a_warning():
    with pytest.warns(MetricWarning):
        m = compute_metrics([0.5, -0.5, 1.0], [0.0, 0.0, 0.0], "mosi")
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == pytest.approx(2 / 3)


def test_non_finite_inputs_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0.1, float("nan")], [0.0, 1.0], "mosi")
