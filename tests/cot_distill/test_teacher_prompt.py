from __future__ import annotations

import re
from pathlib import Path

import pytest
from cot_distill.teacher_prompt import dc_regex, load_teacher_prompt, score_regex
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
    assert re.fullmatch(dc_regex(spec), answer)
    assert not re.fullmatch(dc_regex(spec), "Sure! " + answer)
    assert DCOutput.parse_strict(answer, spec).score == -0.6


# Scores a constrained decoder may write, per scale; the regex must take exactly the in-range ones.
_IN = {
    "sims": ["0", "-0", "1", "-1", "1.0", "-1.0000", "0.5", "-0.6", "0.1234", "-0.9999", "0.0", "1.00"],
    "mosi": ["0", "3", "-3", "2.9999", "-3.0", "3.0000", "-2.5", "1", "-0.25", "2.4", "0.3333"],
}
_OUT = {
    "sims": [
        "-8",
        "66.3",
        "1.01",
        "-1.5",
        "2",
        "10",
        "1.0001",
        "-1.00001",
        "01",
        "0.12345",
        ".5",
        "1.",
        "+0.5",
        "-",
        "",
        "0.5.1",
        "1e0",
        "- 1",
        "nan",
        "inf",
        "-0.1 ",
    ],
    "mosi": ["4", "-4", "3.5", "-3.01", "3.00001", "30", "-10", "003", "2.71828", "+1", "3.", "-3.0001"],
}


@pytest.mark.parametrize("name", ["sims", "simsv2", "mosi", "mosei"])
def test_score_regex_keeps_the_score_on_the_dataset_scale(name):
    spec = get_spec(name)
    family = "sims" if spec.score_max == 1 else "mosi"
    pattern = re.compile(score_regex(spec.score_min, spec.score_max))
    for s in _IN[family]:
        assert pattern.fullmatch(s), f"{name}: {s!r} is on the scale but rejected"
        assert spec.score_min <= float(s) <= spec.score_max
    for s in _OUT[family]:
        assert not pattern.fullmatch(s), f"{name}: {s!r} accepted"


def test_score_regex_other_scales_and_every_two_decimal_value():
    # [0, 5] (a one-sided scale), [-7, -2] (all negative) and a non-integer bound widened to the integers around.
    pos, neg = re.compile(score_regex(0, 5)), re.compile(score_regex(-7, -2))
    assert pos.fullmatch("0") and pos.fullmatch("4.75") and pos.fullmatch("5.0")
    assert not (pos.fullmatch("-1") or pos.fullmatch("5.5") or pos.fullmatch("6"))
    assert neg.fullmatch("-2") and neg.fullmatch("-6.99") and neg.fullmatch("-7.0")
    assert not (neg.fullmatch("-1.5") or neg.fullmatch("0") or neg.fullmatch("-7.5") or neg.fullmatch("3"))
    assert re.fullmatch(score_regex(-1.5, 1.5), "2") and not re.fullmatch(score_regex(-1.5, 1.5), "2.5")
    # Exhaustive on a grid: every 2-decimal string in [-4, 4] is matched iff it is in [-3, 3].
    mosi = re.compile(score_regex(-3, 3))
    for k in range(-400, 401):
        s = f"{k / 100:.2f}"
        assert bool(mosi.fullmatch(s)) == (-3 <= k / 100 <= 3), s


def test_dc_regex_rejects_off_scale_answers():
    spec = get_spec("sims")
    ok = DCOutput(polarity="positive", think="Warm voice.", score=0.8).render()
    assert re.fullmatch(dc_regex(spec), ok)
    for bad in ("-8", "66.3", "1.5"):
        assert not re.fullmatch(dc_regex(spec), ok.replace("0.8", bad))
    assert re.fullmatch(dc_regex(get_spec("mosi")), ok.replace("0.8", "-2.6"))
    # The reasoning length follows the filter's bounds.
    bounded = re.compile(dc_regex(spec, 5, 11))
    assert bounded.fullmatch(ok) and not bounded.fullmatch(
        ok.replace("Warm voice.", "Warm voice, and smiles.")
    )
    assert not bounded.fullmatch(ok.replace("Warm voice.", "Warm"))
    with pytest.raises(ConfigError, match="not a range"):
        dc_regex(spec, 10, 5)
