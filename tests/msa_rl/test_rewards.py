"""The three DC rewards (paper eqs. 2-5): each one, the weights, malformed answers, NaN, range and band edges."""

from __future__ import annotations

import math

import pytest
import torch
from msa_rl.rewards import (
    REWARD_FUNCS,
    completion_text,
    format_reward,
    polarity_reward,
    reward_components,
    score_reward,
    weighted_totals,
)

GOOD_POS = "<polarity>positive</polarity><think>The voice is warm.</think><score>0.6</score>"


def conv(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def run(fn, texts, labels, dataset="sims"):
    return fn([None] * len(texts), [conv(t) for t in texts], label=labels, dataset=[dataset] * len(texts))


def test_well_formed_correct_answer_earns_every_component() -> None:
    assert run(format_reward, [GOOD_POS], [0.6]) == [1.0]
    assert run(polarity_reward, [GOOD_POS], [0.6]) == [1.0]
    assert run(score_reward, [GOOD_POS], [0.6]) == [pytest.approx(1.0)]


def test_score_reward_is_eq5_with_the_dataset_range() -> None:
    # SIMS range [-1, 1] (width 2): |0.6 - (-0.4)| / 2 = 0.5
    assert run(score_reward, [GOOD_POS], [-0.4]) == [pytest.approx(0.5)]
    # MOSI range [-3, 3] (width 6): |2 - (-1)| / 6 = 0.5
    mosi = "<polarity>positive</polarity><think>x</think><score>2</score>"
    assert run(score_reward, [mosi], [-1.0], "mosi") == [pytest.approx(0.5)]
    # the max(0, .) floor is never needed inside the range, the reward stays in [0, 1]
    extreme = "<polarity>positive</polarity><think>x</think><score>1</score>"
    assert run(score_reward, [extreme], [-1.0]) == [pytest.approx(0.0)]


def test_wrong_polarity_keeps_format_and_a_continuous_score() -> None:
    text = "<polarity>negative</polarity><think>Flat tone.</think><score>-0.2</score>"
    assert run(format_reward, [text], [0.6]) == [1.0]
    assert run(polarity_reward, [text], [0.6]) == [0.0]
    assert run(score_reward, [text], [0.6]) == [pytest.approx(0.6)]


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
def test_malformed_answers_earn_nothing(text: str) -> None:
    assert run(format_reward, [text], [0.6]) == [0.0]
    assert run(polarity_reward, [text], [0.6]) == [0.0]
    assert run(score_reward, [text], [0.6]) == [0.0]


def test_score_outside_the_dataset_range_is_not_a_valid_answer() -> None:
    text = "<polarity>positive</polarity><think>x</think><score>1.2</score>"
    assert run(format_reward, [text], [0.9]) == [0.0]
    assert run(polarity_reward, [text], [0.9]) == [0.0]
    assert run(score_reward, [text], [0.9]) == [0.0]
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
    comps = reward_components(texts, [0.6, 0.6, 0.6], ["sims"] * 3)
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
