"""Training preflight: every clip's prompt length in tokens before SFT or GRPO starts, without decoding media.

``msa_core.prompt_length`` does the media arithmetic from ``media.probe`` with the processor's family's rules
(``ModelFamily.token_rules``); this module adds the text tokens with the model's own tokenizer and chat template
(the same rendering ``encode_prompt`` uses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from msa_core import Prompt
from msa_core.media_settings import MediaSettings
from msa_core.prompt_length import (
    DEFAULT_MAX_AUDIO_SAMPLES,
    ClipTokens,
    OnLongClip,
    distribution,
    estimate_clip_tokens,
    over_limit,
)

from msa_omni.families import family_of_processor
from msa_omni.io import render_prompt

ANSWER_END = "<|im_end|>\n"  # how the chat template closes an assistant turn (part of SFT's targets)


@dataclass(frozen=True)
class ClipPrompt:
    """What the preflight needs of one training example; ``answer`` only where the answer is trained on (SFT)."""

    clip_id: str
    video: str | Path
    prompt: Prompt
    answer: str | None = None


def prompt_text_tokens(processor, prompt: Prompt) -> int:
    """Tokens of the rendered prompt with its single video placeholder (before the processor expands it)."""
    text = render_prompt(processor, prompt, with_video=True)
    return len(processor.tokenizer(text)["input_ids"])


def answer_tokens(processor, answer: str) -> int:
    """Tokens of an assistant answer with its end of turn, as SFT trains on them."""
    return len(processor.tokenizer(answer + ANSWER_END, add_special_tokens=False)["input_ids"])


def max_audio_samples(processor) -> int:
    """The audio samples the processor keeps (its feature extractor's ``n_samples``; 30 s for the tiny model)."""
    return int(getattr(processor.feature_extractor, "n_samples", DEFAULT_MAX_AUDIO_SAMPLES))


def estimate_tokens(processor, clips: Iterable[ClipPrompt], settings: MediaSettings) -> list[ClipTokens]:
    """Each clip's token counts under ``settings`` (``media.probe`` per clip: a MediaError names a bad file)."""
    from msa_core import media

    cap = max_audio_samples(processor)
    rules = family_of_processor(processor).token_rules
    out = []
    for clip in clips:
        out.append(
            estimate_clip_tokens(
                clip.clip_id,
                media.probe(clip.video),
                settings,
                text_tokens=prompt_text_tokens(processor, clip.prompt),
                answer_tokens=answer_tokens(processor, clip.answer) if clip.answer is not None else 0,
                max_audio_samples=cap,
                rules=rules,
            )
        )
    return out


def load_processor(model: str | Path):
    """The processor of a thinker checkpoint (tokenizer, chat template, feature extractor), without weights."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(model))


def preflight(
    processor,
    clips: list[ClipPrompt],
    settings: MediaSettings,
    *,
    limit: int | None,
    field: str,
    on_long_clip: OnLongClip = "error",
    echo: Callable[[str], None] = print,
    vllm: bool = False,
) -> list[ClipTokens]:
    """Estimate every clip, print the distribution, and refuse (DataError naming the longest clips) or, with
    ``on_long_clip="drop"``, return the clips over ``limit`` for the caller to leave out (counted and named).
    With ``vllm`` (rollouts by vLLM), also refuse clips vLLM would lay out otherwise than the trainer
    (``msa_omni.vllm_plugin.check_clip_rates``: below 1 fps, where its plugin could not correct vLLM)."""
    counts = estimate_tokens(processor, clips, settings)
    if vllm:
        from msa_omni.vllm_plugin import check_clip_rates

        check_clip_rates(
            ((c.clip_id, c.frames, c.frames / c.seconds) for c in counts if c.seconds > 0), settings
        )
    limit_text = f" ({field}: {limit})" if limit is not None else f" ({field}: no limit)"
    echo(f"preflight: {distribution(counts)}{limit_text}")
    dropped = over_limit(counts, limit, on_long_clip, field=field)
    if dropped:
        names = ", ".join(f"{c.clip_id} ({c.total})" for c in dropped)
        echo(f"preflight: dropped {len(dropped)} of {len(counts)} clips over {field}={limit} tokens: {names}")
    return dropped
