"""Qwen3-Omni (the teacher's family; as a student, the thinker of Qwen/Qwen3-Omni-30B-A3B-Instruct): its registry
entry and the tiny model's family part.

- audio-in-video: ``videos_kwargs.use_audio_in_video`` (one form in transformers 5.6 and 5.19); the processor
  interleaves video and audio tokens one by one in time order (13 positions a second), not in 2 s chunks;
- the text model is a mixture of experts (128 experts, 8 active, 3B of 30B parameters active per token): training
  adds the router's load-balancing loss (``router_aux_loss_coef``, read from the config);
- vLLM registers it as the full ``Qwen3OmniMoeForConditionalGeneration`` (thinker weights under ``thinker.``);
- media tokens: 16-px patches merged 2x2 (32 px a token), the audio encoder's chunked downsampling (13 tokens per
  100 mel frames, ~12.5 a second), and no audio cap (the processor pads to the longest, never truncates, so a
  clip has ``samples // 160`` mel frames).
"""

from __future__ import annotations

import functools
from typing import Any

from msa_core.media_settings import MediaSettings
from msa_core.prompt_length import MediaTokenRules

from msa_omni.families.base import ModelFamily, TinyParts, video_kwargs

# The audio encoder's window: mel frames are cut into chunks of 2 * N_WINDOW (the processor's own default, which
# must match the model's audio_config.n_window).
N_WINDOW = 50
POSITION_ID_PER_SECONDS = 13  # the processor's default; the model's config must agree (M-RoPE times)
TEMPORAL_PATCH = 2


@functools.cache
def video_processor_caps_pixels() -> bool:
    """Whether the installed video processor takes ``cap_pixels_per_frame`` (newer transformers; it warns unless
    told, and the cap only bites on videos far longer than the recipes' frame budgets)."""
    from transformers import Qwen2VLVideoProcessor

    return "cap_pixels_per_frame" in getattr(Qwen2VLVideoProcessor.valid_kwargs, "__annotations__", {})


def audio_in_video_kwargs(settings: MediaSettings, fps: float, n_videos: int = 1) -> dict[str, Any]:
    """Processor kwargs that put each video's audio track into its video turn (``n_videos`` is implied)."""
    videos_kwargs = video_kwargs(settings, fps)
    videos_kwargs["use_audio_in_video"] = True
    if video_processor_caps_pixels():
        videos_kwargs["cap_pixels_per_frame"] = True
    return {"videos_kwargs": videos_kwargs}


def vllm_mm_processor_kwargs(
    fps: float, settings: MediaSettings, audio_in_video: bool = True
) -> dict[str, Any]:
    """Per-request ``mm_processor_kwargs`` that make vLLM expand a clip as ``msa_omni.encode_prompt`` does.

    vLLM 0.32's Qwen3-Omni processor takes ``size`` and ``fps`` (passed to the HF processor) and
    ``second_per_grid_ts`` (its own audio/video interleaving; it assumes 2.0 when absent).
    """
    return {
        "use_audio_in_video": audio_in_video,
        "fps": float(fps),
        "size": dict(video_kwargs(settings, fps)["size"]),
        "second_per_grid_ts": [TEMPORAL_PATCH / float(fps)],
    }


def chunked_audio_tokens(mel_frames: int) -> int:
    """Audio tokens of ``mel_frames`` (transformers' ``_get_feat_extract_output_lengths`` for this family): 13 per
    full chunk of 100 frames, the remainder halved three times."""
    if mel_frames <= 0:
        return 0
    chunk = 2 * N_WINDOW
    rest = mel_frames % chunk
    feat = (rest - 1) // 2 + 1
    return ((feat - 1) // 2 + 1 - 1) // 2 + 1 + (mel_frames // chunk) * 13


TINY_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Qwen3OmniMoeProcessor.__init__ reads tokenizer.image_token, .audio_bos_token, ...: declared on the tokenizer.
TINY_MODEL_SPECIFIC_TOKENS = {
    "image_token": "<|image_pad|>",
    "audio_token": "<|audio_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
}
# The Qwen3-Omni Instruct chat template's media and message rendering (no default system prompt; tools and the
# Thinking variant's reasoning turns left out: the pipeline uses neither).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The saved video size equals msa_core's default MediaSettings bounds: LLaMA-Factory calls the processor without
# per-call sizes, so only then does SFT see the frames at the size every other stage asks for. (16-px patches
# merged 2x2: at these bounds a 64x64 frame becomes 32x32, one token per temporal grid; --video-size 64x64 gives 4.)
TINY_PIXELS = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
# vLLM's CPU attention needs head_dim >= 32; Qwen3's head_dim is its own setting, so one tiny model serves both.
TINY_HEAD_DIM = 32
TINY_EXPERTS, TINY_TOP_K = 4, 2


def build_processor(tokenizer):
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3OmniMoeProcessor,
        WhisperFeatureExtractor,
    )

    image_processor = Qwen2VLImageProcessor(
        size=TINY_PIXELS, patch_size=16, temporal_patch_size=2, merge_size=2
    )
    video_processor = Qwen2VLVideoProcessor(
        size=TINY_PIXELS, patch_size=16, temporal_patch_size=2, merge_size=2, do_sample_frames=False
    )
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        return_attention_mask=True,
    )
    return Qwen3OmniMoeProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=TINY_CHAT_TEMPLATE,
    )


