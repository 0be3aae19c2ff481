"""DCOutput: strict parsing with every reason code, render/parse round trip, lenient recovery."""

from __future__ import annotations

import pytest
from msa_core import DCOutput, DCParseError, get_spec

GOOD = (
    "<polarity>positive</polarity><think>The voice is bright and the face smiles.</think><score>0.6</score>"
)


def test_parse_strict_valid() -> None:
    out = DCOutput.parse_strict(GOOD, get_spec("sims"))
    assert out.polarity == "positive"
    assert out.think == "The voice is bright and the face smiles."
    assert out.score == 0.6


def test_parse_strict_allows_whitespace_around_tags() -> None:
    text = (
        "\n  <polarity> negative </polarity>\n<think>\n line one\n line two\n</think>\n"
        " <score> -2.5e0 </score>\n"
    )
    out = DCOutput.parse_strict(text, get_spec("mosi"))
    assert (out.polarity, out.think, out.score) == ("negative", "line one\n line two", -2.5)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<think>x</think><score>0.1</score>", "tag_count:polarity"),
        ("<polarity>neutral</polarity><score>0.1</score>", "tag_count:think"),
        ("<polarity>neutral</polarity><think>x</think>", "tag_count:score"),
        (
            "<polarity>neutral</polarity><think>x</think><score>0.1</score><score>0.2</score>",
            "tag_count:score",
        ),
        (
            "<polarity>neutral</polarity><polarity>neutral</polarity><think>x</think><score>0</score>",
            "tag_count:polarity",
        ),
        ("<polarity>neutral</polarity><think>x<think>y</think><score>0</score>", "tag_count:think"),
        ("<polarity>neutral<think>x</think><score>0</score>", "tag_count:polarity"),  # unclosed
        ("<think>x</think><polarity>neutral</polarity><score>0</score>", "tag_order"),
        ("<polarity>neutral</polarity><score>0</score><think>x</think>", "tag_order"),
        ("Answer: <polarity>neutral</polarity><think>x</think><score>0</score>", "extra_text"),
        ("<polarity>neutral</polarity><think>x</think><score>0</score> Done.", "extra_text"),
        ("<polarity>neutral</polarity> so <think>x</think><score>0</score>", "extra_text"),
        ("<polarity>Positive</polarity><think>x</think><score>0.5</score>", "bad_polarity"),
        ("<polarity>POSITIVE</polarity><think>x</think><score>0.5</score>", "bad_polarity"),
        ("<polarity>good</polarity><think>x</think><score>0.5</score>", "bad_polarity"),
        ("<polarity>very positive</polarity><think>x</think><score>0.5</score>", "bad_polarity"),
        ("<polarity>positive</polarity><think></think><score>0.5</score>", "empty_think"),
        ("<polarity>positive</polarity><think> \n\t </think><score>0.5</score>", "empty_think"),
        ("<polarity>positive</polarity><think>x</think><score>high</score>", "bad_score"),
        ("<polarity>positive</polarity><think>x</think><score>nan</score>", "bad_score"),
        ("<polarity>positive</polarity><think>x</think><score>inf</score>", "bad_score"),
        ("<polarity>positive</polarity><think>x</think><score>1e999</score>", "bad_score"),
        ("<polarity>positive</polarity><think>x</think><score>0.5 points</score>", "bad_score"),
        ("<polarity>positive</polarity><think>x</think><score></score>", "bad_score"),
        ("<polarity>positive</polarity><think>x</think><score>1.5</score>", "score_out_of_range"),
        ("<polarity>negative</polarity><think>x</think><score>-1.01</score>", "score_out_of_range"),
    ],
)
def test_parse_strict_reasons(text: str, reason: str) -> None:
    with pytest.raises(DCParseError) as info:
        DCOutput.parse_strict(text, get_spec("sims"))
    assert info.value.reason == reason


def test_not_text() -> None:
    with pytest.raises(DCParseError) as info:
        DCOutput.parse_strict(None)  # type: ignore[arg-type]
    assert info.value.reason == "not_text"


def test_range_only_with_spec() -> None:
    text = "<polarity>positive</polarity><think>x</think><score>2.5</score>"
    assert DCOutput.parse_strict(text).score == 2.5  # no spec: no range check
    assert DCOutput.parse_strict(text, get_spec("mosi")).score == 2.5
    with pytest.raises(DCParseError, match="score_out_of_range"):
        DCOutput.parse_strict(text, get_spec("sims"))
    edge = "<polarity>positive</polarity><think>x</think><score>1.0</score>"
    assert DCOutput.parse_strict(edge, get_spec("sims")).score == 1.0  # range edges are inclusive


