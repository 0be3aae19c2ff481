"""`msa-eval score` on the command line: exact JSON key sets, the table, failure policies and clean errors."""

from __future__ import annotations

import json

import pytest
from msa_eval.cli import app
from msa_eval.score import score_file
from typer.testing import CliRunner

runner = CliRunner()

MOSI_JSON_KEYS = {
    "acc2_has0",
    "f1_has0",
    "acc2_non0",
    "f1_non0",
    "acc3",
    "acc5",
    "acc7",
    "mae",
    "corr",
    "n",
    "parse_failures",
}
SIMS_JSON_KEYS = {"acc2", "f1", "acc3", "acc5", "mae", "corr", "n", "parse_failures"}


@pytest.mark.parametrize(
    ("dataset", "keys"),
    [
        ("mosi", MOSI_JSON_KEYS),
        ("mosei", MOSI_JSON_KEYS),
        ("sims", SIMS_JSON_KEYS),
        ("simsv2", SIMS_JSON_KEYS),
    ],
)
def test_score_json_has_exactly_the_issue_keys(tmp_path, dataset, keys, write_jsonl, synthetic_rows):
    path = write_jsonl(tmp_path / "f.jsonl", synthetic_rows(dataset, 40, seed=1, noise=0.3, fail_every=10))
    result = runner.invoke(app, ["score", "--dataset", dataset, "--json", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == keys
    assert out == pytest.approx(score_file(path, dataset))  # unrounded fractions, not ×100
    assert out["parse_failures"] == 4 and out["n"] == 40
    assert 0.0 <= out["acc3"] <= 1.0


def test_score_table_prints_percentages(tmp_path, write_jsonl):
    path = write_jsonl(
        tmp_path / "f.jsonl",
        [
            {"label": 0.5, "score": 0.5},
            {"label": -0.5, "score": 0.2},
            {"label": 0.8, "score": 0.9},
            {"label": -0.9, "score": -0.8},
        ],
    )
    result = runner.invoke(app, ["score", str(path), "-d", "sims"])
    assert result.exit_code == 0, result.output
    assert "acc2" in result.stdout and "75.00" in result.stdout  # 3/4 ×100


def test_score_on_failure_policies(tmp_path, write_jsonl):
    path = write_jsonl(
        tmp_path / "f.jsonl",
        [{"label": 1.0, "score": 1.0}, {"label": -1.0, "score": None}, {"label": 2.0, "score": 2.0}],
    )
    skip = json.loads(
        runner.invoke(app, ["score", str(path), "-d", "mosi", "--json", "--on-failure", "skip"]).stdout
    )
    neutral = json.loads(runner.invoke(app, ["score", str(path), "-d", "mosi", "--json"]).stdout)
    assert (skip["n"], skip["parse_failures"], skip["mae"]) == (2, 1, 0.0)
    assert (neutral["n"], neutral["parse_failures"]) == (3, 1) and neutral["mae"] == pytest.approx(1 / 3)
    err = runner.invoke(app, ["score", str(path), "-d", "mosi", "--on-failure", "error"])
    assert err.exit_code == 1
    assert "line 2" in err.stderr and "Traceback" not in err.output


def test_score_malformed_line_is_a_clean_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"label": 1.0, "score": 1.0}\n{"label": 1.0, "score": \n')
    result = runner.invoke(app, ["score", str(path), "-d", "sims", "--json"])
    assert result.exit_code == 1
    assert "bad.jsonl" in result.stderr and "line 2" in result.stderr
    assert result.stdout == ""


def test_score_constant_predictions_warns_and_prints_null_corr(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "c.jsonl", [{"label": v, "score": 0.2} for v in (0.1, -0.4, 0.9)])
    result = runner.invoke(app, ["score", str(path), "-d", "sims", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["corr"] is None
    assert "corr is undefined" in result.stderr


def test_unknown_dataset_is_a_clean_error(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "f.jsonl", [{"label": 1.0, "score": 1.0}])
    result = runner.invoke(app, ["score", str(path), "-d", "nope"])
    assert result.exit_code == 1 and "unknown dataset" in result.stderr
