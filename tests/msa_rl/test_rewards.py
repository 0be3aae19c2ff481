"""The three DC rewards (paper eqs. 2-5): each one, the weights, malformed answers, NaN, range and band edges, and
every reward coupling (polarity/score with or without the strict format, score with or without the right polarity)."""

from __future__ import annotations

import math

import pytest
import torch
from msa_core import get_spec
from msa_rl.rewards import (
    DEFAULT_COUPLING,
    REWARD_FUNCS,
    RewardCoupling,
    completion_text,
    format_reward,
    polarity_reward,
    reward_components,
    reward_funcs,
    score_reward,
    weighted_totals,
)

GOOD_POS = "<polarity>positive</polarity><think>The voice is warm.</think><score>0.6</score>"


def conv(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


STRICT = RewardCoupling(require_format=True, score_requires_polarity=False)  # the rewards before the coupling
COUPLINGS = [RewardCoupling(f, p) for f in (False, True) for p in (False, True)]


def run(fn, texts, labels, dataset="sims", coupling=None):
    extra = {} if coupling is None else {"coupling": coupling}
    return fn(
        [None] * len(texts), [conv(t) for t in texts], label=labels, dataset=[dataset] * len(texts), **extra
    )


def test_well_formed_correct_answer_earns_every_component() -> None:
    assert run(format_reward, [GOOD_POS], [0.6]) == [1.0]
    assert run(polarity_reward, [GOOD_POS], [0.6]) == [1.0]
    assert run(score_reward, [GOOD_POS], [0.6]) == [pytest.approx(1.0)]


def test_score_reward_is_eq5_with_the_dataset_range() -> None:
    any_polarity = RewardCoupling(score_requires_polarity=False)  # these answers have the wrong polarity
    # SIMS range [-1, 1] (width 2): |0.6 - (-0.4)| / 2 = 0.5
    assert run(score_reward, [GOOD_POS], [-0.4], coupling=any_polarity) == [pytest.approx(0.5)]
    # MOSI range [-3, 3] (width 6): |2 - (-1)| / 6 = 0.5
    mosi = "<polarity>positive</polarity><think>x</think><score>2</score>"
    assert run(score_reward, [mosi], [-1.0], "mosi", coupling=any_polarity) == [pytest.approx(0.5)]
    # the extreme of the range: 0
    extreme = "<polarity>positive</polarity><think>x</think><score>1</score>"
    assert run(score_reward, [extreme], [-1.0], coupling=any_polarity) == [pytest.approx(0.0)]
    # with the right polarity, the same eq. 5 value
    assert run(score_reward, [mosi], [1.0], "mosi") == [pytest.approx(1 - 1 / 6)]


@pytest.mark.parametrize("coupling", COUPLINGS, ids=str)
def test_wrong_polarity_keeps_format_and_scores_only_without_the_polarity_premise(coupling) -> None:
    text = "<polarity>negative</polarity><think>Flat tone.</think><score>-0.2</score>"
    assert run(format_reward, [text], [0.6]) == [1.0]
    assert run(polarity_reward, [text], [0.6], coupling=coupling) == [0.0]
    # |-0.2 - 0.6| / 2 = 0.4: the eq. 5 value, unless eq. 5 holds only under the right polarity
    want = 0.0 if coupling.score_requires_polarity else 0.6
    assert run(score_reward, [text], [0.6], coupling=coupling) == [pytest.approx(want)]


def test_defaults_follow_the_paper_text() -> None:
    # eqs. 3-5 define the components apart; eq. 5 "under the premise of consistent polarity"
    assert RewardCoupling(require_format=False, score_requires_polarity=True) == DEFAULT_COUPLING
    trailing = "<polarity>positive</polarity><think>x</think><score>0.5</score> and more"
    assert run(format_reward, [trailing], [0.6]) == [0.0]
    assert run(polarity_reward, [trailing], [0.6]) == [1.0]
    assert run(score_reward, [trailing], [0.6]) == [pytest.approx(0.95)]
    assert run(score_reward, [trailing], [-0.6]) == [0.0]  # right number-ish, wrong polarity


# (text, label, polarity read, score read) of answers that fail the strict format but carry readable tags
LOOSE = [
    ("<polarity>positive</polarity><think>x</think><score>0.6</score> and more", 0.6, "positive", 0.6),
    ("<think>x</think><polarity>positive</polarity><score>0.2</score>", 0.6, "positive", 0.2),  # order
    ("<polarity>positive</polarity><score>0.6</score>", 0.6, "positive", 0.6),  # no think
    (
        "<polarity>positive</polarity><think>x</think><score>0.6</score><score>-1</score>",
        0.6,
        "positive",
        0.6,
    ),
    (
        "<polarity>negative</polarity><think>   </think><score>-0.6</score>",
        0.6,
        "negative",
        -0.6,
    ),  # empty think
    ("<polarity>positive</polarity><think>x</think><score>0.6", 0.6, "positive", None),  # cut off
    ("<polarity>Positive</polarity><think>x</think><score>0.6</score>", 0.6, None, 0.6),  # not the class word
    ("<polarity>positive</polarity><think>x</think><score>nan</score>", 0.6, "positive", None),
    ("<polarity>positive</polarity><think>x</think><score>high</score>", 0.6, "positive", None),
    ("positive 0.6", 0.6, None, None),  # no tags: nothing is read
]


@pytest.mark.parametrize("coupling", COUPLINGS, ids=str)
@pytest.mark.parametrize(("text", "label", "polarity", "score"), LOOSE)
def test_malformed_answers_earn_by_their_tags_unless_the_format_is_required(
    coupling, text: str, label: float, polarity: str | None, score: float | None
) -> None:
    assert run(format_reward, [text], [label]) == [0.0]
    got_pol = run(polarity_reward, [text], [label], coupling=coupling)
    got_score = run(score_reward, [text], [label], coupling=coupling)
    if coupling.require_format:
        assert got_pol == [0.0] and got_score == [0.0]
        return
    right = polarity == get_spec("sims").polarity_of(label)
    assert got_pol == [float(right)]
    if score is None or (coupling.score_requires_polarity and not right):
        assert got_score == [0.0]
    else:
        assert got_score == [pytest.approx(max(0.0, 1 - abs(score - label) / 2))]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "positive 0.6",
        "<polarity>positive</polarity><score>0.6</score>",  # no think
        "<think>x</think><polarity>positive</polarity><score>0.6</score>",  # order
        "<polarity>positive</polarity><think>x</think><score>0.6</score> and more",  # trailing text
        "<polarity>positive</polarity><think>x</think><score>0.6</score><score>0.6</score>",  # repeated tag
        "<polarity>Positive</polarity><think>x</think><score>0.6</score>",  # not the exact class word
        "<polarity>positive</polarity><think>   </think><score>0.6</score>",  # empty think
        "<polarity>positive</polarity><think>x</think><score>nan</score>",  # NaN score
        "<polarity>positive</polarity><think>x</think><score>inf</score>",
        "<polarity>positive</polarity><think>x</think><score>high</score>",
        "<polarity>positive</polarity><think>x</think><score>0.6",  # cut off (max_completion_length)
    ],
)
def test_malformed_answers_earn_nothing_when_the_format_is_required(text: str) -> None:
    assert run(format_reward, [text], [0.6]) == [0.0]
    for coupling in (STRICT, RewardCoupling(require_format=True, score_requires_polarity=True)):
        assert run(polarity_reward, [text], [0.6], coupling=coupling) == [0.0]
        assert run(score_reward, [text], [0.6], coupling=coupling) == [0.0]