@pytest.mark.parametrize("score", [0.0, -0.0, 1.0, -1.0, 0.25, -0.6667, 2.4, -3.0, 1e-5])
def test_render_parse_round_trip(score: float) -> None:
    out = DCOutput(polarity="neutral", think="  Text is flat; voice calm.\nFace neutral.  ", score=score)
    text = out.render()
    assert text.startswith("<polarity>neutral</polarity><think>Text is flat")
    back = DCOutput.parse_strict(text)
    assert back.polarity == out.polarity
    assert back.think == out.think.strip()
    assert back.score == pytest.approx(round(score, 4), abs=1e-12)
    assert back.render() == text  # canonical: rendering is a fixed point


def test_render_formats() -> None:
    assert DCOutput(polarity="positive", think="t", score=0.5).render().endswith("<score>0.5</score>")
    assert DCOutput(polarity="positive", think="t", score=2.0).render().endswith("<score>2</score>")
    assert DCOutput(polarity="neutral", think="t", score=-0.00001).render().endswith("<score>0</score>")
    assert (
        DCOutput(polarity="positive", think="t", score=0.5).render(decimals=2).endswith("<score>0.50</score>")
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"polarity": "positive", "think": "   ", "score": 0.1},
        {"polarity": "positive", "think": "x", "score": float("nan")},
        {"polarity": "good", "think": "x", "score": 0.1},
    ],
)
def test_model_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DCOutput(**kwargs)


def test_lenient_strict_ok() -> None:
    res = DCOutput.parse_lenient(GOOD, get_spec("sims"))
    assert (res.status, res.reason, res.polarity, res.score) == ("ok", "strict", "positive", 0.6)


@pytest.mark.parametrize(
    ("text", "polarity", "score", "how"),
    [
        # capitalised polarity: strict rejects, lenient normalises it
        ("<polarity>Positive</polarity><think>x</think><score>0.4</score>", "positive", 0.4, "score_tag"),
        # words around the score inside the tag
        (
            "<polarity>negative</polarity><think>x</think><score>about -0.6</score>",
            "negative",
            -0.6,
            "score_tag",
        ),
        # generation cut off inside the score tag
        ("<polarity>negative</polarity><think>sad voice</think><score>-0.8", "negative", -0.8, "last_number"),
        # unterminated upper-case score tag
        ("<polarity>negative</polarity><think>sad voice</think><SCORE>-0.2", "negative", -0.2, "last_number"),
        # no tags at all: the polarity word and the last number after the reasoning
        ("I think it is neutral. Score: 0.0", "neutral", 0.0, "last_number"),
        # text after the tags
        (GOOD + " Hope this helps!", "positive", 0.6, "score_tag"),
    ],
)
def test_lenient_recovers(text: str, polarity: str, score: float, how: str) -> None:
    res = DCOutput.parse_lenient(text, get_spec("sims"))
    assert res.status == "recovered"
    assert res.polarity == polarity
    assert res.score == pytest.approx(score)
    assert res.reason.startswith(how) and "strict:" in res.reason


def test_lenient_clips_out_of_range() -> None:
    res = DCOutput.parse_lenient(
        "<polarity>positive</polarity><think>x</think><score>4.2</score>", get_spec("mosi")
    )
    assert res.status == "recovered" and res.score == 3.0 and "clipped" in res.reason
    assert "score_out_of_range" in res.reason


@pytest.mark.parametrize(
    "text",
    [
        "<polarity>positive</polarity><think>no number here</think><score>high</score>",
        "<polarity>positive</polarity><think>x</think><score>nan</score>",
        "",
        "<polarity>positive</polarity><think>x</think><score>1e999</score>",
    ],
)
def test_lenient_failure(text: str) -> None:
    res = DCOutput.parse_lenient(text, get_spec("sims"))
    assert res.status == "failed"
    assert res.score is None
    assert res.reason.startswith("no_score")


def test_lenient_failure_keeps_polarity_and_non_text() -> None:
    res = DCOutput.parse_lenient("<polarity>negative</polarity><think>x</think>", get_spec("sims"))
    assert (res.status, res.polarity, res.think) == ("failed", "negative", "x")
    assert "tag_count:score" in res.reason
    assert DCOutput.parse_lenient(42).reason == "not_text"  # type: ignore[arg-type]
