"""The rollout–trainer mismatch: how far the policy that sampled (vLLM) is from the one the loss scores, and the
truncated importance weight that corrects for it (TIS: Yao et al. 2025, "Your Efficient RL Framework Secretly
Brings You Off-Policy RL Training"; TRL's ``vllm_importance_sampling_*``, ms-swift's ``rollout_importance_sampling_*``).

GRPO's gradient is an expectation over completions drawn from the trainer's policy π. The engine samples from its
own copy μ, which differs by kernels, precision, or a position bug (docs/architecture.md, "vLLM rollouts"). Per
completion token t with log-ratio d_t = log π(y_t) − log μ(y_t) (both after temperature; μ's log-probs are what the
engine reports for the token it sampled):

- ``token``: weight_t = min(exp(d_t), cap);
- ``sequence``: every token of a completion gets min(exp(Σ_t d_t), cap);

and the per-token policy loss is multiplied by it. Truncation bounds the variance; the weight is a constant (no
gradient flows through it). Tokens without a rollout log-prob (NaN) and padding get weight 1.

The mismatch logged every step: mean and max |d_t| over completion tokens, and KL(μ‖π) estimated on μ's samples with
k3 = exp(d) − 1 − d (non-negative and unbiased; Schulman, "Approximating KL divergence").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Level = Literal["token", "sequence", "none"]
LEVELS: tuple[str, ...] = ("token", "sequence", "none")


@dataclass(frozen=True)
class RolloutCorrection:
    """The recipe's ``rollout_correction`` and ``rollout_correction_cap`` (see GRPORecipe for their help)."""

    level: Level = "token"
    cap: float = 2.0

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"rollout_correction must be one of {LEVELS}, got {self.level!r}")
        if not self.cap >= 1.0:
            raise ValueError(f"rollout_correction_cap must be >= 1, got {self.cap}")


def log_ratios(trainer_logps: torch.Tensor, rollout_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """d = log π − log μ per completion token, 0 where ``mask`` is 0 or the rollout log-prob is unknown (NaN)."""
    d = (trainer_logps.float() - rollout_logps.float()) * mask
    return torch.nan_to_num(d, nan=0.0) * mask


def importance_weights(
    trainer_logps: torch.Tensor,
    rollout_logps: torch.Tensor,
    mask: torch.Tensor,
    level: Level = "token",
    cap: float = 2.0,
) -> torch.Tensor:
    """Truncated importance weights of the rollouts, detached: (B, T) for ``token``, (B, 1) for ``sequence``,
    ones (B, 1) for ``none``. Inputs are (B, T) log-probs of the sampled tokens and the completion mask."""
    d = log_ratios(trainer_logps.detach(), rollout_logps.detach(), mask)
    if level == "none":
        return torch.ones(d.size(0), 1, device=d.device)
    if level == "sequence":
        d = d.sum(dim=-1, keepdim=True)
    elif level != "token":
        raise ValueError(f"rollout_correction must be one of {LEVELS}, got {level!r}")
    return torch.exp(d).clamp(max=cap)


@dataclass
class MismatchSums:
    """One process's sums over its completion tokens, to be added up over processes before dividing."""

    abs_sum: float = 0.0
    abs_max: float = 0.0
    kl_sum: float = 0.0
    tokens: float = 0.0
    weight_sum: float = 0.0
    truncated: float = 0.0
    weights: float = 0.0

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor(
            [self.abs_sum, self.kl_sum, self.tokens, self.weight_sum, self.truncated, self.weights],
            dtype=torch.float64,
        )


def mismatch_sums(
    trainer_logps: torch.Tensor,
    rollout_logps: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | None = None,
    cap: float = 2.0,
) -> MismatchSums:
    """|d| sum and max, the k3 KL sum and the token count over masked tokens with a known rollout log-prob; with
    ``weights`` (from ``importance_weights``) their sum, count and how many hit the cap."""
    known = mask.bool() & ~torch.isnan(rollout_logps)
    d = (trainer_logps.detach().double() - rollout_logps.detach().double())[known]
    out = MismatchSums(
        abs_sum=d.abs().sum().item(),
        abs_max=d.abs().max().item() if d.numel() else 0.0,
        kl_sum=(torch.expm1(d) - d).sum().item(),
        tokens=float(d.numel()),
    )
    if weights is not None:
        w = weights[known] if weights.shape == mask.shape else weights.flatten()
        out.weight_sum, out.weights = w.double().sum().item(), float(w.numel())
        out.truncated = float((w >= cap).sum().item())
    return out


def mismatch_metrics(total: torch.Tensor, abs_max: float) -> dict[str, float]:
    """metrics.jsonl values from ``MismatchSums.as_tensor`` summed over processes and the max over processes."""
    abs_sum, kl_sum, tokens, weight_sum, truncated, weights = total.tolist()
    n, m = max(tokens, 1.0), max(weights, 1.0)
    return {
        "mismatch/logp_abs_mean": abs_sum / n,
        "mismatch/logp_abs_max": abs_max,
        "mismatch/kl": kl_sum / n,
        "mismatch/is_weight_mean": weight_sum / m if weights else 1.0,
        "mismatch/is_truncated_fraction": truncated / m if weights else 0.0,
    }
