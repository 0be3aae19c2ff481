"""Qwen2.5-Omni in vLLM: audio-in-video clips get transformers' M-RoPE positions and token layout.

vLLM 0.32's Qwen2.5-Omni thinker disagrees with transformers (the trainer, ``msa-eval predict --backend hf``) on
a clip whose audio is interleaved into its video (docs/vllm-mrope.md has the smallest reproduction):

- positions: ``get_mrope_input_positions`` does not count ``<|audio_bos|>``/``<|audio_eos|>`` in the clip's
  span, so every video/audio token takes its neighbour's position and all later text sits 2 too high;
- layout: below 1 frame per second its chunk splitter keeps empty 2 s chunks (``V4 A100 V4`` where the HF
  processor builds ``V4 A50 V1 A50 V3``), so even the prompt ids differ.

``register`` (run by ``msa_omni.vllm_plugin``, msa-omni's ``vllm.general_plugins`` entry point, which vLLM calls in
every process it starts: the offline engine, its engine-core and worker processes, ``vllm serve``) first asks
vLLM's own functions for a tiny synthetic clip and compares with transformers' rule. Only a part that disagrees is replaced, by a call of
transformers' own code (``get_rope_index``, the processor's ``get_chunked_index``) on the request: a vLLM that is
right is left alone. ``MSA_THINKER_VLLM_FIX=0`` switches the plugin off (to reproduce the upstream bug).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

from msa_core import ConfigError, DataError

DISABLE_ENV = "MSA_THINKER_VLLM_FIX"
VLLM_MODULE = "vllm.model_executor.models.qwen2_5_omni_thinker"
logger = logging.getLogger("vllm.msa_omni")  # under vLLM's logger: shown with its own lines

# What register() found per part: "vllm" (vLLM already agrees), "corrected" (replaced; the check passes now),
# "off" (MSA_THINKER_VLLM_FIX=0), "no-vllm", or "unverified: <why>" (vLLM's internals changed: left alone).
STATE: dict[str, str] = {}
PARTS = ("positions", "interleaving")

# The synthetic clips of the behaviour checks (token ids from the config; any values would do).
CHECK_GRID_2FPS = (4, 2, 2)  # 8 frames at 2 fps: two 2 s chunks, one merged token per frame pair
CHECK_AUDIO_MEL_4S = 400  # 100 audio tokens
CHECK_GRID_08FPS = (8, 4, 4)  # 16 frames of a 20 s clip (0.8 fps: 2.5 s per frame pair), 4 tokens each
CHECK_AUDIO_MEL_20S = 2000  # 500 audio tokens


# ------------------------------------------------------------------------------------- transformers' rule
def _merge_size(config) -> int:
    return int(config.vision_config.spatial_merge_size)


def hf_audio_tokens(audio_feature_length: int) -> int:
    """Audio tokens of a clip's mel frames (the audio tower halves twice; transformers' formula)."""
    return ((int(audio_feature_length) - 1) // 2 + 1 - 2) // 2 + 1


def hf_interleaved_span(config, audio_len: int, video_grid_thw, second_per_grid: float) -> list[int]:
    """``<|audio_bos|>`` + video/audio chunks + ``<|audio_eos|>`` as transformers' Qwen2.5-Omni processor lays
    out a clip (``replace_multimodal_special_tokens``: its ``get_chunked_index`` on both streams)."""
    import numpy as np
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import Qwen2_5OmniProcessor

    grid_t, grid_h, grid_w = (int(x) for x in video_grid_thw)
    per_frame = grid_h * grid_w // _merge_size(config) ** 2
    per_chunk = int(config.position_id_per_seconds * config.seconds_per_chunk)
    # one time value per video TOKEN, as the processor does: where a frame pair's time jumps past two chunk
    # boundaries, its tokens are split between two chunks (the "V1 A50 V3" of a 20 s clip at 0.8 fps)
    video_t = (
        np.repeat(np.arange(grid_t), per_frame) * float(second_per_grid) * config.position_id_per_seconds
    )
    chunked = Qwen2_5OmniProcessor.get_chunked_index  # uses no processor state
    video_chunks = chunked(None, video_t, per_chunk)
    audio_chunks = chunked(None, np.arange(int(audio_len)), per_chunk)
    span = [config.audio_start_token_id]
    for j in range(max(len(video_chunks), len(audio_chunks))):
        if j < len(video_chunks):
            span += [config.video_token_id] * (video_chunks[j][1] - video_chunks[j][0])
        if j < len(audio_chunks):
            span += [config.audio_token_id] * (audio_chunks[j][1] - audio_chunks[j][0])
    return [*span, config.audio_end_token_id]


class _RopeIndex:
    """transformers' ``get_rope_index`` bound to a config instead of a loaded model (it reads nothing else)."""

    def __init__(self, config):
        from transformers.models.qwen2_5_omni import modeling_qwen2_5_omni as hf

        owner = hf.Qwen2_5OmniPreTrainedModelForConditionalGeneration
        self.config = config
        self.spatial_merge_size = _merge_size(config)
        self._fns = {
            n: getattr(owner, n)
            for n in ("get_rope_index", "get_llm_pos_ids_for_vision", "get_chunked_index")
        }

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fns = self.__dict__.get("_fns", {})
        if name not in fns:
            raise AttributeError(name)
        return fns[name].__get__(self)


