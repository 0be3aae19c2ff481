"""msa-omni's vLLM general plugin (entry point ``vllm.general_plugins``): each family's corrections of vLLM.

vLLM calls ``register`` in every process it starts (the offline engine, its engine-core and worker processes,
``vllm serve``), so the corrections reach the in-process GRPO engine, ``msa-eval predict --backend vllm`` and
``cot-distill serve`` alike. The family modules (``msa_omni.families.VLLM_FIXES``) check vLLM's behaviour first and
replace only what disagrees with transformers (docs/vllm-mrope.md); this module names no family.
"""

from __future__ import annotations

from collections.abc import Iterable


def register() -> None:
    """vLLM's entry point; safe to call more than once per process."""
    from msa_omni.families import VLLM_FIXES

    for fixes in VLLM_FIXES.values():
        fixes.register()


def require_hf_positions(processor, audio_in_video: bool) -> None:
    """For the project's own engines: refuse audio in video where the model's family needs a correction of vLLM's
    positions that could not be made (a ConfigError saying what to use instead)."""
    from msa_omni.families import VLLM_FIXES, family_of_processor

    fixes = VLLM_FIXES.get(family_of_processor(processor).name)
    if fixes is not None:
        fixes.require_hf_positions(audio_in_video)


def check_clip_rates(clips: Iterable[tuple[str, int, float]], settings) -> None:
    """Refuse clips (id, frames, frames per second) that vLLM would lay out otherwise than the trainer (below 1 fps
    where a family's layout could not be corrected): a DataError naming them and the media setting that avoids it."""
    from msa_omni.families import VLLM_FIXES

    clips = list(clips)
    for fixes in VLLM_FIXES.values():
        fixes.check_clip_rates(clips, settings)
