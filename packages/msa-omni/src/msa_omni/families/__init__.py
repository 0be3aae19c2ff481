"""The student-family registry: one ``ModelFamily`` entry per supported Omni family.

Everything family-specific (transformers classes, the processor's audio-in-video switch, the LLaMA-Factory
template, vLLM's architecture and the thinker -> vLLM wrapping, the preflight's token-count rules, the tiny-model
parts) lives in an entry here. Every other module asks the registry; none names a family
(tests/msa_omni/test_families.py fails if one does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msa_core import ConfigError

from msa_omni.families import qwen2_5_omni, qwen2_5_omni_vllm, qwen3_omni
from msa_omni.families.base import ModelFamily, TinyParts, video_kwargs

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (qwen2_5_omni.FAMILY, qwen3_omni.FAMILY)}
# Family name -> its corrections of vLLM (register, require_hf_positions, check_clip_rates), run in every vLLM
# process by msa_omni.vllm_plugin (docs/vllm-mrope.md). A family vLLM already gets right has none.
VLLM_FIXES = {qwen2_5_omni.FAMILY.name: qwen2_5_omni_vllm}
# The paper's student: what a tool uses when neither a model nor a flag says otherwise.
DEFAULT_FAMILY = qwen2_5_omni.FAMILY
FAMILY_NAMES = tuple(FAMILIES)


def get_family(name: str) -> ModelFamily:
    """The entry called ``name``; ConfigError listing the supported names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; supported: {', '.join(FAMILY_NAMES)}") from None


def family_of_model_type(model_type: str | None) -> ModelFamily | None:
    """The family whose thinker or full checkpoint has ``model_type`` (None: no supported family)."""
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)


def supported_model_types() -> tuple[str, ...]:
    return tuple(t for f in FAMILIES.values() for t in f.model_types)


def family_of_config(config: Any) -> ModelFamily:
    """The family of a config (a dict or a transformers config); ConfigError if none supports it."""
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    family = family_of_model_type(model_type)
    if family is None:
        raise ConfigError(f"model_type {model_type!r} is not {not_supported_text()}")
    return family


def not_supported_text() -> str:
    """'a Qwen2.5-Omni thinker or a Qwen3-Omni thinker (expected one of ...)' for error messages."""
    names = " or a ".join(f"{f.display} thinker" for f in FAMILIES.values())
    return f"a {names} (expected model_type one of {supported_model_types()})"


def family_of_processor(processor: Any) -> ModelFamily:
    """The family whose processor class ``processor`` is (or derives from); ConfigError otherwise."""
    names = {cls.__name__ for cls in type(processor).__mro__}
    family = next((f for f in FAMILIES.values() if f.processor_class in names), None)
    if family is None:
        raise ConfigError(f"processor {type(processor).__name__} is not {not_supported_text()}")
    return family


def family_of_hub_id(name: str) -> ModelFamily | None:
    return next((f for f in FAMILIES.values() if name.startswith(f.hub_prefixes)), None)


def family_of_model(model: str | Path) -> ModelFamily:
    """The family of a local checkpoint (its config.json) or a Hub id (by name, else its downloaded config)."""
    path = Path(model)
    config_file = path / "config.json"
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{config_file}: unreadable config: {exc}") from exc
        return family_of_config(config)
    if path.exists():
        raise ConfigError(f"model path {model} has no config.json: not a Hugging Face checkpoint")
    family = family_of_hub_id(str(model))
    if family is not None:
        return family
    from transformers import AutoConfig

    return family_of_config(AutoConfig.from_pretrained(str(model)))


__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "FAMILY_NAMES",
    "ModelFamily",
    "TinyParts",
    "family_of_config",
    "family_of_hub_id",
    "family_of_model",
    "family_of_model_type",
    "family_of_processor",
    "get_family",
    "not_supported_text",
    "supported_model_types",
    "video_kwargs",
]
