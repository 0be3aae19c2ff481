"""From stored answers to outcomes: accepted.jsonl, rejected.jsonl, stats.json. No request is made here.

``generate`` calls ``summarize`` at the end of every run (interrupted ones too) and ``cot-distill filter OUT``
calls it offline. Inputs are all on disk in OUT: ``plan.json`` (the clips and their request content keys, written
before the first request), ``responses.jsonl``, ``judgements.jsonl`` and ``failures.jsonl``.

Each (clip, sample) ends in exactly one state: accepted (some stored answer passed every filter; the first such),
rejected (answers stored, none passed; the last one's reason is the sample's), failed (no answer, a request failed
for good) or pending (not asked yet: an interrupted run). So accepted + rejected + failed + pending = clips x samples.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msa_core import POLARITIES, DataError, DatasetSpec, artifacts, polarity_of
from msa_core.skipped import counts as skip_counts
from msa_core.skipped import read_skipped

from cot_distill.cache import read_jsonl, write_json_atomic, write_jsonl_atomic
from cot_distill.config import DistillConfig, JudgeConfig
from cot_distill.filters import AnswerFilter, Verdict, judge_reason, reason_group

# The run folder's files (names owned by msa_core.artifacts: export and push read them too).
RESPONSES = artifacts.RESPONSES
JUDGEMENTS = artifacts.JUDGEMENTS
FAILURES = artifacts.FAILURES
ACCEPTED = artifacts.ACCEPTED
REJECTED = artifacts.REJECTED
STATS = artifacts.DISTILL_STATS
PLAN = artifacts.DISTILL_PLAN
STATES = ("accepted", "rejected", "failed", "pending")


def judge_id(judge: JudgeConfig, teacher_model: str) -> str:
    """Names a judge setting: a stored verdict counts only for the same judge model and instruction."""
    blob = json.dumps([judge.model or teacher_model, judge.instruction], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_plan(out: Path) -> dict[str, Any]:
    path = out / PLAN
    if not path.is_file():
        raise DataError(
            "plan.json not found: run `cot-distill generate` into this directory first", file=path
        )
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"not valid JSON ({exc})", file=path) from None


@dataclass
class Stored:
    """Answers, verdicts and failures on disk, indexed for outcome decisions."""

    answers: dict[tuple[str, int], dict[int, dict[str, Any]]]
    """(content_key, sample) → attempt → response record (first record per attempt wins)."""
    judgements: dict[tuple[str, str], dict[str, Any]]
    """(answer key, judge id) → judgement record."""
    failures: dict[tuple[str, int], dict[str, Any]]
    """(content_key, sample) → the last failure record."""


def load_stored(out: Path, *, repair: bool = False) -> Stored:
    answers: dict[tuple[str, int], dict[int, dict[str, Any]]] = defaultdict(dict)
    for rec in read_jsonl(out / RESPONSES, repair=repair):
        answers[(rec["content_key"], int(rec["sample"]))].setdefault(int(rec["attempt"]), rec)
    judgements = {(r["answer_key"], r["judge"]): r for r in read_jsonl(out / JUDGEMENTS, repair=repair)}
    failures = {(r["content_key"], int(r["sample"])): r for r in read_jsonl(out / FAILURES, repair=repair)}
    return Stored(dict(answers), judgements, failures)


def evaluate(
    filt: AnswerFilter,
    record: dict[str, Any],
    label: float,
    *,
    judge: str | None,
    judgements: dict[tuple[str, str], dict[str, Any]],
) -> Verdict:
    """Rule filters, then (if a judge id is given) the stored judge verdict."""
    verdict = filt.check(record.get("answer"), label)
    if verdict.ok and judge is not None:
        found = judgements.get((record["key"], judge))
        reason = judge_reason(found.get("reply") if found else None)
        if reason is not None:
            return Verdict(reason, verdict.parsed)
    return verdict


def _rate(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


def summarize(
    out: Path,
    cfg: DistillConfig,
    spec: DatasetSpec,
    *,
    run: dict[str, Any] | None = None,
    repair: bool = False,
) -> dict[str, Any]:
    """Decide every (clip, sample), write accepted.jsonl / rejected.jsonl / stats.json, return the stats."""
    plan = read_plan(out)
    stored = load_stored(out, repair=repair)
    filt = AnswerFilter(cfg.filters, spec)
    judge = judge_id(cfg.filters.judge, cfg.model) if cfg.filters.judge.enabled else None
    samples = int(plan["samples_per_clip"])
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    final_reasons: Counter[str] = Counter()
    answer_reasons: Counter[str] = Counter()
    failure_kinds: Counter[str] = Counter()
    failure_examples: dict[str, str] = {}
    groups: dict[str, dict[str, Counter[str]]] = {
        "per_polarity": defaultdict(Counter),
        "per_split": defaultdict(Counter),
    }
    tokens = Counter()
    n_answers = 0
    for clip in plan["clips"]:
        truth = polarity_of(clip["label"], spec)
        for sample in range(samples):
            attempts = stored.answers.get((clip["content_key"], sample), {})
            state, chosen, tried = "pending", None, []
            for attempt in sorted(attempts):
                rec = attempts[attempt]
                n_answers += 1
                usage = rec.get("usage") or {}
                tokens["prompt"] += int(usage.get("prompt_tokens") or 0)
                tokens["completion"] += int(usage.get("completion_tokens") or 0)
                verdict = evaluate(filt, rec, clip["label"], judge=judge, judgements=stored.judgements)
                answer_reasons[verdict.reason or "ok"] += 1
                tried.append((rec, verdict))
                if verdict.ok and chosen is None:
                    chosen = (rec, verdict)
            if chosen is not None:
                state = "accepted"
                rec, verdict = chosen
                accepted.append(_accepted_record(clip, plan, rec, verdict, truth))
            elif tried:
                state = "rejected"
                rec, verdict = tried[-1]
                final_reasons[verdict.reason] += 1
                rejected.append(_rejected_record(clip, plan, sample, tried, truth))
            elif (clip["content_key"], sample) in stored.failures:
                state = "failed"
                failure = stored.failures[(clip["content_key"], sample)]
                kind = failure.get("kind", "unknown")
                failure_kinds[kind] += 1
                failure_examples.setdefault(kind, f"{clip['id']}: {failure.get('detail', '')}")
            groups["per_polarity"][truth][state] += 1
            groups["per_split"][clip["split"]][state] += 1
    expected = len(plan["clips"]) * samples
    counts = {s: sum(g[s] for g in groups["per_split"].values()) for s in STATES}
    by_group: Counter[str] = Counter()
    for reason, n in final_reasons.items():
        by_group[reason_group(reason)] += n
    stats: dict[str, Any] = {
        "dataset": spec.name,
        "split": plan.get("split"),
        "teacher": {"model": cfg.model, "prompt_version": plan.get("prompt_version")},
        "clips": len(plan["clips"]),
        "samples_per_clip": samples,
        "expected": expected,
        **counts,
        "yield": _rate(counts["accepted"], expected),
        "rejected_by_reason": dict(final_reasons.most_common()),
        "rejected_by_group": dict(by_group.most_common()),
        "failed_by_kind": dict(failure_kinds.most_common()),
        "failure_examples": {k: failure_examples[k] for k, _ in failure_kinds.most_common()},
        "answers": n_answers,
        "answer_verdicts": dict(answer_reasons.most_common()),
        "per_polarity": {p: _group_stats(groups["per_polarity"].get(p, Counter())) for p in POLARITIES},
        "per_split": {s: _group_stats(c) for s, c in sorted(groups["per_split"].items())},
        "tokens": {
            "prompt": tokens["prompt"],
            "completion": tokens["completion"],
            "total": tokens["prompt"] + tokens["completion"],
        },
        "judge": {"enabled": cfg.filters.judge.enabled, "verdicts_stored": len(stored.judgements)},
    }
    skipped = read_skipped(out, spec.name)
    stats["skipped"] = {"clips": len(skipped), "by_reason": skip_counts(skipped)}
    if run is not None:
        stats["run"] = run
    write_jsonl_atomic(out / ACCEPTED, accepted)
    write_jsonl_atomic(out / REJECTED, rejected)
    write_json_atomic(out / STATS, stats)
    return stats


def _group_stats(c: Counter[str]) -> dict[str, Any]:
    total = sum(c[s] for s in STATES)
    return {"expected": total, **{s: c[s] for s in STATES}, "yield": _rate(c["accepted"], total)}


def _clip_fields(clip: dict[str, Any], plan: dict[str, Any], truth: str) -> dict[str, Any]:
    return {
        "id": clip["id"],
        "video_id": clip["video_id"],
        "clip_id": clip["clip_id"],
        "dataset": plan["dataset"],
        "split": clip["split"],
        "text": clip["text"],
        "label": clip["label"],
        "polarity": truth,
        "video_path": clip["video_path"],
    }


def _accepted_record(
    clip: dict[str, Any], plan: dict[str, Any], rec: dict[str, Any], verdict: Verdict, truth: str
) -> dict[str, Any]:
    parsed = verdict.parsed
    return {
        **_clip_fields(clip, plan, truth),
        "answer": AnswerFilter.with_true_score(parsed, clip["label"]),
        "teacher_answer": rec["answer"],
        "teacher_score": parsed.score,
        "prompt_version": rec.get("prompt_version") or plan.get("prompt_version"),
        "model": rec.get("model"),
        "sample": rec["sample"],
        "attempt": rec["attempt"],
        "key": rec["key"],
    }


def _rejected_record(
    clip: dict[str, Any],
    plan: dict[str, Any],
    sample: int,
    tried: list[tuple[dict[str, Any], Verdict]],
    truth: str,
) -> dict[str, Any]:
    rec, verdict = tried[-1]
    return {
        **_clip_fields(clip, plan, truth),
        "sample": sample,
        "reason": verdict.reason,
        "group": verdict.group,
        "attempts": [{"attempt": r["attempt"], "key": r["key"], "reason": v.reason} for r, v in tried],
        "teacher_answer": rec.get("answer"),
        "prompt_version": rec.get("prompt_version") or plan.get("prompt_version"),
        "model": rec.get("model"),
    }
