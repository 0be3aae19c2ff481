"""The Discrimination-Calibration (DC) output: ``<polarity>…</polarity><think>…</think><score>…</score>``.

One implementation, used everywhere: ``DCOutput.parse_strict`` is the format reward and the distillation filter;
``parse_lenient`` is what evaluation uses (best-effort score, with the failure reason recorded); ``render`` writes
the canonical text that SFT targets are made of.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from msa_core.spec import POLARITIES, DatasetSpec, Polarity

TAGS = ("polarity", "think", "score")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# Whole answer: the three tags once each, in order, nothing but whitespace around or between them.
_STRICT = re.compile(
    r"\A\s*<polarity>\s*(?P<polarity>[^<]*?)\s*</polarity>\s*"
    r"<think>(?P<think>.*?)</think>\s*"
    rf"<score>\s*(?P<score>{_NUMBER})\s*</score>\s*\Z",
    re.DOTALL,
)
_TAG_RE = {t: re.compile(rf"<{t}>(.*?)</{t}>", re.DOTALL | re.IGNORECASE) for t in TAGS}
_OPEN_CLOSE = {t: (re.compile(rf"<{t}>", re.IGNORECASE), re.compile(rf"</{t}>", re.IGNORECASE)) for t in TAGS}
_POLARITY_WORD = re.compile(r"\b(negative|neutral|positive)\b", re.IGNORECASE)
_LAST_NUMBER = re.compile(_NUMBER)
_SCORE_OPEN = re.compile(r"<score>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


class DCParseError(ValueError):
    """The text is not a strict DC answer; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DCOutput(BaseModel):
    """A valid DC answer."""

    model_config = ConfigDict(frozen=True)

    polarity: Polarity = Field(description="Coarse polarity decided first (discrimination).")
    think: str = Field(min_length=1, description="The reasoning over text, audio and visual cues.")
    score: float = Field(description="Fine-grained score on the dataset's scale (calibration).")

    @field_validator("think")
    @classmethod
    def _think_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("think is empty")
        return v

    @field_validator("score")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("score is not finite")
        return v

    def render(self, *, decimals: int | None = None) -> str:
        """Canonical text: no whitespace between tags, think stripped."""
        score = f"{self.score:.{decimals}f}" if decimals is not None else _fmt(self.score)
        return (
            f"<polarity>{self.polarity}</polarity><think>{self.think.strip()}</think><score>{score}</score>"
        )

    @classmethod
    def parse_strict(cls, text: str, spec: DatasetSpec | None = None) -> DCOutput:
        """Parse an answer that must be exactly the DC format; raises DCParseError with a reason code.

        Reasons: ``not_text``, ``tag_count:<tag>`` (a tag missing or repeated), ``tag_order``, ``extra_text``,
        ``bad_polarity``, ``empty_think``, ``bad_score``, ``score_out_of_range``.
        """
        if not isinstance(text, str):
            raise DCParseError("not_text", type(text).__name__)
        for tag, (open_re, close_re) in _OPEN_CLOSE.items():
            n_open, n_close = len(open_re.findall(text)), len(close_re.findall(text))
            if n_open != 1 or n_close != 1:
                raise DCParseError(f"tag_count:{tag}", f"<{tag}> x{n_open}, </{tag}> x{n_close}")
        m = _STRICT.match(text)
        if m is None:
            positions = [text.lower().find(f"<{t}>") for t in TAGS]
            if positions != sorted(positions):
                raise DCParseError("tag_order", "tags must come as polarity, think, score")
            if _TAG_RE["score"].search(text) and not re.search(
                rf"<score>\s*{_NUMBER}\s*</score>", text, re.IGNORECASE
            ):
                raise DCParseError("bad_score", _TAG_RE["score"].search(text).group(1).strip()[:40])
            raise DCParseError("extra_text", "only whitespace may surround the tags")
        polarity = m["polarity"].lower()
        if polarity not in POLARITIES or m["polarity"] != polarity:
            raise DCParseError("bad_polarity", m["polarity"])
        think = m["think"].strip()
        if not think:
            raise DCParseError("empty_think")
        score = float(m["score"])
        if not math.isfinite(score):
            raise DCParseError("bad_score", m["score"])
        if spec is not None and not (spec.score_min <= score <= spec.score_max):
            raise DCParseError(
                "score_out_of_range", f"{score:g} not in [{spec.score_min:g}, {spec.score_max:g}]"
            )
        return cls(polarity=polarity, think=think, score=score)

    @classmethod
    def parse_lenient(cls, text: str, spec: DatasetSpec | None = None) -> LenientParse:
        """Best effort for evaluation: never raises; records how the score was found (or why not)."""
        if not isinstance(text, str):
            return LenientParse(status="failed", reason="not_text")
        try:
            out = cls.parse_strict(text, spec)
            return LenientParse(
                polarity=out.polarity, think=out.think, score=out.score, status="ok", reason="strict"
            )
        except DCParseError as exc:
            strict_reason = exc.reason
        pol_m = _TAG_RE["polarity"].search(text)
        polarity = None
        if pol_m and pol_m.group(1).strip().lower() in POLARITIES:
            polarity = pol_m.group(1).strip().lower()
        think_m = _TAG_RE["think"].search(text)
        think = think_m.group(1).strip() if think_m else None
        score, how = None, None
        score_m = _TAG_RE["score"].search(text)
        if score_m:
            num = _LAST_NUMBER.search(score_m.group(1))
            if num:
                score, how = float(num.group(0)), "score_tag"
        if score is None:
            # An unterminated <score> (generation cut off) or a bare number after the last tag.
            # Case-insensitive like the tag search above ("<SCORE>" must not break the split).
            tail = _SCORE_OPEN.split(text)[-1] if _SCORE_OPEN.search(text) else _THINK_CLOSE.split(text)[-1]
            nums = _LAST_NUMBER.findall(tail)
            if nums:
                score, how = float(nums[-1]), "last_number"
        if polarity is None:
            words = _POLARITY_WORD.findall(text)
            polarity = words[0].lower() if words else None
        if score is None or not math.isfinite(score):
            return LenientParse(
                polarity=polarity, think=think, status="failed", reason=f"no_score (strict: {strict_reason})"
            )
        clipped = False
        if spec is not None and not (spec.score_min <= score <= spec.score_max):
            score, clipped = min(max(score, spec.score_min), spec.score_max), True
        reason = f"{how}{', clipped' if clipped else ''} (strict: {strict_reason})"
        return LenientParse(polarity=polarity, think=think, score=score, status="recovered", reason=reason)


class LenientParse(BaseModel):
    """Outcome of ``DCOutput.parse_lenient``: status ``ok`` (strict), ``recovered`` or ``failed`` (score None)."""

    polarity: Polarity | None = None
    think: str | None = None
    score: float | None = None
    status: Literal["ok", "recovered", "failed"]
    reason: str


def _fmt(score: float) -> str:
    text = f"{score:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
