"""Output folders checked before any work: a file, a folder under a file or a read-only folder is a one-line
DataError naming the path and what to do (instead of an OSError traceback half-way through a run)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from msa_core.errors import DataError


def ensure_writable_dir(path: str | Path, option: str = "--out") -> Path:
    """Create ``path`` (with parents) and check that files can be written there; return it."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"is under {parent}, which is a file"
            raise DataError(f"{option} {where}, not a folder; choose another {option}", file=path)
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the {option} folder ({exc.strerror or exc}); choose a writable {option}",
            file=path,
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataError(f"{option} folder is not writable; choose a writable {option}", file=path)
    try:  # os.access can be wrong (root, ACLs, read-only mounts): try for real
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(
            f"cannot write into the {option} folder ({exc.strerror or exc}); choose a writable {option}",
            file=path,
        ) from None
    return path
