"""Hint-GRPO for the Qwen2.5-Omni thinker on TRL's GRPOTrainer (TRL pinned to 1.16; method names checked there).

Why a subclass: TRL passes only *image* inputs to the model, so for Omni it would sample and train on bare
``<|VIDEO|>``/``<|AUDIO|>`` placeholders, without the features and without ``use_audio_in_video`` (wrong TMRoPE
positions), and raise nothing (docs/architecture.md, "Hint-GRPO on TRL"). Here:

- ``_tokenize_prompts`` encodes each row once with its clip (``row_encoder``: video frames + audio-in-video), and the
  per-row processor outputs travel as a *list of dicts* (``omni_mm``): TRL's shuffle/split permute lists in lockstep
  with ``prompt_ids``, and flattened video patches could not be batch-split as tensors;
- ``_generate_single_turn`` and ``_get_per_token_logps_and_entropies`` concatenate those rows in order and pass them
  with ``use_audio_in_video=True`` to ``generate`` and to every log-prob forward (old, ref, loss), so sampling and
  training see the same position ids;
- the log-prob forward projects only the completion positions through the LM head (a pre-hook slices the hidden
  states): the thinker has no ``logits_to_keep`` and TRL's fused head does not fit it;
- ``_generate`` scores the first pass, marks hard groups, and re-samples only their rows with the true polarity
  placed at the start of the answer (token level, after the generation prompt). The hint ids go to the prompt side
  (context: no log-prob, no gradient, no KL); the reward scores hint + continuation;
- ``hard_group_strategy`` picks what happens to such groups: ``hint`` (above), ``drop`` (hard groups leave the
  batch), ``dynamic_sampling`` (a group whose total rewards have no spread is sampled again, without a hint, up to
  ``max_resamples`` times; one still without spread leaves the batch: DAPO's filter, on the same prompts so every
  strategy trains on the same clips), ``none`` (plain GRPO). Leaving the batch zeroes the group's loss mask and
  advantage and rescales the per-sequence mean so the kept rows weigh as if the batch held only them;
- across processes (``accelerate launch``), rewards and hard groups are decided on the gathered batch (a group of
  G may straddle ranks); a rank without hard rows still joins the hint generation (ZeRO-3 gathers parameters
  collectively), every collective runs on every rank whatever its rows, and only the main process writes metrics;
- every multimodal special token is suppressed while sampling (TRL suppresses only the image token);
- with vLLM rollouts, the engine's log-probs of the sampled tokens are compared with the trainer's at generation
  time: the loss weighs each token (or sequence) by the truncated importance weight (``msa_rl.rollout_correction``,
  as TRL's ``vllm_importance_sampling_correction`` does for its own vLLM path, which this trainer cannot use), and
  every step logs the mismatch. HF generate samples from the trainer's own model: its rollout log-probs are the
  trainer's, so the mismatch is 0 and nothing is weighted;
- per-step metrics go to ``OUTPUT_DIR/metrics.jsonl`` and to ``report_to``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from msa_core import DCOutput, JsonlAppender, Polarity, artifacts, get_spec
from msa_core.jsonl import read_jsonl, write_jsonl_atomic
from msa_omni import media_token_ids
from trl import GRPOTrainer
from trl.trainer.utils import entropy_from_logits, nanstd, selective_log_softmax

from msa_rl.grpo_config import HardGroupStrategy
from msa_rl.rewards import REWARD_FUNCS, REWARD_NAMES, weighted_totals
from msa_rl.rollout_correction import (
    MismatchSums,
    RolloutCorrection,
    importance_weights,
    mismatch_metrics,
    mismatch_sums,
)

METRICS_FILE = artifacts.GRPO_METRICS
# Debug record of every generation batch, one file per process (``rollout_log`` in the recipe).
ROLLOUTS_DIR = artifacts.GRPO_ROLLOUTS
# Logged every step (null in metrics.jsonl when a step has no value, e.g. hint_success with no hinted group).
METRIC_KEYS = (
    "reward/format",
    "reward/polarity",
    "reward/score",
    "reward/total",
    "reward/total_sampled",
    "hard_fraction",
    "hint_success",
    "zero_std_fraction",
    "zero_std_fraction_before",
    "zero_std_fraction_after",
    "groups/total",
    "groups/hard",
    "groups/hinted",
    "groups/resampled",
    "groups/dropped",
    "resample_rounds",
    "kl",
    "loss",
    "completion_length",
    # the rollout–trainer mismatch (msa_rl.rollout_correction); 0 (weight 1) with HF generate
    "mismatch/logp_abs_mean",
    "mismatch/logp_abs_max",
    "mismatch/kl",
    "mismatch/is_weight_mean",
    "mismatch/is_truncated_fraction",
)
# Whisper frames differ in length between clips: right-pad them to the longest before concatenating.
_PAD_LAST = ("input_features", "feature_attention_mask")
# Float inputs the towers read in the model's dtype (video_second_per_grid stays float32: it feeds position ids).
_CAST_TO_MODEL_DTYPE = ("pixel_values_videos", "pixel_values", "input_features")
POLARITY_COLUMN = REWARD_NAMES.index("polarity")


@dataclass
class EncodedPrompt:
    """One row's prompt: its token ids and processor outputs (CPU tensors), plus what vLLM needs."""

    prompt_ids: list[int]
    mm: dict[str, torch.Tensor]
    text: str = ""
    media: Any = None
    prompt: Any = None  # the msa_core Prompt (vLLM rollouts build their requests from it)
    clip_id: str = ""  # the dataset row's id (named when vLLM builds other prompt ids)


