"""msa_core.artifacts owns every stage hand-off: no other module spells a stage artifact's file name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from msa_core import DataError, artifacts

ROOT = Path(__file__).resolve().parents[2]
NAMES = {
    v
    for k, v in vars(artifacts).items()
    if k.isupper() and isinstance(v, str) and "." in v and not v.startswith(".") and k != "PREDICTION_SUFFIX"
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_the_names_cover_every_hand_off() -> None:
    for name in (
        "accepted.jsonl",
        "export.json",
        "dataset_info.json",
        "grpo_config.yaml",
        "sft_config.yaml",
        "metrics.jsonl",
        "predict.json",
        "media.json",
        "responses.jsonl",
    ):
        assert name in NAMES


def test_no_stage_spells_another_stages_file_name() -> None:
    offenders = []
    sources = [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("src/**/*.py")]
    assert len(sources) > 30
    for path in sources:
        if path.name == "artifacts.py":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                text = node.value
                if any(text == n or text.endswith("/" + n) for n in NAMES):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    assert offenders == []


def test_the_detector_finds_a_literal(tmp_path: Path) -> None:
    """The scan above can fail: a literal file name is found in source text."""
    tree = ast.parse('path = out / "accepted.jsonl"\n')
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in NAMES]
    assert found == ["accepted.jsonl"]


def test_lf_record_round_trips_through_the_reader(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")
    record = artifacts.lf_record("c1", "SYS", "Rate it.", "<polarity>positive</polarity>", "v.mp4", "a.wav")
    (tmp_path / "d.json").write_text(__import__("json").dumps([record]))
    (tmp_path / artifacts.LF_DATASET_INFO).write_text(
        __import__("json").dumps({"d": artifacts.lf_dataset_info_entry("d.json")})
    )
    [rec] = artifacts.read_lf_dataset(tmp_path, "d")
    assert (rec.id, rec.system, rec.user, rec.answer) == (
        "c1",
        "SYS",
        "Rate it.",
        "<polarity>positive</polarity>",
    )
    assert rec.video == (tmp_path / "v.mp4").resolve() and rec.audio == (tmp_path / "a.wav").resolve()
    (tmp_path / "a.wav").unlink()
    with pytest.raises(DataError, match=r"missing audio file a\.wav"):
        artifacts.read_lf_dataset(tmp_path, "d")
    with pytest.raises(DataError, match=r"'other' not in dataset_info\.json"):
        artifacts.read_lf_dataset(tmp_path, "other")
