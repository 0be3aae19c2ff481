"""Prediction files (JSONL, one object per clip with ``label`` and ``score``) and the parse-failure policy.

A ``score`` of null (the model's answer could not be parsed), NaN or ±inf is a parse failure. Failures
are always counted; the policy only decides what enters the metrics: ``neutral`` scores them 0 (the centre
of every built-in scale), ``skip`` leaves them out, ``error`` refuses the file. Every other field of a line
is kept in ``records``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from msa_core import DataError, DatasetSpec
from msa_core.mmsa import LABEL_TOLERANCE
from msa_core.skipped import SKIPPED_FILE, Skip, describe, read_skipped

FailurePolicy = Literal["neutral", "skip", "error"]
FAILURE_POLICIES: tuple[str, ...] = ("neutral", "skip", "error")
NEUTRAL_SCORE = 0.0


@dataclass(frozen=True)
class Predictions:
    """One prediction file as read: labels, scores (NaN = parse failure) and the full records."""

    path: Path
    records: list[dict]
    labels: np.ndarray
    scores: np.ndarray
    lines: list[int]  # 1-based line number of each record, for error messages

    @property
    def failed(self) -> np.ndarray:
        return np.isnan(self.scores)

    @property
    def ids(self) -> list[str] | None:
        """Clip ids as strings when every record has a non-null ``id``, else None."""
        if self.records and all(r.get("id") is not None for r in self.records):
            return [str(r["id"]) for r in self.records]
        return None


@dataclass(frozen=True)
class Resolved:
    """What enters the metrics after the failure policy: aligned arrays plus which records they came from."""

    preds: np.ndarray
    labels: np.ndarray
    kept: np.ndarray  # indices into Predictions.records
    parse_failures: int
    policy: str


def _number(value, *, path: Path, line: int, column: str, allow_null: bool) -> float:
    if value is None and allow_null:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "null" if value is None else type(value).__name__
        raise DataError(f"expected a number, got {kind} ({value!r})", file=path, line=line, column=column)
    return float(value)


def read_predictions(path: str | Path) -> Predictions:
    """Read a predictions JSONL file; blank lines ignored, a malformed line raises DataError(file, line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read predictions: {exc}", file=path) from exc
    records, labels, scores, lines = [], [], [], []
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON ({exc.msg} at character {exc.pos})", file=path, line=lineno
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", file=path, line=lineno)
        for key in ("label", "score"):
            if key not in obj:
                raise DataError(f"missing field {key!r}", file=path, line=lineno, column=key)
        label = _number(obj["label"], path=path, line=lineno, column="label", allow_null=False)
        if not math.isfinite(label):
            raise DataError(f"label must be finite, got {label}", file=path, line=lineno, column="label")
        score = _number(obj["score"], path=path, line=lineno, column="score", allow_null=True)
        if obj.get("id") is not None:
            key = str(obj["id"])
            if key in first_line:
                raise DataError(
                    f"duplicate id {key!r} (first on line {first_line[key]}): each clip may be scored once",
                    file=path,
                    line=lineno,
                    column="id",
                )
            first_line[key] = lineno
        records.append(obj)
        labels.append(label)
        scores.append(score if math.isfinite(score) else math.nan)
        lines.append(lineno)
    if not records:
        raise DataError("no predictions (the file is empty)", file=path)
    return Predictions(path, records, np.asarray(labels, np.float64), np.asarray(scores, np.float64), lines)


def check_labels(pred: Predictions, spec: DatasetSpec) -> None:
    """Refuse labels off the dataset's scale (by more than LABEL_TOLERANCE): a file of another dataset, or a
    scale mix-up, would otherwise be scored silently with the wrong bins."""
    lo, hi = spec.score_min - LABEL_TOLERANCE, spec.score_max + LABEL_TOLERANCE
    bad = np.flatnonzero((pred.labels < lo) | (pred.labels > hi))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"label {float(pred.labels[i])!r} outside {spec.name}'s range [{spec.score_min:g}, {spec.score_max:g}] "
            f"({bad.size} such line(s)); is this a {spec.name} predictions file? (check --dataset)",
            file=pred.path,
            line=pred.lines[i],
            column="label",
        )


def check_dataset(pred: Predictions, spec: DatasetSpec, *, option: str = "--dataset") -> None:
    """Refuse a file whose rows say another dataset (their ``dataset`` field), whose rows mix datasets, or whose
    name is another registered dataset's (``mosi.jsonl`` scored as sims): scored anyway, it would get the wrong
    metric family or be reported under the wrong dataset."""
    from msa_core import list_specs

    said: dict[str, int] = {}  # dataset -> first line that says it
    for record, line in zip(pred.records, pred.lines, strict=True):
        name = record.get("dataset")
        if name is not None:
            said.setdefault(str(name), line)
    if len(said) > 1:
        (first, _), (other, line) = sorted(said.items(), key=lambda kv: kv[1])[:2]
        raise DataError(
            f"the file mixes datasets ({', '.join(sorted(said))}): rows say {first!r} and, from this line, "
            f"{other!r}; score one dataset per file",
            file=pred.path,
            line=line,
            column="dataset",
        )
    if said:
        ((name, line),) = said.items()
        if name != spec.name:
            raise DataError(
                f"the rows say dataset {name!r} but {option} is {spec.name!r}; is this the right file? "
                f"(check {option})",
                file=pred.path,
                line=line,
                column="dataset",
            )
    known = {s.name for s in list_specs()}
    if pred.path.stem in known and pred.path.stem != spec.name:
        raise DataError(
            f"the file is named {pred.path.name} but {option} is {spec.name!r}; a file holds the dataset it is "
            f"named after (rename it, or check {option})",
            file=pred.path,
        )


def skipped_clips(pred: Predictions, spec: DatasetSpec) -> list[Skip]:
    """Clips of this dataset that ``msa-eval predict`` left out, from the ``skipped.jsonl`` next to the file."""
    if pred.path.stem != spec.name:
        return []
    return read_skipped(pred.path.parent / SKIPPED_FILE, spec.name)


def coverage_text(n: int, records: int, skips: list[Skip]) -> str:
    """``n = 3 of 5 (2 skipped: missing 1, unreadable 1)``: how many clips the metrics rest on."""
    text = f"n = {n} of {records + len(skips)}"
    if skips:
        text += f" ({len(skips)} skipped: {describe(skips, paths=False)})"
    return text


def apply_failure_policy(pred: Predictions, policy: str = "neutral") -> Resolved:
    """Resolve parse failures under ``policy`` (neutral | skip | error); failures are always counted."""
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"unknown failure policy {policy!r}; choose one of {', '.join(FAILURE_POLICIES)}")
    failed = pred.failed
    n_failed = int(failed.sum())
    if policy == "error" and n_failed:
        first = int(np.flatnonzero(failed)[0])
        raise DataError(
            f"score is a parse failure (null or not finite) and --on-failure is 'error' "
            f"({n_failed} failure(s) in the file)",
            file=pred.path,
            line=pred.lines[first],
            column="score",
        )
    if policy == "skip":
        kept = np.flatnonzero(~failed)
        if kept.size == 0:
            raise DataError(
                f"all {n_failed} predictions are parse failures; nothing left to score", file=pred.path
            )
        return Resolved(pred.scores[kept], pred.labels[kept], kept, n_failed, policy)
    preds = np.where(failed, NEUTRAL_SCORE, pred.scores)
    return Resolved(preds, pred.labels.copy(), np.arange(len(pred.records)), n_failed, policy)
