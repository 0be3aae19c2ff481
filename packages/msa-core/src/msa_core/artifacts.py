"""Every hand-off between stages: the files one stage writes and the next reads, and their layouts.

clip -> ``cot-distill generate`` (responses, accepted) -> ``cot-distill export`` (LLaMA-Factory + parquet) ->
``msa-rl sft`` (checkpoint) -> ``msa-rl grpo`` (checkpoint, metrics) -> ``msa-eval predict`` (one JSONL per
dataset) -> ``msa-eval score`` / ``report``. Each side imports its names from here, so a rename cannot put the two
sides out of step (docs/architecture.md draws the whole path).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msa_core.errors import DataError

# ---------------------------------------------------------------- cot-distill generate -> export, filter, push
RESPONSES = "responses.jsonl"  # every teacher answer, append-only: also the request cache
JUDGEMENTS = "judgements.jsonl"  # optional LLM-judge verdicts, append-only
FAILURES = "failures.jsonl"  # requests that failed after every retry
ACCEPTED = "accepted.jsonl"  # answers that passed every filter, true score swapped in (export reads it)
REJECTED = "rejected.jsonl"  # answers a filter refused, with the reason
DISTILL_STATS = "stats.json"
DISTILL_PLAN = "plan.json"
DISTILL_CONFIG = "config.yaml"  # the resolved distillation config (secrets are never in it)

SKIPPED = "skipped.jsonl"  # clips left out (missing, unreadable, no audio, bad label), with the reason
WAV_DIR = "wav16k"  # the clips' audio at 16 kHz, extracted under OUT (never into the dataset folder)

# ---------------------------------------------------------------- cot-distill export -> msa-rl sft / grpo
EXPORT_MANIFEST = "export.json"  # what the export holds (splits, files, teacher, filter stats)
LF_DATASET_INFO = "dataset_info.json"  # LLaMA-Factory's dataset registry
VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER = "<video>", "<audio>"
# LLaMA-Factory's media placeholders open the user turn; with audio-in-video the wav is the video's own track.
MEDIA_PLACEHOLDERS = VIDEO_PLACEHOLDER + AUDIO_PLACEHOLDER
EXPORT_DISTILL_CONFIG = "distill_config.yaml"  # the generate run's config, published with the data
LF_COLUMNS = {"messages": "messages", "system": "system", "videos": "videos", "audios": "audios"}

# ---------------------------------------------------------------- training runs -> the next stage, predict
MEDIA_SETTINGS = "media.json"  # msa_core.MediaSettings, next to every checkpoint (predict reads it)
SFT_CONFIG = "sft_config.yaml"
SFT_METRICS = "sft_metrics.jsonl"
SFT_LOG = "sft.log"
LLAMAFACTORY_YAML = "llamafactory_sft.yaml"
LLAMAFACTORY_MERGE_YAML = "llamafactory_merge.yaml"
SFT_DATA_DIR = (
    "sft_data"  # the export's datasets without the clips the preflight dropped (on_long_clip: drop)
)
GRPO_CONFIG = "grpo_config.yaml"
GRPO_METRICS = "metrics.jsonl"  # one line per logged GRPO step (msa-rl plot reads it)
GRPO_ROLLOUTS = "rollouts"  # with rollout_log: every generation batch, one JSONL per process (tests read it)
TRAIN_CONFIG = "train_config.yaml"

# ---------------------------------------------------------------- msa-eval predict -> score / report
PREDICT_CONFIG = "predict.json"  # the settings each dataset's predictions were made with
PREDICTION_SUFFIX = ".jsonl"
# msa-eval report's outputs (read by people, the demo and the mini reproduction)
REPORT_MARKDOWN, REPORT_LATEX, REPORT_CSV, REPORT_JSON = (
    "report.md",
    "tables.tex",
    "metrics.csv",
    "metrics.json",
)
# msa-thinker mini-repro's outputs: per-seed metrics of every row and dataset, the resolved recipe of the run
MINI_REPRO_RESULTS, MINI_REPRO_RECIPE = "results.json", "mini_repro_recipe.yaml"


def predictions_path(run_dir: str | Path, dataset: str) -> Path:
    """``RUN_DIR/<dataset>.jsonl``: one prediction record per clip."""
    return Path(run_dir) / f"{dataset}{PREDICTION_SUFFIX}"


def prediction_record(
    *,
    clip_id: str,
    dataset: str,
    split: str,
    label: float,
    text: str,
    raw_output: str,
    polarity: str | None,
    score: float | None,
    parse_status: str,
    parse_reason: str,
) -> dict[str, Any]:
    """One line of a predictions file, the schema ``msa_eval.predictions`` reads back."""
    return {
        "id": clip_id,
        "dataset": dataset,
        "split": split,
        "label": label,
        "text": text,
        "raw_output": raw_output,
        "polarity": polarity,
        "score": score,
        "parse_status": parse_status,
        "parse_reason": parse_reason,
    }


# ---------------------------------------------------------------- the export layout (writer and readers)
def lf_dataset_key(dataset_name: str, split: str) -> str:
    """The dataset_info.json key of a split: the bare name for train, ``<name>_<split>`` otherwise."""
    return dataset_name if split == "train" else f"{dataset_name}_{split}"


def lf_dataset_info_entry(file_name: str) -> dict[str, Any]:
    """A dataset_info.json entry for a sharegpt file with system, video and audio columns.

    The system column matters: without it LLaMA-Factory's ``qwen2_omni`` template inserts its own default system
    prompt, and SFT would see another prompt than GRPO and evaluation.
    """
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": dict(LF_COLUMNS),
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    }


def lf_record(
    clip_id: str, system: str, user: str, answer: str, video: str, audio: str | None
) -> dict[str, Any]:
    """One sharegpt record, the shape LLaMA-Factory's ``qwen2_omni`` SFT reads (see lf_dataset_info_entry)."""
    placeholders = MEDIA_PLACEHOLDERS if audio is not None else VIDEO_PLACEHOLDER
    return {
        "id": clip_id,
        "messages": [
            {"role": "user", "content": placeholders + user},
            {"role": "assistant", "content": answer},
        ],
        "system": system,
        "videos": [video],
        "audios": [audio] if audio is not None else [],
    }


