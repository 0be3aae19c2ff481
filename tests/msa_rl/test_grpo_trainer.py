"""HintGRPOTrainer on the tiny Omni thinker (CPU).

Which model each test uses (see grpo_helpers): the random tiny model where only the wiring matters (media in the
forward, position ids, resume); scripted generation (monkeypatched sampling, exact control of what is "sampled")
for hard groups, hints and the ablations; the format-SFT'd tiny model for the two-step run with real rewards.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import grpo_helpers
import pytest
import torch
from grpo_helpers import recipe, scripted_generation
from msa_core import get_spec
from msa_rl.grpo import build_trainer, read_training_rows, run_grpo
from msa_rl.grpo_trainer import (
    METRIC_KEYS,
    METRICS_FILE,
    collate_media,
    hard_groups,
    hint_token_ids,
    read_metrics,
    zero_std_groups,
)
from msa_rl.rewards import reward_components, weighted_totals
from transformers import TrainerCallback

G = 4
ANSWER = "<polarity>{p}</polarity><think>warm voice and a smile</think><score>{s}</score>"

# session fixtures shared by the GRPO test modules (built once, see grpo_helpers)
format_model = grpo_helpers.format_model
grpo_clips = grpo_helpers.grpo_clips


def group_inputs(rows: list[dict], n_prompts: int = 2) -> list[dict]:
    """A generation batch as TRL's sampler makes it: each prompt repeated G times, in order."""
    return [dict(r) for r in rows[:n_prompts] for _ in range(G)]


def rows_by_polarity(clips: Path, *polarities: str) -> list[dict]:
    spec = get_spec("sims")
    rows = read_training_rows(recipe(clips, clips, clips))
    return [next(r for r in rows if spec.polarity_of(r["label"]) == p) for p in polarities]


def loss_inputs(out: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    return ids, mask, out["completion_ids"].size(1)


# ------------------------------------------------------------------------------------------------ pure helpers
def test_hard_group_rules() -> None:
    nan = math.nan
    rewards = torch.tensor(
        [
            [1, 0, 0.5],
            [1, 0, 0.9],
            [0, 0, 0],
            [1, 0, 0.2],  # group 0: no correct polarity -> hard
            [1, 1, 0.9],
            [1, 0, 0.1],
            [0, 0, 0],
            [1, 0, 0.3],  # group 1: one correct -> easy
            [nan, nan, nan],
            [0, 0, 0],
            [0, 0, 0],
            [0, 0, 0],  # group 2: nothing scorable -> hard
        ],
        dtype=torch.float32,
    )
    w = torch.ones(3)
    assert hard_groups(rewards, w, G).tolist() == [True, False, True]
    # threshold rule: every total below 1.95 -> group 0 (max 1.9) and 2 hard, group 1 (2.9) easy
    assert hard_groups(rewards, w, G, "threshold", 1.95).tolist() == [True, False, True]
    assert hard_groups(rewards, w, G, "threshold", 1.5).tolist() == [False, False, True]
    assert zero_std_groups(torch.tensor([1.0, 1, 1, 1, 0, 1, 0, 1]), G).tolist() == [True, False]


def test_hint_ids_follow_the_answer_tokenization(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for polarity in ("negative", "neutral", "positive"):
        ids = hint_token_ids(tok, polarity)
        answer = tok(ANSWER.format(p=polarity, s=0.1), add_special_tokens=False)["input_ids"]
        assert answer[: len(ids)] == ids  # a token prefix of a real answer, not a re-tokenized tag
        assert tok.decode(ids).startswith(f"<polarity>{polarity}</polarity")


class MergingTokenizer:
    """A stand-in BPE whose vocabulary merges '><' (as the real Qwen BPE may): pieces split by a regex."""

    pattern = __import__("re").compile(r"><|<|>|/|[a-z]+|[^a-z<>/]+")

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.setdefault(p, len(self.vocab)) for p in self.pattern.findall(text)]}

    def decode(self, ids, skip_special_tokens=False):
        inverse = {i: p for p, i in self.vocab.items()}
        return "".join(inverse[i] for i in ids)


