"""The Hint-GRPO recipe: a pydantic model loaded from YAML with ``--set a.b=c`` overrides (``msa_core.recipe``).

Every field has a default and a description; an unknown key (in the file or in an override) is a ConfigError that
names it. ``to_trl_args`` turns a recipe into TRL's ``GRPOConfig`` (imported lazily: the CLI imports this module).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from msa_core import ConfigError, MediaSettings, artifacts
from msa_core.recipe import load_recipe
from msa_core.recipe import write_resolved as write_recipe
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from msa_rl.rewards import RewardCoupling

HardGroupStrategy = Literal["hint", "drop", "dynamic_sampling", "none"]
# The old boolean switches (hint, drop_hard) -> hard_group_strategy; hint=true with drop_hard=true was an error.
LEGACY_HARD_GROUPS: dict[tuple[Any, Any], str] = {
    (True, False): "hint",
    (False, False): "none",
    (False, True): "drop",
}
LEGACY_KEYS = frozenset({"hint", "drop_hard"})


class RewardWeights(BaseModel):
    """λ1..λ3 of eq. 2 (paper: all 1)."""

    model_config = ConfigDict(extra="forbid")

    format: float = Field(1.0, description="λ1, weight of the format reward (strict DC answer).")
    polarity: float = Field(1.0, description="λ2, weight of the polarity reward (exact class).")
    score: float = Field(1.0, description="λ3, weight of the score reward (1 - |s - s*| / range).")

    @field_validator("format", "polarity", "score")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError("a reward weight must be finite and >= 0")
        return v

    def as_list(self) -> list[float]:
        return [self.format, self.polarity, self.score]


class RewardCouplingSettings(BaseModel):
    """How the polarity and score rewards depend on the format and on each other (docs/architecture.md, "Rewards").
    The defaults follow the paper's text: eqs. 3-5 define the three apart; eq. 5 holds under the right polarity."""

    model_config = ConfigDict(extra="forbid")

    require_format: bool = Field(
        False,
        description="Polarity and score earn only when the whole answer passes the strict DC format (true), or "
        "read the answer's own <polarity> and <score> tags whatever else is wrong with it (false: the paper's eqs. "
        "3-5 define format, polarity and score separately).",
    )
    score_requires_polarity: bool = Field(
        True,
        description="The score reward is 0 unless the answer's polarity is the true one (true: the paper's eq. 5 "
        "applies 'under the premise of consistent polarity'), or scores every answer's number (false).",
    )

    def as_coupling(self) -> RewardCoupling:
        return RewardCoupling(**self.model_dump())


