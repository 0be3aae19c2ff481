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
from msa_core.skipped import Skip
from msa_core.spec import DatasetSpec, get_spec

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")
REQUIRED_COLUMNS = ("video_id", "clip_id", "text", "label", "mode")
OPTIONAL_COLUMNS = ("label_T", "label_A", "label_V", "annotation")
ID_SEPARATOR = "$_$"
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid", "test": "test"}
LABEL_TOLERANCE = 1e-6
"""A label at most this far outside the dataset's scale (float noise: 1.0000001) is clipped onto it, counted."""
BAD_LABEL_POLICIES = ("error", "skip", "clip")


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
    skipped: list[Skip] = field(default_factory=list)
    """Every row left out, with its reason: ``missing`` mp4s, and ``bad_label`` under ``on_bad_label='skip'``."""
    clipped: list[tuple[int, str, float]] = field(default_factory=list)
    """(line, id, label as written) of labels outside the scale that were clipped onto it."""

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

    def warnings(self) -> list[str]:
        """One line per thing the reader worked around (clipped labels), for a CLI to print."""
        if not self.clipped:
            return []
        first = ", ".join(f"line {line} ({value!r})" for line, _, value in self.clipped[:3])
        return [
            f"{self.root / 'label.csv'}: {len(self.clipped)} label(s) outside {self.spec.name}'s range "
            f"[{self.spec.score_min:g}, {self.spec.score_max:g}] clipped onto it: {first}"
            f"{' …' if len(self.clipped) > 3 else ''}"
        ]


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
    on_bad_label: Literal["error", "skip", "clip"] = "error",
) -> MMSADataset:
    """Read ``label.csv`` (columns in any order) and locate each clip's mp4.

    Missing mp4s are collected in ``.missing`` (and ``.skipped``); with ``missing='fail'`` they raise a DataError
    naming the first few ids. Labels outside the spec's range (``check_range``): within LABEL_TOLERANCE they are
    clipped onto the scale and counted in ``.clipped``; further out ``on_bad_label`` decides: ``error`` raises
    naming the line and the exact value, ``skip`` leaves the row out (``.skipped``), ``clip`` clips it.
    """
    if on_bad_label not in BAD_LABEL_POLICIES:
        raise DataError(
            f"--on-bad-label must be one of {', '.join(BAD_LABEL_POLICIES)}, got {on_bad_label!r}"
        )
    root = Path(root).resolve()
    spec = get_spec(dataset)
    if split is not None and split not in _SPLIT_ALIASES:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    csv_path = root / "label.csv"
    if csv_path.is_dir():
        raise DataError("label.csv is a folder, not a file: --data must be the dataset root", file=csv_path)
    if not csv_path.is_file():
        raise DataError(
            "label.csv not found (expected the MMSA layout: label.csv + Raw/<video_id>/<clip_id>.mp4)",
            file=csv_path,
        )
    ds = MMSADataset(root=root, spec=spec, clips=[])
    try:
        rows = _read_rows(csv_path, root, spec, split, check_range, on_bad_label, ds)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=csv_path) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", file=csv_path) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", file=csv_path) from None
    if rows == 0:
        raise DataError("no clips: the file has a header but no rows", file=csv_path)
    absent = ds.missing
    if absent and not (root / "Raw").is_dir():
        raise DataError(
            f"Raw/ folder not found, so none of the clips has its mp4 (expected Raw/<video_id>/<clip_id>.mp4, "
            f"e.g. Raw/{absent[0].replace(ID_SEPARATOR, '/')}.mp4)",
            file=root / "Raw",
        )
    if absent and missing == "fail":
        raise DataError(
            f"{len(absent)} clip(s) have no video under Raw/: {', '.join(absent[:5])}"
            f"{' …' if len(absent) > 5 else ''}",
            file=csv_path,
        )
    return ds


def _read_rows(
    csv_path: Path,
    root: Path,
    spec: DatasetSpec,
    split: str | None,
    check_range: bool,
    on_bad_label: str,
    ds: MMSADataset,
) -> int:
    """Fill ``ds`` from the CSV; returns the number of data rows (all splits)."""
    seen: dict[str, int] = {}
    rows = 0
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
            rows += 1
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
            bad_label = None
            if check_range and not (spec.score_min <= label <= spec.score_max):
                near = spec.score_min - LABEL_TOLERANCE <= label <= spec.score_max + LABEL_TOLERANCE
                if near or on_bad_label == "clip":
                    ds.clipped.append((line, f"{video_id}{ID_SEPARATOR}{clip_id}", label))
                    label = min(max(label, spec.score_min), spec.score_max)
                elif on_bad_label == "error":
                    raise DataError(
                        f"label {row['label'].strip()} outside {spec.name}'s range "
                        f"[{spec.score_min:g}, {spec.score_max:g}] (more than {LABEL_TOLERANCE:g} off; "
                        "--on-bad-label skip or clip to go on)",
                        file=csv_path,
                        line=line,
                        column="label",
                    )
                else:
                    bad_label = row["label"].strip()
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
            if bad_label is not None:
                detail = f"line {line}: label {bad_label} outside [{spec.score_min:g}, {spec.score_max:g}]"
                ds.skipped.append(Skip(clip.id, spec.name, str(path), "bad_label", detail))
                continue
            if not path.is_file():
                ds.missing.append(clip.id)
                ds.skipped.append(Skip(clip.id, spec.name, str(path), "missing", "no mp4 under Raw/"))
                continue
            ds.clips.append(clip)
    return rows
