"""Filters over teacher answers; each rejection carries a reason code.

Reason codes (group in brackets; ``reask_on`` lists the groups that make the client ask again):
- ``format:<msa_core reason>`` [format]: ``DCOutput.parse_strict`` failed (``format:tag_count:think``, ...).
- ``polarity_tag`` [polarity]: the ``<polarity>`` tag differs from the ground truth's polarity.
- ``polarity_score`` [polarity]: the teacher's score lies on another side of the neutral band than the truth.
- ``think_too_short`` / ``think_too_long`` [plausibility]: reasoning length outside the bounds.
- ``few_modalities`` [plausibility]: the reasoning names evidence from fewer than ``min_modalities`` modalities.
- ``conclusion_contradicts`` [plausibility]: the reasoning's last sentence states another polarity than the tag.
- ``judge_implausible`` / ``judge_unclear`` / ``judge_missing`` [judge]: the optional LLM judge said no, answered
  neither word, or (offline re-filtering) has no stored verdict.
Accepted answers are re-rendered with the TRUE score in place of the teacher's (paper §III-A.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from msa_core import DatasetSpec, DCOutput, DCParseError, polarity_of

from cot_distill.config import FilterConfig

REASON_GROUPS = ("format", "polarity", "plausibility", "judge")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def reason_group(reason: str) -> str:
    """The group a reason code belongs to (what ``reask_on`` names)."""
    if reason.startswith("format:"):
        return "format"
    if reason.startswith("polarity_"):
        return "polarity"
    if reason.startswith("judge_"):
        return "judge"
    return "plausibility"


@dataclass(frozen=True)
class Verdict:
    """Outcome of the rule filters for one answer."""

    reason: str | None
    parsed: DCOutput | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def group(self) -> str | None:
        return None if self.reason is None else reason_group(self.reason)


def _prefix_pattern(words: list[str]) -> re.Pattern[str] | None:
    words = [w.strip() for w in words if w.strip()]
    if not words:
        return None
    return re.compile(
        r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")", re.IGNORECASE
    )


class AnswerFilter:
    """Rule-based filters for one dataset spec (the LLM judge runs separately, see cot_distill.generate)."""

    def __init__(self, cfg: FilterConfig, spec: DatasetSpec):
        self.cfg = cfg
        self.spec = spec
        self._modalities = {
            m: p for m, words in cfg.modality_keywords.items() if (p := _prefix_pattern(words)) is not None
        }
        self._conclusion = {
            pol: re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
            for pol, words in cfg.conclusion_keywords.items()
            if words
        }

    def modalities_named(self, think: str) -> list[str]:
        return [m for m, pattern in self._modalities.items() if pattern.search(think)]

    def conclusion_polarities(self, think: str) -> set[str]:
        sentences = [s for s in _SENTENCE_END.split(think.strip()) if s.strip()]
        last = sentences[-1] if sentences else ""
        return {pol for pol, pattern in self._conclusion.items() if pattern.search(last)}

    def check(self, text: str, label: float) -> Verdict:
        """Every rule filter, in order; the first failure is the reason."""
        try:
            parsed = DCOutput.parse_strict(text, self.spec)
        except DCParseError as exc:
            return Verdict(f"format:{exc.reason}")
        truth = polarity_of(label, self.spec)
        if parsed.polarity != truth:
            return Verdict("polarity_tag", parsed)
        if polarity_of(parsed.score, self.spec) != truth:
            return Verdict("polarity_score", parsed)
        think = parsed.think
        if len(think) < self.cfg.min_think_chars:
            return Verdict("think_too_short", parsed)
        if len(think) > self.cfg.max_think_chars:
            return Verdict("think_too_long", parsed)
        if len(self.modalities_named(think)) < self.cfg.min_modalities:
            return Verdict("few_modalities", parsed)
        if self.cfg.check_conclusion:
            stated = self.conclusion_polarities(think)
            if stated and parsed.polarity not in stated:
                return Verdict("conclusion_contradicts", parsed)
        return Verdict(None, parsed)

    def reasks(self, verdict: Verdict) -> bool:
        """Whether this verdict should make the client ask the teacher again."""
        return verdict.group is not None and verdict.group in self.cfg.reask_on

    @staticmethod
    def with_true_score(parsed: DCOutput, label: float) -> str:
        """The training target: the teacher's polarity and reasoning, the annotated score."""
        return DCOutput(polarity=parsed.polarity, think=parsed.think, score=label).render()


def judge_messages(instruction: str, transcript: str, answer: str) -> list[dict[str, str]]:
    """The judge request (text only): the transcript and the answer under review."""
    return [
        {"role": "system", "content": instruction},
        {
            "role": "user",
            "content": f'Transcript: "{" ".join(transcript.split())}"\nExplanation to review:\n{answer}',
        },
    ]


_VERDICT = re.compile(r"\b(IMPLAUSIBLE|PLAUSIBLE)\b", re.IGNORECASE)


def judge_reason(reply: str | None) -> str | None:
    """None if the judge said PLAUSIBLE, else the rejection reason."""
    if reply is None:
        return "judge_missing"
    m = _VERDICT.search(reply)
    if m is None:
        return "judge_unclear"
    return None if m.group(1).upper() == "PLAUSIBLE" else "judge_implausible"
