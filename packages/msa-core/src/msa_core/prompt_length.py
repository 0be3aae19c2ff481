"""How many tokens a clip's prompt takes, from container metadata alone (``media.probe``: demux, no decode).

The arithmetic is a family's ``MediaTokenRules`` (msa_omni's family registry holds one per student family; the
unit tests check each equals its real processor's count). The defaults are the Qwen2-VL / Whisper rules:
- video: ``media.model_frame_count`` frames (padded to an even count: the temporal patch is 2 frames), each
  resized by the processor's ``smart_resize`` into the ``min_pixels``..``max_pixels`` bounds in steps of 28 px
  (14-px patches merged 2x2): ``frames / 2 x (height / 28) x (width / 28)`` tokens;
- audio: the 16 kHz track as mel frames (hop 160), halved twice by the audio encoder: 25 tokens a second, with
  the processor's cap (its feature extractor keeps the first ``n_samples``, read from the model's processor:
  30 s for the tiny model). The sample count comes from probe's packets: exact for 16 kHz audio; a track resampled to
  16 kHz is estimated at most one sample over (the resampler's rounding), so rarely one audio token over, never
  under;
- text: the rendered prompt's tokens (its one video placeholder becomes the media; audio-in-video adds the audio
  bos/eos pair), counted by the caller with the model's tokenizer (``msa_omni.prompt_text_tokens``).
Training uses it to refuse (or drop) clips that ``cutoff_len`` / ``max_prompt_length`` would cut mid-media.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from msa_core.errors import DataError
from msa_core.media import MediaInfo, model_frame_count
from msa_core.media_settings import MediaSettings

PATCH, MERGE, TEMPORAL_PATCH = 14, 2, 2
AUDIO_RATE, MEL_HOP = 16000, 160
# Only when a processor does not say (msa_omni.lengths reads its feature extractor's n_samples).
DEFAULT_MAX_AUDIO_SAMPLES = 300 * AUDIO_RATE
OnLongClip = Literal["error", "drop"]


def halved_twice_audio_tokens(mel_frames: int) -> int:
    """Audio tokens of ``mel_frames`` mel frames when the encoder halves them twice (25 a second)."""
    if mel_frames <= 0:
        return 0
    return ((mel_frames - 1) // 2 + 1 - 2) // 2 + 1


@dataclass(frozen=True)
class MediaTokenRules:
    """A model family's media-token arithmetic: vision patches and the audio encoder's downsampling."""

    patch: int = PATCH
    merge: int = MERGE
    temporal_patch: int = TEMPORAL_PATCH
    audio_tokens: Callable[[int], int] = halved_twice_audio_tokens
    """Tokens of a number of mel frames (hop 160 at 16 kHz)."""
    audio_capped: bool = True
    """The processor keeps only its feature extractor's ``n_samples`` of audio (else all of it)."""
    mel_frames_floor: bool = False
    """Mel frames are ``samples // 160`` (audio not padded to the extractor's length) instead of rounding up."""

    @property
    def factor(self) -> int:
        return self.patch * self.merge


DEFAULT_RULES = MediaTokenRules()


