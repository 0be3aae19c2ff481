from __future__ import annotations

import json
from pathlib import Path

import pytest
from cot_distill.cache import JsonlAppender, read_jsonl, request_key
from msa_core import DataError

BASE = dict(
    clip_id="v$_$1",
    media_hash="m",
    prompt_version="dc-v1+teacher-v1",
    system="s",
    user="u",
    model="teacher",
    sampling={"temperature": 0.7},
    sample=0,
    attempt=0,
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("clip_id", "v$_$2"),
        ("media_hash", "m2"),
        ("prompt_version", "dc-v1+teacher-v2"),
        ("system", "s2"),
        ("user", "u2"),
        ("model", "other"),
        ("sampling", {"temperature": 0.8}),
        ("sample", 1),
        ("attempt", 1),
    ],
)
def test_request_key_covers_every_component(field: str, value: object):
    assert request_key(**BASE) == request_key(**BASE)
    assert request_key(**{**BASE, field: value}) != request_key(**BASE)


def test_appender_lines_are_on_disk_before_close(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    store = JsonlAppender(path)
    store.append({"a": 1})
    store.append({"b": "é"})
    assert [json.loads(x) for x in path.read_text("utf-8").splitlines()] == [{"a": 1}, {"b": "é"}]
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.append({"c": 3})


def test_torn_last_line_is_skipped_and_cut(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n{"c": 3, "d": [1, 2')
    assert list(read_jsonl(path)) == [{"a": 1}, {"b": 2}]
    assert path.read_text().endswith("[1, 2")  # untouched without repair
    assert list(read_jsonl(path, repair=True)) == [{"a": 1}, {"b": 2}]
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'
    with JsonlAppender(path) as store:
        store.append({"e": 5})
    assert list(read_jsonl(path)) == [{"a": 1}, {"b": 2}, {"e": 5}]


def test_complete_last_line_without_newline_is_kept(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}')
    assert list(read_jsonl(path, repair=True)) == [{"a": 1}, {"b": 2}]
    with JsonlAppender(path) as store:
        store.append({"c": 3})
    assert list(read_jsonl(path)) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(DataError, match="line 2") as err:
        list(read_jsonl(path))
    assert str(path) in str(err.value)
    assert list(read_jsonl(tmp_path / "absent.jsonl")) == []
