"""Prediction JSONL reading and the three parse-failure policies."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from msa_core import DataError
from msa_eval.predictions import apply_failure_policy, read_predictions
from msa_eval.score import score_file


def _write(tmp_path, lines: list[str]):
    path = tmp_path / "pred.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_labels_scores_and_keeps_other_fields(tmp_path):
    path = _write(
        tmp_path,
        [
            '{"id": "a$_$1", "label": 1.0, "score": 0.5, "raw": "x"}',
            "",
            '{"id": 7, "label": -2, "score": null}',
            '{"id": "c", "label": 0, "score": NaN}',
        ],
    )
    pred = read_predictions(path)
    assert pred.labels.tolist() == [1.0, -2.0, 0.0]
    assert pred.scores[0] == 0.5 and math.isnan(pred.scores[1]) and math.isnan(pred.scores[2])
    assert pred.failed.tolist() == [False, True, True]
    assert pred.records[0]["raw"] == "x"
    assert pred.ids == ["a$_$1", "7", "c"]
    assert pred.lines == [1, 3, 4]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "line 2"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"score": 1.0}', "line 2, column 'label'"),
        ('{"label": 1.0}', "line 2, column 'score'"),
        ('{"label": "1", "score": 1.0}', "column 'label'"),
        ('{"label": null, "score": 1.0}', "column 'label'"),
        ('{"label": 1.0, "score": "0.5"}', "column 'score'"),
        ('{"label": 1.0, "score": true}', "column 'score'"),
        ('{"label": NaN, "score": 1.0}', "label must be finite"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, match):
    path = _write(tmp_path, ['{"label": 0.5, "score": 0.5}', line])
    with pytest.raises(DataError, match=match) as info:
        read_predictions(path)
    assert str(path) in str(info.value)


def test_empty_file_is_an_error(tmp_path):
    path = _write(tmp_path, [""])
    with pytest.raises(DataError, match="empty"):
        read_predictions(path)


@pytest.fixture
def with_failures(tmp_path):
    rows = [
        {"label": 2.0, "score": 2.0},
        {"label": -1.0, "score": None},
        {"label": 1.0, "score": 1.0},
        {"label": -2.0, "score": -2.0},
        {"label": 0.5, "score": float("inf")},  # json.dumps writes Infinity: a failure too
    ]
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_neutral_policy_scores_failures_zero_and_counts_them(with_failures):
    res = apply_failure_policy(read_predictions(with_failures), "neutral")
    assert res.preds.tolist() == [2.0, 0.0, 1.0, -2.0, 0.0]
    assert res.parse_failures == 2 and res.kept.tolist() == [0, 1, 2, 3, 4]
    m = score_file(with_failures, "mosi")
    assert m["n"] == 5 and m["parse_failures"] == 2
    assert m["mae"] == pytest.approx((1.0 + 0.5) / 5)


def test_skip_policy_drops_failures_and_still_counts_them(with_failures):
    res = apply_failure_policy(read_predictions(with_failures), "skip")
    assert res.kept.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(res.labels, [2.0, 1.0, -2.0])
    m = score_file(with_failures, "mosi", on_failure="skip")
    assert m["n"] == 3 and m["parse_failures"] == 2
    assert m["mae"] == 0.0 and m["acc7"] == 1.0


def test_error_policy_names_the_first_failing_line(with_failures):
    with pytest.raises(DataError, match=r"line 2, column 'score'.*2 failure"):
        score_file(with_failures, "mosi", on_failure="error")


def test_error_policy_accepts_a_clean_file(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"label": 0.2, "score": 0.3}\n{"label": -0.4, "score": -0.1}\n')
    assert score_file(path, "sims", on_failure="error")["parse_failures"] == 0


def test_skip_with_nothing_left_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"label": 0.2, "score": null}\n')
    with pytest.raises(DataError, match="nothing left"):
        score_file(path, "sims", on_failure="skip")
