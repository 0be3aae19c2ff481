"""Qwen2.5-Omni (the paper's student, Qwen/Qwen2.5-Omni-7B): its registry entry and the tiny model's family part.

- audio-in-video: the processor's switch moved between transformers versions (``load_audio_from_video`` + indices in
  newer ones, ``videos_kwargs.use_audio_in_video`` in 5.6); every wrong form yields 0 audio tokens without an
  error, so the installed form is read from the processor's source;
- vLLM registers it only as the full ``Qwen2_5OmniModel`` (thinker weights under ``thinker.``);
- media tokens: Qwen2-VL 14-px patches merged 2x2, Whisper mel frames halved twice (25 audio tokens a second),
  audio cut at the feature extractor's 30 s.
"""

from __future__ import annotations

import functools
from typing import Any

from msa_core.media_settings import MediaSettings
from msa_core.prompt_length import MediaTokenRules

from msa_omni.families.base import ModelFamily, TinyParts, video_kwargs


@functools.cache
def processor_takes_audio_indices() -> bool:
    """Whether the installed Omni processor has the newer ``load_audio_from_video`` + indices switch.

    Detected from the processor source rather than a version number: older releases accept
    ``load_audio_from_video`` but ignore it (0 audio tokens), so only the indices argument marks the new form.
    """
    import importlib
    import inspect

    module = importlib.import_module(f"transformers.models.qwen2_5_omni.{PROCESSOR_MODULE}")
    return "audio_from_video_indices" in inspect.getsource(module)


def audio_in_video_kwargs(settings: MediaSettings, fps: float, n_videos: int = 1) -> dict[str, Any]:
    """Processor kwargs that put each video's audio track into its video turn (TMRoPE interleaving).

    Everything video-related goes inside ``videos_kwargs``: transformers 5.6 drops a top-level
    ``use_audio_in_video`` when ``videos_kwargs`` is also given.
    """
    videos_kwargs = video_kwargs(settings, fps)
    if processor_takes_audio_indices():
        videos_kwargs["cap_pixels_per_frame"] = True
        return {
            "load_audio_from_video": True,
            "audio_from_video_indices": list(range(n_videos)),
            "videos_kwargs": videos_kwargs,
        }
    videos_kwargs["use_audio_in_video"] = True
    return {"videos_kwargs": videos_kwargs}


# One video grid step spans 2 frames.
TEMPORAL_PATCH = 2


def vllm_mm_processor_kwargs(
    fps: float, settings: MediaSettings, audio_in_video: bool = True
) -> dict[str, Any]:
    """Per-request ``mm_processor_kwargs`` that make vLLM expand a clip exactly as ``msa_omni.encode_prompt``.

    vLLM calls the HF processor without our per-call video settings, so the processor's class-level size
    (at least 128*28*28 pixels) upscaled 56x56 frames: 516 prompt tokens where the HF path builds 236. vLLM 0.32's
    Qwen2.5-Omni processor takes ``size`` (merged over the saved video processor's), ``fps`` (goes to the HF
    processor: second_per_grid of the M-RoPE positions) and ``second_per_grid_ts`` (vLLM's own split of the
    video tokens into audio-interleaved 2 s chunks; it assumes 1.0 when absent, right only at 2 fps). ``fps`` is
    the clip's effective rate (``ClipMedia.fps``).
    """
    return {
        "use_audio_in_video": audio_in_video,
        "fps": float(fps),
        "size": dict(video_kwargs(settings, fps)["size"]),  # the HF path's own bounds
        "second_per_grid_ts": [TEMPORAL_PATCH / float(fps)],
    }


PROCESSOR_MODULE = "processing_qwen2_5_omni"

# The 14 added tokens of the real Qwen2.5-Omni tokenizer; here their ids follow the BPE vocabulary.
TINY_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
)
# Qwen2_5OmniProcessor.__init__ reads tokenizer.image_token, .audio_bos_token, ...: declared on the tokenizer.
TINY_MODEL_SPECIFIC_TOKENS = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
# The Qwen2.5-Omni chat template, verbatim (default system prompt, media placeholders, str or list content).
TINY_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Frames are kept at 56x56: 4x4 patches of 14 px, merged 2x2 -> 4 LLM tokens per temporal grid.
TINY_PIXELS = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}


def build_processor(tokenizer):
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    image_processor = Qwen2VLImageProcessor(
        size=TINY_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    video_processor = Qwen2VLVideoProcessor(
        size=TINY_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2, do_sample_frames=False
    )
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        return_attention_mask=True,
    )
    return Qwen2_5OmniProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=TINY_CHAT_TEMPLATE,
    )