class GRPORecipe(BaseModel):
    """Everything `msa-rl grpo` needs: model, data, Hint-GRPO switches, TRL optimisation settings."""

    model_config = ConfigDict(extra="forbid")

    # -- inputs and outputs
    model: str = Field(
        "", description="SFT checkpoint directory (a Qwen2.5-Omni thinker with its processor)."
    )
    data: str = Field(
        "", description="Training clips: an MMSA directory (label.csv + Raw/) or a cot-distill export."
    )
    data_format: Literal["auto", "mmsa", "export"] = Field(
        "auto", description="How to read `data`; auto: export.json or dataset_info.json marks an export."
    )
    dataset: str = Field("sims", description="DatasetSpec name or spec YAML (score range, polarity rule).")
    split: Literal["train", "valid", "test"] = Field("train", description="Split of `data` to train on.")
    limit: int | None = Field(None, ge=1, description="Use only the first N clips (None: all).")
    output_dir: str = Field(
        "runs/grpo", description="Checkpoints, metrics.jsonl and the resolved config go here."
    )
    media: MediaSettings = Field(
        default_factory=MediaSettings,
        description="Frame sampling, frame size and audio-in-video: must match what the SFT stage saw "
        "(written to media.json next to the checkpoint, read back by msa-eval predict).",
    )
    max_prompt_length: int | None = Field(
        None,
        ge=1,
        description="Most prompt tokens per clip (text + video + audio), estimated from each clip's metadata "
        "before training; longer clips are refused or dropped (on_long_clip). None: no limit.",
    )
    on_long_clip: Literal["error", "drop"] = Field(
        "error",
        description="A clip over max_prompt_length: error (name the longest clips and stop) or drop (leave it "
        "out, counted and named).",
    )
    # -- Hint-GRPO
    hard_group_strategy: HardGroupStrategy = Field(
        "hint",
        description="What happens to a hard or zero-variance group: hint (re-sample a hard group with the true "
        "<polarity> injected; the paper), drop (hard groups leave the batch; the paper's 'w/o Hard'), "
        "dynamic_sampling (re-sample a group whose total rewards have no spread up to max_resamples times, then "
        "drop it; DAPO), none (plain GRPO, the paper's 'w/o Hint'). Replaces the old hint / drop_hard switches.",
    )
    max_resamples: int = Field(
        2,
        ge=1,
        description="K of hard_group_strategy=dynamic_sampling: re-samplings of a zero-variance group before it "
        "is dropped.",
    )
    hard_rule: Literal["no_correct_polarity", "threshold"] = Field(
        "no_correct_polarity",
        description="Hard group (hint, drop): no completion got the polarity right, or every total reward < "
        "hard_threshold.",
    )
    hard_threshold: float = Field(2.0, description="Total-reward threshold of hard_rule=threshold.")
    rewards: RewardWeights = Field(default_factory=RewardWeights, description="λ1..λ3 reward weights.")
    reward_coupling: RewardCouplingSettings = Field(
        default_factory=RewardCouplingSettings,
        description="Whether polarity and score need the strict format, and the score the right polarity.",
    )
    # -- fine-tuning method (LoRA: TRL's peft_config)
    finetuning_type: Literal["full", "lora"] = Field(
        "full",
        description="full: train every parameter (reference = a copy of the policy); lora: train adapters only "
        "(reference = the policy with its adapters disabled; output_dir gets the merged model and lora-adapter/).",
    )
    lora_rank: int = Field(16, ge=1, description="LoRA rank r (finetuning_type: lora).")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scaling alpha / r; finetuning_type: lora).")
    lora_dropout: float = Field(
        0.05, ge=0, lt=1, description="Dropout on the LoRA input (finetuning_type: lora)."
    )
    lora_target: str = Field(
        "language_model",
        description="Modules that get adapters: language_model (every attention and MLP projection of the "
        "decoder; towers and lm_head untouched), all-linear, comma-separated module names, or a regex.",
    )
    # -- GRPO / optimisation (TRL GRPOConfig)
    num_generations: int = Field(4, ge=2, description="G, completions per prompt.")
    beta: float = Field(0.1, ge=0, description="KL coefficient against the reference (SFT) policy.")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate.")
    lr_scheduler_type: str = Field("cosine", description="Learning-rate schedule (transformers name).")
    warmup_steps: float = Field(
        0, ge=0, description="Linear warm-up: a step count, or a ratio of all steps if < 1."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(
        "grpo", description="TRL loss aggregation ('grpo': per-sequence mean, as in the paper's eq. 6)."
    )
    epsilon: float = Field(0.2, gt=0, description="PPO clipping range.")
    router_aux_loss_coef: float | None = Field(
        None,
        ge=0,
        description="Mixture-of-experts students only: weight of the router's load-balancing loss added to the "
        "GRPO loss (None: the model config's own router_aux_loss_coef; 0: off). Other students: leave None.",
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Advantage std normalisation."
    )
    per_device_train_batch_size: int = Field(4, ge=1, description="Completions per device per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimiser step.")
    num_train_epochs: float = Field(
        1.0, gt=0, description="Epochs over the clips (ignored when max_steps > 0)."
    )
    max_steps: int = Field(-1, description="Optimiser steps (-1: from num_train_epochs).")
    max_completion_length: int = Field(512, ge=1, description="Tokens sampled per completion.")
    temperature: float = Field(
        1.0, gt=0, description="Sampling temperature (the loss scales logits by it too)."
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    seed: int = Field(42, description="Seed of sampling, shuffling and initialisation.")
    # -- infrastructure
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Weights and compute dtype; auto: bfloat16 on GPU, float32 on CPU (bf16 autocast on CPU "
        "makes the loss path and generation disagree).",
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory in the loss forward.")
    deepspeed: str | None = Field(
        None,
        description="DeepSpeed JSON (e.g. configs/deepspeed/zero3.json); run under "
        "`accelerate launch` for several GPUs.",
    )
    use_vllm: bool = Field(
        False,
        description="Roll out with a colocated vLLM engine (`vllm` extra on GPUs, `.venvs/vllm-cpu` on CPUs); "
        "false: HF generate.",
    )
    rollout_correction: Literal["token", "sequence", "none"] = Field(
        "token",
        description="use_vllm: correct the loss for the engine-vs-trainer mismatch with truncated importance "
        "weights min(pi_trainer / pi_engine, rollout_correction_cap) of the sampled tokens: per token, per "
        "completion (the product over its tokens), or none (the mismatch is still logged). HF generate samples "
        "from the trainer itself: nothing to correct.",
    )
    rollout_correction_cap: float = Field(
        2.0,
        ge=1,
        description="Upper bound C of the rollout importance weights (truncated IS; 2 as in Yao et al. 2025 and "
        "ms-swift, TRL uses 3). Higher: less bias, more variance.",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="GPU memory share of colocated vLLM."
    )
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="Tensor parallel size of colocated vLLM.")
    vllm_max_model_length: int | None = Field(None, description="vLLM context length (None: model default).")
    vllm_cpu_kv_cache_gib: int | None = Field(
        None,
        ge=1,
        description="vLLM on a CPU: GiB reserved for its KV cache (None: $VLLM_CPU_KVCACHE_SPACE, else 2; vLLM's "
        "own default takes 92 % of the RAM).",
    )
    vllm_prompt_mismatch: Literal["error", "warn"] = Field(
        "error",
        description="A vLLM rollout prompt whose token ids differ from the trainer's (the engine expanded the clip "
        "otherwise, so it samples from another prompt than the loss scores): error (stop, naming the clips) or warn "
        "(log, count in prompt_mismatches, and go on with the trainer's ids).",
    )
    report_to: list[str] = Field(
        default_factory=lambda: ["none"], description="Trackers: none, tensorboard, wandb…"
    )
    logging_steps: int = Field(1, ge=1, description="Log (and append to metrics.jsonl) every N steps.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every N steps (resume picks up the last one).")
    save_total_limit: int | None = Field(2, description="Keep at most N checkpoints (None: all).")
    resume: str = Field(
        "auto",
        description="auto: continue from the last checkpoint in output_dir if any; always: require one; "
        "never: start fresh; or a checkpoint directory.",
    )
    log_completions: bool = Field(False, description="Print and store sampled completions at each log step.")
    rollout_log: bool = Field(
        False,
        description="Debug: each process appends its rows of every generation batch (clip, hard, hinted, first "
        "and final completion) to OUTPUT_DIR/rollouts/rank<N>.jsonl.",
    )
    shuffle_dataset: bool = Field(
        True, description="Shuffle the clips each epoch (false: file order, e.g. to place clips in a test)."
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("hard_threshold")
    @classmethod
    def _finite_threshold(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("hard_threshold must be finite")
        return v

    @model_validator(mode="before")
    @classmethod
    def _old_hint_switches(cls, data: Any) -> Any:
        """Recipes from before ``hard_group_strategy``: ``hint`` / ``drop_hard`` map onto it (LEGACY_HARD_GROUPS)."""
        if not isinstance(data, dict) or not LEGACY_KEYS & data.keys():
            return data
        data = dict(data)
        hint, drop_hard = data.pop("hint", True), data.pop("drop_hard", False)
        strategy = LEGACY_HARD_GROUPS.get((hint, drop_hard))
        if strategy is None:
            raise ValueError(
                f"hint={str(hint).lower()} with drop_hard={str(drop_hard).lower()} is not a strategy (w/o Hard "
                "drops hard groups instead of hinting): write hard_group_strategy: drop (or hint, none, "
                "dynamic_sampling) instead"
            )
        if "hard_group_strategy" in data:
            raise ValueError(
                "hard_group_strategy and the old hint / drop_hard switches are both set: keep hard_group_strategy "
                f"only (hint / drop_hard here mean hard_group_strategy: {strategy})"
            )
        data["hard_group_strategy"] = strategy
        return data

    @model_validator(mode="after")
    def _check(self) -> GRPORecipe:
        # TRL samples G completions per prompt over the *global* batch (a group may straddle processes).
        procs = world_size()
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * procs
        if batch % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps x processes ({procs}) = {batch} must "
                f"be a multiple of num_generations ({self.num_generations}) so groups stay whole"
            )
        return self

    def require_inputs(self) -> None:
        """The two paths every run needs, checked before anything heavy starts."""
        if not self.model:
            raise ConfigError(
                "model is not set (the SFT checkpoint): add `--set model=DIR` or `model:` in the config"
            )
        if not self.data:
            raise ConfigError(
                "data is not set: add `--set data=DIR` (an MMSA directory or a cot-distill export)"
            )


# ----------------------------------------------------------------------------------------------------- loading
def load_grpo_recipe(path: str | Path | None, overrides: list[str] | None = None) -> GRPORecipe:
    return load_recipe(GRPORecipe, path, overrides)


def write_resolved(recipe: GRPORecipe, out_dir: str | Path) -> Path:
    """The resolved recipe and its media settings, next to the checkpoints."""
    recipe.media.write(out_dir)
    return write_recipe(recipe, Path(out_dir) / artifacts.GRPO_CONFIG)


# --------------------------------------------------------------------------------------------------------- to TRL
def world_size() -> int:
    """Processes of this run (``WORLD_SIZE``, set by ``accelerate launch``/torchrun; 1 for a plain command)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Rank 0 of this run (``RANK``, set by ``accelerate launch``/torchrun), before the Trainer exists."""
    return os.environ.get("RANK", "0") == "0"


def resolve_dtype(recipe: GRPORecipe) -> str:
    if recipe.dtype != "auto":
        return recipe.dtype
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"


def to_trl_args(recipe: GRPORecipe, **extra: Any):
    """TRL's GRPOConfig for this recipe (``extra`` overrides any GRPOConfig field, e.g. for tests)."""
    from trl import GRPOConfig

    bf16 = resolve_dtype(recipe) == "bfloat16"
    kwargs: dict[str, Any] = dict(
        output_dir=recipe.output_dir,
        num_generations=recipe.num_generations,
        beta=recipe.beta,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        loss_type=recipe.loss_type,
        epsilon=recipe.epsilon,
        router_aux_loss_coef=recipe.router_aux_loss_coef,
        scale_rewards=recipe.scale_rewards,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        max_completion_length=recipe.max_completion_length,
        temperature=recipe.temperature,
        top_p=recipe.top_p,
        seed=recipe.seed,
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=recipe.gradient_checkpointing,
        deepspeed=recipe.deepspeed,
        use_vllm=False,  # our own vLLM rollout (msa_rl.grpo_vllm) replaces TRL's, which drops video and audio
        reward_weights=recipe.rewards.as_list(),
        report_to=recipe.report_to,
        logging_steps=recipe.logging_steps,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        log_completions=recipe.log_completions,
        shuffle_dataset=recipe.shuffle_dataset,
        remove_unused_columns=False,
        disable_dropout=True,
        # Media stay a list of per-row dicts: no worker processes pickling them, and no column pruning.
        dataloader_num_workers=0,
        use_cpu=not _cuda(),
    )
    kwargs.update(extra)
    return GRPOConfig(**kwargs)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
