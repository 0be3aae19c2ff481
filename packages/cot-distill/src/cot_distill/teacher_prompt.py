"""The teacher prompt: msa-core's one DC prompt plus a versioned teacher instruction (configs/distill/*.yaml).

The instruction file holds ``version`` and ``instruction``; the version recorded with every answer is
``"<msa_core.PROMPT_VERSION>+<version>"`` so a change to either the shared prompt or the teacher instruction
changes the cache key and is visible in the published dataset card.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from msa_core import PROMPT_VERSION, ConfigError, DatasetSpec, Prompt, build_prompt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_TEACHER_PROMPT = "configs/distill/teacher-v1.yaml"

# Answers are validated with DCOutput.parse_strict regardless; the regex only keeps a constrained decoder on the
# three tags (vLLM's `structured_outputs: {"regex": ...}`; the old `guided_regex` is silently ignored by vLLM).
DC_REGEX = (
    r"<polarity>(negative|neutral|positive)</polarity>"
    r"<think>[^<>]+</think>"
    r"<score>-?[0-9]+(\.[0-9]{1,4})?</score>"
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
