"""LLaMA-Factory 0.9.5's Qwen3-Omni audio-in-video rendering, made the processor's own (applied inside the SFT env).

Measured on the tiny thinker (tests/msa_rl/test_sft.py): for one 2 s clip LLaMA-Factory writes the video turn as
``<video x8><audio x27>`` where ``Qwen3OmniMoeProcessor`` (and vLLM, and the model's M-RoPE) expect the tokens
interleaved by time, ``<video x4><audio x13><video x4><audio x14>``. Its ``Qwen2OmniPlugin`` serves both Omni
families and always uses the Qwen2.5 layout: chunks of 2 s at ``getattr(processor, "position_id_per_seconds", 25)``
(this processor keeps 13 in its call defaults, not as an attribute). The model then puts audio positions on video
features and back, silently. It also cuts audio at 30 s (``padding="max_length"``) where this processor keeps it all.

``apply()`` replaces both for Qwen3-Omni processors only: the placeholder text comes from the processor's own
``replace_multimodal_special_tokens``, the audio features from the processor's own feature-extractor call. Qwen2.5
processors take the original code. ``msa-rl sft`` applies it in every LLaMA-Factory process (``msa_rl.lf_site``).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

PROCESSOR = "Qwen3OmniMoeProcessor"


def _ours(processor: Any) -> bool:
    return type(processor).__name__ == PROCESSOR


def apply() -> None:
    from llamafactory.data import mm_plugin
    from llamafactory.extras.constants import AUDIO_PLACEHOLDER, VIDEO_PLACEHOLDER
    from transformers.models.qwen3_omni_moe import processing_qwen3_omni_moe as processing

    plugin = mm_plugin.Qwen2OmniPlugin
    if getattr(plugin, "_msa_thinker_patched", False):
        return
    original_inputs, original_messages = plugin._get_mm_inputs, plugin.process_messages
    call_defaults = processing.Qwen3OmniMoeProcessorKwargs._defaults

    def _get_mm_inputs(self, images, videos, audios, processor):
        if not (_ours(processor) and len(audios)):
            return original_inputs(self, images, videos, audios, processor)
        mm_inputs = original_inputs(self, images, videos, [], processor)
        rate = getattr(processor, "audio_sampling_rate", 16000)
        audios = self._regularize_audios(audios, sampling_rate=rate)["audios"]
        kwargs = {k: v for k, v in call_defaults["audio_kwargs"].items() if k != "n_window"}
        features = processor.feature_extractor(
            audios, **{**kwargs, "sampling_rate": rate}, return_tensors="pt"
        )
        mm_inputs["input_features"] = features["input_features"]
        mm_inputs["feature_attention_mask"] = features["attention_mask"]
        return mm_inputs

    def process_messages(self, messages, images, videos, audios, processor):
        in_video = getattr(processor, "use_audio_in_video", False) and len(audios) and len(videos)
        if not (_ours(processor) and in_video and self.expand_mm_tokens and not images):
            return original_messages(self, messages, images, videos, audios, processor)
        self._validate_input(processor, images, videos, audios)
        self._validate_messages(messages, images, videos, audios)
        if len(videos) != len(audios):
            raise ValueError(f"{len(videos)} videos but {len(audios)} audios with use_audio_in_video")
        mm_inputs = self._get_mm_inputs(images, videos, audios, processor)
        # (the default window: transformers 5.6's takes no n_window, 5.19's defaults to the processor's 50)
        lengths = processing._get_feat_extract_output_lengths(mm_inputs["feature_attention_mask"].sum(-1))
        audio_lengths = iter(int(n) for n in lengths)
        grids = iter(mm_inputs["video_grid_thw"])
        second_per_grid = iter(float(s) for s in mm_inputs["video_second_per_grid"])
        video_turn = processor.vision_bos_token + processor.video_token + processor.vision_eos_token
        defaults = call_defaults["videos_kwargs"]
        messages = deepcopy(messages)
        for message in messages:
            content = message["content"]
            while (
                VIDEO_PLACEHOLDER in content
            ):  # each <video> with the <audio> after it: one audio-in-video turn
                content = content.replace(VIDEO_PLACEHOLDER, video_turn, 1).replace(AUDIO_PLACEHOLDER, "", 1)
            [message["content"]] = processor.replace_multimodal_special_tokens(
                [content],
                audio_lengths,
                iter([]),
                grids,
                video_second_per_grid=second_per_grid,
                use_audio_in_video=True,
                position_id_per_seconds=defaults["position_id_per_seconds"],
                seconds_per_chunk=defaults["seconds_per_chunk"],
            )
        return messages

    plugin._get_mm_inputs = _get_mm_inputs
    plugin.process_messages = process_messages
    plugin._msa_thinker_patched = True
