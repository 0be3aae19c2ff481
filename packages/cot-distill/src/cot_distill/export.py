"""Export accepted DC answers as a LLaMA-Factory dataset and an HF ``datasets`` parquet copy.

Layout of the export directory (self-contained: relative media paths, media copied or linked in)::

    DIR/dataset_info.json          LLaMA-Factory dataset registry (merged with an existing one)
    DIR/<name>.json                sharegpt records of the train split (<name>_<split>.json for other splits)
    DIR/data/<split>.parquet       HF datasets copy with the full schema in its features
    DIR/video/<video_id>/<clip_id>.mp4
    DIR/audio/<content-hash>-16000.wav   the mp4's audio track, extracted once (LLaMA-Factory needs a wav)
    DIR/export.json                manifest: sizes, teacher, prompt versions, filter stats (read by ``push``)
    DIR/README.md                  dataset card

The user turn is ``"<video><audio>" + build_prompt(text, spec).user``: the same prompt the student sees at
GRPO and evaluation time (no teacher instruction), and the system prompt travels in sharegpt's ``system``
column because LLaMA-Factory's ``qwen2_omni`` template would otherwise insert its own default.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msa_core import (
    ID_SEPARATOR,
    POLARITIES,
    SPLITS,
    DataError,
    DCOutput,
    DCParseError,
    MSAError,
    artifacts,
    build_prompt,
    get_spec,
    safe_media_path,
)
from msa_core.media import content_hash, extract_wav
from msa_core.outdir import ensure_writable_dir

ACCEPTED_FILE = artifacts.ACCEPTED
STATS_FILE = artifacts.DISTILL_STATS
MANIFEST_FILE = artifacts.EXPORT_MANIFEST
DISTILL_CONFIG_FILE = artifacts.EXPORT_DISTILL_CONFIG
"""The generate run's resolved config, published with the data (local paths, endpoints and progress left out)."""
GENERATE_CONFIG_FILE = artifacts.DISTILL_CONFIG
_UNPUBLISHED_KEYS = ("out", "base_urls", "wav_dir", "progress")
Format = Literal["llamafactory", "hf"]
FORMATS: tuple[Format, ...] = ("llamafactory", "hf")
REQUIRED_FIELDS = ("video_id", "clip_id", "dataset", "split", "text", "label", "video_path", "answer")
# Tolerance for "the answer carries the clip's true score": render() writes at most 4 decimals.
_SCORE_TOL = 5e-4


@dataclass
class ExportResult:
    """What ``export`` wrote, for the CLI summary and for callers (the demo, the SFT launcher)."""

    out_dir: Path
    dataset_name: str
    records: dict[str, int]
    clips: int
    lf_files: dict[str, str] = field(default_factory=dict)
    hf_files: dict[str, str] = field(default_factory=dict)


def read_accepted(path: Path) -> list[dict[str, Any]]:
    """Validated accepted answers: one dict per line with the export schema (polarity, prompt text added)."""
    if not path.is_file():
        raise DataError(
            f"{ACCEPTED_FILE} not found (run `cot-distill generate` first, or check OUT)", file=path
        )
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg})", file=path, line=line_no) from None
            if not isinstance(raw, dict):
                raise DataError("each line must be a JSON object", file=path, line=line_no)
            rows.append(_validate(raw, path, line_no))
    if not rows:
        raise DataError("no accepted answers to export (the file is empty)", file=path)
    return rows


