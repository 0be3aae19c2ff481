from __future__ import annotations

import re
from pathlib import Path

import pytest
from cot_distill.teacher_prompt import DC_REGEX, load_teacher_prompt
from msa_core import PROMPT_VERSION, ConfigError, DCOutput, build_prompt, get_spec


def test_default_prompt_is_versioned_and_built_by_msa_core():
    teacher = load_teacher_prompt()
    assert teacher.version == "teacher-v1"
    assert teacher.full_version == f"{PROMPT_VERSION}+teacher-v1"
    spec = get_spec("mosi")
    prompt = teacher.build("It was  fine, I guess.", spec)
    shared = build_prompt("It was  fine, I guess.", spec)
    assert prompt.system == shared.system
    assert prompt.user.startswith(shared.user)  # the one prompt, plus the teacher instruction
    assert teacher.instruction.strip() in prompt.user
    assert "-3" in prompt.user and "3" in prompt.user and "It was fine, I guess." in prompt.user
    for cue in ("text", "audio", "visual"):
        assert cue in prompt.user
    assert prompt.version == teacher.full_version


def test_unknown_key_and_missing_file_are_config_errors(tmp_path: Path):
    bad = tmp_path / "t.yaml"
    bad.write_text("version: t1\ninstruction: hi\ntemperature: 3\n")
    with pytest.raises(ConfigError, match="temperature: unknown key"):
        load_teacher_prompt(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_teacher_prompt(tmp_path / "absent.yaml")


def test_relative_path_resolves_next_to_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "mine.yaml").write_text("version: mine-1\ninstruction: Be brief.\n")
    monkeypatch.chdir(Path("/"))
    assert load_teacher_prompt("mine.yaml", relative_to=tmp_path).version == "mine-1"


def test_structured_output_regex_accepts_canonical_answers():
    spec = get_spec("sims")
    answer = DCOutput(polarity="negative", think="The voice is low and the face frowns.", score=-0.6).render()
    assert re.fullmatch(DC_REGEX, answer)
    assert not re.fullmatch(DC_REGEX, "Sure! " + answer)
    assert DCOutput.parse_strict(answer, spec).score == -0.6
