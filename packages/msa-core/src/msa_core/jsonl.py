"""Append-only JSONL stores that survive ``kill -9``: cot-distill's responses, predictions, GRPO metrics.

Each record is written with one ``os.write`` on an ``O_APPEND`` descriptor, so a finished line is in the kernel
the moment it is appended; a crash mid-write leaves at most a torn last line, which ``read_jsonl(...,
repair=True)`` cuts off before new lines are appended. A bad line anywhere else is a DataError naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from msa_core.errors import DataError


def read_jsonl(path: Path, *, repair: bool = False) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file. A torn (unparsable, unterminated) LAST line is skipped, and with ``repair`` cut
    from the file so later appends start on a clean line; a bad line elsewhere is a DataError naming it."""
    if not path.is_file():
        return
    data = path.read_bytes()
    offset = 0
    line_no = 0
    good_end = 0
    while offset < len(data):
        line_no += 1
        nl = data.find(b"\n", offset)
        end = len(data) if nl < 0 else nl
        raw = data[offset:end]
        is_last = nl < 0 or nl == len(data) - 1
        offset = end + 1
        if not raw.strip():
            good_end = offset if nl >= 0 else good_end
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            if is_last:
                if repair:
                    _truncate(path, good_end)
                return
            raise DataError("not a JSON record", file=path, line=line_no) from None
        if nl < 0:
            # A complete record without its newline: keep it, and terminate it so appends stay separate lines.
            if repair:
                _append_newline(path)
            yield record
            return
        good_end = offset
        yield record


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)


def _append_newline(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(b"\n")


class JsonlAppender:
    """One line per record, written with a single os.write (durable against kill -9 once written)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        written = os.write(self._fd, data)
        while written < len(data):  # regular files take it all at once; be safe anyway
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl_atomic(path: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite a derived file (accepted/rejected) atomically: readers never see half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