def test_score_outside_the_dataset_range_is_not_a_valid_answer() -> None:
    text = "<polarity>positive</polarity><think>x</think><score>1.2</score>"
    assert run(format_reward, [text], [0.9]) == [0.0]
    assert run(polarity_reward, [text], [0.9], coupling=STRICT) == [0.0]
    assert run(score_reward, [text], [0.9], coupling=STRICT) == [0.0]
    # read on its own, the tag's number is scored by eq. 5, whose max(0, .) floors a far-off one
    assert run(polarity_reward, [text], [0.9]) == [1.0]
    assert run(score_reward, [text], [0.9]) == [pytest.approx(1 - 0.3 / 2)]
    far = "<polarity>positive</polarity><think>x</think><score>7</score>"
    assert run(score_reward, [far], [0.9]) == [0.0]
    # the same number is inside MOSI's range
    assert run(format_reward, [text], [0.9], "mosi") == [1.0]


@pytest.mark.parametrize(
    ("dataset", "label", "polarity"),
    [
        # SIMS (MMSA Acc3 bins, left-open / right-closed): neutral is (-0.1, 0.1]
        ("sims", -0.1, "negative"),
        ("sims", -0.09, "neutral"),
        ("sims", 0.1, "neutral"),
        ("sims", 0.11, "positive"),
        # MOSI: neutral is [-0.5, 0.5] (both edges neutral)
        ("mosi", -0.5, "neutral"),
        ("mosi", 0.5, "neutral"),
        ("mosi", 0.51, "positive"),
        ("mosi", -0.51, "negative"),
    ],
)
def test_polarity_reward_follows_the_neutral_band_edges(dataset: str, label: float, polarity: str) -> None:
    texts = [
        f"<polarity>{p}</polarity><think>x</think><score>0</score>"
        for p in ("negative", "neutral", "positive")
    ]
    got = run(polarity_reward, texts, [label] * 3, dataset)
    assert got == [1.0 if p == polarity else 0.0 for p in ("negative", "neutral", "positive")]


