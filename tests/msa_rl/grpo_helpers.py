"""Shared pieces of the Hint-GRPO tests: synthetic clips, a format-SFT'd tiny model, scripted generation.

The tiny random thinker never writes the DC format, so every reward would be 0. Tests that need real rewards use
``format_model``: the tiny model after a brief plain-torch SFT (AdamW, 60 steps, towers frozen) on DC answers
that ALWAYS say "positive" with a varied score and reasoning, on the GRPO prompt with its media (~13 of 16 samples
on unseen clips are then strict DC answers). Its groups are easy on positive clips and hard on the others, and a
hint gives scored continuations. Tests that need exact control over what is sampled monkeypatch generation
instead (``scripted_generation``).
Built once per session (cached here: fixtures imported into several modules would otherwise build twice).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

_CACHE: dict[str, Path] = {}
SFT_STEPS = 60
ANSWERS_PER_CLIP = 2  # SFT examples per clip (varied reasoning and score)
THINK_WORDS = [
    "the",
    "voice",
    "sounds",
    "warm",
    "and",
    "the",
    "face",
    "smiles",
    "while",
    "the",
    "words",
    "are",
    "clear",
]


@pytest.fixture(scope="session")
def grpo_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve synthetic CH-SIMS clips, all in the train split (4 positive, 4 negative, 4 neutral)."""
    if "clips" not in _CACHE:
        from msa_core.synthetic import make_dataset

        _CACHE["clips"] = make_dataset(
            tmp_path_factory.mktemp("grpo-clips"), "sims", n=12, seed=0, splits=(1.0, 0.0, 0.0)
        )
    return _CACHE["clips"]


@pytest.fixture(scope="session")
def format_model(tiny_model_dir: Path, grpo_clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny thinker after a brief format-only SFT (module docstring); a read-only checkpoint directory."""
    if "format_model" not in _CACHE:
        _CACHE["format_model"] = format_sft(tiny_model_dir, grpo_clips, tmp_path_factory.mktemp("format-sft"))
    return _CACHE["format_model"]


def format_sft(
    model_dir: Path, clips_dir: Path, out_dir: Path, steps: int = SFT_STEPS, seed: int = 0
) -> Path:
    """Plain-torch SFT of the language model on 'positive' DC answers, all examples in one padded batch.

    The vision and audio towers stay frozen, so their outputs are computed once and scattered into the input
    embeddings at every step (as the thinker's forward does); ``input_ids`` still go in for the TMRoPE positions.
    """
    import torch
    from msa_core import DCOutput, MediaSettings, build_prompt, read_mmsa
    from msa_omni import clip_media, encode_example, load_thinker
    from msa_rl.grpo_trainer import collate_media, completion_logits_only

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model, processor = load_thinker(model_dir)
    data = read_mmsa(clips_dir, "sims", split="train")
    examples = []
    for clip in data.clips[:6]:
        media = clip_media(clip.video_path)
        for _ in range(ANSWERS_PER_CLIP):
            answer = DCOutput(
                polarity="positive",
                think=" ".join(rng.sample(THINK_WORDS, 4)),
                score=round(rng.uniform(0.2, 0.9), 1),
            ).render()
            examples.append(encode_example(processor, build_prompt(clip.text, data.spec), media, answer))
    pad = processor.tokenizer.pad_token_id
    width = max(e["input_ids"].shape[1] for e in examples)

    def left_pad(key, value):  # left padding: every answer ends at the same position
        return torch.cat(
            [torch.nn.functional.pad(e[key], (width - e[key].shape[1], 0), value=value) for e in examples]
        )

    ids, mask, labels = left_pad("input_ids", pad), left_pad("attention_mask", 0), left_pad("labels", -100)
    keep = int((labels != -100).float().argmax(dim=1).min().item())
    keep = width - keep  # positions from the first answer token to the end
    media = collate_media(
        [{k: v for k, v in e.items() if k not in ("input_ids", "attention_mask", "labels")} for e in examples]
    )
    model.visual.requires_grad_(False)
    model.audio_tower.requires_grad_(False)
    with torch.no_grad():
        audio = model.get_audio_features(
            media["input_features"], media["feature_attention_mask"]
        ).last_hidden_state
        video = torch.cat(
            model.get_video_features(media["pixel_values_videos"], media["video_grid_thw"]).pooler_output
        )
    is_audio, is_video = ids == model.config.audio_token_id, ids == model.config.video_token_id
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(steps):
        embeds = model.get_input_embeddings()(ids)
        embeds = embeds.masked_scatter(is_audio.unsqueeze(-1), audio).masked_scatter(
            is_video.unsqueeze(-1), video
        )
        with completion_logits_only(model, keep):  # the LM head sees only the answer positions
            logits = model(
                input_ids=ids,
                inputs_embeds=embeds,
                attention_mask=mask,
                use_audio_in_video=True,
                video_grid_thw=media["video_grid_thw"],
                video_second_per_grid=media["video_second_per_grid"],
                feature_attention_mask=media["feature_attention_mask"],
            ).logits
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels[:, -keep:].flatten(), ignore_index=-100
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.requires_grad_(True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    MediaSettings().write(out_dir)  # trained on clip_media's defaults, as msa-rl sft records its own
    return out_dir


def recipe(model: Path, data: Path, out: Path, **overrides: Any):
    """A small CPU recipe: 2 prompts x G=4 per step, short completions, no checkpoints unless asked."""
    from msa_rl.grpo_config import GRPORecipe

    base = dict(
        model=str(model),
        data=str(data),
        dataset="sims",
        output_dir=str(out),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=32,
        max_steps=2,
        save_steps=1000,
        dtype="float32",
        resume="never",
        seed=0,
    )
    base.update(overrides)
    return GRPORecipe(**base)


def scripted_generation(monkeypatch, texts_for):
    """Replace TRL's HF sampling (the base ``_generate_single_turn`` our override calls) by scripted answers.

    ``texts_for(trainer, prompt_ids)`` returns one completion text per prompt (the first pass comes in the order
    of ``trainer._batch_rows``; a hinted pass has the hint ids at the end of each prompt). Each text is tokenized
    and closed with the end-of-turn token, as sampling would. Returns the list of calls (prompt_ids, texts).
    """
    from trl import GRPOTrainer

    calls: list[tuple[list[list[int]], list[str]]] = []

    def fake(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        texts = texts_for(self, prompt_ids)
        calls.append(([list(p) for p in prompt_ids], list(texts)))
        eos = self._tokenizer.eos_token_id
        return [self._tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts], None

    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", fake)
    return calls


@pytest.fixture(scope="session")
def format_model_vllm(
    tiny_vllm_model_dir: Path, grpo_clips: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``format_model`` at hidden 128 (head_dim 32, which vLLM's CPU attention needs): the vLLM GRPO test's policy."""
    if "format_model_vllm" not in _CACHE:
        _CACHE["format_model_vllm"] = format_sft(
            tiny_vllm_model_dir, grpo_clips, tmp_path_factory.mktemp("format-sft-128")
        )
    return _CACHE["format_model_vllm"]