def build_config(tokenizer, hidden: int, layers: int):
    from transformers import Qwen2_5OmniThinkerConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TINY_SPECIAL_TOKENS}
    vocab = (len(tokenizer) + 63) // 64 * 64  # padded like the real model (vocab_size > len(tokenizer))
    head_dim = hidden // 4
    if head_dim % 16:
        raise ValueError(
            f"hidden must be a multiple of 64 (4 heads, head_dim a multiple of 16), got {hidden}"
        )
    unit = head_dim // 16
    mrope_section = [2 * unit, 3 * unit, 3 * unit]
    text_config = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        use_cache=True,
        tie_word_embeddings=False,
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=layers,
        attention_dropout=0.0,
        # mrope_section must sum to head_dim // 2, split 2:3:3 like the real model ([16, 24, 24] for head_dim 128)
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope_section},
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        bos_token_id=None,
    )
    vision_config = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        out_hidden_size=hidden,
        fullatt_block_indexes=[1],
        hidden_act="silu",
    )
    audio_config = dict(
        num_mel_bins=128,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        d_model=32,
        max_source_positions=1500,
        n_window=100,
        output_dim=hidden,
    )
    return Qwen2_5OmniThinkerConfig(
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        # Not declared fields of the thinker config, but get_rope_index reads them: pass them explicitly.
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        user_token_id=tokenizer.convert_tokens_to_ids(tokenizer.tokenize("user"))[0],
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        tie_word_embeddings=False,
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )


# The real Qwen2.5-Omni-7B thinker's shapes for bench/gpu_smoke.py (Qwen/Qwen2.5-Omni-7B config.json, "thinker_config"); token ids are not here:
# they come from the tokenizer in use. 8.93e9 parameters: text 7.62e9, vision 0.68e9, audio 0.64e9.
REFERENCE_SHAPES = {
    "text_config": dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,  # head_dim 3584 / 28 = 128
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=28,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    ),
    "vision_config": dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        out_hidden_size=3584,
        fullatt_block_indexes=[7, 15, 23, 31],
        hidden_act="silu",
    ),
    "audio_config": dict(
        num_mel_bins=128,
        encoder_layers=32,
        encoder_attention_heads=20,
        encoder_ffn_dim=5120,
        d_model=1280,
        max_source_positions=1500,
        n_window=100,
        output_dim=3584,
        activation_function="gelu",
    ),
    "thinker": dict(position_id_per_seconds=25, seconds_per_chunk=2, tie_word_embeddings=False),
}
# Fields of the thinker config that name tokens (bench/gpu_smoke.py copies them from the tiny config).
REFERENCE_TOKEN_ID_FIELDS = (
    "audio_token_index",
    "image_token_index",
    "video_token_index",
    "audio_start_token_id",
    "audio_end_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "user_token_id",
    "pad_token_id",
    "eos_token_id",
)


FAMILY = ModelFamily(
    name="qwen2.5-omni",
    display="Qwen2.5-Omni",
    thinker_model_type="qwen2_5_omni_thinker",
    full_model_type="qwen2_5_omni",
    thinker_class="Qwen2_5OmniThinkerForConditionalGeneration",
    thinker_config_class="Qwen2_5OmniThinkerConfig",
    full_class="Qwen2_5OmniForConditionalGeneration",
    full_config_class="Qwen2_5OmniConfig",
    processor_class="Qwen2_5OmniProcessor",
    processor_module=PROCESSOR_MODULE,
    lf_template="qwen2_omni",
    vllm_architecture="Qwen2_5OmniModel",
    reference_model="Qwen/Qwen2.5-Omni-7B",
    hub_prefixes=("Qwen/Qwen2.5-Omni-",),
    audio_in_video_kwargs=audio_in_video_kwargs,
    vllm_mm_processor_kwargs=vllm_mm_processor_kwargs,
    token_rules=MediaTokenRules(),  # the Qwen2-VL / Whisper defaults
    newer_audio_switch=processor_takes_audio_indices,
    reference_shapes=REFERENCE_SHAPES,
    reference_token_id_fields=REFERENCE_TOKEN_ID_FIELDS,
    tiny=TinyParts(
        special_tokens=TINY_SPECIAL_TOKENS,
        model_specific_tokens=TINY_MODEL_SPECIFIC_TOKENS,
        chat_template=TINY_CHAT_TEMPLATE,
        build_processor=build_processor,
        build_config=build_config,
        about="tiny random Qwen2.5-Omni thinker",
    ),
)