@dataclass
class HintSettings:
    """The Hint-GRPO switches (see GRPORecipe for their help)."""

    strategy: HardGroupStrategy = "hint"
    max_resamples: int = 2
    hard_rule: Literal["no_correct_polarity", "threshold"] = "no_correct_polarity"
    hard_threshold: float = 2.0

    def __post_init__(self) -> None:
        if self.strategy not in get_args(HardGroupStrategy):
            raise ValueError(f"unknown hard-group strategy {self.strategy!r}")
        if self.max_resamples < 1:
            raise ValueError("max_resamples must be >= 1")


@dataclass
class _StepState:
    """What the passes of a generation batch found, read when its metrics are logged (per-group tensors are over
    the gathered batch)."""

    rewards_before: torch.Tensor | None = None  # (N_global, 3), first pass
    hard_rows: torch.Tensor | None = None  # (N_global,) bool
    hinted: bool = False
    resampled_groups: torch.Tensor | None = None  # (N_global / G,) bool: sampled again at least once
    dropped_groups: torch.Tensor | None = None  # (N_global / G,) bool: leave the batch
    resample_rounds: int = 0


# ------------------------------------------------------------------------------------------------ pure helpers
def collate_media(
    rows: Sequence[dict[str, torch.Tensor]], device=None, dtype=None
) -> dict[str, torch.Tensor]:
    """Concatenate per-row processor outputs in row order (flattened video patches, one grid/second-per-grid per
    video, one Whisper row per audio), padding Whisper frames to the longest."""
    if not rows:
        return {}
    keys = list(rows[0])
    for r in rows[1:]:
        if list(r) != keys:
            raise ValueError(f"rows carry different media fields: {keys} vs {list(r)}")
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        vals = [r[key] for r in rows]
        if key in _PAD_LAST:
            n = max(v.shape[-1] for v in vals)
            vals = [torch.nn.functional.pad(v, (0, n - v.shape[-1])) for v in vals]
        t = torch.cat(vals)
        if dtype is not None and key in _CAST_TO_MODEL_DTYPE and t.is_floating_point():
            t = t.to(dtype)
        out[key] = t.to(device) if device is not None else t
    return out


def hint_token_ids(tokenizer, polarity: Polarity) -> list[int]:
    """Token ids of the ground-truth polarity opening of a DC answer, as the answer itself tokenizes.

    A BPE may merge the tag's closing ``>`` with the next ``<`` (``><think``) inside a full answer, while the tag
    tokenized alone ends in a lone ``>``: such a hint would put the policy on a token path it never saw in SFT. So
    the hint is the longest token prefix of a rendered answer that stays inside the tag: the whole tag where tags
    are tokens of their own, ``<polarity>positive</polarity`` where ``><`` is merged (the policy writes the rest).
    """
    tag = f"<polarity>{polarity}</polarity>"
    rendered = DCOutput(polarity=polarity, think="x", score=0.0).render()
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    prefix: list[int] = []
    for tok in ids:
        if not tag.startswith(tokenizer.decode([*prefix, tok])):
            break
        prefix.append(tok)
    if f"<polarity>{polarity}" not in tokenizer.decode(prefix):
        prefix = tokenizer(tag, add_special_tokens=False)["input_ids"]
    return prefix


