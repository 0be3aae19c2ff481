"""The SFT recipe (``SFTConfig``), its checks and the LLaMA-Factory arguments it turns into; running is in sft.py.

Everything that can fail before LLaMA-Factory starts is checked here: the model, the export (read with
``msa_core.artifacts.read_lf_dataset``, the reader GRPO uses too), DeepSpeed's config, FFmpeg.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msa_core import ConfigError, DataError, MediaSettings, Prompt, artifacts
from msa_core.recipe import load_recipe
from msa_core.recipe import write_resolved as write_recipe
from msa_omni import check_thinker_dir
from msa_omni.families import DEFAULT_FAMILY, FAMILIES, family_of_hub_id, family_of_model
from pydantic import BaseModel, ConfigDict, Field, model_validator

from msa_rl.moe import check_router_aux


class SFTConfig(BaseModel):
    """An SFT recipe. Paths are relative to the current directory (``deepspeed`` also to the workspace root)."""

    model_config = ConfigDict(extra="forbid")

    # -- inputs and outputs
    model: str = Field(
        DEFAULT_FAMILY.reference_model,
        description="Base model: a Hub id or a local Omni thinker checkpoint (a family in msa_omni.families) with "
        "its processor.",
    )
    data: str = Field(
        "", description="A cot-distill LLaMA-Factory export directory (holds dataset_info.json)."
    )
    dataset: str = Field(
        "msa_cot", description="Dataset name(s) in the export's dataset_info.json, comma-separated."
    )
    eval_dataset: str | None = Field(
        None, description="Optional evaluation dataset name(s), e.g. msa_cot_valid."
    )
    output_dir: str = Field(
        "runs/sft", description="Checkpoint, resolved configs, log and sft_metrics.jsonl go here."
    )
    overwrite_output_dir: bool = Field(
        True, description="Train into an existing output_dir (LLaMA-Factory flag)."
    )
    resume_from_checkpoint: str | None = Field(None, description="A checkpoint-N directory to resume from.")
    # -- model and method
    template: str = Field(
        "",
        description="LLaMA-Factory chat template (must match the model); empty: the model family's own.",
    )
    router_aux_loss_coef: float | None = Field(
        None,
        ge=0,
        description="Mixture-of-experts students only (msa_rl.moe): the router's load-balancing loss weight "
        "(None: the model config's own; 0: off, as LLaMA-Factory alone would train). Other students: ignored.",
    )
    finetuning_type: Literal["full", "lora", "freeze"] = Field(
        "full", description="Full fine-tune, LoRA or freeze."
    )
    lora_rank: int = Field(8, ge=1, description="LoRA rank (finetuning_type: lora).")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha (finetuning_type: lora).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (finetuning_type: lora).")
    lora_target: str = Field(
        "all", description="LoRA target modules, comma-separated, or 'all' linear layers."
    )
    freeze_vision_tower: bool = Field(
        True,
        description="Freeze the vision and audio encoders (LLaMA-Factory treats both as the Omni 'tower').",
    )
    freeze_multi_modal_projector: bool = Field(
        True, description="Freeze the projectors (vision merger, audio proj)."
    )
    freeze_language_model: bool = Field(False, description="Freeze the language model (train encoders only).")
    media: MediaSettings = Field(
        default_factory=lambda: MediaSettings(max_frames=128, video_size=(256, 256), min_pixels=256),
        description="Frame sampling, frame size and audio-in-video: must match what GRPO and evaluation feed "
        "the model (written to media.json next to the checkpoint).",
    )
    cutoff_len: int = Field(
        4096,
        ge=64,
        description="Maximum tokens per example (prompt + media + answer); checked per clip before training.",
    )
    on_long_clip: Literal["error", "drop"] = Field(
        "error",
        description="An example over cutoff_len (it would be cut mid-media): error (name the longest clips and "
        "stop) or drop (leave it out of the training data, counted and named).",
    )
    # -- optimisation
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (paper: 1e-5).")
    num_train_epochs: float = Field(
        3.0, gt=0, description="Epochs (ignored when max_steps > 0; paper: not stated)."
    )
    max_steps: int = Field(-1, description="Stop after this many optimiser steps (-1: use num_train_epochs).")
    per_device_train_batch_size: int = Field(1, ge=1, description="Examples per device per step.")
    gradient_accumulation_steps: int = Field(
        8, ge=1, description="Micro-batches accumulated per optimiser step."
    )
    lr_scheduler_type: str = Field("cosine", description="HF scheduler name: cosine, linear, constant, ...")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Share of the steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Literal["bf16", "fp16", "fp32"] = Field("bf16", description="Training precision (CPU: fp32).")
    gradient_checkpointing: bool = Field(True, description="Recompute activations to save memory.")
    deepspeed: str | None = Field(
        None, description="DeepSpeed JSON (e.g. configs/deepspeed/zero3.json) or none."
    )
    device: Literal["auto", "cpu"] = Field("auto", description="'cpu' hides GPUs and trains on the CPU.")
    seed: int = Field(42, description="Seed of the data order and initialisation.")
    # -- data loading and logging
    max_samples: int | None = Field(None, ge=1, description="Use at most this many examples per dataset.")
    preprocessing_num_workers: int | None = Field(None, ge=1, description="Processes tokenising the dataset.")
    dataloader_num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    logging_steps: int = Field(10, ge=1, description="Log the loss every N steps.")
    save_strategy: Literal["steps", "epoch", "no"] = Field(
        "epoch", description="When to write intermediate checkpoints (the final model is always saved)."
    )
    save_steps: int = Field(500, ge=1, description="Checkpoint interval for save_strategy: steps.")
    save_total_limit: int | None = Field(
        2, ge=1, description="Keep at most this many intermediate checkpoints."
    )
    report_to: str = Field("none", description="Trainer loggers: none, tensorboard, wandb, ...")
    # -- escape hatch and environment
    llamafactory: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra LLaMA-Factory arguments passed through as is (not for keys this recipe already has).",
    )
    sft_env: str | None = Field(None, description="SFT environment path (default: <workspace>/.venvs/sft).")

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        # (a placeholder template: the model's family is looked up only when the arguments are really built)
        keys_only = self.model_copy(update={"llamafactory": {}, "template": self.template or "-"})
        modelled = set(llamafactory_args(keys_only, Path("."), Path(".")))
        clash = sorted(set(self.llamafactory) & (modelled | _OPTIONAL_KEYS | {"use_cpu"}))
        if clash:
            raise ValueError(
                f"llamafactory.{clash[0]} is set by the recipe itself; set the recipe key instead"
            )
        return self


# --------------------------------------------------------------------------------------------------- config I/O
def load_sft_config(path: str | Path | None, overrides: list[str] | None = None) -> SFTConfig:
    """A recipe from YAML (or the defaults) with ``--set key=value`` overrides; ConfigError names a bad key."""
    return load_recipe(SFTConfig, path, overrides)


def write_resolved(config: SFTConfig, out_dir: Path) -> Path:
    """The resolved recipe and its media settings, next to the checkpoint."""
    config.media.write(out_dir)
    return write_recipe(config, out_dir / artifacts.SFT_CONFIG)


# ------------------------------------------------------------------------------------------------- validation
@dataclass
class ExportSummary:
    """What ``check_export`` found: the datasets, their record counts, the media they reference; and the clips
    the length preflight dropped (``validate``)."""

    data_dir: Path
    records: dict[str, int] = field(default_factory=dict)
    n_videos: int = 0
    n_audios: int = 0
    examples: dict[str, list[artifacts.ExportRecord]] = field(default_factory=dict, repr=False)
    dropped: dict[str, set[str]] = field(default_factory=dict)


def _dataset_names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def check_export(
    data_dir: str | Path, datasets: list[str], *, use_audio_in_video: bool = True
) -> ExportSummary:
    """Check a LLaMA-Factory export the way training will read it; DataError naming the file and record."""
    root = Path(data_dir)
    if not str(data_dir):
        raise ConfigError("no training data: set `data` to a cot-distill export directory (--set data=DIR)")
    if not root.is_dir():
        raise DataError("export directory not found (run `cot-distill export OUT --to DIR` first)", file=root)
    summary = ExportSummary(data_dir=root)
    for name in datasets:
        records = artifacts.read_lf_dataset(root, name, audio_in_video=use_audio_in_video)
        summary.records[name] = len(records)
        summary.examples[name] = records
        summary.n_videos += len(records)
        summary.n_audios += sum(r.audio is not None for r in records)
    return summary


def resolve_deepspeed(value: str, root: Path) -> Path:
    """A DeepSpeed JSON path: as given (absolute or from the current directory), else from the workspace root."""
    path = Path(value).expanduser()
    candidate = path if path.is_absolute() or path.is_file() else root / path
    if not candidate.is_file():
        raise ConfigError(
            f"deepspeed config {value} not found (relative paths: current directory or workspace root)"
        )
    return candidate.resolve()


def check_ffmpeg() -> None:
    """LLaMA-Factory loads wavs with torchaudio -> torchcodec, which needs the system FFmpeg libraries."""
    if shutil.which("ffmpeg") is None:
        raise ConfigError(
            "system FFmpeg not found: LLaMA-Factory's audio loading needs it "
            "(Debian/Ubuntu: apt-get install -y ffmpeg)"
        )


def validate(config: SFTConfig) -> ExportSummary:
    """Every check that can fail before LLaMA-Factory starts: model, data, media, deepspeed, FFmpeg."""
    check_thinker_dir(config.model)
    check_template(config)
    model = Path(config.model).expanduser()
    check_router_aux(
        config.model,
        config.router_aux_loss_coef,
        moe=uses_router_aux(config) is not None,
        local=model.exists(),
    )
    datasets = _dataset_names(config.dataset)
    if not datasets:
        raise ConfigError("dataset: give at least one dataset name from the export's dataset_info.json")
    summary = check_export(
        config.data,
        datasets + _dataset_names(config.eval_dataset),
        use_audio_in_video=config.media.audio_in_video,
    )
    if summary.n_audios:
        check_ffmpeg()
    check_lengths(config, summary)
    return summary


def check_lengths(config: SFTConfig, summary: ExportSummary, *, processor=None) -> None:
    """Preflight: each example's tokens (prompt + media + answer) from the clips' metadata, against cutoff_len.

    Prints the distribution; refuses examples LLaMA-Factory would cut mid-media, or with ``on_long_clip=drop``
    records them in ``summary.dropped`` (``prepare`` writes the datasets without them).
    """
    from msa_omni.lengths import ClipPrompt, load_processor, preflight

    processor = processor or load_processor(config.model)
    for name, records in summary.examples.items():
        clips = [ClipPrompt(r.id, r.video, Prompt(system=r.system, user=r.user), r.answer) for r in records]
        dropped = preflight(
            processor,
            clips,
            config.media,
            limit=config.cutoff_len,
            field="cutoff_len",
            on_long_clip=config.on_long_clip,
            echo=lambda line, name=name: print(f"{name}: {line}", flush=True),
        )
        if dropped:
            summary.dropped[name] = {c.clip_id for c in dropped}


def write_kept_datasets(summary: ExportSummary, out_dir: Path) -> Path:
    """The export's dataset registry and files without the dropped examples, under ``out_dir/sft_data``
    (the media stay in the export: LLaMA-Factory's ``media_dir``)."""
    from msa_core.jsonl import write_json_atomic

    target = out_dir / artifacts.SFT_DATA_DIR
    target.mkdir(parents=True, exist_ok=True)
    info = artifacts.read_dataset_info(summary.data_dir)
    kept_info = {}
    for name in summary.examples:
        entry = dict(info[name])
        records = artifacts.read_json(summary.data_dir / entry["file_name"])
        gone = summary.dropped.get(name, set())
        kept = [r for i, r in enumerate(records) if str(r.get("id") or f"row{i + 1}") not in gone]
        entry["file_name"] = f"{name}.json"
        write_json_atomic(target / entry["file_name"], kept)
        kept_info[name] = entry
    write_json_atomic(target / artifacts.LF_DATASET_INFO, kept_info)
    return target


# ---------------------------------------------------------------------------------------- LLaMA-Factory args
# Set only when the recipe gives them (None = LLaMA-Factory's default).
_OPTIONAL_KEYS = {
    "eval_dataset",
    "resume_from_checkpoint",
    "max_samples",
    "preprocessing_num_workers",
    "save_total_limit",
    "deepspeed",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_target",
}


def model_family(config: SFTConfig):
    """The recipe model's family (msa_omni.families): from a local checkpoint, or a known Hub id; else None."""
    model = Path(config.model).expanduser()
    return family_of_model(model) if model.exists() else family_of_hub_id(config.model)


def uses_router_aux(config: SFTConfig):
    """The model's family when it is a mixture of experts whose router loss the recipe turns on, else None."""
    if config.router_aux_loss_coef == 0:
        return None
    family = model_family(config)
    return family if family is not None and family.moe else None


def check_template(config: SFTConfig) -> None:
    """A template of another family than the model's would train on the wrong tokens: ConfigError."""
    if not config.template:
        return
    family = model_family(config)
    owner = next((f for f in FAMILIES.values() if f.lf_template == config.template), None)
    if family is not None and owner is not None and owner is not family:
        raise ConfigError(
            f"template: {config.template!r} is the {owner.display} template, but model {config.model} is a "
            f"{family.display} thinker (use {family.lf_template!r}, or leave template empty for the model's own)"
        )


def lf_template(config: SFTConfig) -> str:
    """The recipe's template, or (empty) the one of its model's family."""
    return config.template or family_of_model(config.model).lf_template


def llamafactory_args(
    config: SFTConfig,
    data_dir: Path,
    output_dir: Path,
    deepspeed: Path | None = None,
    dataset_dir: Path | None = None,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """LLaMA-Factory's ``train`` arguments for a recipe (absolute paths); ``dataset_dir`` holds the dataset
    files when they are not the export's own (after the preflight dropped clips); ``model_dir`` replaces the
    recipe's model (the router-loss view of a mixture-of-experts student, ``msa_rl.moe``)."""
    model = Path(config.model).expanduser()
    args: dict[str, Any] = {
        "stage": "sft",
        "do_train": True,
        "model_name_or_path": str(model_dir or (model.resolve() if model.exists() else config.model)),
        "trust_remote_code": False,
        "template": lf_template(config),
        "finetuning_type": config.finetuning_type,
        "freeze_vision_tower": config.freeze_vision_tower,
        "freeze_multi_modal_projector": config.freeze_multi_modal_projector,
        "freeze_language_model": config.freeze_language_model,
        "dataset": config.dataset,
        "dataset_dir": str(dataset_dir or data_dir),
        "media_dir": str(data_dir),  # the export's media paths are relative to it
        # LLaMA-Factory samples at video_fps, thins to video_maxlen and passes the processor the effective rate
        # (n frames / duration): the same frames and rate msa_omni.clip_media gives GRPO and predict.
        "use_audio_in_video": config.media.audio_in_video,
        "video_fps": config.media.fps,
        "video_maxlen": config.media.max_frames,
        "video_max_pixels": config.media.max_pixels,
        "video_min_pixels": config.media.min_pixels,
        "cutoff_len": config.cutoff_len,
        "overwrite_cache": True,
        "output_dir": str(output_dir),
        "overwrite_output_dir": config.overwrite_output_dir,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "bf16": config.precision == "bf16",
        "fp16": config.precision == "fp16",
        "disable_gradient_checkpointing": not config.gradient_checkpointing,
        "seed": config.seed,
        "dataloader_num_workers": config.dataloader_num_workers,
        "logging_steps": config.logging_steps,
        "save_strategy": config.save_strategy,
        "save_steps": config.save_steps,
        "report_to": config.report_to,
        "plot_loss": False,
    }
    if config.finetuning_type == "lora":
        args.update(
            lora_rank=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            lora_target=config.lora_target,
        )
    optional = {
        "eval_dataset": config.eval_dataset,
        "resume_from_checkpoint": config.resume_from_checkpoint,
        "max_samples": config.max_samples,
        "preprocessing_num_workers": config.preprocessing_num_workers,
        "save_total_limit": config.save_total_limit,
        "deepspeed": str(deepspeed) if deepspeed else None,
    }
    args.update({k: v for k, v in optional.items() if v is not None})
    if config.device == "cpu":
        args["use_cpu"] = True
    return {**args, **config.llamafactory}


def merge_args(
    config: SFTConfig, adapter_dir: Path, output_dir: Path, model_dir: Path | None = None
) -> dict[str, Any]:
    """LLaMA-Factory ``export`` arguments that merge a LoRA adapter into a full thinker checkpoint."""
    model = Path(config.model).expanduser()
    return {
        "model_name_or_path": str(model_dir or (model.resolve() if model.exists() else config.model)),
        "adapter_name_or_path": str(adapter_dir),
        "template": lf_template(config),
        "finetuning_type": "lora",
        "export_dir": str(output_dir),
        "export_size": 5,
        "export_device": "cpu" if config.device == "cpu" else "auto",
        "export_legacy_format": False,
    }
