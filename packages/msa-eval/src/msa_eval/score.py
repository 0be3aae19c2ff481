"""Score one predictions file against its dataset's metric family (``msa-eval score``)."""

from __future__ import annotations

import math
from pathlib import Path

from msa_core import DatasetSpec, get_spec

from msa_eval.metrics import compute_metrics
from msa_eval.predictions import (
    apply_failure_policy,
    check_dataset,
    check_labels,
    coverage_text,
    read_predictions,
    skipped_clips,
)


def score_file(
    path: str | Path, dataset: str | DatasetSpec, on_failure: str = "neutral"
) -> dict[str, float | int]:
    """MMSA metrics of a predictions JSONL file; unrounded fractions, keys exactly as
    ``metric_keys(family)``."""
    return score_file_with_coverage(path, dataset, on_failure)[0]


def score_file_with_coverage(
    path: str | Path, dataset: str | DatasetSpec, on_failure: str = "neutral"
) -> tuple[dict[str, float | int], str, list]:
    """(metrics, "n = 3 of 5 (2 skipped: …)", the skipped clips recorded next to the file)."""
    spec = get_spec(dataset)
    pred = read_predictions(path)
    check_dataset(pred, spec)
    check_labels(pred, spec)
    resolved = apply_failure_policy(pred, on_failure)
    metrics = compute_metrics(resolved.preds, resolved.labels, spec, parse_failures=resolved.parse_failures)
    skips = skipped_clips(pred, spec)
    return metrics, coverage_text(int(metrics["n"]), len(pred.records), skips), skips


def json_safe(value):
    """NaN and ±inf become None (JSON has no NaN); containers are converted recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
