"""msa_rl.rollout_correction: the truncated importance weights and the mismatch metrics, as pure functions."""

from __future__ import annotations

import math

import pytest
import torch
from msa_rl.rollout_correction import (
    RolloutCorrection,
    importance_weights,
    mismatch_metrics,
    mismatch_sums,
)

NAN = float("nan")
# Two completions of 3 token slots; the second has 2 tokens and a padding slot.
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
TRAINER = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -3.0, -9.0]])
# d = trainer - rollout: [[ln 5, -1, 0], [0.2, NaN (unknown), padding]]
ROLLOUT = torch.tensor([[-1.0 - math.log(5), -1.0, -0.5], [-0.3, NAN, 0.0]])


def test_token_weights_are_truncated_ratios_with_padding_and_unknown_tokens_at_one() -> None:
    w = importance_weights(TRAINER, ROLLOUT, MASK, "token", cap=2.0)
    want = torch.tensor([[2.0, math.exp(-1), 1.0], [math.exp(0.2), 1.0, 1.0]])
    assert w.shape == (2, 3)
    assert torch.allclose(w, want, atol=1e-6)
    # a higher cap lets the ratio of 5 through
    assert importance_weights(TRAINER, ROLLOUT, MASK, "token", cap=10.0)[0, 0] == pytest.approx(5.0)


def test_sequence_weights_are_the_truncated_product_over_the_completion() -> None:
    w = importance_weights(TRAINER, ROLLOUT, MASK, "sequence", cap=10.0)
    assert w.shape == (2, 1)
    assert w[0, 0] == pytest.approx(5.0 * math.exp(-1), rel=1e-5)
    assert w[1, 0] == pytest.approx(math.exp(0.2), rel=1e-5)
    assert importance_weights(TRAINER, ROLLOUT, MASK, "sequence", cap=1.0).flatten().tolist() == [1.0, 1.0]


def test_no_correction_and_identical_policies_give_weight_one() -> None:
    assert importance_weights(TRAINER, ROLLOUT, MASK, "none").flatten().tolist() == [1.0, 1.0]
    for level in ("token", "sequence"):
        assert (importance_weights(TRAINER, TRAINER.clone(), MASK, level) == 1.0).all()


def test_weights_carry_no_gradient() -> None:
    trainer = TRAINER.clone().requires_grad_(True)
    assert not importance_weights(trainer, ROLLOUT, MASK, "token").requires_grad


def test_mismatch_metrics_over_the_known_completion_tokens() -> None:
    weights = importance_weights(TRAINER, ROLLOUT, MASK, "token", cap=2.0)
    sums = mismatch_sums(TRAINER, ROLLOUT, MASK, weights, cap=2.0)
    d = [math.log(5), -1.0, 0.0, 0.2]  # the NaN token and the padding slot are left out
    assert sums.tokens == 4
    m = mismatch_metrics(sums.as_tensor(), sums.abs_max)
    assert m["mismatch/logp_abs_mean"] == pytest.approx(sum(abs(x) for x in d) / 4)
    assert m["mismatch/logp_abs_max"] == pytest.approx(math.log(5))
    assert m["mismatch/kl"] == pytest.approx(sum(math.expm1(x) - x for x in d) / 4)
    assert m["mismatch/is_weight_mean"] == pytest.approx((2.0 + math.exp(-1) + 1.0 + math.exp(0.2)) / 4)
    assert m["mismatch/is_truncated_fraction"] == pytest.approx(1 / 4)


def test_kl_estimate_is_non_negative_and_zero_only_without_mismatch() -> None:
    gen = torch.Generator().manual_seed(0)
    trainer = -torch.rand(4, 8, generator=gen) * 3
    mask = torch.ones(4, 8)
    for noise in (1e-3, 0.1, 1.0):
        rollout = trainer + noise * torch.randn(4, 8, generator=gen)
        sums = mismatch_sums(trainer, rollout, mask)
        assert mismatch_metrics(sums.as_tensor(), sums.abs_max)["mismatch/kl"] > 0
    same = mismatch_sums(trainer, trainer.clone(), mask)
    zero = mismatch_metrics(same.as_tensor(), same.abs_max)
    assert zero["mismatch/kl"] == zero["mismatch/logp_abs_max"] == zero["mismatch/logp_abs_mean"] == 0.0


def test_sums_from_several_processes_add_up_to_the_whole_batch() -> None:
    whole = mismatch_sums(TRAINER, ROLLOUT, MASK)
    parts = [mismatch_sums(TRAINER[i : i + 1], ROLLOUT[i : i + 1], MASK[i : i + 1]) for i in range(2)]
    total = sum(p.as_tensor() for p in parts)
    assert mismatch_metrics(total, max(p.abs_max for p in parts)) == pytest.approx(
        mismatch_metrics(whole.as_tensor(), whole.abs_max)
    )


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rollout_correction must be one of"):
        RolloutCorrection(level="tokens")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rollout_correction_cap must be >= 1"):
        RolloutCorrection(cap=0.5)
