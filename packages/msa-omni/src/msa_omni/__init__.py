"""msa-omni: Qwen2.5-Omni thinker input/output shared by training (msa-rl) and prediction (msa-eval).

Prompt rendering, clip decoding and encoding with audio-in-video, batching, media-token suppression, HF and vLLM
generation, and the thinker -> vLLM checkpoint conversion. torch and transformers are imported inside functions,
so importing this package is cheap.
"""

from msa_omni.generate import (
    BACKENDS,
    Backend,
    GenerationSettings,
    Generator,
    HFGenerator,
    VLLMGenerator,
    left_pad_collate,
    make_generator,
    vllm_mm_processor_kwargs,
    vllm_request,
)
from msa_omni.io import (
    AUDIO_SAMPLE_RATE,
    THINKER_ARCHITECTURE,
    ClipMedia,
    audio_in_video_kwargs,
    check_thinker_dir,
    clip_media,
    count_tokens,
    drop_none_keys,
    encode_example,
    encode_prompt,
    load_thinker,
    media_token_ids,
    model_forward_kwargs,
    render_prompt,
    video_kwargs,
)
from msa_omni.vllm_checkpoint import vllm_model_dir, write_engine_dir

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "BACKENDS",
    "THINKER_ARCHITECTURE",
    "Backend",
    "ClipMedia",
    "GenerationSettings",
    "Generator",
    "HFGenerator",
    "VLLMGenerator",
    "audio_in_video_kwargs",
    "check_thinker_dir",
    "clip_media",
    "count_tokens",
    "drop_none_keys",
    "encode_example",
    "encode_prompt",
    "left_pad_collate",
    "load_thinker",
    "make_generator",
    "media_token_ids",
    "model_forward_kwargs",
    "render_prompt",
    "video_kwargs",
    "vllm_mm_processor_kwargs",
    "vllm_model_dir",
    "vllm_request",
    "write_engine_dir",
]
