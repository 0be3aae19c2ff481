"""msa_omni.families: the one seam for the student family; no other module names a family."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest
from msa_core import ConfigError
from msa_omni import families

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "packages/msa-omni/src/msa_omni/families"
MARKERS = sorted({m for f in families.FAMILIES.values() for m in f.markers}, key=len, reverse=True)


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def family_names_in(source: str) -> list[tuple[int, str]]:
    """(line, marker) for every identifier or string (docstrings and comments aside) that names a family."""
    docs = _docstring_lines(ast.parse(source))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.NAME, tokenize.STRING) or tok.start[0] in docs:
            continue
        hit = next((m for m in MARKERS if m in tok.string), None)
        if hit:
            found.append((tok.start[0], hit))
    return found


def test_every_family_has_distinct_markers() -> None:
    assert set(families.FAMILY_NAMES) >= {"qwen2.5-omni", "qwen3-omni"}
    for family in families.FAMILIES.values():
        others = {m for f in families.FAMILIES.values() if f is not family for m in f.markers}
        assert not others & set(family.markers), family.name
        assert families.family_of_model_type(family.thinker_model_type) is family
        assert families.family_of_model_type(family.full_model_type) is family
        assert families.family_of_hub_id(family.reference_model) is family


def test_no_module_outside_the_registry_names_a_family() -> None:
    sources = [
        p
        for p in [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("src/**/*.py"), *ROOT.glob("bench/*.py")]
        if REGISTRY not in p.parents
    ]
    assert len(sources) > 30
    offenders = [
        f"{p.relative_to(ROOT)}:{line}: {marker}"
        for p in sources
        for line, marker in family_names_in(p.read_text())
    ]
    assert offenders == []


def test_the_detector_finds_a_class_a_model_type_and_a_template() -> None:
    """The scan above can fail: identifiers and strings are found, docstrings and comments are not."""
    source = (
        '"""Loads Qwen2_5OmniThinkerForConditionalGeneration."""\n'
        "from transformers import Qwen3OmniMoeThinkerForConditionalGeneration  # qwen2_omni\n"
        'TEMPLATE = "qwen3_omni"\n'
        'TYPES = ("qwen2_5_omni_thinker",)\n'
    )
    assert [line for line, _ in family_names_in(source)] == [2, 3, 4]


def test_lookups_and_errors(tmp_path: Path) -> None:
    assert families.get_family("qwen3-omni").moe and not families.get_family("qwen2.5-omni").moe
    with pytest.raises(
        ConfigError, match=r"unknown model family 'llama'; supported: qwen2\.5-omni, qwen3-omni"
    ):
        families.get_family("llama")
    with pytest.raises(ConfigError, match=r"not a Qwen2\.5-Omni thinker or a Qwen3-Omni thinker"):
        families.family_of_config({"model_type": "llama"})
    with pytest.raises(ConfigError, match=r"no config\.json"):
        families.family_of_model(tmp_path)
    assert families.family_of_model("Qwen/Qwen3-Omni-30B-A3B-Instruct").name == "qwen3-omni"


def test_vllm_config_wraps_a_thinker_config() -> None:
    for family in families.FAMILIES.values():
        thinker = {
            "model_type": family.thinker_model_type,
            "architectures": [family.thinker_class],
            "dtype": "float32",
        }
        full = family.vllm_config(thinker)
        assert full["architectures"] == [family.vllm_architecture]
        assert full["model_type"] == family.full_model_type and full["enable_audio_output"] is False
        assert full["thinker_config"] == {"model_type": family.thinker_model_type, "dtype": "float32"}
        assert full["torch_dtype"] == "float32"