def build_config(tokenizer, hidden: int, layers: int):
    """A tiny thinker config with the real one's structure: MoE text model (4 experts, top-2, every layer sparse),
    interleaved M-RoPE, a deepstack vision tower, the chunked audio encoder."""
    from transformers import Qwen3OmniMoeThinkerConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TINY_SPECIAL_TOKENS}
    vocab = (len(tokenizer) + 63) // 64 * 64
    text_config = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=TINY_HEAD_DIM,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        use_cache=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        # 16 rotary frequencies split T:H:W like the real [24, 20, 20], interleaved as in the real model
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [6, 5, 5],
            "interleaved": True,
            "mrope_interleaved": True,
        },
        num_experts=TINY_EXPERTS,
        num_experts_per_tok=TINY_TOP_K,
        moe_intermediate_size=hidden,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        router_aux_loss_coef=0.001,
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
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=hidden,
        num_position_embeddings=16,  # a 4x4 grid of learned positions, interpolated to each frame's grid
        # vLLM reads the grid side as image_size // patch_size (= sqrt(num_position_embeddings)) and adds the
        # learned positions only when told to (transformers always does): both as in the real config.
        image_size=64,
        apply_vit_abs_pos_embed=True,
        deepstack_visual_indexes=[0],
        hidden_act="gelu_pytorch_tanh",
    )
    audio_config = dict(
        num_mel_bins=128,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        d_model=32,
        max_source_positions=1500,
        n_window=N_WINDOW,
        n_window_infer=800,
        conv_chunksize=500,
        downsample_hidden_size=32,
        output_dim=hidden,
    )
    return Qwen3OmniMoeThinkerConfig(
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_id=ids["<|audio_pad|>"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        audio_start_token_id=ids["<|audio_start|>"],
        # Not declared fields of the thinker config, but get_rope_index and vLLM read them: pass them explicitly.
        audio_end_token_id=ids["<|audio_end|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        user_token_id=tokenizer.convert_tokens_to_ids(tokenizer.tokenize("user"))[0],
        position_id_per_seconds=POSITION_ID_PER_SECONDS,
        seconds_per_chunk=2,
        tie_word_embeddings=False,
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )


# The Qwen3-Omni-30B-A3B-Instruct thinker's shapes for bench/gpu_smoke.py (its config.json "thinker_config", as
# published; token ids are not here: they come from the tokenizer in use). A 48-layer MoE text model (128 experts,
# 8 active, ~3B of its ~30B parameters per token), a 27-block vision tower with deepstack, a 32-layer audio encoder.
REFERENCE_SHAPES = {
    "text_config": dict(
        vocab_size=152064,
        hidden_size=2048,
        intermediate_size=768,
        num_hidden_layers=48,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=128,
        hidden_act="silu",
        max_position_embeddings=65536,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [24, 20, 20],
            "interleaved": True,
            "mrope_interleaved": True,
        },
        num_experts=128,
        num_experts_per_tok=8,
        moe_intermediate_size=768,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        router_aux_loss_coef=0.001,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    ),
    "vision_config": dict(
        depth=27,
        hidden_size=1152,
        intermediate_size=4304,
        num_heads=16,
        in_channels=3,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=2048,
        num_position_embeddings=2304,
        deepstack_visual_indexes=[8, 16, 24],
        hidden_act="gelu_pytorch_tanh",
    ),
    "audio_config": dict(
        num_mel_bins=128,
        encoder_layers=32,
        encoder_attention_heads=20,
        encoder_ffn_dim=5120,
        d_model=1280,
        max_source_positions=1500,
        n_window=N_WINDOW,
        n_window_infer=800,
        conv_chunksize=500,
        downsample_hidden_size=480,
        output_dim=2048,
    ),
    "thinker": dict(
        position_id_per_seconds=POSITION_ID_PER_SECONDS, seconds_per_chunk=2, tie_word_embeddings=False
    ),
}
REFERENCE_TOKEN_ID_FIELDS = (
    "audio_token_id",
    "image_token_id",
    "video_token_id",
    "audio_start_token_id",
    "audio_end_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "user_token_id",
    "pad_token_id",
    "eos_token_id",
)


FAMILY = ModelFamily(
    name="qwen3-omni",
    display="Qwen3-Omni",
    thinker_model_type="qwen3_omni_moe_thinker",
    full_model_type="qwen3_omni_moe",
    thinker_class="Qwen3OmniMoeThinkerForConditionalGeneration",
    thinker_config_class="Qwen3OmniMoeThinkerConfig",
    full_class="Qwen3OmniMoeForConditionalGeneration",
    full_config_class="Qwen3OmniMoeConfig",
    processor_class="Qwen3OmniMoeProcessor",
    processor_module="processing_qwen3_omni_moe",
    lf_template="qwen3_omni",
    vllm_architecture="Qwen3OmniMoeForConditionalGeneration",
    reference_model="Qwen/Qwen3-Omni-30B-A3B-Instruct",
    hub_prefixes=("Qwen/Qwen3-Omni-",),
    audio_in_video_kwargs=audio_in_video_kwargs,
    vllm_mm_processor_kwargs=vllm_mm_processor_kwargs,
    token_rules=MediaTokenRules(
        patch=16,
        merge=2,
        temporal_patch=2,
        audio_tokens=chunked_audio_tokens,
        audio_capped=False,
        mel_frames_floor=True,
    ),
    tiny=TinyParts(
        special_tokens=TINY_SPECIAL_TOKENS,
        model_specific_tokens=TINY_MODEL_SPECIFIC_TOKENS,
        chat_template=TINY_CHAT_TEMPLATE,
        build_processor=build_processor,
        build_config=build_config,
        about=f"tiny random Qwen3-Omni MoE thinker ({TINY_EXPERTS} experts, top-{TINY_TOP_K})",
    ),
    moe=True,
    lf_patch="msa_omni.families.qwen3_omni_llamafactory",
    reference_shapes=REFERENCE_SHAPES,
    reference_token_id_fields=REFERENCE_TOKEN_ID_FIELDS,
)
