"""The three DC rewards of Hint-GRPO (paper eqs. 2-5), as pure functions with TRL's reward signature.

Each takes ``(prompts, completions, **kwargs)`` where ``kwargs`` carries the dataset columns repeated per completion
(``label``: the true score, ``dataset``: the DatasetSpec name or YAML path) and returns one float per completion.
They return the *unweighted* component; TRL applies λ1..λ3 through ``GRPOConfig.reward_weights`` (see
``REWARD_FUNCS`` and ``weighted_totals``), so the per-component metrics stay on a 0..1 scale.

The format reward reads the answer with ``DCOutput.parse_strict(text, spec)`` (tags once each, in order, nothing
around them, a finite score inside the dataset's range). How polarity and score couple to it and to each other is a
recipe choice (``reward_coupling``, bound with ``reward_funcs``; docs/architecture.md, "Rewards"):

- ``require_format``: polarity and score earn only for a strict answer (true), or read the answer's own
  ``<polarity>`` and ``<score>`` tags whatever surrounds them (false: eqs. 3-5 define the three apart);
- ``score_requires_polarity``: the score reward is 0 unless the polarity is right (true: eq. 5 applies "under the
  premise of consistent polarity"), or scores every answer (false).

The bare ``polarity_reward`` / ``score_reward`` use the defaults (``DEFAULT_COUPLING``).
A non-finite label gives ``None`` for polarity and score (TRL reads it as NaN: unscorable, zero advantage).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from msa_core import POLARITIES, DatasetSpec, DCOutput, DCParseError, Polarity, get_spec

RewardFunc = Callable[..., list[float | None]]

# The first <polarity>/<score> tag of an answer, read on its own (require_format=false). The class word must be
# exact, as in the strict format; the score is any finite number (eq. 5's max(0, .) bounds one outside the range).
_POLARITY_TAG = re.compile(r"<polarity>\s*([^<]*?)\s*</polarity>", re.DOTALL)
_SCORE_TAG = re.compile(r"<score>\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*</score>", re.DOTALL)


@dataclass(frozen=True)
class RewardCoupling:
    """How polarity and score depend on the format and on each other (the recipe's ``reward_coupling``)."""

    require_format: bool = False
    score_requires_polarity: bool = True


DEFAULT_COUPLING = RewardCoupling()


def completion_text(completion: Any) -> str:
    """The answer text of a TRL completion: a plain string or a conversational ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else ""
    return ""


def _specs(dataset: Sequence[Any] | None, n: int) -> list[DatasetSpec]:
    if dataset is None:
        raise ValueError("DC rewards need the 'dataset' column (a DatasetSpec name per row)")
    if len(dataset) != n:
        raise ValueError(f"'dataset' has {len(dataset)} rows for {n} completions")
    cache: dict[Any, DatasetSpec] = {}
    return [cache.setdefault(d, get_spec(d)) for d in dataset]


def _parse(text: str, spec: DatasetSpec) -> DCOutput | None:
    try:
        return DCOutput.parse_strict(text, spec)
    except DCParseError:
        return None


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Answer:
    """What the polarity and score rewards read of a completion (None: not there, or not readable)."""

    polarity: Polarity | None
    score: float | None


def read_answer(text: str, spec: DatasetSpec, *, require_format: bool) -> Answer:
    """The answer's polarity and score: from the strict parse (``require_format``), else from its first
    ``<polarity>`` and ``<score>`` tags, each on its own."""
    if require_format:
        strict = _parse(text, spec)
        return Answer(None, None) if strict is None else Answer(strict.polarity, strict.score)
    pol = _POLARITY_TAG.search(text)
    polarity = pol.group(1) if pol is not None and pol.group(1) in POLARITIES else None
    num = _SCORE_TAG.search(text)
    return Answer(polarity, _finite(num.group(1)) if num is not None else None)


def format_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Eq. 3: 1 if the completion is a strict DC answer on the dataset's scale, else 0."""
    specs = _specs(kwargs.get("dataset"), len(completions))
    return [float(_parse(completion_text(c), s) is not None) for c, s in zip(completions, specs, strict=True)]


def _graded(name: str, completions: Sequence[Any], kwargs: dict[str, Any], require_format: bool):
    """Per completion ``(answer, true score or None, spec)``: the shared reading of polarity and score."""
    labels = kwargs.get("label")
    if labels is None:
        raise ValueError(f"{name} needs the 'label' column (the true score per row)")
    specs = _specs(kwargs.get("dataset"), len(completions))
    for c, label, spec in zip(completions, labels, specs, strict=True):
        yield read_answer(completion_text(c), spec, require_format=require_format), _finite(label), spec


def polarity_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    coupling: RewardCoupling = DEFAULT_COUPLING,
    **kwargs: Any,
) -> list[float | None]:
    """Eq. 4: 1 if the answer's polarity equals the label's class under the dataset's neutral band, else 0."""
    graded = _graded("polarity_reward", completions, kwargs, coupling.require_format)
    return [
        None if truth is None else float(answer.polarity == spec.polarity_of(truth))
        for answer, truth, spec in graded
    ]


