"""Reader for the MMSA layout: ``<root>/label.csv`` + ``<root>/Raw/<video_id>/<clip_id>.mp4``."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from msa_core.errors import DataError
from msa_core.spec import DatasetSpec, get_spec

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")
REQUIRED_COLUMNS = ("video_id", "clip_id", "text", "label", "mode")
OPTIONAL_COLUMNS = ("label_T", "label_A", "label_V", "annotation")
ID_SEPARATOR = "$_$"
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid", "test": "test"}


class Clip(BaseModel):
    """One labelled clip. Ids are strings: SIMS clip ids are zero-padded ('0001')."""

    model_config = ConfigDict(frozen=True)

    video_id: str
    clip_id: str
    text: str
    label: float = Field(description="Multimodal sentiment score on the dataset's scale.")
    label_T: float | None = None
    label_A: float | None = None
    label_V: float | None = None
    annotation: str | None = None
    mode: Split
    video_path: Path = Field(description="Absolute path of the mp4.")
    dataset: str = ""

    @property
    def id(self) -> str:
        return f"{self.video_id}{ID_SEPARATOR}{self.clip_id}"


@dataclass
class MMSADataset:
    root: Path
    spec: DatasetSpec
    clips: list[Clip]
    missing: list[str] = field(default_factory=list)
    """Ids whose mp4 is absent (skipped under ``missing='skip'``)."""

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def split(self, name: str) -> list[Clip]:
        mode = _SPLIT_ALIASES.get(name)
        if mode is None:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [c for c in self.clips if c.mode == mode]

    def by_id(self) -> dict[str, Clip]:
        return {c.id: c for c in self.clips}


def safe_media_path(root: Path, video_id: str, clip_id: str, *, ext: str = ".mp4") -> Path:
    """``root/Raw/video_id/clip_id.mp4``, refusing ids that escape the dataset root."""
    raw = (root / "Raw").resolve()
    for part in (video_id, clip_id):
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise DataError(f"id {part!r} is not a plain name (it would escape the dataset root)")
    path = (raw / video_id / f"{clip_id}{ext}").resolve()
    if not path.is_relative_to(raw):
        raise DataError(f"clip {video_id}{ID_SEPARATOR}{clip_id} resolves outside {raw}")
    return path


def _float(value: str, *, file: Path, line: int, column: str, required: bool) -> float | None:
    value = (value or "").strip()
    if value == "":
        if required:
            raise DataError("empty value, a number is required", file=file, line=line, column=column)
        return None
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{value!r} is not a number", file=file, line=line, column=column) from None
    if not math.isfinite(number):
        raise DataError(f"{value!r} is not a finite number", file=file, line=line, column=column)
    return number


def read_mmsa(
    root: str | Path,
    dataset: str | DatasetSpec,
    *,
    split: str | None = None,
    missing: Literal["skip", "fail"] = "skip",
    check_range: bool = True,
) -> MMSADataset:
    """Read ``label.csv`` (columns in any order) and locate each clip's mp4.

    Missing mp4s are collected in ``.missing``; with ``missing='fail'`` they raise a DataError naming the first
    few ids. Labels outside the spec's range raise (``check_range``).
    """
    root = Path(root).resolve()
    spec = get_spec(dataset)
    if split is not None and split not in _SPLIT_ALIASES:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    csv_path = root / "label.csv"
    if not csv_path.is_file():
        raise DataError(
            "label.csv not found (expected the MMSA layout: label.csv + Raw/<video_id>/<clip_id>.mp4)",
            file=csv_path,
        )
    clips: list[Clip] = []
    absent: list[str] = []
    try:
        _read_rows(csv_path, root, spec, split, check_range, clips, absent)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=csv_path) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", file=csv_path) from None
    if absent and missing == "fail":
        raise DataError(
            f"{len(absent)} clip(s) have no video under Raw/: {', '.join(absent[:5])}"
            f"{' …' if len(absent) > 5 else ''}",
            file=csv_path,
        )
    return MMSADataset(root=root, spec=spec, clips=clips, missing=absent)


def _read_rows(
    csv_path: Path,
    root: Path,
    spec: DatasetSpec,
    split: str | None,
    check_range: bool,
    clips: list[Clip],
    absent: list[str],
) -> None:
    seen: dict[str, int] = {}
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        lacking = [c for c in REQUIRED_COLUMNS if c not in header]
        if lacking:
            raise DataError(
                f"missing column(s) {', '.join(lacking)}; header is {header}", file=csv_path, line=1
            )
        for row in reader:
            line = reader.line_num
            if None in row:
                raise DataError(
                    f"{len(header) + len(row[None])} fields, header has {len(header)}",
                    file=csv_path,
                    line=line,
                )
            if any(row.get(c) is None for c in REQUIRED_COLUMNS):
                raise DataError(
                    f"row has fewer fields than the header ({len(header)})", file=csv_path, line=line
                )
            mode = _SPLIT_ALIASES.get(row["mode"].strip().lower())
            if mode is None:
                raise DataError(
                    f"unknown split {row['mode']!r} (train, valid or test)",
                    file=csv_path,
                    line=line,
                    column="mode",
                )
            if split is not None and mode != _SPLIT_ALIASES[split]:
                continue
            video_id, clip_id = row["video_id"].strip(), row["clip_id"].strip()
            for col, val in (("video_id", video_id), ("clip_id", clip_id)):
                if not val:
                    raise DataError("empty id", file=csv_path, line=line, column=col)
            try:
                path = safe_media_path(root, video_id, clip_id)
            except DataError as exc:
                column = "video_id" if exc.reason.startswith(f"id {video_id!r} ") else "clip_id"
                raise DataError(exc.reason, file=csv_path, line=line, column=column) from None
            label = _float(row["label"], file=csv_path, line=line, column="label", required=True)
            if check_range and not (spec.score_min <= label <= spec.score_max):
                raise DataError(
                    f"label {label:g} outside {spec.name}'s range [{spec.score_min:g}, {spec.score_max:g}]",
                    file=csv_path,
                    line=line,
                    column="label",
                )
            extra = {
                c: _float(row.get(c, ""), file=csv_path, line=line, column=c, required=False)
                for c in ("label_T", "label_A", "label_V")
            }
            clip = Clip(
                video_id=video_id,
                clip_id=clip_id,
                text=row["text"],
                label=label,
                mode=mode,
                annotation=(row.get("annotation") or None),
                video_path=path,
                dataset=spec.name,
                **extra,
            )
            if clip.id in seen:
                raise DataError(
                    f"duplicate id {clip.id!r} (first on line {seen[clip.id]})", file=csv_path, line=line
                )
            seen[clip.id] = line
            if not path.is_file():
                absent.append(clip.id)
                continue
            clips.append(clip)
