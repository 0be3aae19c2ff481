"""msa_eval.score.score_aligned: one predictions file scored over given clips in a given order."""

from __future__ import annotations

import numpy as np
import pytest
from msa_core import DataError
from msa_eval.score import score_aligned, score_file


def test_an_aligned_score_follows_the_given_order_and_equals_the_plain_score(
    tmp_path, write_jsonl, synthetic_rows
) -> None:
    rows = synthetic_rows("sims", 12, seed=1, noise=0.3, fail_every=5)
    path = write_jsonl(tmp_path / "sims.jsonl", rows)
    ids = [r["id"] for r in rows][::-1]
    scored = score_aligned(path, "sims", ids)
    plain = score_file(path, "sims")
    assert scored.parse_failures == 2 == plain["parse_failures"]
    assert scored.metrics["acc3"] == pytest.approx(plain["acc3"])
    assert scored.metrics["mae"] == pytest.approx(plain["mae"])
    # Row i is clip ids[i]: the labels come back reversed; a failure is scored neutral (0).
    assert np.allclose(scored.per_sample.targets, [r["label"] for r in rows][::-1])
    assert scored.per_sample.values[::-1][4] == 0.0


def test_an_aligned_score_over_a_subset_counts_only_its_failures(
    tmp_path, write_jsonl, synthetic_rows
) -> None:
    rows = synthetic_rows("sims", 10, seed=2, noise=0.3, fail_every=5)  # failures at rows 4 and 9
    path = write_jsonl(tmp_path / "sims.jsonl", rows)
    scored = score_aligned(path, "sims", [rows[i]["id"] for i in (0, 1, 4)])
    assert (scored.metrics["n"], scored.parse_failures) == (3, 1)


def test_a_clip_without_a_prediction_is_named_and_skip_is_refused(
    tmp_path, write_jsonl, synthetic_rows
) -> None:
    rows = synthetic_rows("sims", 6, seed=3, noise=0.3)
    path = write_jsonl(tmp_path / "sims.jsonl", rows)
    with pytest.raises(DataError, match=r"1 clip\(s\) have no prediction, e\.g\. nowhere"):
        score_aligned(path, "sims", [rows[0]["id"], "nowhere"])
    with pytest.raises(ValueError, match="neutral"):
        score_aligned(path, "sims", [rows[0]["id"]], on_failure="skip")
