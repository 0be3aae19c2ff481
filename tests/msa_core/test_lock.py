"""One job per output folder (msa_core.lock): a second real process is refused with the holder's pid and command,
a lock left by a process killed with SIGKILL is taken over (saying so), and a clean exit removes the lock file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from msa_core.lock import LOCK_FILE, FolderLocked, OutputLock, holder
from msa_core.outdir import claim_output_dir


def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path, lock_holder) -> None:
    proc = lock_holder(tmp_path, "cot-distill generate --out runs/x")
    with pytest.raises(FolderLocked) as info:
        OutputLock(tmp_path, option="--out").acquire()
    message = str(info.value)
    assert f"pid {proc.pid}" in message
    assert "(cot-distill generate --out runs/x)" in message
    assert str(tmp_path) in message and "another --out" in message
    assert info.value.exit_code == 1
    assert holder(tmp_path)["pid"] == proc.pid
    # the refused process did not disturb the holder's record
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == proc.pid


def test_the_lock_is_free_again_after_the_holder_ends(tmp_path: Path, lock_holder) -> None:
    proc = lock_holder(tmp_path)
    proc.stdin.close()
    proc.wait(timeout=10)
    assert not (tmp_path / LOCK_FILE).exists()  # released cleanly: the file is gone
    assert holder(tmp_path) is None
    warnings: list[str] = []
    with OutputLock(tmp_path, warn=warnings.append) as lock:
        assert lock.took_over is None and warnings == []
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_stale_lock_after_kill_9_is_taken_over_saying_so(tmp_path: Path, lock_holder) -> None:
    proc = lock_holder(tmp_path, "msa-rl grpo --config g.yaml")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert (tmp_path / LOCK_FILE).is_file()  # the killed process could not remove it
    assert holder(tmp_path) is None  # but nobody holds it
    warnings: list[str] = []
    with OutputLock(tmp_path, command="msa-rl grpo again", warn=warnings.append) as lock:
        assert lock.took_over is not None and lock.took_over["pid"] == proc.pid
        assert len(warnings) == 1
        assert f"pid {proc.pid} (msa-rl grpo --config g.yaml)" in warnings[0]
        assert "took over" in warnings[0]
        record = json.loads((tmp_path / LOCK_FILE).read_text())
        assert (record["pid"], record["command"]) == (os.getpid(), "msa-rl grpo again")


def test_re_entrant_within_a_process(tmp_path: Path) -> None:
    with OutputLock(tmp_path), OutputLock(tmp_path):
        assert (tmp_path / LOCK_FILE).is_file()
    assert not (tmp_path / LOCK_FILE).exists()


def test_worker_ranks_leave_the_lock_to_rank_0(tmp_path: Path, lock_holder, monkeypatch) -> None:
    lock_holder(tmp_path)
    monkeypatch.setenv("RANK", "1")
    with OutputLock(tmp_path):  # not refused: rank 0 of the same launch holds it
        pass
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(FolderLocked):
        OutputLock(tmp_path).acquire()


def test_claim_checks_the_path_first(tmp_path: Path) -> None:
    from msa_core import OutputPathError

    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(OutputPathError) as info, claim_output_dir(f / "sub", "output_dir"):
        pass
    assert info.value.exit_code == 2
    assert str(f / "sub") in str(info.value) and "output_dir" in str(info.value)
