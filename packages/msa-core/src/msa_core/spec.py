"""Dataset specifications: score range, polarity rule and metric family per dataset, plus a registry.

Built-in specs live in ``msa_core/specs/*.yaml``; a user adds a dataset with ``register_spec_file(path)`` or by
passing a YAML path wherever a dataset name is accepted (``get_spec("my/own.yaml")``).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from msa_core.errors import ConfigError

Polarity = Literal["negative", "neutral", "positive"]
POLARITIES: tuple[Polarity, ...] = ("negative", "neutral", "positive")


class DatasetSpec(BaseModel):
    """What the rest of the toolkit needs to know about a dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry key, e.g. 'sims'.")
    display_name: str = Field("", description="Name printed in tables, e.g. 'CH-SIMS'.")
    language: Literal["en", "zh", "other"] = Field("en", description="Transcript language.")
    score_min: float = Field(description="Lowest sentiment score of the annotation scale.")
    score_max: float = Field(description="Highest sentiment score of the annotation scale.")
    neutral_low: float = Field(description="Lower edge of the neutral band.")
    neutral_high: float = Field(description="Upper edge of the neutral band.")
    neutral_low_inclusive: bool = Field(True, description="Whether a score equal to neutral_low is neutral.")
    neutral_high_inclusive: bool = Field(
        True, description="Whether a score equal to neutral_high is neutral."
    )
    metric_family: Literal["mosi", "sims"] = Field(
        description="'mosi': Acc7/Acc5/Has0-Non0 Acc2 on [-3, 3]; 'sims': Acc5/Acc3/Acc2 on [-1, 1] (MMSA)."
    )
    license: str = Field("", description="Licence note of the source dataset, copied into dataset cards.")
    homepage: str = Field("", description="Where the clips can be obtained, named in dataset cards.")

    @model_validator(mode="after")
    def _check_ranges(self) -> DatasetSpec:
        if (
            not (math.isfinite(self.score_min) and math.isfinite(self.score_max))
            or self.score_min >= self.score_max
        ):
            raise ValueError(
                f"score_min ({self.score_min}) must be finite and below score_max ({self.score_max})"
            )
        if not (self.score_min <= self.neutral_low <= self.neutral_high <= self.score_max):
            raise ValueError(
                "neutral band must satisfy score_min <= neutral_low <= neutral_high <= score_max"
            )
        return self

    @property
    def score_range(self) -> tuple[float, float]:
        return (self.score_min, self.score_max)

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def polarity_of(self, score: float) -> Polarity:
        return polarity_of(score, self)

    def polarity_rule_text(self) -> str:
        """The rule in words, as the prompt states it."""
        lo = "at or above" if self.neutral_low_inclusive else "above"
        hi = "at or below" if self.neutral_high_inclusive else "below"
        return (
            f"neutral if the score is {lo} {self.neutral_low:g} and {hi} {self.neutral_high:g}, "
            f"positive above that band, negative below it"
        )


def polarity_of(score: float, spec: DatasetSpec) -> Polarity:
    """Three-class polarity of a score under the spec's neutral band (MMSA's bins)."""
    if score is None or not math.isfinite(score):
        raise ValueError(f"polarity_of needs a finite score, got {score!r}")
    below = score < spec.neutral_low or (score == spec.neutral_low and not spec.neutral_low_inclusive)
    above = score > spec.neutral_high or (score == spec.neutral_high and not spec.neutral_high_inclusive)
    if below:
        return "negative"
    if above:
        return "positive"
    return "neutral"


_REGISTRY: dict[str, DatasetSpec] = {}


def _load_yaml(path: Path | str, text: str | None = None) -> DatasetSpec:
    try:
        data = yaml.safe_load(text if text is not None else Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read dataset spec: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a dataset spec must be a YAML mapping")
    try:
        return DatasetSpec(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid dataset spec: {problems}") from exc


def _builtin() -> None:
    if _REGISTRY:
        return
    for entry in sorted(resources.files("msa_core").joinpath("specs").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            spec = _load_yaml(entry.name, entry.read_text())
            _REGISTRY[spec.name] = spec


def register_spec(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    _builtin()
    if spec.name in _REGISTRY and not overwrite and _REGISTRY[spec.name] != spec:
        raise ConfigError(f"dataset {spec.name!r} is already registered with a different spec")
    _REGISTRY[spec.name] = spec
    return spec


def register_spec_file(path: str | Path, *, overwrite: bool = False) -> DatasetSpec:
    """Add a user dataset from a YAML file with the DatasetSpec fields."""
    return register_spec(_load_yaml(path), overwrite=overwrite)


def get_spec(name_or_path: str | DatasetSpec) -> DatasetSpec:
    """A registered spec by name, or a spec loaded (and registered) from a YAML path."""
    if isinstance(name_or_path, DatasetSpec):
        return name_or_path
    _builtin()
    key = str(name_or_path)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key.endswith((".yaml", ".yml")):
        return register_spec_file(key)
    raise ConfigError(
        f"unknown dataset {key!r}; known: {', '.join(sorted(_REGISTRY))} (or give a spec YAML path)"
    )


def list_specs() -> list[DatasetSpec]:
    _builtin()
    return list(_REGISTRY.values())
