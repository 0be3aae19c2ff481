"""Score one predictions file against its dataset's metric family (``msa-eval score``)."""

from __future__ import annotations

import math
from pathlib import Path

from msa_core import DatasetSpec, get_spec

from msa_eval.metrics import compute_metrics
from msa_eval.predictions import apply_failure_policy, read_predictions


def score_file(
    path: str | Path, dataset: str | DatasetSpec, on_failure: str = "neutral"
) -> dict[str, float | int]:
    """MMSA metrics of a predictions JSONL file; unrounded fractions, keys exactly as
    ``metric_keys(family)``."""
    spec = get_spec(dataset)
    resolved = apply_failure_policy(read_predictions(path), on_failure)
    return compute_metrics(resolved.preds, resolved.labels, spec, parse_failures=resolved.parse_failures)


def json_safe(value):
    """NaN and ±inf become None (JSON has no NaN); containers are converted recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
