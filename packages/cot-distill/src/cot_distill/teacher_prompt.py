"""The teacher prompt: msa-core's one DC prompt plus a versioned teacher instruction (configs/distill/*.yaml).

The instruction file holds ``version`` and ``instruction``; the version recorded with every answer is
``"<msa_core.PROMPT_VERSION>+<version>"`` so a change to either the shared prompt or the teacher instruction
changes the cache key and is visible in the published dataset card.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from msa_core import PROMPT_VERSION, ConfigError, DatasetSpec, Prompt, build_prompt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_TEACHER_PROMPT = "configs/distill/teacher-v1.yaml"

# Answers are validated with DCOutput.parse_strict regardless; the regex keeps a constrained decoder on the three
# tags and on the dataset's scale (vLLM's `structured_outputs: {"regex": ...}`; the old `guided_regex` is silently
# ignored by vLLM). Without the bound vLLM wrote <score>-8</score> and 66.3 for CH-SIMS.
SCORE_DECIMALS = 4


def _magnitudes(lo: int, hi: int, decimals: int) -> str:
    """Unsigned decimals in [lo, hi] (integers, 0 <= lo <= hi), without leading zeros, up to ``decimals`` places."""
    alternatives = []
    if hi > lo:
        ints = "|".join(str(i) for i in range(lo, hi))
        alternatives.append(f"({ints})(\\.[0-9]{{1,{decimals}}})?")
    alternatives.append(f"{hi}(\\.0{{1,{decimals}}})?")
    return "(" + "|".join(alternatives) + ")"


def score_regex(score_min: float, score_max: float, decimals: int = SCORE_DECIMALS) -> str:
    """A regex of the decimal numbers in [score_min, score_max] with at most ``decimals`` places.

    Exact for integer bounds (every dataset of the paper: [-1, 1], [-3, 3]); other bounds are widened to the
    integers around them, and DCOutput.parse_strict still rejects what lies outside the scale.
    """
    lo, hi = math.floor(score_min), math.ceil(score_max)
    if hi - lo > 1000:
        raise ConfigError(
            f"score scale [{score_min:g}, {score_max:g}] is too wide for a structured-output regex"
        )
    parts = []
    if hi >= 0:
        parts.append(_magnitudes(max(lo, 0), hi, decimals))
    if lo < 0:
        parts.append("-" + _magnitudes(max(-hi, 0), -lo, decimals))
    return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"


def dc_regex(spec: DatasetSpec, min_think_chars: int = 1, max_think_chars: int | None = None) -> str:
    """The DC answer of one dataset: the three tags in order, the score on the dataset's scale.

    The reasoning's length bounds are the answer filter's (filters.min/max_think_chars): a constrained decoder
    then cannot write reasoning the filter would reject, nor run to max_tokens inside <think>.
    """
    if min_think_chars < 1 or (max_think_chars is not None and max_think_chars < min_think_chars):
        raise ConfigError(f"think length bounds {min_think_chars}..{max_think_chars} are not a range")
    think = f"{{{min_think_chars},{max_think_chars if max_think_chars is not None else ''}}}"
    return (
        r"<polarity>(negative|neutral|positive)</polarity>"
        f"<think>[^<>]{think}</think>"
        f"<score>{score_regex(spec.score_min, spec.score_max)}</score>"
    )


class TeacherPrompt(BaseModel):
    """A versioned teacher instruction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(
        min_length=1, description="Version string recorded with every answer, e.g. 'teacher-v1'."
    )
    instruction: str = Field(min_length=1, description="Text appended to the shared DC prompt's user turn.")

    @property
    def full_version(self) -> str:
        return f"{PROMPT_VERSION}+{self.version}"

    def build(self, text: str, spec: DatasetSpec) -> Prompt:
        """The teacher's system and user text for one transcript."""
        base = build_prompt(text, spec, extra_instruction=self.instruction)
        return Prompt(system=base.system, user=base.user, version=self.full_version)


def _repo_root() -> Path | None:
    # Workspace checkouts keep configs/ at the repository root; walk up from this file to find it.
    for parent in Path(__file__).resolve().parents:
        if (parent / "configs" / "distill").is_dir():
            return parent
    return None


def resolve_teacher_prompt_path(path: str | Path, *, relative_to: Path | None = None) -> Path:
    """Find the instruction file: as given (cwd), next to the config that named it, or under the repo root."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        tried = [candidate]
    else:
        tried = [Path.cwd() / candidate]
        if relative_to is not None:
            tried.append(relative_to / candidate)
        root = _repo_root()
        if root is not None:
            tried.append(root / candidate)
    for p in tried:
        if p.is_file():
            return p.resolve()
    raise ConfigError(f"teacher prompt file {str(path)!r} not found (tried {', '.join(map(str, tried))})")


def load_teacher_prompt(
    path: str | Path = DEFAULT_TEACHER_PROMPT, *, relative_to: Path | None = None
) -> TeacherPrompt:
    """Load and validate a teacher instruction YAML; unknown keys are a ConfigError naming the key."""
    resolved = resolve_teacher_prompt_path(path, relative_to=relative_to)
    try:
        data = yaml.safe_load(resolved.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{resolved}: cannot read teacher prompt: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{resolved}: a teacher prompt must be a YAML mapping with 'version' and 'instruction'"
        )
    try:
        return TeacherPrompt(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{resolved}: invalid teacher prompt: {problems}") from exc