def resized_frame(
    width: int, height: int, settings: MediaSettings, rules: MediaTokenRules = DEFAULT_RULES
) -> tuple[int, int]:
    """(width, height) after the processor's resize (transformers' Qwen2-VL ``smart_resize``)."""
    factor = rules.factor
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > settings.max_pixels:
        beta = math.sqrt(height * width / settings.max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < settings.min_pixels:
        beta = math.sqrt(settings.min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return w, h


def video_tokens(
    n_frames: int, width: int, height: int, settings: MediaSettings, rules: MediaTokenRules = DEFAULT_RULES
) -> int:
    """Video tokens of ``n_frames`` frames of ``width`` x ``height`` pixels."""
    w, h = resized_frame(width, height, settings, rules)
    factor = rules.factor
    return math.ceil(n_frames / rules.temporal_patch) * (h // factor) * (w // factor)


def audio_tokens(
    n_samples: int,
    max_samples: int | None = DEFAULT_MAX_AUDIO_SAMPLES,
    rules: MediaTokenRules = DEFAULT_RULES,
) -> int:
    """Audio tokens of ``n_samples`` samples at 16 kHz (about 25 a second by default); ``max_samples`` is the
    processor's cap (None: none)."""
    kept = n_samples if max_samples is None or not rules.audio_capped else min(n_samples, max_samples)
    mel = kept // MEL_HOP if rules.mel_frames_floor else math.ceil(kept / MEL_HOP)
    return rules.audio_tokens(mel)


@dataclass(frozen=True)
class ClipTokens:
    """One clip's estimated token counts; ``total`` is what the sequence length limit sees."""

    clip_id: str
    video: int
    audio: int
    text: int
    answer: int = 0
    frames: int = 0
    seconds: float = 0.0  # the clip's duration: frames / seconds is the rate the model sees

    @property
    def prompt(self) -> int:
        return self.video + self.audio + self.text

    @property
    def total(self) -> int:
        return self.prompt + self.answer


def estimate_clip_tokens(
    clip_id: str,
    info: MediaInfo,
    settings: MediaSettings,
    *,
    text_tokens: int,
    answer_tokens: int = 0,
    max_audio_samples: int | None = DEFAULT_MAX_AUDIO_SAMPLES,
    rules: MediaTokenRules = DEFAULT_RULES,
) -> ClipTokens:
    """A clip's tokens under ``settings``; ``text_tokens`` counts the rendered prompt with one video placeholder."""
    frames = model_frame_count(info.duration, settings.fps, settings.max_frames, info.n_frames)
    video = video_tokens(frames, info.width, info.height, settings, rules)
    audio, extra = 0, -1  # the video placeholder is replaced by the media
    if settings.audio_in_video and info.has_audio and info.audio_sample_rate:
        samples = math.ceil(info.audio_samples * AUDIO_RATE / info.audio_sample_rate)  # resampled to 16 kHz
        audio, extra = audio_tokens(samples, max_audio_samples, rules), 1  # + audio bos and eos
    return ClipTokens(
        clip_id,
        video=video,
        audio=audio,
        text=text_tokens + extra,
        answer=answer_tokens,
        frames=frames,
        seconds=float(info.duration),
    )


def distribution(counts: Sequence[ClipTokens]) -> str:
    """``n clips: min / median / p95 / max`` of the totals, one line for the log."""
    totals = sorted(c.total for c in counts)
    if not totals:
        return "0 clips"

    def q(p: float) -> int:
        return totals[min(len(totals) - 1, math.ceil(p * len(totals)) - 1)] if p > 0 else totals[0]

    return (
        f"{len(totals)} clips, tokens per example: min {totals[0]}, median {q(0.5)}, p95 {q(0.95)}, "
        f"max {totals[-1]}"
    )


def over_limit(
    counts: Sequence[ClipTokens], limit: int | None, on_long_clip: OnLongClip, *, field: str, shown: int = 5
) -> list[ClipTokens]:
    """The clips whose total exceeds ``limit`` (none when None). With ``error`` and any such clip, a DataError
    naming the longest ones; with ``drop`` they are returned for the caller to leave out."""
    if limit is None:
        return []
    long = sorted((c for c in counts if c.total > limit), key=lambda c: -c.total)
    if long and (on_long_clip == "error" or len(long) == len(counts)):
        names = ", ".join(f"{c.clip_id} ({c.total})" for c in long[:shown])
        more = f" and {len(long) - shown} more" if len(long) > shown else ""
        fixes = [f"raise {field}", "lower media.max_frames or media.video_size"]
        if on_long_clip == "error":
            fixes.append("set on_long_clip=drop to leave them out")
        raise DataError(
            f"{len(long)} of {len(counts)} clips need more than {field}={limit} tokens and would be cut "
            f"mid-media: {names}{more}. To train: {'; '.join(fixes)}"
        )
    return long