def _feature(f, key: str):
    return f.data[key].data


def hf_positions(config, input_tokens: list[int], mm_features) -> tuple[Any, int]:
    """(positions [3, len], rope delta) of one request by transformers' ``get_rope_index``, from vLLM's features."""
    import torch

    feats = sorted(mm_features, key=lambda f: f.mm_position.offset)
    videos = [f for f in feats if f.modality == "video"]
    audios = [f for f in feats if f.modality == "audio"]
    images = [f for f in feats if f.modality == "image"]
    ids = torch.tensor([list(input_tokens)])

    def stack(fs, key):
        return torch.stack([_feature(f, key).reshape(3) for f in fs]) if fs else None

    seconds = [
        float(_feature(f, "second_per_grid_ts")) if f.data.get("second_per_grid_ts") else 1.0 for f in videos
    ]
    audio_lens = [int(_feature(f, "audio_feature_lengths")) for f in audios]
    pos, delta = _RopeIndex(config).get_rope_index(
        ids,
        stack(images, "image_grid_thw"),
        stack(videos, "video_grid_thw"),
        torch.ones_like(ids),
        True,
        torch.tensor(audio_lens) if audio_lens else None,
        torch.tensor(seconds) if seconds else None,
    )
    return pos[:, 0, :].to(torch.int64), int(delta.reshape(-1)[0])


