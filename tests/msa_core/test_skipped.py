"""skipped.jsonl: clips left out of a run, counted by reason, kept per dataset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from msa_core import DataError, MediaError
from msa_core.outdir import ensure_writable_dir
from msa_core.skipped import SKIPPED_FILE, Skip, counts, describe, media_reason, read_skipped, write_skipped


def _skips(dataset: str, *reasons: str) -> list[Skip]:
    return [Skip(f"v$_${i}", dataset, f"/d/Raw/v/{i}.mp4", r) for i, r in enumerate(reasons)]


def test_write_replaces_one_datasets_records_and_keeps_the_others(tmp_path: Path) -> None:
    write_skipped(tmp_path, "sims", _skips("sims", "missing", "unreadable"))
    write_skipped(tmp_path, "mosi", _skips("mosi", "no_audio"))
    write_skipped(tmp_path, "sims", _skips("sims", "missing"))
    assert [s.reason for s in read_skipped(tmp_path, "sims")] == ["missing"]
    assert [s.reason for s in read_skipped(tmp_path / SKIPPED_FILE, "mosi")] == ["no_audio"]
    write_skipped(tmp_path, "sims", [])
    write_skipped(tmp_path, "mosi", [])
    assert not (tmp_path / SKIPPED_FILE).exists()


def test_describe_counts_by_reason_with_the_first_paths() -> None:
    skips = _skips("sims", "unreadable", "missing", "missing", "missing", "missing")
    assert counts(skips) == {"missing": 4, "unreadable": 1}
    text = describe(skips)
    assert text.startswith("missing 4 (/d/Raw/v/1.mp4, /d/Raw/v/2.mp4, /d/Raw/v/3.mp4, …)")
    assert text.endswith("unreadable 1 (/d/Raw/v/0.mp4)")
    assert describe(skips, paths=False) == "missing 4, unreadable 1"


def test_media_reasons() -> None:
    assert media_reason(MediaError("no audio track", file="x")) == "no_audio"
    assert media_reason(MediaError("cannot decode media (corrupt or truncated): x", file="x")) == "unreadable"
    assert media_reason(MediaError("file not found", file="x")) == "missing"


def test_a_bad_record_names_its_line(tmp_path: Path) -> None:
    (tmp_path / SKIPPED_FILE).write_text(
        '{"id": "a", "dataset": "sims", "path": "p", "reason": "missing"}\n{}\n'
    )
    with pytest.raises(DataError, match="line 2"):
        read_skipped(tmp_path)


def test_ensure_writable_dir(tmp_path: Path) -> None:
    assert ensure_writable_dir(tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="--out is a file") as info:
        ensure_writable_dir(tmp_path / "f")
    assert info.value.file == str(tmp_path / "f")
    with pytest.raises(DataError, match=re.escape(f"--to is under {tmp_path / 'f'}, which is a file")):
        ensure_writable_dir(tmp_path / "f" / "g", "--to")
