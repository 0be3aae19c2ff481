"""DatasetSpec registry, polarity rule at every band edge, user specs from YAML."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from msa_core import (
    ConfigError,
    DatasetSpec,
    get_spec,
    list_specs,
    polarity_of,
    register_spec,
    register_spec_file,
)


def test_builtin_registry() -> None:
    names = {s.name for s in list_specs()}
    assert {"mosi", "mosei", "sims", "simsv2"} <= names
    assert get_spec("mosi").score_range == (-3.0, 3.0)
    assert get_spec("mosei").metric_family == "mosi"
    assert get_spec("sims").score_range == (-1.0, 1.0)
    assert get_spec("simsv2").metric_family == "sims"
    assert get_spec("sims").language == "zh"
    assert get_spec("mosi").title == "CMU-MOSI"
    spec = get_spec("sims")
    assert get_spec(spec) is spec


def test_unknown_dataset_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'nope'.*mosi"):
        get_spec("nope")


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (-1.0, "negative"),
        (-0.5, "negative"),
        (-0.1, "negative"),  # MMSA's Acc3 bins are left-open: -0.1 falls in (-1.01, -0.1]
        (-0.1 + 1e-9, "neutral"),
        (-0.0, "neutral"),
        (0.0, "neutral"),
        (0.1, "neutral"),  # right-closed: 0.1 is still in (-0.1, 0.1]
        (0.1 + 1e-9, "positive"),
        (0.7, "positive"),
        (1.0, "positive"),
        (5.0, "positive"),
        (-5.0, "negative"),
    ],
)
def test_polarity_sims_edges(score: float, expected: str) -> None:
    assert polarity_of(score, get_spec("sims")) == expected
    assert get_spec("simsv2").polarity_of(score) == expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (-3.0, "negative"),
        (-0.5 - 1e-9, "negative"),
        (-0.5, "neutral"),  # np.round(-0.5) == -0: MMSA's Acc7 centre bin
        (-1 / 3, "neutral"),
        (0.0, "neutral"),
        (0.5, "neutral"),
        (0.5 + 1e-9, "positive"),
        (0.6, "positive"),
        (3.0, "positive"),
        (4.0, "positive"),
    ],
)
def test_polarity_mosi_edges(score: float, expected: str) -> None:
    assert polarity_of(score, get_spec("mosi")) == expected
    assert polarity_of(np.float64(score), get_spec("mosei")) == expected


def test_polarity_matches_mmsa_bins() -> None:
    """Same classes as MMSA's own binning: SIMS Acc3 bins, MOSI's rounded centre bin of Acc7."""
    grid = np.round(np.arange(-3.5, 3.5001, 0.01), 10)
    sims_bins = np.digitize(
        np.clip(grid, -1, 1), [-0.1, 0.1], right=True
    )  # (-inf,-0.1], (-0.1,0.1], (0.1,inf)
    mosi_rounded = np.round(np.clip(grid, -3, 3))
    names = ("negative", "neutral", "positive")
    for value, s_bin, m_round in zip(grid, sims_bins, mosi_rounded, strict=True):
        assert polarity_of(value, get_spec("sims")) == names[s_bin]
        assert polarity_of(value, get_spec("mosi")) == names[int(np.sign(m_round)) + 1]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_polarity_needs_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        polarity_of(bad, get_spec("sims"))


def test_rule_text() -> None:
    assert (
        get_spec("sims")
        .polarity_rule_text()
        .startswith("neutral if the score is above -0.1 and at or below 0.1")
    )
    assert "at or above -0.5 and at or below 0.5" in get_spec("mosi").polarity_rule_text()


USER_YAML = """\
name: test_user_ds
display_name: My Data
language: en
score_min: 0
score_max: 10
neutral_low: 4
neutral_high: 6
neutral_low_inclusive: false
neutral_high_inclusive: false
metric_family: sims
"""


def test_user_spec_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(USER_YAML)
    spec = get_spec(str(path))
    assert spec.name == "test_user_ds" and spec.title == "My Data"
    assert get_spec("test_user_ds") == spec  # registered by name too
    assert [polarity_of(s, spec) for s in (0, 4, 4.01, 5, 5.99, 6, 10)] == [
        "negative",
        "negative",
        "neutral",
        "neutral",
        "neutral",
        "positive",
        "positive",
    ]
    assert "above 4 and below 6" in spec.polarity_rule_text()
    # The same file registers again without complaint; a different spec under the same name does not.
    assert register_spec_file(path) == spec
    with pytest.raises(ConfigError, match="already registered"):
        register_spec(spec.model_copy(update={"score_max": 11.0}))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("neutral_low: 4", "neutral_lo: 4"), "neutral_lo"),  # unknown key (and the real one now missing)
        (("score_min: 0", "score_min: zero"), "score_min"),
        (("metric_family: sims", "metric_family: imdb"), "metric_family"),
        (("language: en", "language: fr"), "language"),
    ],
)
def test_bad_yaml_names_the_field(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(USER_YAML.replace(*change))
    with pytest.raises(ConfigError, match=field) as info:
        get_spec(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (USER_YAML.replace("score_max: 10", "score_max: -1"), "score_min"),
        (USER_YAML.replace("neutral_high: 6", "neutral_high: 12"), "neutral band"),
        ("- just\n- a list\n", "mapping"),
        ("name: [unclosed\n", "cannot read"),
    ],
)
def test_bad_yaml_content(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        get_spec(str(path))


def test_missing_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        get_spec(str(tmp_path / "absent.yaml"))


def test_spec_is_strict_and_frozen() -> None:
    with pytest.raises(ValueError, match="extra"):
        DatasetSpec(
            name="x",
            score_min=-1,
            score_max=1,
            neutral_low=0,
            neutral_high=0,
            metric_family="sims",
            colour="red",
        )
    spec = get_spec("sims")
    with pytest.raises(ValueError, match="frozen"):
        spec.score_min = -2.0  # type: ignore[misc]
