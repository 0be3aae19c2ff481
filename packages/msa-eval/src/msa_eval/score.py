"""Score one predictions file against its dataset's metric family (``msa-eval score``), or over a given list of
clips in a given order (``score_aligned``: paired tests across runs and seeds, e.g. `msa-thinker mini-repro`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from msa_core import DataError, DatasetSpec, get_spec

from msa_eval.metrics import MetricWarning, PerSample, compute_metrics, metrics_from_samples, prepare
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


@dataclass
class AlignedScore:
    """One predictions file scored in a given clip order (for paired tests across runs and seeds)."""

    metrics: dict[str, float | int]
    per_sample: PerSample
    """Row i is clip ``ids[i]``."""
    parse_failures: int


def score_aligned(
    path: str | Path, dataset: str | DatasetSpec, ids: Sequence[str], on_failure: str = "neutral"
) -> AlignedScore:
    """MMSA metrics of a predictions file over exactly the clips ``ids``, in that order. Unparsable answers follow
    ``on_failure`` and are counted; a clip of ``ids`` without a prediction is an error naming the file."""
    spec = get_spec(dataset)
    pred = read_predictions(path)
    check_labels(pred, spec)
    if on_failure == "skip":
        raise ValueError("an aligned score keeps every clip: on_failure must be 'neutral' or 'error'")
    resolved = apply_failure_policy(pred, on_failure)
    where = {clip_id: i for i, clip_id in enumerate(pred.ids or [])}
    missing = [i for i in ids if i not in where]
    if missing:
        raise DataError(f"{len(missing)} clip(s) have no prediction, e.g. {missing[0]}", file=path)
    order = np.asarray([where[i] for i in ids], dtype=np.int64)
    ps = prepare(resolved.preds[order], resolved.labels[order], spec)
    failures = int(pred.failed[order].sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        metrics = metrics_from_samples(ps, parse_failures=failures)
    return AlignedScore(dict(metrics), ps, failures)