def strip_media_placeholders(content: str) -> str:
    """The prompt text of an exported user turn: LLaMA-Factory's media placeholders come first; drop them."""
    text = content
    while text.startswith((VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER)):
        text = text[len(VIDEO_PLACEHOLDER if text.startswith(VIDEO_PLACEHOLDER) else AUDIO_PLACEHOLDER) :]
    return text


def is_export(root: str | Path) -> bool:
    """Whether a directory is a cot-distill export (rather than an MMSA dataset)."""
    return any((Path(root) / name).is_file() for name in (EXPORT_MANIFEST, LF_DATASET_INFO))


def read_json(path: Path) -> Any:
    """A JSON file, or DataError naming the file (and line) when it is missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=path, line=exc.lineno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read JSON: {exc}", file=path) from None


def read_export_manifest(root: str | Path) -> dict[str, Any]:
    """``export.json`` of an export ({} when the export predates it or is a bare LLaMA-Factory dataset)."""
    path = Path(root) / EXPORT_MANIFEST
    return read_json(path) if path.is_file() else {}


def read_dataset_info(root: str | Path) -> dict[str, Any]:
    """``dataset_info.json`` of an export; DataError if absent or not a mapping."""
    path = Path(root) / LF_DATASET_INFO
    if not path.is_file():
        raise DataError(f"no {LF_DATASET_INFO}: not a LLaMA-Factory export", file=path)
    info = read_json(path)
    if not isinstance(info, dict):
        raise DataError("expected a JSON mapping of dataset names", file=path)
    return info


@dataclass(frozen=True)
class ExportRecord:
    """One checked sharegpt record of an export, with its media resolved to existing files."""

    id: str
    system: str
    user: str
    """The user prompt without media placeholders."""
    answer: str
    video: Path
    audio: Path | None


def read_lf_dataset(root: str | Path, name: str, *, audio_in_video: bool = True) -> list[ExportRecord]:
    """The records of dataset ``name`` in an export, checked the way LLaMA-Factory will read them.

    Used by ``msa-rl sft`` (checks before LLaMA-Factory starts) and ``msa-rl grpo`` (its training rows), so both
    read the layout ``cot-distill export`` wrote in one way. DataError names the file, record and column.
    """
    root = Path(root)
    info_path = root / LF_DATASET_INFO
    info = read_dataset_info(root)
    if name not in info:
        raise DataError(
            f"dataset {name!r} not in {LF_DATASET_INFO} (it has: {', '.join(sorted(info))})", file=info_path
        )
    entry = info[name]
    if not isinstance(entry, dict) or entry.get("formatting") != "sharegpt":
        raise DataError(f"dataset {name!r}: formatting must be 'sharegpt'", file=info_path)
    columns = entry.get("columns") or {}
    for column in LF_COLUMNS:
        if column not in columns:
            raise DataError(f"dataset {name!r} has no {column!r} column", file=info_path)
    path = root / str(entry.get("file_name", ""))
    if not path.is_file():
        raise DataError(f"dataset {name!r}: its file_name does not exist", file=path)
    records = read_json(path)
    if not isinstance(records, list) or not records:
        raise DataError("expected a non-empty JSON list of sharegpt records", file=path)
    return [_check_record(rec, i, root, path, columns, audio_in_video) for i, rec in enumerate(records)]


def _check_record(
    record: Any, index: int, root: Path, file: Path, columns: dict[str, str], audio_in_video: bool
) -> ExportRecord:
    if not isinstance(record, dict):
        raise DataError(f"record {index}: not a JSON object", file=file)
    where = f"record {index} ({record.get('id', 'no id')})"
    messages = record.get(columns["messages"])
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    answers = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "assistant"]
    if not isinstance(messages, list) or not users or not answers:
        raise DataError(
            f"{where}: needs a user and an assistant message", file=file, column=columns["messages"]
        )
    system = str(record.get(columns["system"]) or "")
    if not system.strip():
        raise DataError(f"{where}: empty system prompt", file=file, column=columns["system"])
    videos, audios = record.get(columns["videos"]) or [], record.get(columns["audios"]) or []
    user_text = " ".join(str(m.get("content", "")) for m in users)
    n_video, n_audio = user_text.count(VIDEO_PLACEHOLDER), user_text.count(AUDIO_PLACEHOLDER)
    if n_video != len(videos) or n_audio != len(audios):
        raise DataError(
            f"{where}: {len(videos)} video(s) and {len(audios)} audio(s) but the user turn has "
            f"{n_video} {VIDEO_PLACEHOLDER} and {n_audio} {AUDIO_PLACEHOLDER}",
            file=file,
        )
    if len(videos) != 1:
        raise DataError(f"{where}: expected exactly one video per clip", file=file, column=columns["videos"])
    if audio_in_video and len(audios) != len(videos):
        raise DataError(
            f"{where}: audio-in-video needs one wav per video (LLaMA-Factory does not read the audio out of "
            "the mp4)",
            file=file,
            column=columns["audios"],
        )
    resolved: dict[str, list[Path]] = {}
    for kind, paths in (("video", videos), ("audio", audios)):
        resolved[kind] = []
        for rel in paths:
            p = Path(rel) if Path(rel).is_absolute() else root / rel
            if not p.is_file():
                raise DataError(f"{where}: missing {kind} file {rel}", file=file, column=columns[f"{kind}s"])
            resolved[kind].append(p.resolve())
    return ExportRecord(
        id=str(record.get("id") or f"row{index + 1}"),
        system=system,
        user=strip_media_placeholders(str(users[0].get("content", ""))),
        answer=str(answers[0].get("content", "")),
        video=resolved["video"][0],
        audio=resolved["audio"][0] if resolved["audio"] else None,
    )


def finite_label(value: Any, file: Path, line: int) -> float:
    """A label read from an artifact: a finite number, else DataError naming the file and line."""
    try:
        label = float(value)
    except (TypeError, ValueError):
        label = math.nan
    if not math.isfinite(label):
        raise DataError(f"label missing or not finite ({value!r})", file=file, line=line, column="label")
    return label