def _validate(raw: dict[str, Any], path: Path, line: int) -> dict[str, Any]:
    for name in REQUIRED_FIELDS:
        if raw.get(name) is None:
            raise DataError("missing field", file=path, line=line, column=name)
    video_id, clip_id = str(raw["video_id"]), str(raw["clip_id"])
    clip = f"{video_id}{ID_SEPARATOR}{clip_id}"
    if "id" in raw and str(raw["id"]) != clip:
        raise DataError(
            f"id {raw['id']!r} is not video_id{ID_SEPARATOR}clip_id ({clip!r})",
            file=path,
            line=line,
            column="id",
        )
    try:
        spec = get_spec(str(raw["dataset"]))
    except MSAError as exc:
        raise DataError(str(exc), file=path, line=line, column="dataset") from None
    split = str(raw["split"])
    if split not in SPLITS:
        raise DataError(
            f"split {split!r} is not one of {', '.join(SPLITS)}", file=path, line=line, column="split"
        )
    try:
        label = float(raw["label"])
    except (TypeError, ValueError):
        raise DataError(f"{raw['label']!r} is not a number", file=path, line=line, column="label") from None
    if not (math.isfinite(label) and spec.score_min <= label <= spec.score_max):
        raise DataError(f"label {label:g} outside {spec.name}'s range", file=path, line=line, column="label")
    try:
        answer = DCOutput.parse_strict(str(raw["answer"]), spec)
    except DCParseError as exc:
        raise DataError(
            f"answer is not a strict DC answer ({exc})", file=path, line=line, column="answer"
        ) from None
    polarity = spec.polarity_of(label)
    if answer.polarity != polarity or abs(answer.score - label) > _SCORE_TOL:
        raise DataError(
            f"answer says {answer.polarity} {answer.score:g} but the clip is {polarity} {label:g}: "
            "accepted answers must carry the true polarity and the true score",
            file=path,
            line=line,
            column="answer",
        )
    if raw.get("polarity") not in (None, polarity):
        raise DataError(
            f"polarity {raw['polarity']!r} disagrees with label {label:g} ({polarity})",
            file=path,
            line=line,
            column="polarity",
        )
    video_path = Path(str(raw["video_path"]))
    if not video_path.is_absolute():
        raise DataError(
            f"video_path {str(video_path)!r} must be absolute", file=path, line=line, column="video_path"
        )
    if not video_path.is_file():
        raise DataError(
            f"missing mp4 for clip {clip}: {video_path}", file=path, line=line, column="video_path"
        )
    try:
        # Only to refuse ids that are not plain names: they become paths inside the export.
        safe_media_path(path.parent, video_id, clip_id)
    except DataError as exc:
        raise DataError(exc.reason, file=path, line=line, column="clip_id") from None
    prompt = build_prompt(str(raw["text"]), spec)
    return {
        "id": clip,
        "video_id": video_id,
        "clip_id": clip_id,
        "dataset": spec.name,
        "split": split,
        "text": str(raw["text"]),
        "label": label,
        "polarity": polarity,
        "answer": str(raw["answer"]),
        "teacher_answer": str(raw.get("teacher_answer") or ""),
        "prompt_version": str(raw.get("prompt_version") or prompt.version),
        "model": str(raw.get("model") or ""),
        "sample": int(raw.get("sample") or 0),
        "system": prompt.system,
        "user": prompt.user,
        "source_video": video_path,
    }


def _place_video(src: Path, dest: Path, link: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link:
        if dest.is_symlink() and Path(os.readlink(dest)) == src:
            return
        dest.unlink(missing_ok=True)
        dest.symlink_to(src)
        return
    if dest.is_symlink():
        dest.unlink()
    if (
        dest.is_file()
        and dest.stat().st_size == src.stat().st_size
        and content_hash(dest) == content_hash(src)
    ):
        return  # a re-export: the same clip is already there
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)


def _place_media(
    rows: list[dict[str, Any]], out_dir: Path, link: bool, workers: int
) -> dict[str, tuple[str, str]]:
    """Per clip id: (video, wav) paths relative to ``out_dir``; wavs come from ``extract_wav`` (cached)."""
    clips = {r["id"]: r for r in rows}

    def one(row: dict[str, Any]) -> tuple[str, tuple[str, str]]:
        src: Path = row["source_video"]
        video_rel = Path("video") / row["video_id"] / f"{row['clip_id']}.mp4"
        try:
            wav = extract_wav(src, out_dir=out_dir / "audio")
        except DataError as exc:
            raise DataError(
                f"clip {row['id']}: {exc.reason} (every exported clip needs its audio track)", file=src
            ) from None
        _place_video(src, out_dir / video_rel, link)
        return row["id"], (video_rel.as_posix(), wav.relative_to(out_dir).as_posix())

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(pool.map(one, clips.values()))