def test_hint_stops_before_a_merged_closing_bracket() -> None:
    tok = MergingTokenizer()
    ids = hint_token_ids(tok, "neutral")
    assert tok.decode(ids) == "<polarity>neutral</polarity"  # the '><' token belongs to the continuation
    answer = tok(ANSWER.format(p="neutral", s=0), add_special_tokens=False)["input_ids"]
    assert answer[: len(ids)] == ids and tok.decode([answer[len(ids)]]) == "><"


def test_collate_pads_whisper_frames_and_keeps_row_order() -> None:
    a = {
        "pixel_values_videos": torch.ones(2, 3),
        "input_features": torch.ones(1, 2, 5),
        "feature_attention_mask": torch.ones(1, 5),
    }
    b = {
        "pixel_values_videos": torch.zeros(4, 3),
        "input_features": torch.ones(1, 2, 3),
        "feature_attention_mask": torch.ones(1, 3),
    }
    out = collate_media([a, b], dtype=torch.float64)
    assert out["pixel_values_videos"].shape == (6, 3) and out["pixel_values_videos"][0, 0] == 1
    assert out["pixel_values_videos"].dtype == torch.float64
    assert out["input_features"].shape == (2, 2, 5) and out["feature_attention_mask"][1].tolist() == [
        1,
        1,
        1,
        0,
        0,
    ]
    with pytest.raises(ValueError, match="different media fields"):
        collate_media([a, {"pixel_values_videos": torch.ones(1, 3)}])


# ------------------------------------------------------------------------------------------- media in the loss
def test_media_reach_every_gradient_forward_and_move_the_loss(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path
) -> None:
    """Random tiny model. Every forward under grad (the loss) carries video, audio and use_audio_in_video; changing
    only one sample's video or audio changes that sample's log-probs (the others stay put) and the loss."""
    trainer = build_trainer(recipe(tiny_model_dir, grpo_clips, tmp_path, max_steps=1, limit=2))
    seen: list[dict] = []

    def probe(_module, _args, kwargs):
        seen.append(
            {
                "grad": torch.is_grad_enabled(),
                # transformers >= 5.19 runs the vision tower once before decoding and hands generate's prefill
                # its output (mm_encoder_outputs["video"]) instead of the pixels
                "video": kwargs.get("pixel_values_videos") is not None
                or "video" in (kwargs.get("mm_encoder_outputs") or {}),
                "audio": kwargs.get("input_features") is not None,
                "aiv": kwargs.get("use_audio_in_video"),
            }
        )

    handle = trainer.model.register_forward_pre_hook(probe, with_kwargs=True)
    trainer.train()
    handle.remove()
    grad_forwards = [s for s in seen if s["grad"]]
    assert grad_forwards, "no gradient forward observed"
    assert all(s["video"] and s["audio"] and s["aiv"] is True for s in grad_forwards)
    prefill = [s for s in seen if not s["grad"] and s["video"]]  # generate's prefill carries the media too
    assert prefill and all(bool(s["aiv"]) for s in prefill)

    trainer.model.train()
    out = trainer._generate_and_score_completions(
        group_inputs(rows_by_polarity(grpo_clips, "positive", "negative"))
    )
    ids, mask, keep = loss_inputs(out)
    rows = list(out["omni_mm"])

    def logps(media_rows):
        trainer._mm_rows = media_rows
        with torch.no_grad():
            return trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep)[0]

    base = logps(rows)
    cmask = out["completion_mask"].bool()
    m = cmask.float()
    advantages = torch.zeros(ids.size(0))
    advantages[0] = 1.0
    out["advantages"], out["old_per_token_logps"] = advantages, base

    def expected_loss(lp):
        """TRL's 'grpo' loss written out for given log-probs (old = base, ratios inside the clip range)."""
        ref = out["ref_per_token_logps"]
        kl = torch.exp(ref - lp) - (ref - lp) - 1
        per_token = -torch.exp(lp - base) * advantages.unsqueeze(1) + trainer.beta * kl
        return ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).mean().item()

    for key in ("pixel_values_videos", "input_features"):
        changed = list(rows)
        changed[0] = {**rows[0], key: rows[0][key] + 3 * torch.randn_like(rows[0][key])}
        moved = logps(changed)
        assert (moved[0] - base[0])[cmask[0]].abs().max() > 1e-4, f"{key} does not reach the log-probs"
        assert torch.allclose(moved[1:], base[1:], atol=1e-6), f"{key} of sample 0 leaked into other samples"
        # The loss forward sees the changed media: its value is the loss of the moved log-probs, not of the old.
        gap = abs(expected_loss(moved) - expected_loss(base))
        assert gap > 1e-6
        for media_rows, lp in ((rows, base), (changed, moved)):
            out["omni_mm"] = media_rows
            # The two paths reduce in a different order (float32): allow a small fraction of the media's effect.
            assert trainer._compute_loss(trainer.model, out).item() == pytest.approx(
                expected_loss(lp), abs=gap / 20
            )
        out["omni_mm"] = rows


