"""Clips left out of a run, and why: counted, named and kept in the run folder so they stay visible downstream.

``cot-distill generate`` and ``msa-eval predict`` write one record per skipped clip to ``RUN/skipped.jsonl``;
``msa-eval score`` and ``report`` read it back and print "n = 3 of 5 (2 skipped: missing 1, unreadable 1)".
Reasons: ``missing`` (no mp4 under Raw/), ``unreadable`` (corrupt, empty or undecodable media), ``no_audio`` (the
clip has no usable audio track), ``bad_label`` (label off the dataset's scale, under ``--on-bad-label skip``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from msa_core import artifacts
from msa_core.errors import DataError, MediaError

SKIPPED_FILE = artifacts.SKIPPED
REASONS = ("missing", "unreadable", "no_audio", "bad_label")
SHOWN = 3
"""Paths named per reason in a one-line summary."""


@dataclass(frozen=True)
class Skip:
    """One clip left out: its id, dataset, media path, reason (one of REASONS) and the detail."""

    id: str
    dataset: str
    path: str
    reason: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def media_reason(exc: MediaError) -> str:
    """``no_audio`` or ``unreadable`` for a MediaError (``missing`` when the file is gone)."""
    text = exc.reason.lower()
    if "not found" in text:
        return "missing"
    if "audio" in text:
        return "no_audio"
    return "unreadable"


def counts(skips: Iterable[Skip]) -> dict[str, int]:
    """Skips per reason, in REASONS order."""
    c = Counter(s.reason for s in skips)
    return {r: c[r] for r in (*REASONS, *sorted(set(c) - set(REASONS))) if c[r]}


def describe(skips: list[Skip], *, paths: bool = True) -> str:
    """``missing 1 (Raw/v/1.mp4), unreadable 1 (…)``: counts by reason with the first few paths of each."""
    parts = []
    for reason, n in counts(skips).items():
        text = f"{reason} {n}"
        if paths:
            shown = [s.path for s in skips if s.reason == reason][:SHOWN]
            text += f" ({', '.join(shown)}{', …' if n > SHOWN else ''})"
        parts.append(text)
    return ", ".join(parts)


def write_skipped(run_dir: str | Path, dataset: str, skips: list[Skip]) -> Path:
    """Replace ``dataset``'s records in ``run_dir/skipped.jsonl`` with ``skips`` (other datasets' are kept)."""
    path = Path(run_dir) / SKIPPED_FILE
    others = [s for s in read_skipped(path) if s.dataset != dataset]
    rows = [*others, *skips]
    if not rows:
        path.unlink(missing_ok=True)
        return path
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        "".join(json.dumps(s.as_dict(), ensure_ascii=False) + "\n" for s in rows), encoding="utf-8"
    )
    os.replace(tmp, path)
    return path


def read_skipped(path: str | Path, dataset: str | None = None) -> list[Skip]:
    """The records of a ``skipped.jsonl`` (all, or one dataset's); none when the file is absent."""
    path = Path(path)
    if path.is_dir():
        path = path / SKIPPED_FILE
    if not path.is_file():
        return []
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            skip = Skip(
                **{k: str(rec[k]) for k in ("id", "dataset", "path", "reason")}, detail=rec.get("detail", "")
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"not a skipped-clip record ({exc})", file=path, line=line_no) from None
        if dataset is None or skip.dataset == dataset:
            out.append(skip)
    return out
