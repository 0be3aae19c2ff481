"""The one output-path check every writing command runs before any work: a file in the way, a folder under a
file, a missing parent that cannot be made or a read-only place is a one-line OutputPathError (exit 2) naming the
path and the option (instead of an OSError traceback half-way through a run).

``claim_output_dir`` adds the folder's advisory lock (msa_core.lock) for the commands that run one job per folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from msa_core.errors import OutputPathError


def ensure_writable_dir(path: str | Path, option: str = "--out") -> Path:
    """Create ``path`` (with parents) and check that files can be written there; return it.

    ``option`` is how the user named the path (``--out``, ``OUT_DIR``, ``output_dir``): the message names it."""
    path = Path(path).expanduser()
    _check_ancestors(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f"cannot create the {option} folder ({exc.strerror or exc}); choose a writable {option}",
            file=path,
        ) from None
    _probe(path, option)
    return path


def check_writable_dir(path: str | Path, option: str = "--out") -> Path:
    """The same check as ``ensure_writable_dir`` for a command that reads its inputs first and must leave no
    trace when they are bad: the folders it had to create for the check are removed again."""
    path = Path(path).expanduser()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        ensure_writable_dir(path, option)
    finally:
        for folder in missing:  # deepest first; only the empty folders made just now
            with contextlib.suppress(OSError):
                folder.rmdir()
    return path


def _check_ancestors(path: Path, option: str) -> None:
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"is under {parent}, which is a file"
            raise OutputPathError(f"{option} {where}, not a folder; choose another {option}", file=path)
        if parent.exists():
            break


def _probe(path: Path, option: str) -> None:
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} folder is not writable; choose a writable {option}", file=path)
    try:  # os.access can be wrong (root, ACLs, read-only mounts): try for real
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(
            f"cannot write into the {option} folder ({exc.strerror or exc}); choose a writable {option}",
            file=path,
        ) from None


def ensure_writable_file(path: str | Path, option: str) -> Path:
    """An output file: its folder is checked as above, and the path itself must not be a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"{option} is a folder, not a file; choose another {option}", file=path)
    try:
        ensure_writable_dir(path.parent, option)
    except OutputPathError as exc:  # name the file the user gave, not its folder
        raise OutputPathError(exc.reason, file=path) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{option} file is not writable; choose a writable {option}", file=path)
    return path


def claim_output_dir(path: str | Path, option: str = "--out", *, command: str | None = None):
    """Check ``path`` as ``ensure_writable_dir`` does, then hold its advisory lock (one job per output folder).

    A context manager: ``with claim_output_dir(out, "--out"): ...``. See msa_core.lock."""
    from msa_core.lock import OutputLock

    existed = Path(path).exists()
    return OutputLock(
        ensure_writable_dir(path, option), option=option, command=command, remove_if_empty=not existed
    )


def clear_own_folder(path: str | Path, made_by: str, marker: str, option: str = "--out") -> None:
    """Empty a folder for ``--fresh``, but only one this command made (it holds ``marker``) or an empty one:
    anything else is refused, naming a file this command did not make. The folder's lock file stays."""
    from msa_core.lock import LOCK_FILE

    path = Path(path)
    if not path.is_dir():
        return
    entries = [p for p in sorted(path.iterdir()) if p.name != LOCK_FILE]
    if entries and not (path / marker).exists():
        raise OutputPathError(
            f"--fresh would delete files {made_by} did not make (e.g. {entries[0].name}); choose another {option}",
            file=path,
        )
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