def test_generation_and_loss_share_position_ids(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path
) -> None:
    """Random tiny model, real sampling (temperature 0.7). The log-probs the loss path computes for the sampled
    tokens equal those of generation's own logits (same TMRoPE positions, left-padded prompts of different length);
    without use_audio_in_video they would not."""
    trainer = build_trainer(
        recipe(tiny_model_dir, grpo_clips, tmp_path, hard_group_strategy="none", temperature=0.7)
    )
    captured = {}
    original = trainer.model.generate

    def generate(*args, **kwargs):
        result = original(*args, **kwargs, output_logits=True, return_dict_in_generate=True)
        captured["logits"] = torch.stack(result.logits, dim=1)  # (B, steps, V), before any logits processor
        captured["prompt_len"] = kwargs["input_ids"].size(1)
        return result.sequences

    trainer.model.generate = generate
    trainer.model.train()
    rows = rows_by_polarity(grpo_clips, "positive", "negative")
    assert len(rows[0]["prompt"][1]["content"]) != len(
        rows[1]["prompt"][1]["content"]
    )  # different prompt lengths
    out = trainer._generate_and_score_completions(group_inputs(rows))
    ids, mask, keep = loss_inputs(out)
    comp, cmask = out["completion_ids"], out["completion_mask"].bool()
    gen = torch.log_softmax(captured["logits"][:, :keep].float() / 0.7, dim=-1)
    gen = gen.gather(-1, comp[:, : gen.size(1)].unsqueeze(-1)).squeeze(-1)
    trainer._mm_rows = out["omni_mm"]
    with torch.no_grad():
        loss_path = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep)[0]
    diff = (loss_path[:, : gen.size(1)] - gen)[cmask[:, : gen.size(1)]].abs().max().item()
    assert diff < 1e-4, diff

    # Sensitivity: the same forward without use_audio_in_video puts the completion at other positions.
    media = collate_media(out["omni_mm"], dtype=torch.float32)
    with torch.no_grad():
        logits = trainer.model(input_ids=ids, attention_mask=mask, **media).logits[:, -keep - 1 : -1] / 0.7
    wrong = torch.log_softmax(logits.float(), dim=-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
    # (measured: ~1e-6 with the right positions, ~1e-3 without, on the random tiny model's near-flat logits)
    assert (wrong - loss_path)[cmask].abs().max().item() > 2e-4  # so the 1e-4 bound above would catch it


# ------------------------------------------------------------------------------------ hard groups and hints
def first_pass_positive(trainer, prompt_ids):
    """Scripted: every first-pass completion says 'positive' (varied score); a hinted prompt gets a continuation
    with a varied score. The positive clip's group is easy, the negative clip's group hard."""
    hint_tail = {}
    for pol in ("negative", "neutral", "positive"):
        hint_tail[pol] = hint_token_ids(trainer._tokenizer, pol)
    texts = []
    for k, ids in enumerate(prompt_ids):
        hinted = next((p for p, t in hint_tail.items() if list(ids[-len(t) :]) == t), None)
        if hinted is None:
            texts.append(ANSWER.format(p="positive", s=f"0.{k % 4 + 5}"))
        else:  # the rest of a full answer after the hint text (the hint may stop short of the closing '>')
            full = f"<polarity>{hinted}</polarity><think>a flat tone</think><score>-0.{k % 4 + 2}</score>"
            texts.append(full[len(trainer._tokenizer.decode(hint_tail[hinted])) :])
    return texts


def test_hard_groups_are_resampled_with_the_hint_which_carries_no_gradient(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """Scripted generation (monkeypatched sampling)."""
    calls = scripted_generation(monkeypatch, first_pass_positive)
    trainer = build_trainer(recipe(tiny_model_dir, grpo_clips, tmp_path))
    trainer.model.train()
    rows = rows_by_polarity(grpo_clips, "positive", "negative")
    out = trainer._generate_and_score_completions(group_inputs(rows))

    assert len(calls) == 2 and len(calls[1][0]) == G  # only the hard group's rows are sampled again
    hint = hint_token_ids(trainer._tokenizer, "negative")
    first_prompts = calls[0][0]
    for k, prompt in enumerate(calls[1][0]):
        assert prompt == first_prompts[G + k] + hint  # token-level prefix right after the generation prompt
    hint_text = trainer._tokenizer.decode(hint)
    assert hint_text.startswith("<polarity>negative") and "<polarity>negative</polarity>".startswith(
        hint_text
    )

    pad = trainer._tokenizer.pad_token_id
    for i in range(2 * G):
        prompt = out["prompt_ids"][i][out["prompt_mask"][i].bool()].tolist()
        completion = out["completion_ids"][i][out["completion_mask"][i].bool()].tolist()
        if i < G:
            assert prompt == first_prompts[i]
        else:
            # the hint sits on the prompt side: context for the forward, outside logits_to_keep and the loss mask
            assert prompt[-len(hint) :] == hint and completion[: len(hint)] != hint
            loss_mask = torch.cat([torch.zeros(len(prompt)), torch.ones(len(completion))])
            assert loss_mask[len(prompt) - len(hint) : len(prompt)].sum() == 0
            expected = trainer._tokenizer(calls[1][1][i - G], add_special_tokens=False)["input_ids"]
            assert completion == [*expected, trainer._tokenizer.eos_token_id] and pad not in completion

    # the reward read hint + continuation: a full, well-formed negative answer with a varied score
    rewards = trainer._last_rewards
    assert rewards[G:, 0].tolist() == [1.0] * G and rewards[G:, 1].tolist() == [1.0] * G
    completions = list(trainer._logs["completion"])[-2 * G :]
    assert completions[G][0]["content"].startswith("<polarity>negative</polarity><think>a flat tone")
    m = trainer._metrics["train"]
    assert m["hard_fraction"][-1] == 0.5
    # the hard group's wrong polarity earns no score (eq. 5 under the right polarity): format-only totals, no spread
    assert m["zero_std_fraction_before"][-1] == 0.5
    assert m["hint_success"][-1] == 1.0
    assert [m[k][-1] for k in ("groups/hard", "groups/hinted", "groups/resampled", "groups/dropped")] == [
        1,
        1,
        0,
        0,
    ]
    assert out["advantages"][G:].abs().sum() > 0  # the hinted group now teaches something


@pytest.mark.parametrize("score_requires_polarity", [True, False])
def test_strategy_none_is_plain_grpo(
    score_requires_polarity: bool, tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """Scripted generation: no second pass, no hint tokens, hard groups counted but kept as sampled. The recipe's
    reward coupling reaches the trainer: the hard group's wrong answers earn a score only without eq. 5's
    polarity premise, which decides whether that group has any spread."""
    calls = scripted_generation(monkeypatch, first_pass_positive)
    coupling = {"require_format": True, "score_requires_polarity": score_requires_polarity}
    trainer = build_trainer(
        recipe(tiny_model_dir, grpo_clips, tmp_path, hard_group_strategy="none", reward_coupling=coupling)
    )
    trainer.model.train()
    out = trainer._generate_and_score_completions(
        group_inputs(rows_by_polarity(grpo_clips, "positive", "negative"))
    )
    assert len(calls) == 1
    prompts = [out["prompt_ids"][i][out["prompt_mask"][i].bool()].tolist() for i in range(2 * G)]
    assert prompts == calls[0][0]
    assert trainer._last_rewards[G:, 1].sum() == 0  # the hard group keeps its wrong answers
    assert (trainer._last_rewards[G:, 2].sum() == 0) == score_requires_polarity
    assert trainer._last_rewards[:G, 2].min() > 0  # the easy group's right answers are scored either way
    m = trainer._metrics["train"]
    assert m["hard_fraction"][-1] == 0.5 and "hint_success" not in m
    assert m["zero_std_fraction_before"][-1] == (0.5 if score_requires_polarity else 0.0)
    assert [m[k][-1] for k in ("groups/total", "groups/hard", "groups/hinted", "groups/dropped")] == [
        2,
        1,
        0,
        0,
    ]
    assert out["completion_mask"].sum(dim=1).min() > 0  # nothing dropped
    # HF generate samples from the trainer's own model: no mismatch, nothing weighted
    assert "rollout_is_weight" not in out
    assert (
        m["mismatch/logp_abs_max"][-1] == m["mismatch/kl"][-1] == 0.0
        and m["mismatch/is_weight_mean"][-1] == 1
    )


def test_strategy_drop_takes_hard_groups_out_of_the_loss(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """Scripted generation: hard rows get no loss mask and no advantage, and the loss equals the loss of a batch
    holding only the kept rows."""
    calls = scripted_generation(monkeypatch, first_pass_positive)
    trainer = build_trainer(recipe(tiny_model_dir, grpo_clips, tmp_path, hard_group_strategy="drop"))
    trainer.model.train()
    out = trainer._generate_and_score_completions(
        group_inputs(rows_by_polarity(grpo_clips, "positive", "negative"))
    )
    assert len(calls) == 1
    assert out["omni_keep"].tolist() == [True] * G + [False] * G
    assert out["completion_mask"][G:].sum() == 0 and out["advantages"][G:].abs().sum() == 0
    assert out["completion_mask"][:G].sum() > 0 and out["advantages"][:G].abs().sum() > 0
    m = trainer._metrics["train"]
    assert m["hard_fraction"][-1] == 0.5 and m["zero_std_fraction_after"][-1] == 0.5  # dropped = no signal
    assert m["groups/dropped"][-1] == 1 and m["groups/hinted"][-1] == 0 and m["resample_rounds"][-1] == 0

    trainer.current_gradient_accumulation_steps = 1  # set by train(); this test calls the loss directly
    loss_all = trainer._compute_loss(trainer.model, out).item()

    def first_group(v):
        per_row = isinstance(v, list) or (isinstance(v, torch.Tensor) and v.dim() > 0)
        return v[:G] if per_row and len(v) == 2 * G else v

    # a batch holding only the kept rows drops nothing, so it has no N / N_kept rescaling
    kept = {k: first_group(v) for k, v in out.items() if k != "omni_keep_scale"}
    loss_kept = trainer._compute_loss(trainer.model, kept).item()
    assert loss_all == pytest.approx(loss_kept, rel=1e-5, abs=1e-7)


class ScriptedRollout:
    """Stands in for the vLLM engine (OmniVLLMRollout's two methods): scripted completions, every sampled token
    reported with the log-prob ``logp``."""

    def __init__(self, trainer, texts_for, logp: float):
        self.trainer, self.texts_for, self.logp = trainer, texts_for, logp
        self.calls: list[list[list[int]]] = []

    def sync_weights(self) -> None:
        pass

    def generate(self, prompt_ids, rows):
        tok = self.trainer._tokenizer
        texts = self.texts_for(self.trainer, prompt_ids)
        self.calls.append([list(p) for p in prompt_ids])
        ids = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
        return ids, [[self.logp] * len(i) for i in ids]


def test_vllm_rollouts_are_importance_weighted_in_the_loss(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path
) -> None:
    """A scripted engine reports log-prob -12 for every sampled token: each completion token's policy loss is
    weighted by min(pi_trainer / pi_engine, cap), hinted rows' engine log-probs cover their continuation only, and
    the step's mismatch metrics are those of the batch."""
    cap = 2.0
    trainer = build_trainer(
        recipe(tiny_model_dir, grpo_clips, tmp_path, beta=0.0, rollout_correction_cap=cap)
    )
    trainer._vllm = engine = ScriptedRollout(trainer, first_pass_positive, logp=-12.0)
    trainer.model.train()
    out = trainer._generate_and_score_completions(
        group_inputs(rows_by_polarity(grpo_clips, "positive", "negative"))
    )
    assert len(engine.calls) == 2  # the negative clip's group was hinted
    mask = out["completion_mask"].bool()
    rollout = out["sampling_per_token_logps"]
    # one engine log-prob per completion token, hinted rows included (the hint is prompt: no log-prob)
    assert (rollout[mask] == -12.0).all() and (rollout[~mask] == 0.0).all()
    trainer_logps = trainer._trainer_logps(out)
    weights = out["rollout_is_weight"]
    want = torch.exp(trainer_logps + 12.0).clamp(max=cap)
    assert weights.shape == mask.shape and torch.allclose(weights[mask], want[mask], rtol=1e-4)
    d = (trainer_logps + 12.0)[mask]
    m = trainer._metrics["train"]
    assert m["mismatch/logp_abs_mean"][-1] == pytest.approx(d.abs().mean().item(), rel=1e-4)
    assert m["mismatch/logp_abs_max"][-1] == pytest.approx(d.abs().max().item(), rel=1e-4)
    assert m["mismatch/kl"][-1] == pytest.approx((torch.expm1(d) - d).mean().item(), rel=1e-4)

    # beta = 0 and one iteration: the policy loss of a row is -A * mean over its tokens of the weight
    trainer.current_gradient_accumulation_steps = 1  # set by train(); this test calls the loss directly
    advantages, fmask = out["advantages"].unsqueeze(1), out["completion_mask"].float()
    assert advantages.abs().sum() > 0

    def expected(w: torch.Tensor) -> float:
        return (-(advantages * w * fmask).sum(-1) / fmask.sum(-1).clamp(min=1)).mean().item()

    weighted = trainer._compute_loss(trainer.model, out).item()
    plain = {k: v for k, v in out.items() if k != "rollout_is_weight"}
    unweighted = trainer._compute_loss(trainer.model, plain).item()
    assert weighted == pytest.approx(expected(weights), rel=1e-4, abs=1e-7)
    assert unweighted == pytest.approx(expected(torch.ones_like(weights)), rel=1e-4, abs=1e-7)
    assert weighted != pytest.approx(unweighted, rel=1e-3)


def wrong_until(right_from_call: int | None):
    """Scripted: the positive clip's group answers 'positive' with varied scores (spread); the negative clip's
    group answers 'positive' 0.5 in every row (no spread: one format reward each) until the ``right_from_call``-th
    generation call (1-based), from which its rows vary in polarity and score (spread). None: never."""
    calls = 0

    def texts_for(trainer, prompt_ids):
        nonlocal calls
        calls += 1
        rows, texts = trainer._batch_rows, []
        if calls == 1:  # the first pass: every row of the batch, in order
            for k, row in enumerate(rows):
                negative = get_spec("sims").polarity_of(row["label"]) == "negative"
                texts.append(ANSWER.format(p="positive", s="0.5" if negative else f"0.{k % 4 + 5}"))
            return texts
        recovered = right_from_call is not None and calls >= right_from_call
        for k in range(len(prompt_ids)):
            p = ("negative", "positive")[k % 2] if recovered else "positive"
            texts.append(ANSWER.format(p=p, s=f"-0.{k % 4 + 2}" if p == "negative" else "0.5"))
        return texts

    return texts_for


@pytest.mark.parametrize(("right_from_call", "rounds"), [(2, 1), (3, 2), (None, 2)])
def test_strategy_dynamic_sampling_resamples_zero_spread_groups_then_drops(
    right_from_call: int | None,
    rounds: int,
    tiny_model_dir: Path,
    grpo_clips: Path,
    tmp_path: Path,
    monkeypatch,
) -> None:
    """Scripted generation, K = 2: the negative clip's group has no spread in the first pass, so its rows alone are
    sampled again with their own prompts (no hint), until a pass gives it spread (after 1 or 2 rounds) or K rounds
    are done, when it leaves the batch. The positive clip's group is never sampled again."""
    calls = scripted_generation(monkeypatch, wrong_until(right_from_call))
    trainer = build_trainer(
        recipe(tiny_model_dir, grpo_clips, tmp_path, hard_group_strategy="dynamic_sampling", max_resamples=2)
    )
    trainer.model.train()
    out = trainer._generate_and_score_completions(
        group_inputs(rows_by_polarity(grpo_clips, "positive", "negative"))
    )
    assert len(calls) == 1 + rounds
    first_prompts = calls[0][0]
    for prompts, _ in calls[1:]:
        assert prompts == first_prompts[G:]  # the zero-spread group's own prompts: no hint
    dropped = right_from_call is None
    final = trainer._last_rewards
    polarity_right = final[G:, 1].sum().item()
    assert polarity_right == (0 if dropped else G / 2)  # the group holds the last pass's completions
    assert out["omni_keep"].tolist() == [True] * G + [not dropped] * G
    assert (out["advantages"][G:].abs().sum() > 0) == (not dropped)
    assert (out["completion_mask"][G:].sum() > 0) == (not dropped)
    assert out["advantages"][:G].abs().sum() > 0
    m = trainer._metrics["train"]
    assert m["resample_rounds"][-1] == rounds and m["groups/resampled"][-1] == 1
    assert m["groups/dropped"][-1] == int(dropped) and m["groups/hinted"][-1] == 0
    assert m["zero_std_fraction_before"][-1] == 0.5 and m["zero_std_fraction_after"][-1] == 0.5 * dropped
    # the pre-hint sampled reward is the first pass's: the resampled passes do not enter it
    rows = trainer._batch_rows
    first = reward_components(calls[0][1], [r["label"] for r in rows], [r["dataset"] for r in rows])
    sampled = weighted_totals(torch.tensor(first), torch.ones(3)).mean().item()
    assert m["reward/total_sampled"][-1] == pytest.approx(sampled, abs=1e-5)


def test_unknown_strategy_is_refused() -> None:
    from msa_rl.grpo_trainer import HintSettings

    with pytest.raises(ValueError, match="hard-group strategy 'dapo'"):
        HintSettings(strategy="dapo")
    with pytest.raises(ValueError, match="max_resamples"):
        HintSettings(strategy="dynamic_sampling", max_resamples=0)


# ------------------------------------------------------------------------------------------------ whole runs
def non_positive_clips(clips: Path, dest: Path) -> Path:
    """A copy of the clips' MMSA directory keeping only negative and neutral clips (Raw/ linked)."""
    import csv

    dest.mkdir(parents=True)
    (dest / "Raw").symlink_to(clips / "Raw")
    spec = get_spec("sims")
    with (clips / "label.csv").open() as src, (dest / "label.csv").open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            if spec.polarity_of(float(row["label"])) != "positive":
                writer.writerow(row)
    return dest


@pytest.mark.slow
def test_two_step_run_writes_every_metric(format_model: Path, grpo_clips: Path, tmp_path: Path) -> None:
    """Format-SFT'd tiny model, real sampling. It always answers 'positive', so on these clips every group is hard
    and hinted: both steps log every metric with a finite value, and the rewards are real (non-zero)."""
    data = non_positive_clips(grpo_clips, tmp_path / "clips")
    out = run_grpo(recipe(format_model, data, tmp_path / "run", max_completion_length=40, beta=0.1))
    lines = read_metrics(out / METRICS_FILE)
    assert [line["step"] for line in lines] == [1, 2]
    for line in lines:
        for key in METRIC_KEYS:
            assert line[key] is not None and math.isfinite(line[key]), (key, line)
        assert line["hard_fraction"] == 1.0
    assert max(line["reward/format"] for line in lines) > 0  # hinted continuations are scored DC answers
    assert max(line["reward/polarity"] for line in lines) > 0
    assert (out / "config.json").is_file() and (out / "grpo_config.yaml").is_file()


class StopAfterSave(TrainerCallback):
    """Interrupt training right after the checkpoint of ``step`` is written (like a kill after a save)."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_continues_from_the_saved_step(tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path) -> None:
    """Random tiny model. A run killed after checkpoint-2 (with a step-3 metrics line already written) resumes at
    step 3: one more step, no repeated or missing step in metrics.jsonl."""
    out = tmp_path / "run"
    r = recipe(tiny_model_dir, grpo_clips, out, max_steps=3, save_steps=1, resume="auto", limit=4)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(r, callbacks=[StopAfterSave(2)])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    with (out / METRICS_FILE).open("a") as fh:  # logged by the lost step 3, before its checkpoint
        fh.write(json.dumps({"step": 3, "loss": 123.0}) + "\n")

    steps_run = []

    class Count(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps_run.append(state.global_step)

    run_grpo(r, callbacks=[Count()])
    assert steps_run == [3]
    lines = read_metrics(out)
    assert [line["step"] for line in lines] == [1, 2, 3] and lines[-1]["loss"] != 123.0
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3

    # resume=never starts over: the old curve is dropped
    shutil.rmtree(out / "checkpoint-3")
    run_grpo(r.model_copy(update={"resume": "never", "max_steps": 1}))
    assert [line["step"] for line in read_metrics(out)] == [1]


# -------------------------------------------------------------------------------- a mixture-of-experts student
def test_qwen3_moe_gets_media_and_router_loss_in_every_loss_forward(
    tiny_qwen3_model_dir: Path, grpo_clips: Path, tmp_path: Path
) -> None:
    """The tiny Qwen3-Omni MoE thinker: every forward under grad carries video, audio, use_audio_in_video and asks for
    router logits; TRL adds router_aux_loss_coef (the config's 0.001) x the load-balancing loss, logged > 0. The
    same recipe with router_aux_loss_coef=0 asks for none (the switch is effective)."""
    seen: list[dict] = []

    def probe(_module, _args, kwargs):
        if torch.is_grad_enabled():
            seen.append(
                {
                    "video": kwargs.get("pixel_values_videos") is not None,
                    "audio": kwargs.get("input_features") is not None,
                    "aiv": kwargs.get("use_audio_in_video"),
                    "router": kwargs.get("output_router_logits"),
                }
            )

    runs = {}
    for coef in (None, 0.0):
        trainer = build_trainer(
            recipe(
                tiny_qwen3_model_dir,
                grpo_clips,
                tmp_path / str(coef),
                max_steps=1,
                limit=2,
                max_completion_length=8,
                router_aux_loss_coef=coef,
            )
        )
        seen.clear()
        handle = trainer.model.register_forward_pre_hook(probe, with_kwargs=True)
        trainer.train()
        handle.remove()
        logged = [h for h in trainer.state.log_history if "loss" in h]
        runs[coef] = (list(seen), logged[0])
    forwards, logs = runs[None]
    assert forwards and all(s["video"] and s["audio"] and s["aiv"] is True and s["router"] for s in forwards)
    assert logs["aux_loss"] > 0
    forwards, logs = runs[0.0]
    assert forwards and not any(s["router"] for s in forwards) and "aux_loss" not in logs