def hf_features():
    """The HF ``datasets`` schema of the export (imported lazily: datasets is heavy)."""
    from datasets import ClassLabel, Features, List, Value

    text = Value("string")
    return Features(
        {
            "id": text,
            "video_id": text,
            "clip_id": text,
            "dataset": text,
            "split": text,
            "text": text,
            "label": Value("float64"),
            "polarity": ClassLabel(names=list(POLARITIES)),
            "answer": text,
            "teacher_answer": text,
            "prompt_version": text,
            "model": text,
            "sample": Value("int32"),
            "system": text,
            "messages": List({"role": text, "content": text}),
            "videos": List(text),
            "audios": List(text),
        }
    )


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_target(out_dir: Path, source: Path, force: bool) -> None:
    if out_dir.resolve() == source.resolve():
        raise DataError("--to must differ from the generate output directory", file=out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file() and not force:
        raise DataError(
            "directory is not empty and holds no previous export; choose another --to or pass --force",
            file=out_dir,
        )


def export(
    out: str | Path,
    to: str | Path,
    *,
    formats: tuple[Format, ...] | list[Format] = FORMATS,
    dataset_name: str = "msa_cot",
    link: bool = False,
    workers: int = 4,
    force: bool = False,
) -> ExportResult:
    """Export ``OUT/accepted.jsonl`` into ``to`` (see the module docstring for the layout)."""
    from cot_distill.card import write_card

    source, out_dir = Path(out), Path(to)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise DataError(f"unknown export format(s) {unknown or '(none)'}; use {', '.join(FORMATS)}")
    if not dataset_name.replace("_", "").replace("-", "").isalnum():
        raise DataError(f"dataset name {dataset_name!r} must be letters, digits, '_' or '-'")
    _check_target(out_dir, source, force)
    ensure_writable_dir(out_dir, "--to")  # before any work
    rows = read_accepted(source / ACCEPTED_FILE)
    previous = _previous_manifest(out_dir)
    media = _place_media(rows, out_dir, link, workers)

    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row in rows:
        video, audio = media[row["id"]]
        by_split[row["split"]].append(
            {
                **artifacts.lf_record(row["id"], row["system"], row["user"], row["answer"], video, audio),
                **_schema_fields(row),
            }
        )
    by_split = {s: recs for s, recs in by_split.items() if recs}
    result = ExportResult(
        out_dir=out_dir,
        dataset_name=dataset_name,
        records={s: len(r) for s, r in by_split.items()},
        clips=len(media),
    )

    if "llamafactory" in formats:
        info_path = out_dir / artifacts.LF_DATASET_INFO
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        for split, recs in by_split.items():
            key = artifacts.lf_dataset_key(dataset_name, split)
            file_name = f"{key}.json"
            _write_json(
                out_dir / file_name,
                [{k: r[k] for k in ("id", "messages", "system", "videos", "audios")} for r in recs],
            )
            info[key] = artifacts.lf_dataset_info_entry(file_name)
            result.lf_files[split] = file_name
        _write_json(info_path, info)
    if "hf" in formats:
        result.hf_files = _write_parquet(out_dir, by_split)

    if previous is not None:
        _remove_stale(out_dir, previous, result, media)
    manifest = _manifest(rows, by_split, result, source, link)
    manifest["distill_config"] = _publish_config(source, out_dir)
    _write_json(out_dir / MANIFEST_FILE, manifest)
    write_card(out_dir, manifest)
    return result


def _publish_config(source: Path, out_dir: Path) -> str | None:
    """Copy the generate run's resolved config (teacher, prompt, sampling, filters) next to the data.

    It never holds a secret (only api_key_env, a variable's name); local paths and endpoints are left out and
    the data root is reduced to its folder name. Returns the file name, or None when the run wrote no config.
    """
    import yaml

    path = source / GENERATE_CONFIG_FILE
    target = out_dir / DISTILL_CONFIG_FILE
    if not path.is_file():
        target.unlink(missing_ok=True)
        return None
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML ({exc})", file=path) from None
    if not isinstance(cfg, dict):
        raise DataError("not a distill config (a YAML mapping)", file=path)
    public = {k: v for k, v in cfg.items() if k not in _UNPUBLISHED_KEYS}
    if public.get("data"):
        public["data"] = Path(str(public["data"])).name
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(yaml.safe_dump(public, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, target)
    return DISTILL_CONFIG_FILE


def _write_parquet(out_dir: Path, by_split: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    import datasets

    features = hf_features()
    (out_dir / "data").mkdir(exist_ok=True)
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # one bar per split is noise next to the CLI's summary
    try:
        files = {}
        for split, recs in by_split.items():
            rel = f"data/{split}.parquet"
            ds = datasets.Dataset.from_list([{k: r[k] for k in features} for r in recs], features=features)
            ds.to_parquet(str(out_dir / rel))
            files[split] = rel
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    return files


def _previous_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def _remove_stale(out_dir: Path, previous: dict[str, Any], result: ExportResult, media) -> None:
    """A re-export leaves exactly what this export lists: the previous run's other files and orphan media go.

    Otherwise ``push`` would publish parquet or clips that no longer match the accepted answers.
    """
    keep = {*result.lf_files.values(), *result.hf_files.values()}
    old = [v["file"] for v in previous.get("llamafactory", {}).values()] + list(
        previous.get("hf", {}).values()
    )
    for rel in old:
        if rel not in keep:
            (out_dir / rel).unlink(missing_ok=True)
    current = {artifacts.lf_dataset_key(result.dataset_name, split) for split in result.lf_files}
    stale = {v["dataset"] for v in previous.get("llamafactory", {}).values()} - current
    info_path = out_dir / artifacts.LF_DATASET_INFO
    if stale and info_path.is_file():
        info = json.loads(info_path.read_text())
        _write_json(info_path, {k: v for k, v in info.items() if k not in stale})
    used = {p for pair in media.values() for p in pair}
    for sub in ("video", "audio"):
        for path in sorted((out_dir / sub).rglob("*"), reverse=True):
            rel = path.relative_to(out_dir).as_posix()
            if (path.is_file() or path.is_symlink()) and rel not in used:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _schema_fields(row: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "video_id",
        "clip_id",
        "dataset",
        "split",
        "text",
        "label",
        "polarity",
        "answer",
        "teacher_answer",
        "prompt_version",
        "model",
        "sample",
    )
    return {k: row[k] for k in keep}


def _manifest(rows, by_split, result: ExportResult, source: Path, link: bool) -> dict[str, Any]:
    stats_path = source / STATS_FILE
    try:
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=stats_path, line=exc.lineno) from None
    return {
        "format_version": 1,
        "dataset_name": result.dataset_name,
        "source": source.resolve().name,  # the name only: the manifest is published with the data
        "media": "symlink" if link else "copy",
        "datasets": sorted({r["dataset"] for r in rows}),
        "teacher_models": sorted({r["model"] for r in rows if r["model"]}),
        "prompt_versions": sorted({r["prompt_version"] for r in rows}),
        "clips": result.clips,
        "splits": {
            split: {
                "records": len(recs),
                "clips": len({r["id"] for r in recs}),
                "polarity": dict(Counter(r["polarity"] for r in recs)),
            }
            for split, recs in by_split.items()
        },
        "llamafactory": {
            split: {"dataset": artifacts.lf_dataset_key(result.dataset_name, split), "file": f}
            for split, f in result.lf_files.items()
        },
        "hf": result.hf_files,
        "filter_stats": stats,
    }