def hard_groups(
    rewards_per_func: torch.Tensor,
    weights: torch.Tensor,
    num_generations: int,
    rule: str = "no_correct_polarity",
    threshold: float = 2.0,
) -> torch.Tensor:
    """Per group (G consecutive rows) whether it is hard: no completion got the polarity right
    (``no_correct_polarity``), or every weighted total is below ``threshold`` (``threshold``)."""
    if rule == "no_correct_polarity":
        right = torch.nan_to_num(rewards_per_func[:, POLARITY_COLUMN], nan=0.0) >= 0.5
        return ~right.view(-1, num_generations).any(dim=1)
    if rule == "threshold":
        total = weighted_totals(rewards_per_func, weights)
        below = torch.nan_to_num(total, nan=-math.inf) < threshold
        return below.view(-1, num_generations).all(dim=1)
    raise ValueError(f"unknown hard_rule {rule!r}")


def zero_std_groups(total: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Per group whether its total rewards have no spread (zero advantage: the group teaches nothing)."""
    std = nanstd(total.view(-1, num_generations), dim=1)
    return torch.isclose(torch.nan_to_num(std, nan=0.0), torch.zeros_like(std))


@contextmanager
def completion_logits_only(model, logits_to_keep: int):
    """Within the block, the model's LM head sees only the hidden states that predict the last ``logits_to_keep``
    tokens, so ``logits`` is (B, logits_to_keep, V) and full-sequence logits over the vocabulary never exist."""
    head = model.get_output_embeddings()

    def slice_hidden(_module, args):
        return (args[0][:, -logits_to_keep - 1 : -1], *args[1:])

    handle = head.register_forward_pre_hook(slice_hidden)
    try:
        yield
    finally:
        handle.remove()


def mean_or_nan(values: torch.Tensor) -> float:
    return torch.nanmean(values.float()).item() if values.numel() else math.nan


# --------------------------------------------------------------------------------------------------------- trainer
class HintGRPOTrainer(GRPOTrainer):
    """GRPOTrainer for the Omni thinker with per-row video + audio-in-video and Hint-GRPO (module docstring)."""

    def __init__(
        self,
        *args: Any,
        row_encoder: Callable[[dict[str, Any]], EncodedPrompt],
        hint_settings: HintSettings | None = None,
        vllm_rollout_factory: Callable[[GRPOTrainer], Any] | None = None,
        rollout_correction: RolloutCorrection | None = None,
        rollout_log: str | Path | None = None,
        **kwargs: Any,
    ):
        self.row_encoder = row_encoder
        self.rollout_correction = rollout_correction or RolloutCorrection()
        self.rollout_log = Path(rollout_log) if rollout_log is not None else None
        self.hint_settings = hint_settings or HintSettings()
        self._batch_rows: list[dict[str, Any]] | None = None
        self._enc_rows: list[EncodedPrompt] | None = None
        self._mm_rows: list[dict[str, torch.Tensor]] | None = None
        self._last_rewards: torch.Tensor | None = None
        self._step_state = _StepState()
        self._hint_cache: dict[tuple[str, str], list[int]] = {}
        super().__init__(*args, **kwargs)
        if (
            self.use_vllm
            or self.use_transformers_continuous_batching
            or self.tools
            or self.rollout_func is not None
        ):
            raise ValueError(
                "HintGRPOTrainer rolls out with HF generate or its own vLLM engine (use_vllm in the "
                "recipe); TRL's vLLM, continuous batching, tools and rollout_func do not carry media"
            )
        if self.reward_func_names != [f.__name__ for f in REWARD_FUNCS]:
            raise ValueError(
                "HintGRPOTrainer expects msa_rl.rewards.reward_funcs() (format, polarity, score) in order"
            )
        cfg = self.accelerator.unwrap_model(self.model).config
        ids = media_token_ids(cfg)
        # A sampled placeholder or media bos/eos breaks the feature count and get_rope_index in the loss forward.
        self.generation_config.suppress_tokens = ids
        self.generation_kwargs["suppress_tokens"] = ids
        self.suppressed_token_ids = ids
        self._vllm = vllm_rollout_factory(self) if vllm_rollout_factory is not None else None
        self._vllm_step = -1

    # -- prompt side ---------------------------------------------------------------------------------------------
    def _tokenize_prompts(self, prompts: list):
        rows = self._batch_rows
        if rows is None or len(rows) != len(prompts):
            raise RuntimeError("HintGRPOTrainer: batch rows not stashed before tokenizing")
        cache: dict[str, EncodedPrompt] = {}
        enc = []
        for row in rows:
            # The G rows of a group are copies of one dataset row: encode each clip once per batch.
            key = json.dumps(
                [row.get("id"), str(row.get("video")), row["prompt"]], sort_keys=True, default=str
            )
            if key not in cache:
                cache[key] = self.row_encoder(row)
            enc.append(cache[key])
        self._enc_rows = enc
        self._mm_rows = [e.mm for e in enc]
        return [list(e.prompt_ids) for e in enc], None, {"omni_rows": enc}

    def _model_dtype(self):
        return self.accelerator.unwrap_model(self.model).dtype

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        rows: list[EncodedPrompt] = multimodal_fields["omni_rows"]
        if self._vllm is not None:
            if self.state.global_step != self._vllm_step:
                self._vllm.sync_weights()
                self._vllm_step = self.state.global_step
            return self._vllm.generate(prompt_ids, rows)
        mm: dict[str, Any] = collate_media([r.mm for r in rows], dtype=self._model_dtype())
        if "pixel_values_videos" in mm and "input_features" in mm:
            # A 0-d tensor takes TRL's tensor path into generate(), which hands it to every forward step.
            mm["use_audio_in_video"] = torch.tensor(True)
        return super()._generate_single_turn(prompt_ids, None, mm, num_generations, has_tool_images)

    # -- Hint-GRPO -----------------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards = rewards
        return rewards

    def _hint_ids(self, row: dict[str, Any]) -> tuple[list[int], str]:
        spec = get_spec(row["dataset"])
        polarity = spec.polarity_of(float(row["label"]))
        key = (spec.name, polarity)
        if key not in self._hint_cache:
            self._hint_cache[key] = hint_token_ids(self._tokenizer, polarity)
        ids = self._hint_cache[key]
        return ids, self._tokenizer.decode(ids, skip_special_tokens=True)

    def _generate(self, prompts: list):
        out = list(super()._generate(prompts))
        self._step_state = _StepState()
        if not self.model.training:
            return tuple(out)
        prompt_ids, completion_ids, completions, logprobs = out[0], out[1], out[3], out[4]
        settings, G = self.hint_settings, self.num_generations
        rows = self._batch_rows
        # Rewards of the first pass, gathered over processes (a group may straddle ranks).
        rewards = self._calculate_rewards(rows, prompts, completions, completion_ids)
        hard = hard_groups(rewards, self.reward_weights, G, settings.hard_rule, settings.hard_threshold)
        hard_rows = hard.repeat_interleave(G)
        self._step_state = _StepState(rewards_before=rewards, hard_rows=hard_rows)
        start = self.accelerator.process_index * len(prompts)
        local_hard = hard_rows[start : start + len(prompts)].tolist()
        first_completions = list(completions)
        if settings.strategy == "dynamic_sampling":
            resampled = self._resample_zero_std(out, prompts, rewards)
            self._write_rollouts(start, local_hard, [], first_completions, out[3], resampled)
            return tuple(out)
        # Decided on the gathered batch, so every rank takes the same branch (no rank skips a collective).
        if settings.strategy != "hint" or not bool(hard_rows.any()):
            self._write_rollouts(start, local_hard, [], first_completions, completions)
            return tuple(out)

        idx = [i for i, h in enumerate(local_hard) if h]
        self._step_state.hinted = True
        if not idx:
            if self.accelerator.num_processes > 1:
                # Generation gathers ZeRO-3 parameters collectively: every rank must take part once.
                self._generate_single_turn([list(prompt_ids[0])], None, {"omni_rows": [self._enc_rows[0]]}, 1)
            self._write_rollouts(start, local_hard, [], first_completions, completions)
            return tuple(out)

        hints = [self._hint_ids(rows[i]) for i in idx]
        hinted_ids = [list(prompt_ids[i]) + h_ids for i, (h_ids, _) in zip(idx, hints, strict=True)]
        new_ids, new_logprobs = self._generate_single_turn(
            hinted_ids, None, {"omni_rows": [self._enc_rows[i] for i in idx]}, G
        )
        texts = self.processing_class.batch_decode(new_ids, skip_special_tokens=True)
        prompt_ids, completion_ids, completions = list(prompt_ids), list(completion_ids), list(completions)
        logprobs = list(logprobs) if logprobs is not None else None
        for k, i in enumerate(idx):
            prompt_ids[i] = hinted_ids[
                k
            ]  # hint ids on the prompt side: conditioned on, never scored or trained
            completion_ids[i] = list(new_ids[k])
            full = hints[k][1] + texts[k]  # the reward reads hint + continuation
            completions[i] = (
                [{"role": "assistant", "content": full}] if isinstance(completions[i], list) else full
            )
            if logprobs is not None:
                logprobs[i] = new_logprobs[k] if new_logprobs is not None else None
        if logprobs is not None and any(lp is None for lp in logprobs):
            logprobs = None
        out[0], out[1], out[3], out[4] = prompt_ids, completion_ids, completions, logprobs
        self._write_rollouts(start, local_hard, idx, first_completions, completions)
        return tuple(out)

    def _resample_zero_std(self, out: list, prompts: list, rewards: torch.Tensor) -> list[int]:
        """Dynamic sampling, in place on ``out`` (TRL's ``_generate`` tuple): the rows of every group whose total
        rewards have no spread are sampled again, as they were (no hint), until the group has spread or
        ``max_resamples`` rounds are done; groups still without spread are marked to leave the batch. Returns how
        many times each local row was sampled again.

        The rounds are decided on the gathered batch, so every rank runs as many, joining each round's generation
        (ZeRO-3 gathers parameters collectively) and reward gather whatever its own rows."""
        G, n = self.num_generations, len(prompts)
        start = self.accelerator.process_index * n
        prompt_ids, completion_ids, completions = out[0], list(out[1]), list(out[3])
        logprobs = list(out[4]) if out[4] is not None else None
        pending = zero_std_groups(weighted_totals(rewards, self.reward_weights), G)
        resampled = torch.zeros_like(pending)
        times = [0] * n
        rounds = 0
        while rounds < self.hint_settings.max_resamples and bool(pending.any()):
            rounds += 1
            resampled |= pending
            local = pending.repeat_interleave(G)[start : start + n].tolist()
            idx = [i for i, p in enumerate(local) if p]
            if idx:
                new_ids, new_logprobs = self._generate_single_turn(
                    [list(prompt_ids[i]) for i in idx],
                    None,
                    {"omni_rows": [self._enc_rows[i] for i in idx]},
                    G,
                )
                texts = self.processing_class.batch_decode(new_ids, skip_special_tokens=True)
                for k, i in enumerate(idx):
                    times[i] += 1
                    completion_ids[i] = list(new_ids[k])
                    completions[i] = (
                        [{"role": "assistant", "content": texts[k]}]
                        if isinstance(completions[i], list)
                        else texts[k]
                    )
                    if logprobs is not None:
                        logprobs[i] = new_logprobs[k] if new_logprobs is not None else None
            elif self.accelerator.num_processes > 1:
                self._generate_single_turn([list(prompt_ids[0])], None, {"omni_rows": [self._enc_rows[0]]}, 1)
            rewards = self._calculate_rewards(self._batch_rows, prompts, completions, completion_ids)
            pending &= zero_std_groups(weighted_totals(rewards, self.reward_weights), G)
        if logprobs is not None and any(lp is None for lp in logprobs):
            logprobs = None
        out[1], out[3], out[4] = completion_ids, completions, logprobs
        state = self._step_state
        state.resampled_groups, state.dropped_groups, state.resample_rounds = resampled, pending, rounds
        return times

    def _write_rollouts(
        self,
        start: int,
        local_hard: list[bool],
        hinted: list[int],
        first: list[Any],
        final: list[Any],
        resampled: list[int] | None = None,
    ) -> None:
        """Debug record (``rollout_log``): this process's rows of the generation batch, one JSON line each, in
        ``rollouts/rank<N>.jsonl`` (appended; a resumed run appends the redone steps again)."""
        if self.rollout_log is None:
            return
        from msa_rl.rewards import completion_text

        rank = self.accelerator.process_index
        hinted_set = set(hinted)
        lines = []
        for i, row in enumerate(self._batch_rows):
            lines.append(
                {
                    "step": self.state.global_step + 1,  # the optimiser step this batch feeds
                    "rank": rank,
                    "index": start + i,  # row in the gathered batch (groups are G consecutive rows)
                    "id": row.get("id"),
                    "label": row.get("label"),
                    "dataset": row.get("dataset"),
                    "hard": bool(local_hard[i]),
                    "hinted": i in hinted_set,
                    "resampled": resampled[i] if resampled is not None else 0,  # times sampled again
                    "first_completion": completion_text(first[i]),
                    "completion": completion_text(final[i]),  # what the reward read (hint + continuation)
                }
            )
        self.rollout_log.mkdir(parents=True, exist_ok=True)
        with (self.rollout_log / f"rank{rank}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(line) + "\n" for line in lines))

    def _generate_and_score_completions(self, inputs):
        self._batch_rows = inputs
        output = super()._generate_and_score_completions(inputs)
        output["omni_mm"] = self._mm_rows
        if self.model.training:
            self._correct_rollouts(output)
            self._finish_step(output)
        return output

    def _correct_rollouts(self, output: dict[str, Any]) -> None:
        """vLLM rollouts: the truncated importance weights of the sampled tokens (``rollout_is_weight``, applied in
        ``_compute_loss``) and the mismatch metrics. HF generate: the sampler is the trainer, mismatch 0."""
        mask = output["completion_mask"]
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        sums, correction = MismatchSums(), self.rollout_correction
        if self._vllm is not None:
            rollout = output.get("sampling_per_token_logps")
            if rollout is None:
                raise RuntimeError("vLLM rollout returned no log-probs of the sampled tokens")
            trainer = output.get("old_per_token_logps")
            if trainer is None:
                trainer = self._trainer_logps(output)
            weights = None
            if correction.level != "none":
                weights = importance_weights(trainer, rollout, mask, correction.level, correction.cap)
                output["rollout_is_weight"] = weights
            sums = mismatch_sums(trainer, rollout, mask, weights, correction.cap)
        device = self.accelerator.device
        # Every process gathers, whatever its rows (a collective skipped on one rank hangs the others).
        total = self.accelerator.gather(sums.as_tensor().to(device)).view(-1, 6).sum(dim=0)
        abs_max = self.accelerator.gather(torch.tensor([sums.abs_max], device=device)).max().item()
        for key, value in mismatch_metrics(total.cpu(), abs_max).items():
            self._metrics["train"][key].append(value)

    @torch.no_grad()
    def _trainer_logps(self, output: dict[str, Any]) -> torch.Tensor:
        """The trainer's log-probs of the sampled completions with the weights that sampled them (before any update
        of this generation batch): TRL's ``old_per_token_logps``, computed here when TRL did not."""
        completion_ids = output["completion_ids"]
        ids = torch.cat([output["prompt_ids"], completion_ids], dim=1)
        attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(
            self.model,
            ids,
            attention,
            completion_ids.size(1),
            batch_size=self.args.per_device_train_batch_size,
        )
        return logps

    def _finish_step(self, output: dict[str, Any]) -> None:
        """Drop hard groups if asked, then log this generation batch's Hint-GRPO metrics."""
        state, G = self._step_state, self.num_generations
        after = self._last_rewards
        n_local = output["completion_ids"].size(0)
        start = self.accelerator.process_index * n_local
        keep_global = torch.ones(after.size(0), dtype=torch.bool, device=after.device)
        strategy = self.hint_settings.strategy
        if strategy == "drop" and state.hard_rows is not None:
            keep_global = ~state.hard_rows.to(after.device)
        if strategy == "dynamic_sampling" and state.dropped_groups is not None:
            keep_global = ~state.dropped_groups.repeat_interleave(G).to(after.device)
        keep = keep_global[start : start + n_local].to(output["completion_mask"].device)
        output["omni_keep"] = keep
        # grpo/dr_grpo average over every row of the gathered batch (per micro-batch mean, / accumulation, mean over
        # processes): scaling by N / N_kept makes that an average over the kept rows of the whole batch, whatever
        # share of them each process or micro-batch holds.
        n_kept = int(keep_global.sum())
        output["omni_keep_scale"] = torch.tensor(keep_global.numel() / n_kept if n_kept else 1.0)
        if not bool(keep_global.all()):  # global decision: every rank joins the gather below
            output["completion_mask"] = output["completion_mask"] * keep.unsqueeze(1).to(
                output["completion_mask"].dtype
            )
            output["advantages"] = output["advantages"] * keep.to(output["advantages"].dtype)
            loss_mask = output["completion_mask"]
            if "tool_mask" in output:
                loss_mask = loss_mask * output["tool_mask"]
            output["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()

        mode = "train"
        metrics = self._metrics[mode]
        total_after = weighted_totals(after, self.reward_weights)
        kept_rows = keep_global
        for col, name in enumerate(REWARD_NAMES):
            metrics[f"reward/{name}"].append(mean_or_nan(after[kept_rows, col]))
        metrics["reward/total"].append(mean_or_nan(total_after[kept_rows]))
        lengths = self.accelerator.gather(output["completion_mask"].sum(dim=1).float())
        metrics["completion_length"].append(mean_or_nan(lengths[kept_rows.to(lengths.device)]))
        if state.rewards_before is None:
            return
        total_before = weighted_totals(state.rewards_before, self.reward_weights)
        metrics["reward/total_sampled"].append(mean_or_nan(total_before))
        hard = state.hard_rows.view(-1, G)[:, 0]
        metrics["hard_fraction"].append(hard.float().mean().item())
        zero_before = zero_std_groups(total_before, G)
        metrics["zero_std_fraction_before"].append(zero_before.float().mean().item())
        zero_after = zero_std_groups(total_after, G)
        kept_groups = keep_global.view(-1, G)[:, 0]
        # A group gives no signal when its rewards have no spread, or when it was dropped.
        no_signal = (zero_after & kept_groups) | ~kept_groups
        metrics["zero_std_fraction_after"].append(no_signal.float().mean().item())
        metrics["zero_std_fraction"].append(no_signal.float().mean().item())
        if state.hinted and bool(hard.any()):
            metrics["hint_success"].append((~zero_after[hard]).float().mean().item())
        # Counts per generation batch (TRL averages a metric over the steps of one logging window).
        metrics["groups/total"].append(float(hard.numel()))
        metrics["groups/hard"].append(float(hard.sum()))
        metrics["groups/hinted"].append(float(hard.sum()) if state.hinted else 0.0)
        resampled = state.resampled_groups
        metrics["groups/resampled"].append(float(resampled.sum()) if resampled is not None else 0.0)
        metrics["groups/dropped"].append(float((~kept_groups).sum()))
        metrics["resample_rounds"].append(float(state.resample_rounds))

    # -- loss side -----------------------------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        self._mm_rows = inputs["omni_mm"]
        weights = inputs.get("rollout_is_weight")
        if weights is not None:
            # TRL multiplies the per-token policy loss by its vLLM importance ratio behind its own `use_vllm` flag,
            # which this trainer cannot set. Every loss_type here is -min(c1 * A, c2 * A) per token, positively
            # homogeneous in the advantage A, so weighting A by w >= 0 weighs the policy loss by w exactly (and,
            # as in TRL, leaves the KL term alone).
            advantages = inputs["advantages"]
            if advantages.dim() == 1:
                advantages = advantages.unsqueeze(1)
            inputs = {**inputs, "advantages": advantages * weights.to(advantages.dtype)}
        loss = super()._compute_loss(model, inputs)
        scale = inputs.get("omni_keep_scale")
        if scale is not None and self.loss_type in ("grpo", "dr_grpo"):
            # These losses average over all rows; dropped rows add zeros, so rescale to a mean over kept rows
            # (N / N_kept of the gathered generation batch, see _finish_step).
            loss = loss * float(scale)
        return loss

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **_image_kwargs,
    ):
        rows = self._mm_rows
        if rows is None or len(rows) != input_ids.size(0):
            raise RuntimeError(
                f"per-row media ({None if rows is None else len(rows)}) misaligned with input_ids ({input_ids.size(0)})"
            )
        batch_size = batch_size or input_ids.size(0)
        unwrapped = self.accelerator.unwrap_model(model)
        logps, entropies, aux_losses = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids = input_ids[start : start + batch_size]
            mask = attention_mask[start : start + batch_size]
            media = collate_media(rows[start : start + batch_size], ids.device, unwrapped.dtype)
            if "pixel_values_videos" in media and "input_features" in media:
                media["use_audio_in_video"] = True
            if (
                compute_aux_loss
            ):  # a mixture-of-experts family: TRL adds router_aux_loss_coef x this to the loss
                media["output_router_logits"] = True
            with self.accelerator.autocast(), completion_logits_only(unwrapped, logits_to_keep):
                outputs = model(input_ids=ids, attention_mask=mask, use_cache=False, **media)
            logits = outputs.logits
            if compute_aux_loss:
                aux_losses.append(outputs.aux_loss)
            logits = logits.float() / self.temperature
            logps.append(selective_log_softmax(logits, ids[:, -logits_to_keep:]))
            if compute_entropy:
                # Entropy only needs a graph when TRL adds an entropy bonus to the loss.
                with nullcontext() if self._entropy_bonus_enabled else torch.no_grad():
                    entropies.append(entropy_from_logits(logits))
        entropy = torch.cat(entropies) if compute_entropy else None
        aux = torch.stack(aux_losses).mean() if compute_aux_loss else None
        return torch.cat(logps), entropy, aux

    # -- logging and resume --------------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        training = self.model.training
        super().log(logs, start_time)  # merges and clears this window's metrics into `logs`
        if training and "loss" in logs and self.accelerator.is_main_process:
            self._append_metrics(logs)

    def _append_metrics(self, logs: dict[str, Any]) -> None:
        line: dict[str, Any] = {
            "step": self.state.global_step,
            "hard_group_strategy": self.hint_settings.strategy,
        }
        for key in METRIC_KEYS:
            line[key] = _finite_or_none(logs.get(key))
        for key, value in logs.items():
            if key not in line and isinstance(value, (int, float)):
                line[key] = _finite_or_none(value)
        with JsonlAppender(Path(self.args.output_dir) / METRICS_FILE) as metrics:
            metrics.append(line)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        if isinstance(resume_from_checkpoint, (str, Path)):
            from transformers.trainer_utils import TrainOutput

            step = json.loads((Path(resume_from_checkpoint) / "trainer_state.json").read_text())[
                "global_step"
            ]
            if self.accelerator.is_main_process:
                truncate_metrics(Path(self.args.output_dir) / METRICS_FILE, step)
            total = self.set_initial_training_values(self.args, self.get_train_dataloader())[-1]
            if step >= total:
                # Resuming a finished run: the Trainer would still take one more step (it checks max_steps only
                # after a step); load the final weights instead, so the caller can save them.
                self._load_from_checkpoint(str(resume_from_checkpoint))
                self.state.global_step = step
                return TrainOutput(step, math.nan, {})
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep metrics.jsonl lines up to ``last_step`` (a resumed run re-logs the steps after its checkpoint)."""
    if not path.is_file():
        return
    kept = [row for row in read_jsonl(path) if row.get("step", 0) <= last_step]  # a torn last line is dropped
    write_jsonl_atomic(path, kept)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The per-step lines of a metrics.jsonl (a torn last line skipped)."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    return list(read_jsonl(p))