def test_non_finite_label_is_unscorable_not_zero() -> None:
    assert run(polarity_reward, [GOOD_POS, GOOD_POS], [math.nan, 0.6]) == [None, 1.0]
    assert run(score_reward, [GOOD_POS], [math.inf]) == [None]
    assert run(format_reward, [GOOD_POS], [math.nan]) == [1.0]  # the format does not depend on the label


def test_plain_string_completions_and_whitespace_are_accepted() -> None:
    text = "  \n" + GOOD_POS + "\n"
    assert format_reward([None], [text], label=[0.6], dataset=["sims"]) == [1.0]
    assert completion_text(conv("abc")) == "abc"
    assert completion_text(42) == ""


def test_missing_columns_are_reported() -> None:
    with pytest.raises(ValueError, match="dataset"):
        format_reward([None], [GOOD_POS], label=[0.6])
    with pytest.raises(ValueError, match="label"):
        polarity_reward([None], [GOOD_POS], dataset=["sims"])
    with pytest.raises(ValueError, match="rows"):
        format_reward([None, None], [GOOD_POS, GOOD_POS], dataset=["sims"])


def test_weights_combine_the_components_like_eq2() -> None:
    texts = [GOOD_POS, "<polarity>negative</polarity><think>x</think><score>-0.4</score>", "garbage"]
    comps = reward_components(texts, [0.6, 0.6, 0.6], ["sims"] * 3, STRICT)
    assert comps[0] == [1.0, 1.0, pytest.approx(1.0)]
    assert comps[1] == [1.0, 0.0, pytest.approx(0.5)]
    assert comps[2] == [0.0, 0.0, 0.0]
    rows = torch.tensor(comps)
    assert weighted_totals(rows, torch.tensor([1.0, 1, 1])).tolist() == pytest.approx([3.0, 1.5, 0.0])
    assert weighted_totals(rows, torch.tensor([0.5, 2.0, 0.0])).tolist() == pytest.approx([2.5, 0.5, 0.0])
    # NaN components are skipped (TRL's nansum); a row with nothing scorable stays NaN
    assert weighted_totals(torch.tensor([[1.0, math.nan, math.nan]]), torch.ones(3)).tolist() == [1.0]
    assert math.isnan(weighted_totals(torch.full((1, 3), math.nan), torch.ones(3))[0].item())
    with pytest.raises(ValueError, match="3 weights"):
        weighted_totals(rows, torch.ones(2))


def test_reward_funcs_are_in_weight_order() -> None:
    assert [f.__name__ for f in REWARD_FUNCS] == ["format_reward", "polarity_reward", "score_reward"]


@pytest.mark.parametrize("coupling", COUPLINGS, ids=str)
def test_bound_reward_funcs_keep_trl_names_and_apply_their_coupling(coupling) -> None:
    from trl.trainer.utils import get_callable_name

    funcs = reward_funcs(coupling)
    assert [get_callable_name(f) for f in funcs] == ["format_reward", "polarity_reward", "score_reward"]
    texts = ["<polarity>negative</polarity><think>x</think><score>-0.2</score> tail", GOOD_POS]
    got = [[v for v in f([None] * 2, texts, label=[0.6, 0.6], dataset=["sims"] * 2)] for f in funcs]
    # the first answer: wrong polarity, not strict; the second: right and strict everywhere
    score_first = 0.0 if coupling.require_format or coupling.score_requires_polarity else 0.6
    assert got[0] == [0.0, 1.0]
    assert got[1] == [0.0, 1.0]
    assert got[2] == [pytest.approx(score_first), pytest.approx(1.0)]
    assert reward_components(texts, [0.6, 0.6], ["sims"] * 2, coupling)[0][2] == pytest.approx(score_first)