def _audio_in_video(mm_features) -> bool:
    return any(
        f.modality == "video" and f.data is not None and f.data.get("use_audio_in_video")
        and bool(_feature(f, "use_audio_in_video").reshape(-1)[0])
        for f in mm_features
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- the checks
class _Elem:
    """Stands for vLLM's MultiModalFieldElem in the synthetic features (its functions read ``.data`` only)."""

    def __init__(self, data):
        self.data = data


def check_config():
    """A Qwen2.5-Omni thinker config as the real checkpoint has it (default ids + the vision bos/eos)."""
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniThinkerConfig

    return Qwen2_5OmniThinkerConfig(vision_start_token_id=151652, vision_end_token_id=151653)


def synthetic_request(config, grid_thw, audio_mel: int, second_per_grid: float) -> tuple[list[int], list]:
    """Token ids of ``text <|vision_bos|> <clip in HF's layout> <|vision_eos|> text`` and vLLM-style features."""
    import torch
    from vllm.multimodal.inputs import MultiModalFeatureSpec, PlaceholderRange

    span = hf_interleaved_span(config, hf_audio_tokens(audio_mel), grid_thw, second_per_grid)
    text = [config.audio_token_id - 100] * 3  # any ordinary token
    tokens = [*text, config.vision_start_token_id, *span, config.vision_end_token_id, *text]
    where = PlaceholderRange(offset=len(text) + 1, length=len(span))
    video = {
        "video_grid_thw": _Elem(torch.tensor(grid_thw)),
        "second_per_grid_ts": _Elem(torch.tensor(second_per_grid)),
        "use_audio_in_video": _Elem(torch.tensor(True)),
    }
    audio = {"audio_feature_lengths": _Elem(torch.tensor(audio_mel))}
    features = [
        MultiModalFeatureSpec(data=video, modality="video", identifier="v", mm_position=where),
        MultiModalFeatureSpec(data=audio, modality="audio", identifier="a", mm_position=where),
    ]
    return tokens, features


def _unbuilt(cls, config):
    """An instance of vLLM's thinker class without weights or __init__: enough for its position functions."""
    model = cls.__new__(cls)
    object.__setattr__(model, "config", config)
    return model


def positions_agree(model_cls) -> bool:
    """vLLM's ``get_mrope_input_positions`` (as installed on ``model_cls``) == transformers' on a 4 s clip."""
    config = check_config()
    tokens, features = synthetic_request(config, CHECK_GRID_2FPS, CHECK_AUDIO_MEL_4S, 1.0)
    got, got_delta = model_cls.get_mrope_input_positions(_unbuilt(model_cls, config), tokens, features)
    want, want_delta = hf_positions(config, tokens, features)
    return tuple(got.shape) == tuple(want.shape) and bool((got == want).all()) and got_delta == want_delta


def interleaving_agrees(processor_cls) -> bool:
    """vLLM's clip layout (``omni_get_updates_use_audio_in_video``) == the HF processor's on a 20 s, 0.8 fps clip."""
    config = check_config()
    audio_len = hf_audio_tokens(CHECK_AUDIO_MEL_20S)
    got = processor_cls.omni_get_updates_use_audio_in_video(config, audio_len, list(CHECK_GRID_08FPS), 2.5)
    want = hf_interleaved_span(config, audio_len, CHECK_GRID_08FPS, 2.5)
    return list(got) == want


# ------------------------------------------------------------------------------------ the corrections
def _positions_fix(original):
    def get_mrope_input_positions(self, input_tokens, mm_features):
        if _audio_in_video(mm_features):
            return hf_positions(self.config, input_tokens, mm_features)
        return original(self, input_tokens, mm_features)  # text, video alone: vLLM agrees

    get_mrope_input_positions.msa_original = original
    return get_mrope_input_positions


def _interleaving_fix(original, owner):
    def omni_get_updates_use_audio_in_video(
        cls, thinker_config, audio_len, video_grid_thw, video_second_per_grid_t
    ):
        if cls is not owner:  # a subclass (another model) keeps vLLM's own layout
            return original.__func__(cls, thinker_config, audio_len, video_grid_thw, video_second_per_grid_t)
        grid = [int(x) for x in video_grid_thw]
        return hf_interleaved_span(thinker_config, int(audio_len), grid, float(video_second_per_grid_t))

    omni_get_updates_use_audio_in_video.msa_original = original
    return classmethod(omni_get_updates_use_audio_in_video)


def _settle(part: str, holder, name: str, agrees: Callable[[Any], bool], fix) -> str:
    """Check ``holder.name``; replace it when it disagrees; check again. Returns the part's state."""
    current = holder.__dict__[name]
    if getattr(getattr(current, "__func__", current), "msa_original", None) is not None:
        return STATE.get(part, "corrected")  # this process already corrected it
    try:
        if agrees(holder):
            return "vllm"
    except Exception as exc:  # vLLM's internals are not the ones this check knows
        return f"unverified: vLLM's own {name} could not be checked ({type(exc).__name__}: {exc})"
    setattr(holder, name, fix(current))
    try:
        if agrees(holder):
            return "corrected"
        reason = "the corrected function still disagrees with transformers"
    except Exception as exc:
        reason = f"the corrected function failed ({type(exc).__name__}: {exc})"
    setattr(holder, name, current)
    return f"unverified: {reason}"


def register() -> None:
    """vLLM's general-plugin entry point (``msa_omni.vllm_plugin:register``); safe to call more than once."""
    if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        STATE.update(dict.fromkeys(PARTS, "off"))
        logger.warning(
            "msa-omni: %s=0, vLLM's Qwen2.5-Omni audio-in-video positions are NOT corrected", DISABLE_ENV
        )
        return
    try:
        import importlib

        q = importlib.import_module(VLLM_MODULE)
    except ImportError:
        STATE.update(dict.fromkeys(PARTS, "no-vllm"))
        return
    STATE["positions"] = _settle(
        "positions",
        q.Qwen2_5OmniThinkerForConditionalGeneration,
        "get_mrope_input_positions",
        positions_agree,
        _positions_fix,
    )
    owner = q.Qwen2_5OmniThinkerMultiModalProcessor
    STATE["interleaving"] = _settle(
        "interleaving",
        owner,
        "omni_get_updates_use_audio_in_video",
        interleaving_agrees,
        lambda original: _interleaving_fix(original, owner),
    )
    log = logger.warning if any(s.startswith("unverified") for s in STATE.values()) else logger.info
    log("msa-omni: Qwen2.5-Omni audio-in-video in vLLM: %s", ", ".join(f"{k} {v}" for k, v in STATE.items()))


def agrees_with_hf(part: str) -> bool:
    """Whether vLLM now gives transformers' ``part`` (positions / interleaving) in this process."""
    if part not in STATE:
        register()
    return STATE[part] in ("vllm", "corrected")


def require_hf_positions(audio_in_video: bool) -> None:
    """For the project's own engines: refuse audio-in-video when vLLM's positions are not transformers'."""
    if not audio_in_video or agrees_with_hf("positions"):
        return
    if STATE["positions"] == "off":
        logger.warning("msa-omni: audio-in-video positions differ from the trainer's (%s=0)", DISABLE_ENV)
        return
    raise ConfigError(
        f"vLLM's Qwen2.5-Omni audio-in-video positions could not be made transformers' ({STATE['positions']}); "
        "see docs/vllm-mrope.md. Use the hf backend (GRPO: use_vllm=false) or media audio_in_video=false"
    )


def check_clip_rates(clips: Iterable[tuple[str, int, float]], settings, *, shown: int = 5) -> None:
    """Refuse clips with audio in video below 1 frame per second, ``(clip id, frames, frames per second)``, while
    vLLM's layout of such clips is not transformers' (the plugin could not correct it): one DataError naming them
    and the ``max_frames`` that avoids it. Nothing to refuse where vLLM agrees (state ``corrected`` or ``vllm``)."""
    slow = [(clip_id, n, fps) for clip_id, n, fps in clips if 0 < fps < 1.0]
    if not settings.audio_in_video or not slow or agrees_with_hf("interleaving"):
        return
    state = STATE["interleaving"]
    if state in ("off", "no-vllm"):  # switched off on purpose / no vLLM here (its import error comes first)
        return
    need = max(2 * math.ceil(n / fps / 2) for _, n, fps in slow)
    names = ", ".join(f"{c} ({n} frames over {n / fps:.1f} s: {fps:.2f} fps)" for c, n, fps in slow[:shown])
    more = f" and {len(slow) - shown} more" if len(slow) > shown else ""
    raise DataError(
        f"{len(slow)} clip(s) with audio in video below 1 frame per second: {names}{more}. vLLM interleaves "
        f"such a clip's audio and frames otherwise than the trainer here ({state}; docs/vllm-mrope.md). Set media "
        f"max_frames to at least {need} (msa-eval predict --max-frames {need}), or use the hf backend (GRPO: "
        "use_vllm=false)"
    )
