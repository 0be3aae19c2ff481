from __future__ import annotations

import pytest
from cot_distill.config import FilterConfig
from cot_distill.filters import AnswerFilter, judge_reason, reason_group
from msa_core import DCOutput, get_spec

SIMS = get_spec("sims")
GOOD = (
    "The words of the transcript sound pleased. The voice is warm and its pitch rises. "
    "Overall the sentiment is positive."
)


def answer(polarity: str = "positive", think: str = GOOD, score: str = "0.6") -> str:
    return f"<polarity>{polarity}</polarity><think>{think}</think><score>{score}</score>"


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        (answer(), 0.8, None),
        ("Sure. " + answer(), 0.8, "format:extra_text"),
        (answer().replace("</think>", ""), 0.8, "format:tag_count:think"),
        (answer(score="1.7"), 0.8, "format:score_out_of_range"),
        (
            answer(polarity="negative", score="-0.6", think=GOOD.replace("positive", "negative")),
            0.8,
            "polarity_tag",
        ),
        (answer(score="-0.4"), 0.8, "polarity_score"),
        (answer(score="0.05"), 0.8, "polarity_score"),  # neutral band (-0.1, 0.1]
        (answer(think="Positive."), 0.8, "think_too_short"),
        (answer(think=GOOD * 40), 0.8, "think_too_long"),
        (
            answer(think="The words of the transcript sound pleased and upbeat. Overall it is positive."),
            0.8,
            "few_modalities",
        ),
        (answer(think=GOOD.replace("is positive.", "is negative.")), 0.8, "conclusion_contradicts"),
        (answer(think=GOOD.replace("is positive.", "is not negative but positive.")), 0.8, None),
    ],
)
def test_every_rule_reason(text: str, label: float, reason: str | None):
    verdict = AnswerFilter(FilterConfig(), SIMS).check(text, label)
    assert verdict.reason == reason
    assert verdict.ok is (reason is None)


def test_reason_groups_and_reask_policy():
    assert [
        reason_group(r)
        for r in (
            "format:bad_score",
            "polarity_tag",
            "polarity_score",
            "few_modalities",
            "think_too_short",
            "conclusion_contradicts",
            "judge_implausible",
        )
    ] == ["format", "polarity", "polarity", "plausibility", "plausibility", "plausibility", "judge"]
    filt = AnswerFilter(FilterConfig(), SIMS)
    assert filt.reasks(filt.check("nope", 0.8))
    assert filt.reasks(filt.check(answer(score="-0.4"), 0.8))
    assert not filt.reasks(filt.check(answer(think="Positive."), 0.8))
    assert not filt.reasks(filt.check(answer(), 0.8))


def test_keyword_lists_and_bounds_are_configurable():
    cfg = FilterConfig(
        min_modalities=1,
        min_think_chars=5,
        modality_keywords={"text": ["transcript"], "audio": ["voice"], "visual": ["face"]},
        check_conclusion=False,
    )
    filt = AnswerFilter(cfg, SIMS)
    assert filt.modalities_named("The transcript and the VOICE agree; the faces too.") == [
        "text",
        "audio",
        "visual",
    ]
    assert filt.check(answer(think="The voice sounds happy. Overall negative."), 0.8).ok
    strict = AnswerFilter(FilterConfig(min_modalities=3), SIMS)
    assert strict.check(answer(), 0.8).reason == "few_modalities"


def test_accepted_answer_carries_the_true_score():
    parsed = AnswerFilter(FilterConfig(), SIMS).check(answer(score="0.6"), 0.8).parsed
    rendered = AnswerFilter.with_true_score(parsed, 0.8)
    out = DCOutput.parse_strict(rendered, SIMS)
    assert out.score == 0.8 and out.polarity == "positive" and out.think == GOOD


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("PLAUSIBLE", None),
        ("plausible.", None),
        ("IMPLAUSIBLE", "judge_implausible"),
        ("I am not sure", "judge_unclear"),
        (None, "judge_missing"),
    ],
)
def test_judge_verdicts(reply: str | None, reason: str | None):
    assert judge_reason(reply) == reason
