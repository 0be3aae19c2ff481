"""One job per output folder: an advisory lock file holding the holder's process id and command.

``FOLDER/.msa-thinker.lock`` is locked with ``flock`` and holds ``{"pid", "command", "host", "started"}``. The
kernel drops an flock when its process ends, kill -9 included, so the lock is never stuck:

- a second job on the same folder finds the lock held and is refused (FolderLocked), naming the holder's pid and
  command;
- a job that finds the file but not the lock (its writer was killed before it could remove it) takes it over and
  says so;
- a clean exit removes the file.

The lock is advisory: it stops msa-thinker commands from running twice on one folder, not other programs. It is
re-entrant within a process (``msa-rl train`` may lock a folder its stages lock again), and under ``accelerate
launch``/torchrun only rank 0 takes it (every rank runs the same command on the same folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from msa_core.errors import MSAError

LOCK_FILE = ".msa-thinker.lock"

# folder (resolved) -> [open lock file, depth] of the locks this process holds
_HELD: dict[str, list] = {}


class FolderLocked(MSAError):
    """Another live job holds the folder's lock."""

    def __init__(self, folder: Path, holder: dict, option: str):
        self.folder, self.holder = folder, holder
        pid = holder.get("pid", "?")
        command = holder.get("command") or "an unknown command"
        host = holder.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        since = f", since {holder['started']}" if holder.get("started") else ""
        super().__init__(
            f"{folder} is in use by another job: pid {pid}{where} ({command}){since}. Wait for it to finish, "
            f"or choose another {option}"
        )


def current_command() -> str:
    """This process's command line as a user would type it (program name without its folder)."""
    argv = sys.argv or ["python"]
    return shlex.join([Path(argv[0]).name, *argv[1:]])


def _is_worker_rank() -> bool:
    """A non-zero rank of a distributed launch: rank 0 of the same run holds the lock for all of them."""
    return os.environ.get("RANK", "0") not in ("", "0")


def _read_holder(path: Path) -> dict:
    """The holder's record; a holder that has the lock but has not yet written it is waited for briefly."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        if text.strip():
            try:
                record = json.loads(text)
                return record if isinstance(record, dict) else {}
            except json.JSONDecodeError:
                pass
        time.sleep(0.025)
    return {}


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class OutputLock:
    """``with OutputLock(folder, option="--out"): ...`` holds the folder's lock for the block (see module doc).

    ``took_over`` is the record of a killed holder whose lock this one replaced (None otherwise)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        option: str = "--out",
        command: str | None = None,
        warn: Callable[[str], None] = _warn,
        remove_if_empty: bool = False,
    ):
        self.folder = Path(folder)
        # A folder this job created only to hold its lock goes again when the job ends before writing anything
        # (a refusal after the lock leaves no empty folder behind).
        self.remove_if_empty = remove_if_empty
        self.option = option
        self.command = command or current_command()
        self.warn = warn
        self.took_over: dict | None = None
        self._key: str | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    def acquire(self) -> OutputLock:
        if _is_worker_rank():
            return self
        key = str(self.folder.resolve())
        if key in _HELD:  # re-entrant: this process already holds it
            _HELD[key][1] += 1
            self._key = key
            return self
        while True:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise FolderLocked(self.folder, _read_holder(self.path), self.option) from None
            # The file may have been removed (released) between our open and our flock: retry on the new one.
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        handle.seek(0)
        left = handle.read().strip()
        if left:
            try:
                self.took_over = json.loads(left)
            except json.JSONDecodeError:
                self.took_over = {}
            if not isinstance(self.took_over, dict):
                self.took_over = {}
            pid = self.took_over.get("pid", "?")
            command = self.took_over.get("command") or "an unknown command"
            self.warn(
                f"took over the lock of {self.folder} from pid {pid} ({command}), which ended without releasing "
                "it (killed?); its partial output stays and is resumed or replaced as the command does"
            )
        record = {
            "pid": os.getpid(),
            "command": self.command,
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        _HELD[key] = [handle, 1]
        self._key = key
        return self

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None or key not in _HELD:
            return
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[key]
        handle = entry[0]
        with contextlib.suppress(OSError):  # before unlocking: a waiter then sees a new file (inode check)
            self.path.unlink(missing_ok=True)
        handle.close()
        if self.remove_if_empty:
            with contextlib.suppress(OSError):  # not empty (or gone): it stays as it is
                self.folder.rmdir()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(folder: str | Path) -> dict | None:
    """The record of the live job holding ``folder``'s lock, or None when nobody holds it."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


__all__ = ["LOCK_FILE", "FolderLocked", "OutputLock", "current_command", "holder"]
