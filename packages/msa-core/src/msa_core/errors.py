"""Errors shared by every msa-thinker package. Each names the file (and line/column) or field at fault."""

from __future__ import annotations

from pathlib import Path


class MSAError(Exception):
    """Base class: a user-facing error with a message that says what to fix.

    ``exit_code`` is the status a CLI exits with: 1 (the work failed or was refused), 2 for a usage error (an
    option or path that cannot work, like typer's own bad-option errors)."""

    exit_code = 1


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


class OutputPathError(DataError):
    """An output path that cannot be written (a file in the way, a read-only place, a parent that is a file):
    a usage error, found before any work."""

    exit_code = 2


class UsageError(MSAError, ValueError):
    """An option value that cannot work (a --baseline that names no run): exit 2, like typer's own checks."""

    exit_code = 2


class ConfigError(MSAError, ValueError):
    """A configuration file or override with an unknown key or a bad value."""


def exit_code_of(exc: BaseException) -> int:
    """The status a CLI exits with for ``exc`` (1 unless the error says otherwise)."""
    return getattr(exc, "exit_code", 1)
