"""msa-core: the schema every msa-thinker package shares."""

from msa_core import artifacts, recipe
from msa_core.dc import DCOutput, DCParseError, LenientParse
from msa_core.errors import (
    ConfigError,
    DataError,
    MediaError,
    MSAError,
    OutputPathError,
    UsageError,
    exit_code_of,
)
from msa_core.jsonl import JsonlAppender, read_jsonl, write_json_atomic, write_jsonl_atomic
from msa_core.media_settings import MediaSettings
from msa_core.mmsa import ID_SEPARATOR, SPLITS, Clip, MMSADataset, read_mmsa, safe_media_path
from msa_core.prompt import PROMPT_VERSION, SYSTEM_PROMPT, Prompt, build_prompt, chat_messages
from msa_core.spec import (
    POLARITIES,
    DatasetSpec,
    Polarity,
    get_spec,
    list_specs,
    polarity_of,
    register_spec,
    register_spec_file,
)

# PyAV (media, synthetic data) costs ~0.25 s to import; every CLI imports msa_core, so load those on first use.
_LAZY = {
    **dict.fromkeys(
        (
            "MediaInfo",
            "MediaSettings",
            "content_hash",
            "exit_code_of",
            "extract_wav",
            "load_audio",
            "probe",
            "sample_frames",
            "sample_model_frames",
            "write_wav",
        ),
        "msa_core.media",
    ),
    "make_dataset": "msa_core.synthetic",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'msa_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ID_SEPARATOR",
    "POLARITIES",
    "PROMPT_VERSION",
    "SPLITS",
    "SYSTEM_PROMPT",
    "Clip",
    "ConfigError",
    "DCOutput",
    "DCParseError",
    "DataError",
    "DatasetSpec",
    "JsonlAppender",
    "LenientParse",
    "MMSADataset",
    "MSAError",
    "MediaError",
    "MediaInfo",
    "MediaSettings",
    "OutputPathError",
    "Polarity",
    "Prompt",
    "UsageError",
    "artifacts",
    "build_prompt",
    "chat_messages",
    "content_hash",
    "exit_code_of",
    "extract_wav",
    "get_spec",
    "list_specs",
    "load_audio",
    "make_dataset",
    "polarity_of",
    "probe",
    "read_jsonl",
    "read_mmsa",
    "recipe",
    "register_spec",
    "register_spec_file",
    "safe_media_path",
    "sample_frames",
    "sample_model_frames",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_wav",
]
