"""msa-core: the schema every msa-thinker package shares."""

from msa_core.dc import DCOutput, DCParseError, LenientParse
from msa_core.errors import ConfigError, DataError, MediaError, MSAError
from msa_core.jsonl import JsonlAppender, read_jsonl, write_json_atomic, write_jsonl_atomic
from msa_core.media import MediaInfo, content_hash, extract_wav, load_audio, probe, sample_frames, write_wav
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
from msa_core.synthetic import make_dataset

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
    "Polarity",
    "Prompt",
    "build_prompt",
    "chat_messages",
    "content_hash",
    "extract_wav",
    "get_spec",
    "list_specs",
    "load_audio",
    "make_dataset",
    "polarity_of",
    "probe",
    "read_jsonl",
    "read_mmsa",
    "register_spec",
    "register_spec_file",
    "safe_media_path",
    "sample_frames",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_wav",
]
