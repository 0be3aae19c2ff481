"""Omni thinker I/O shared by SFT checks, GRPO and prediction: load, decode a clip, encode a prompt.

Family-neutral: what differs between student families (classes, the audio-in-video switch) comes from the
registry (``msa_omni.families``), chosen by the checkpoint's config or the processor's class.
Three silent failure modes this module exists to prevent (docs/architecture.md, "Omni input"):
- the processor's audio-in-video switch differs between families and transformers versions, and every wrong form
  yields 0 audio tokens without an error: ``audio_in_video_kwargs`` asks the family for the installed form, and
  ``encode_prompt`` refuses a batch whose audio went missing;
- the processor's class-level video size upscales small frames (56x56 -> 336x336) unless size and fps are passed
  per call;
- a clip thinned by ``max_frames`` has fewer frames per second than asked for: the processor is told the effective
  rate of the frames it gets (as Qwen's own video loader does), or video and audio positions drift apart.
Runs under both environments (transformers 5.6 for SFT, the default env's newer one); heavy imports stay inside
functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msa_core import ConfigError, MediaError, Prompt, chat_messages
from msa_core.media_settings import MediaSettings

from msa_omni.families import (
    DEFAULT_FAMILY,
    ModelFamily,
    family_of_model,
    family_of_processor,
    not_supported_text,
    supported_model_types,
)
from msa_omni.families import video_kwargs as video_kwargs

if TYPE_CHECKING:
    import numpy as np
    from transformers import BatchFeature

# The default family's thinker class name (the paper's student).
THINKER_ARCHITECTURE = DEFAULT_FAMILY.thinker_class
# Models whose config.json has a thinker we can load (a full Omni checkpoint carries it under thinker_config).
OMNI_MODEL_TYPES = supported_model_types()
AUDIO_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class ClipMedia:
    """A decoded clip: frames (T, H, W, 3) uint8 with an even T, mono 16 kHz float32 audio, and the effective
    rate of the frames (lower than the asked-for fps when ``max_frames`` thinned the clip)."""

    frames: np.ndarray
    audio: np.ndarray | None
    fps: float


def transformers_version() -> tuple[int, int]:
    import transformers

    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int(minor)


# Whether the default family's installed processor takes the newer audio-in-video form (the switch test reads it).
_processor_takes_audio_indices = DEFAULT_FAMILY.newer_audio_switch


def audio_in_video_kwargs(
    settings: MediaSettings, fps: float, n_videos: int = 1, *, family: ModelFamily = DEFAULT_FAMILY
) -> dict[str, Any]:
    """Processor kwargs that put each video's audio track into its video turn (TMRoPE interleaving), in the form
    ``family``'s installed processor takes."""
    return family.audio_in_video_kwargs(settings, fps, n_videos)


def load_thinker(path: str | Path, dtype: str = "float32"):
    """(model, processor) of an Omni thinker checkpoint of a supported family; ConfigError if ``path`` is not one."""
    import torch
    from transformers import AutoProcessor

    config = check_thinker_dir(path)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ConfigError(f"dtype {dtype!r} is not a torch dtype (use float32, bfloat16 or float16)")
    family = family_of_model(path)
    processor = AutoProcessor.from_pretrained(str(path))
    if config.get("model_type") == family.full_model_type or (
        not config and _is_full_omni_hub_model(str(path), family)
    ):
        return _thinker_of_full_omni(path, torch_dtype, family), processor
    model = family.transformers_class("thinker_class").from_pretrained(str(path), dtype=torch_dtype)
    return model, processor


def _is_full_omni_hub_model(name: str, family: ModelFamily) -> bool:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(name).model_type == family.full_model_type


def _thinker_of_full_omni(path: str | Path, torch_dtype, family: ModelFamily):
    """The thinker of a full Omni checkpoint (e.g. the base model, zero-shot), without building the talker."""
    config = family.transformers_class("full_config_class").from_pretrained(str(path))
    config.enable_audio_output = False  # the speech talker and token2wav are never built nor loaded
    full = family.transformers_class("full_class").from_pretrained(
        str(path), config=config, dtype=torch_dtype
    )
    return full.thinker


