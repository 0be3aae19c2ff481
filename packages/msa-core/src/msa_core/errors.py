"""Errors shared by every msa-thinker package. Each names the file (and line/column) or field at fault."""

from __future__ import annotations

from pathlib import Path


class MSAError(Exception):
    """Base class: a user-facing error with a message that says what to fix."""


class DataError(MSAError, ValueError):
    """Bad input data: a malformed CSV row, a missing or corrupt media file, a bad dataset spec."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ):
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column:
            where.append(f"column {column!r}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
        self.reason = message


class MediaError(DataError):
    """A video/audio file that cannot be used: no audio track, zero length, corrupt container."""


class ConfigError(MSAError, ValueError):
    """A configuration file or override with an unknown key or a bad value."""
