"""What a model family is: the one place that says how a student family differs from another.

A ``ModelFamily`` holds everything family-specific the pipeline needs (``msa_omni.families`` lists the entries):
the transformers classes by name, the processor's audio-in-video switch, the LLaMA-Factory template, vLLM's
architecture name (and so how a thinker checkpoint is wrapped for it), the preflight's token-count rules, and the
family's part of the tiny-model factory. Class names are strings, resolved on use, so importing stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from msa_core.media_settings import MediaSettings
from msa_core.prompt_length import MediaTokenRules


@dataclass(frozen=True)
class TinyParts:
    """The family's part of the tiny offline model (``msa_rl.tiny`` trains the shared BPE vocabulary).

    ``build_processor(tokenizer)`` and ``build_config(tokenizer, hidden, layers)`` receive a tokenizer that already
    holds ``special_tokens`` and declares ``model_specific_tokens``; ``chat_template`` is set on it.
    """

    special_tokens: tuple[str, ...]
    model_specific_tokens: dict[str, str]
    chat_template: str
    build_processor: Callable[[Any], Any]
    build_config: Callable[[Any, int, int], Any]
    about: str
    """One line for the CLI and the demo: what the tiny model is."""


@dataclass(frozen=True)
class ModelFamily:
    """One student family. Everything outside ``msa_omni.families`` asks an entry instead of naming a family."""

    name: str
    """The user-facing key (``--family``, ``--student``)."""
    display: str
    thinker_model_type: str
    full_model_type: str
    """A full (thinker + talker) checkpoint's model_type; its thinker is loaded without the talker."""
    thinker_class: str
    thinker_config_class: str
    full_class: str
    full_config_class: str
    processor_class: str
    processor_module: str
    """transformers' processing module (``transformers.models.<x>.processing_<x>``), read by the switch probe."""
    lf_template: str
    """LLaMA-Factory's chat template for this family (its tokens equal ``msa_omni.render_prompt``'s)."""
    vllm_architecture: str
    """vLLM's registered architecture; a thinker-only checkpoint is wrapped as this full model (``vllm_config``)."""
    reference_model: str
    """The Hub checkpoint the paper-scale recipes start from."""
    hub_prefixes: tuple[str, ...]
    """Hub id prefixes recognised without downloading a config."""
    audio_in_video_kwargs: Callable[[MediaSettings, float, int], dict[str, Any]]
    """Processor kwargs that put each of ``n_videos`` videos' audio into its video turn."""
    vllm_mm_processor_kwargs: Callable[[float, MediaSettings, bool], dict[str, Any]]
    """Per-request ``mm_processor_kwargs`` making vLLM expand a clip exactly as the processor does."""
    token_rules: MediaTokenRules
    tiny: TinyParts
    moe: bool = False
    """A mixture-of-experts text model: training adds the router's load-balancing loss (``router_aux_loss``)."""
    full_config_extras: dict[str, Any] = field(default_factory=dict)
    """Extra keys of the full config vLLM reads besides the thinker's."""
    lf_patch: str | None = None
    """A module whose ``apply()`` fixes LLaMA-Factory for this family; ``msa-rl sft`` runs it in LLaMA-Factory's
    processes (``msa_rl.lf_site``)."""
    newer_audio_switch: Callable[[], bool] = lambda: False
    reference_shapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The reference thinker's shapes (text/vision/audio configs, thinker keys; no token ids) for
    bench/gpu_smoke.py, which builds it with random weights (or on the meta device)."""
    reference_token_id_fields: tuple[str, ...] = ()
    """Thinker-config fields naming tokens, taken from the tiny config for the same tokenizer."""
    """Whether the installed processor takes the newer audio-in-video form (the switch test reads it)."""

    @property
    def model_types(self) -> tuple[str, str]:
        return (self.thinker_model_type, self.full_model_type)

    @property
    def markers(self) -> tuple[str, ...]:
        """Strings that name this family; no module outside ``msa_omni.families`` may spell one."""
        return (
            self.thinker_model_type,
            self.full_model_type,
            self.thinker_class,
            self.thinker_config_class,
            self.full_class,
            self.full_config_class,
            self.processor_class,
            self.processor_module,
            self.lf_template,
            self.vllm_architecture,
        )

    def transformers_class(self, attr: str):
        """The transformers class named by ``attr`` (``thinker_class``, ``full_class``, ...)."""
        import transformers

        return getattr(transformers, getattr(self, attr))

    def vllm_config(self, thinker_config: dict) -> dict:
        """The full-model config.json vLLM loads for a thinker config, with the speech talker switched off."""
        thinker = dict(thinker_config)
        thinker.pop("architectures", None)
        return {
            "architectures": [self.vllm_architecture],
            "model_type": self.full_model_type,
            "enable_audio_output": False,
            "thinker_config": thinker,
            **self.full_config_extras,
            "torch_dtype": thinker_config.get("torch_dtype", thinker_config.get("dtype", "bfloat16")),
        }


def video_kwargs(settings: MediaSettings, fps: float) -> dict[str, Any]:
    """The video processor's per-call size bounds (pixels) and the frames' effective ``fps``.

    Per call because the processor's class-level defaults win over the saved video processor config.
    """
    return {
        "size": {"shortest_edge": settings.min_pixels, "longest_edge": settings.max_pixels},
        "fps": float(fps),
    }