def check_thinker_dir(path: str | Path) -> dict[str, Any]:
    """The config of a local Omni thinker checkpoint, or ConfigError saying what is wrong with ``path``.

    Hub ids (``Qwen/Qwen2.5-Omni-7B``) are accepted when they are in the local Hugging Face cache or the Hub can
    be reached; offline (``HF_HUB_OFFLINE``) or without network they fail at once, naming the id, instead of after
    transformers' retries.
    A local checkpoint must be a thinker (or a full Omni model) of a family in ``msa_omni.families``.
    """
    import json

    p = Path(path)
    if not p.exists():
        if _looks_like_hub_id(str(path)):
            check_hub_model(str(path))
            return {}
        raise ConfigError(f"model path {path} does not exist")
    config_file = p / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"model path {path} has no config.json: not a Hugging Face checkpoint")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_file}: unreadable config: {exc}") from exc
    model_type = config.get("model_type")
    if model_type not in OMNI_MODEL_TYPES:
        raise ConfigError(f"{config_file}: model_type {model_type!r} is not {not_supported_text()}")
    if not any((p / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise ConfigError(f"model path {path} has no tokenizer files: save the processor next to the weights")
    return config


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value."""
    import os

    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def check_hub_model(model_id: str, *, timeout_s: float = 3.0) -> None:
    """A Hub model id is usable here: in the local cache, or the Hub answers. Else one ConfigError naming it."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return
    fix = f"download it where there is network (`hf download {model_id}`) or give a local checkpoint folder"
    if hub_offline():
        raise ConfigError(
            f"model {model_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: {fix}"
        )
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"model {model_id!r} is not in the local Hugging Face cache and {host} cannot be reached "
            f"({exc.strerror or exc}): {fix}"
        ) from None


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def clip_media(video_path: str | Path, settings: MediaSettings | None = None) -> ClipMedia:
    """Frames at ``settings.fps`` (at most ``max_frames``, padded to an even count) and the 16 kHz audio of a clip.

    Frames and rate follow ``msa_core.media.sample_model_frames`` (LLaMA-Factory's rule, so SFT saw the same
    frames); an odd count repeats the last frame as LLaMA-Factory does (the temporal patch is 2 frames).
    """
    import numpy as np
    from msa_core import media

    settings = settings or MediaSettings()
    frames, fps = media.sample_model_frames(video_path, fps=settings.fps, max_frames=settings.max_frames)
    if len(frames) == 0:
        raise MediaError(f"{video_path}: no video frames decoded")
    if len(frames) % 2:
        frames = np.concatenate([frames, frames[-1:]], axis=0)
    audio = media.load_audio(video_path, sr=AUDIO_SAMPLE_RATE) if settings.audio_in_video else None
    return ClipMedia(frames=frames, audio=audio, fps=fps)


def drop_none_keys(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Remove None-valued keys from messages and content parts.

    ``datasets`` fills missing part keys with None, and the Omni template tests ``'video' in content``: a
    text part with ``video: None`` would render as a video placeholder.
    """
    clean = []
    for message in messages:
        msg = {k: v for k, v in message.items() if v is not None}
        if isinstance(msg.get("content"), list):
            msg["content"] = [{k: v for k, v in part.items() if v is not None} for part in msg["content"]]
        clean.append(msg)
    return clean


def render_prompt(processor, prompt: Prompt, *, with_video: bool, assistant_prefix: str = "") -> str:
    """The chat-template text: system + user (+ video placeholder), an open assistant turn, then the prefix."""
    # With audio-in-video only the video part goes in; the processor interleaves its audio into the video turn.
    messages = drop_none_keys(chat_messages(prompt, video="video" if with_video else None))
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text + assistant_prefix


def encode_prompt(
    processor,
    prompt: Prompt,
    media: ClipMedia | None,
    *,
    assistant_prefix: str = "",
    settings: MediaSettings | None = None,
) -> BatchFeature:
    """Processor outputs of one prompt (batch of 1) with its clip's frames and audio-in-video.

    ``assistant_prefix`` is appended after the generation prompt (the Hint-GRPO hint, or an SFT target).
    Raises MediaError if the clip has audio but no audio tokens came out (a wrong audio-in-video switch).
    """
    text = render_prompt(processor, prompt, with_video=media is not None, assistant_prefix=assistant_prefix)
    if media is None:
        return processor(text=[text], return_tensors="pt")
    settings = settings or MediaSettings()
    kwargs: dict[str, Any] = {"videos": [media.frames]}
    if media.audio is not None:
        kwargs["audio"] = [media.audio]
        kwargs.update(audio_in_video_kwargs(settings, fps=media.fps, family=family_of_processor(processor)))
    else:
        kwargs["videos_kwargs"] = video_kwargs(settings, media.fps)
    batch = processor(text=[text], return_tensors="pt", **kwargs)
    if media.audio is not None and count_tokens(processor, batch, "audio") == 0:
        raise MediaError(
            "the processor produced no audio tokens for a clip with audio (audio-in-video switch)"
        )
    return batch


def encode_example(
    processor,
    prompt: Prompt,
    media: ClipMedia | None,
    answer: str,
    *,
    settings: MediaSettings | None = None,
) -> BatchFeature:
    """A supervised example: prompt + ``answer`` + end of turn, with ``labels`` set on the answer tokens only."""
    prompt_ids = encode_prompt(processor, prompt, media, settings=settings)["input_ids"]
    end = "<|im_end|>"  # how the chat template closes an assistant turn
    batch = encode_prompt(processor, prompt, media, assistant_prefix=answer + end + "\n", settings=settings)
    n_prompt = prompt_ids.shape[1]
    if not bool((batch["input_ids"][:, :n_prompt] == prompt_ids).all()):
        raise ValueError("the answer changed the tokenization of the prompt; cannot place the labels")
    # Like LLaMA-Factory's qwen templates, the targets are the answer, <|im_end|> and the newline after it.
    labels = batch["input_ids"].clone()
    labels[:, :n_prompt] = -100
    batch["labels"] = labels
    return batch


def count_tokens(processor, batch, kind: str) -> int:
    """How many ``kind`` ('audio', 'video', 'image') placeholder tokens the batch's input_ids hold."""
    token = {"audio": processor.audio_token, "video": processor.video_token, "image": processor.image_token}[
        kind
    ]
    token_id = processor.tokenizer.convert_tokens_to_ids(token)
    return int((batch["input_ids"] == token_id).sum())


def model_forward_kwargs(batch, *, use_audio_in_video: bool | None = None) -> dict[str, Any]:
    """Keyword arguments for ``model(...)`` and ``model.generate(...)`` from a processor batch.

    The forward pass and generate both need ``use_audio_in_video=True`` when the audio is in the video, else the
    TMRoPE position ids differ silently. Inferred from the batch (video + audio features) unless given.
    """
    kwargs = dict(batch)
    if use_audio_in_video is None:
        use_audio_in_video = "pixel_values_videos" in kwargs and "input_features" in kwargs
    if use_audio_in_video:
        kwargs["use_audio_in_video"] = True
    return kwargs


# Placeholder and media bos/eos tokens: a sampled one has no features behind it and breaks the next forward
# (feature count, get_rope_index), so generation suppresses them all. Older configs spell some as *_index.
_MEDIA_TOKEN_ATTRS = (
    "image_token_id",
    "video_token_id",
    "audio_token_id",
    "audio_start_token_id",
    "audio_end_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "image_token_index",
    "video_token_index",
    "audio_token_index",
)


def media_token_ids(config) -> list[int]:
    """Ids of the thinker's media placeholder and boundary tokens, to suppress while sampling text."""
    return sorted({int(v) for a in _MEDIA_TOKEN_ATTRS if (v := getattr(config, a, None)) is not None})
