"""The one prompt builder: parameterised by the spec's range and rule, identical for identical inputs."""

from __future__ import annotations

from msa_core import PROMPT_VERSION, SYSTEM_PROMPT, build_prompt, chat_messages, get_spec


def test_prompt_states_range_and_rule() -> None:
    sims = build_prompt("I love it", get_spec("sims"))
    assert sims.system == SYSTEM_PROMPT
    assert sims.version == PROMPT_VERSION
    assert 'Transcript: "I love it"' in sims.user
    assert "from -1 (strongly negative) to 1 (strongly positive)" in sims.user
    assert get_spec("sims").polarity_rule_text() in sims.user
    mosi = build_prompt("I love it", get_spec("mosi"))
    assert "from -3 (strongly negative) to 3 (strongly positive)" in mosi.user
    assert "at or above -0.5" in mosi.user
    assert "<polarity>" in mosi.user and "<think>" in mosi.user and "<score>" in mosi.user


def test_prompt_is_deterministic_and_normalises_whitespace() -> None:
    a = build_prompt("  so\n  boring\t today ", get_spec("sims"))
    b = build_prompt("so boring today", get_spec("sims"))
    assert a == b
    assert 'Transcript: "so boring today"' in a.user


def test_extra_instruction_appended() -> None:
    base = build_prompt("fine", get_spec("mosi"))
    extra = build_prompt("fine", get_spec("mosi"), extra_instruction="  Be brief.  ")
    assert extra.user == base.user + "\nBe brief."
    assert extra.system == base.system


def test_chat_messages_layout() -> None:
    prompt = build_prompt("hello", get_spec("sims"))
    msgs = chat_messages(prompt, video="clip.mp4")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == [{"type": "text", "text": prompt.system}]
    assert msgs[1]["content"] == [
        {"type": "video", "video": "clip.mp4"},
        {"type": "text", "text": prompt.user},
    ]
    both = chat_messages(prompt, video="v.mp4", audio="a.wav")[1]["content"]
    assert [p["type"] for p in both] == ["video", "audio", "text"]
    text_only = chat_messages(prompt)[1]["content"]
    assert text_only == [{"type": "text", "text": prompt.user}]
