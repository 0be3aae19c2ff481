"""DistillConfig: every knob of `cot-distill generate` / `filter`, loadable from YAML and overridable from the CLI.

Precedence: field defaults < ``--config YAML`` < ``--set a.b=value`` < explicit typer options. Unknown keys are a
ConfigError naming the key. The API key is never a field: only the *name* of the environment variable holding it
(``api_key_env``) is configured, so the resolved ``OUT/config.yaml`` cannot contain a secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from msa_core import ConfigError, artifacts
from msa_core.recipe import load_recipe, write_resolved
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cot_distill.teacher_prompt import DEFAULT_TEACHER_PROMPT

_STRICT = ConfigDict(extra="forbid")


class SamplingConfig(BaseModel):
    """Sampling parameters sent with every teacher request (part of the cache key)."""

    model_config = _STRICT

    temperature: float = Field(0.7, ge=0, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(1024, gt=0, description="Most tokens the teacher may write per answer.")
    seed: int | None = Field(
        0,
        description="Base seed; each (sample, attempt) gets its own derived seed so re-asks differ. null: no seed.",
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="More body fields passed as-is (e.g. top_k, repetition_penalty)."
    )


class RetryConfig(BaseModel):
    """Transport retries (HTTP 429/5xx, timeouts, dropped connections): exponential backoff with full jitter."""

    model_config = _STRICT

    max_retries: int = Field(6, ge=0, description="Retries per request after the first try.")
    backoff_base_s: float = Field(
        0.5, gt=0, description="First backoff ceiling in seconds; doubles each retry."
    )
    backoff_max_s: float = Field(30.0, gt=0, description="Largest backoff ceiling in seconds.")
    request_timeout_s: float = Field(
        600.0, gt=0, description="Seconds to wait for one answer before retrying."
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")


class JudgeConfig(BaseModel):
    """Optional LLM-judge pass over answers that passed the rule filters (same client, same endpoints)."""

    model_config = _STRICT

    enabled: bool = Field(False, description="Ask a judge model whether the reasoning is plausible.")
    model: str | None = Field(None, description="Judge model name; null: the teacher model.")
    max_tokens: int = Field(8, gt=0, description="Tokens for the judge's one-word verdict.")
    instruction: str = Field(
        "You review a sentiment-analysis explanation. Reply with exactly one word: PLAUSIBLE if the reasoning "
        "is grounded in the transcript and the described audio and visual cues and supports the stated polarity, "
        "otherwise IMPLAUSIBLE.",
        description="System text of the judge request; the verdict must contain PLAUSIBLE or IMPLAUSIBLE.",
    )


DEFAULT_MODALITY_KEYWORDS: dict[str, list[str]] = {
    "text": [
        "text",
        "word",
        "transcript",
        "wording",
        "lexical",
        "verbal",
        "said",
        "says",
        "phrase",
        "sentence",
    ],
    "audio": ["audio", "voice", "vocal", "tone", "pitch", "prosod", "acoustic", "intonation", "loudness"],
    "visual": [
        "visual",
        "face",
        "facial",
        "expression",
        "video",
        "frame",
        "gesture",
        "smil",
        "frown",
        "gaze",
    ],
}
DEFAULT_CONCLUSION_KEYWORDS: dict[str, list[str]] = {
    "negative": ["negative"],
    "neutral": ["neutral"],
    "positive": ["positive"],
}


class FilterConfig(BaseModel):
    """The filters applied to every answer; reason codes are listed in cot_distill.filters."""

    model_config = _STRICT

    min_think_chars: int = Field(40, ge=1, description="Shortest acceptable reasoning, in characters.")
    max_think_chars: int = Field(4000, ge=1, description="Longest acceptable reasoning, in characters.")
    min_modalities: int = Field(
        2, ge=0, description="How many modalities the reasoning must name as evidence."
    )
    modality_keywords: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_MODALITY_KEYWORDS.items()},
        description="Per modality, word prefixes that count as naming it (case-insensitive, at a word start).",
    )
    check_conclusion: bool = Field(
        True, description="Reject when the reasoning's last sentence contradicts the tag."
    )
    conclusion_keywords: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_CONCLUSION_KEYWORDS.items()},
        description="Per polarity, words that state it in the reasoning's last sentence.",
    )
    reask_on: list[Literal["format", "polarity", "plausibility", "judge"]] = Field(
        default_factory=lambda: ["format", "polarity"],
        description="Rejection groups that make the client ask again (within max_attempts).",
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Optional LLM-judge pass.")


class DistillConfig(BaseModel):
    """Configuration of one distillation run (resolved copy written to OUT/config.yaml)."""

    model_config = _STRICT

    data: str | None = Field(
        None, description="MMSA dataset root (label.csv + Raw/<video_id>/<clip_id>.mp4)."
    )
    dataset: str = Field(
        "sims", description="Dataset spec name (sims, simsv2, mosi, mosei) or a spec YAML path."
    )
    split: Literal["train", "valid", "test", "all"] = Field("train", description="Which split to distil.")
    on_bad_label: Literal["error", "skip", "clip"] = Field(
        "error",
        description="A label off the dataset's scale by more than 1e-6: error, skip the clip, or clip the label "
        "onto the scale (within 1e-6 it is always clipped, with a warning).",
    )
    max_failed_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="generate exits 1 when more than this fraction of the samples failed for good (after retries); "
        "clips skipped for their media do not count.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N clips of the split.")
    out: str = Field("runs/distill", description="Output directory (responses.jsonl, accepted.jsonl, ...).")
    base_urls: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000/v1"],
        description="OpenAI-compatible endpoints (…/v1); requests are spread over them (least in flight).",
    )
    model: str = Field("Qwen/Qwen3-Omni-30B-A3B-Instruct", description="Teacher model name served there.")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Name of the env variable holding the API key (the key is never written).",
    )
    teacher_prompt: str = Field(
        DEFAULT_TEACHER_PROMPT, description="Teacher instruction YAML (version + instruction)."
    )
    concurrency: int = Field(64, ge=1, description="Most requests in flight at once (over all endpoints).")
    samples_per_clip: int = Field(1, ge=1, description="Independent answers wanted per clip.")
    max_attempts: int = Field(3, ge=1, description="Answers asked per sample when they fail a re-ask filter.")
    media_url: Literal["file", "data"] = Field(
        "file",
        description="How media travel: file:// URLs (server needs --allowed-local-media-path DATA) or data: URLs.",
    )
    wav_dir: str | None = Field(
        None,
        description="Where extracted 16 kHz wavs go; null: OUT/wav16k (never the dataset folder). Audio travels "
        "as file:// only when this lies inside DATA (the server's allowed media path), else as a data: URL.",
    )
    send_audio: bool = Field(True, description="Send the clip's audio track as its own audio_url part.")
    mm_processor_kwargs: dict[str, Any] | None = Field(
        None,
        description="Passed through as the request's mm_processor_kwargs (vLLM needs --trust-request-mm-kwargs).",
    )
    structured_outputs: bool = Field(
        False,
        description="Constrain decoding with vLLM structured_outputs {regex: DC format} (never guided_*).",
    )
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="Sampling parameters.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Transport retry policy.")
    filters: FilterConfig = Field(default_factory=FilterConfig, description="Answer filters.")
    progress: bool = Field(True, description="Show a progress bar (only on a terminal).")

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one base URL is needed")
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [u.rstrip("/") for u in v]


def load_config(
    path: str | Path | None = None, *, sets: list[str] | None = None, overrides: dict[str, Any] | None = None
) -> DistillConfig:
    """Build the config from a YAML file, ``--set`` assignments and explicit (non-None) overrides."""
    try:
        return load_recipe(DistillConfig, path, sets, overrides)
    except ConfigError as exc:
        if re.search(r"unknown key '[^']*key[^']*'", str(exc)):
            raise ConfigError(f"{exc} (the API key itself is never configured: set api_key_env)") from None
        raise


def config_dir(path: str | Path | None) -> Path | None:
    """The directory of a config file, for resolving paths written relative to it."""
    return Path(path).resolve().parent if path is not None else None


def dump_config(cfg: DistillConfig, path: Path) -> None:
    """Write the resolved config (no secret can be in it: only api_key_env, the variable's name)."""
    write_resolved(cfg, path)


def read_run_config(out: str | Path) -> DistillConfig:
    """The resolved config a run wrote into its output directory."""
    path = Path(out) / artifacts.DISTILL_CONFIG
    if not path.is_file():
        raise ConfigError(f"{path}: not found (is {out} a `cot-distill generate` output directory?)")
    return load_config(path)