def score_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    coupling: RewardCoupling = DEFAULT_COUPLING,
    **kwargs: Any,
) -> list[float | None]:
    """Eq. 5: ``max(0, 1 - |s - s*| / (r_max - r_min))`` with the dataset's score range; 0 without a readable
    score, and 0 with the wrong polarity when ``coupling.score_requires_polarity``."""
    out: list[float | None] = []
    for answer, truth, spec in _graded("score_reward", completions, kwargs, coupling.require_format):
        if truth is None:
            out.append(None)
        elif answer.score is None or (
            coupling.score_requires_polarity and answer.polarity != spec.polarity_of(truth)
        ):
            out.append(0.0)
        else:
            out.append(max(0.0, 1.0 - abs(answer.score - truth) / (spec.score_max - spec.score_min)))
    return out


# The order TRL sees them in; GRPOConfig.reward_weights must follow it (λ1, λ2, λ3).
REWARD_FUNCS: tuple[RewardFunc, ...] = (format_reward, polarity_reward, score_reward)
REWARD_NAMES: tuple[str, ...] = ("format", "polarity", "score")


def reward_funcs(coupling: RewardCoupling = DEFAULT_COUPLING) -> tuple[RewardFunc, ...]:
    """``REWARD_FUNCS`` with ``coupling`` bound (``functools.partial``: TRL names a partial after its function)."""
    return (
        format_reward,
        functools.partial(polarity_reward, coupling=coupling),
        functools.partial(score_reward, coupling=coupling),
    )


def reward_components(
    completions: Sequence[Any],
    labels: Sequence[Any],
    datasets: Sequence[Any],
    coupling: RewardCoupling = DEFAULT_COUPLING,
) -> list[list[float]]:
    """Per completion ``[format, polarity, score]`` (NaN where a component is unscorable)."""
    kwargs = {"label": list(labels), "dataset": list(datasets)}
    cols = [f([None] * len(completions), completions, **kwargs) for f in reward_funcs(coupling)]
    return [[math.nan if v is None else float(v) for v in row] for row in zip(*cols, strict=True)]


def weighted_totals(rewards_per_func, weights):
    """Eq. 2, as training forms it: ``λ1 R_format + λ2 R_polarity + λ3 R_score`` per row of a (N, 3) tensor.

    NaN components are skipped (TRL's nansum); a row with every component NaN stays NaN. The one implementation
    of eq. 2: HintGRPOTrainer uses it for hard groups and the logged totals.
    """
    if weights.numel() != len(REWARD_FUNCS):
        raise ValueError(f"need {len(REWARD_FUNCS)} weights (format, polarity, score), got {weights.numel()}")
    weights = weights.to(device=rewards_per_func.device, dtype=rewards_per_func.dtype)
    total = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    total[rewards_per_func.isnan().all(dim=1)] = math.nan
    return total
