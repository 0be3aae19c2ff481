"""Cold-start SFT (paper §III-A.4) through LLaMA-Factory 0.9.5, run in the SFT environment.

``msa-rl sft`` reads a recipe (``SFTConfig``), checks the cot-distill export and the model BEFORE anything heavy
starts, writes the resolved recipe and LLaMA-Factory's YAML into ``output_dir``, creates the SFT environment on
first use and runs ``llamafactory-cli train`` there, streaming its output and recording each logged loss in
``output_dir/sft_metrics.jsonl``. The output directory is an HF checkpoint (thinker + processor) that the default
environment loads for GRPO.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from msa_core import ConfigError, DataError, MSAError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from msa_rl import envs
from msa_rl.omni import check_thinker_dir

RESOLVED_CONFIG_FILE = "sft_config.yaml"
LLAMAFACTORY_YAML = "llamafactory_sft.yaml"
LLAMAFACTORY_MERGE_YAML = "llamafactory_merge.yaml"
LORA_ADAPTER_DIR = "lora-adapter"
METRICS_FILE = "sft_metrics.jsonl"
LOG_FILE = "sft.log"
VIDEO_PLACEHOLDER, AUDIO_PLACEHOLDER = "<video>", "<audio>"


class SFTConfig(BaseModel):
    """An SFT recipe. Paths are relative to the current directory (``deepspeed`` also to the workspace root)."""

    model_config = ConfigDict(extra="forbid")

    # -- inputs and outputs
    model: str = Field(
        "Qwen/Qwen2.5-Omni-7B",
        description="Base model: a Hub id or a local Qwen2.5-Omni (thinker) checkpoint with its processor.",
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
    template: str = Field("qwen2_omni", description="LLaMA-Factory chat template (must match the model).")
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
    # -- media: must match what GRPO and evaluation feed the model
    use_audio_in_video: bool = Field(
        True, description="Interleave each clip's audio with its video (TMRoPE)."
    )
    video_fps: float = Field(2.0, gt=0, description="Frames per second sampled from each clip.")
    video_maxlen: int = Field(128, ge=2, description="At most this many frames per clip.")
    video_max_pixels: int = Field(
        256 * 256, ge=28 * 28, description="Frames larger than this are downscaled."
    )
    video_min_pixels: int = Field(16 * 16, ge=1, description="Frames smaller than this are upscaled.")
    cutoff_len: int = Field(4096, ge=64, description="Maximum tokens per example (prompt + media + answer).")
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
        modelled = set(llamafactory_args(self.model_copy(update={"llamafactory": {}}), Path("."), Path(".")))
        clash = sorted(set(self.llamafactory) & (modelled | _OPTIONAL_KEYS | {"use_cpu"}))
        if clash:
            raise ValueError(
                f"llamafactory.{clash[0]} is set by the recipe itself; set the recipe key instead"
            )
        if self.video_min_pixels > self.video_max_pixels:
            raise ValueError("video_min_pixels must not exceed video_max_pixels")
        return self


# --------------------------------------------------------------------------------------------------- config I/O
def load_sft_config(path: str | Path | None, overrides: list[str] | None = None) -> SFTConfig:
    """A recipe from YAML (or the defaults) with ``--set key=value`` overrides; ConfigError names a bad key."""
    from msa_rl.grpo_config import load_recipe

    return load_recipe(SFTConfig, path, overrides)


def write_resolved(config: SFTConfig, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESOLVED_CONFIG_FILE
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------- validation
@dataclass
class ExportSummary:
    """What ``check_export`` found: the datasets, their record counts, the media they reference."""

    data_dir: Path
    records: dict[str, int] = field(default_factory=dict)
    n_videos: int = 0
    n_audios: int = 0


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
    info_path = root / "dataset_info.json"
    if not info_path.is_file():
        raise DataError("no dataset_info.json: not a LLaMA-Factory export", file=info_path)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=info_path, line=exc.lineno) from None
    summary = ExportSummary(data_dir=root)
    for name in datasets:
        if name not in info:
            raise DataError(
                f"dataset {name!r} not in dataset_info.json (it has: {', '.join(sorted(info))})",
                file=info_path,
            )
        entry = info[name]
        if entry.get("formatting") != "sharegpt":
            raise DataError(f"dataset {name!r}: formatting must be 'sharegpt'", file=info_path)
        columns = entry.get("columns", {})
        for column in ("messages", "system", "videos", "audios"):
            if column not in columns:
                # Without a system column the qwen2_omni template inserts its own default system prompt, and the
                # SFT prompt would differ from the GRPO and evaluation prompt.
                raise DataError(f"dataset {name!r} has no {column!r} column", file=info_path)
        records = _read_records(root / entry.get("file_name", ""), info_path, name)
        summary.records[name] = len(records)
        for i, record in enumerate(records):
            _check_record(record, i, root, root / entry["file_name"], columns, use_audio_in_video, summary)
    return summary


def _read_records(path: Path, info_path: Path, name: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"dataset {name!r}: its file_name does not exist", file=path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=path, line=exc.lineno) from None
    if not isinstance(records, list) or not records:
        raise DataError("expected a non-empty JSON list of sharegpt records", file=path)
    return records


def _check_record(
    record: dict[str, Any],
    index: int,
    root: Path,
    file: Path,
    columns: dict[str, str],
    use_audio_in_video: bool,
    summary: ExportSummary,
) -> None:
    where = f"record {index} ({record.get('id', 'no id')})"
    messages = record.get(columns["messages"])
    if not isinstance(messages, list) or len(messages) < 2:
        raise DataError(
            f"{where}: needs a user and an assistant message", file=file, column=columns["messages"]
        )
    if not str(record.get(columns["system"]) or "").strip():
        raise DataError(f"{where}: empty system prompt", file=file, column=columns["system"])
    videos, audios = record.get(columns["videos"]) or [], record.get(columns["audios"]) or []
    user_text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    if user_text.count(VIDEO_PLACEHOLDER) != len(videos) or user_text.count(AUDIO_PLACEHOLDER) != len(audios):
        raise DataError(
            f"{where}: {len(videos)} video(s) and {len(audios)} audio(s) but the user turn has "
            f"{user_text.count(VIDEO_PLACEHOLDER)} <video> and {user_text.count(AUDIO_PLACEHOLDER)} "
            "<audio>",
            file=file,
        )
    if use_audio_in_video and len(audios) != len(videos):
        raise DataError(
            f"{where}: use_audio_in_video needs one wav per video (LLaMA-Factory does not read the "
            "audio out of the mp4)",
            file=file,
            column=columns["audios"],
        )
    for kind, paths in (("video", videos), ("audio", audios)):
        for rel in paths:
            path = Path(rel) if Path(rel).is_absolute() else root / rel
            if not path.is_file():
                raise DataError(f"{where}: missing {kind} file {rel}", file=file, column=columns[f"{kind}s"])
    summary.n_videos += len(videos)
    summary.n_audios += len(audios)


def _resolve_deepspeed(value: str, root: Path) -> Path:
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
    datasets = _dataset_names(config.dataset)
    if not datasets:
        raise ConfigError("dataset: give at least one dataset name from the export's dataset_info.json")
    summary = check_export(
        config.data,
        datasets + _dataset_names(config.eval_dataset),
        use_audio_in_video=config.use_audio_in_video,
    )
    if summary.n_audios:
        check_ffmpeg()
    return summary


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


def llamafactory_args(
    config: SFTConfig, data_dir: Path, output_dir: Path, deepspeed: Path | None = None
) -> dict[str, Any]:
    """LLaMA-Factory's ``train`` arguments for a recipe (absolute paths)."""
    model = Path(config.model).expanduser()
    args: dict[str, Any] = {
        "stage": "sft",
        "do_train": True,
        "model_name_or_path": str(model.resolve()) if model.exists() else config.model,
        "trust_remote_code": False,
        "template": config.template,
        "finetuning_type": config.finetuning_type,
        "freeze_vision_tower": config.freeze_vision_tower,
        "freeze_multi_modal_projector": config.freeze_multi_modal_projector,
        "freeze_language_model": config.freeze_language_model,
        "dataset": config.dataset,
        "dataset_dir": str(data_dir),
        "media_dir": str(data_dir),  # the export's media paths are relative to it
        "use_audio_in_video": config.use_audio_in_video,
        "video_fps": config.video_fps,
        "video_maxlen": config.video_maxlen,
        "video_max_pixels": config.video_max_pixels,
        "video_min_pixels": config.video_min_pixels,
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


# ----------------------------------------------------------------------------------------------------- running
@dataclass
class SFTPlan:
    """Everything resolved for one run: where it writes, the YAML, the command and its environment."""

    config: SFTConfig
    root: Path
    output_dir: Path
    llamafactory_yaml: Path
    env_path: Path
    command: list[str]
    env: dict[str, str]
    merge_command: list[str] | None = None  # LoRA: merge the adapter into output_dir after training

    @property
    def commands(self) -> list[list[str]]:
        return [self.command] + ([self.merge_command] if self.merge_command else [])

    def sync_shell(self) -> str:
        """The one-time command that creates the SFT environment (``run`` does it when needed)."""
        prefix = f"env -u VIRTUAL_ENV UV_PROJECT_ENVIRONMENT={shlex.quote(str(self.env_path))}"
        return f"cd {shlex.quote(str(self.root))} && {prefix} {shlex.join(envs.sync_command())}"

    def shell(self) -> str:
        """The command(s) as a copy-pasteable shell line (what --print-command shows)."""
        prefix = f"env -u VIRTUAL_ENV UV_PROJECT_ENVIRONMENT={shlex.quote(str(self.env_path))}"
        if self.config.device == "cpu":
            prefix += " CUDA_VISIBLE_DEVICES="
        steps = " && ".join(f"{prefix} {shlex.join(c)}" for c in self.commands)
        return f"cd {shlex.quote(str(self.root))} && {steps}"


def merge_args(config: SFTConfig, adapter_dir: Path, output_dir: Path) -> dict[str, Any]:
    """LLaMA-Factory ``export`` arguments that merge a LoRA adapter into a full thinker checkpoint."""
    model = Path(config.model).expanduser()
    return {
        "model_name_or_path": str(model.resolve()) if model.exists() else config.model,
        "adapter_name_or_path": str(adapter_dir),
        "template": config.template,
        "finetuning_type": "lora",
        "export_dir": str(output_dir),
        "export_size": 5,
        "export_device": "cpu" if config.device == "cpu" else "auto",
        "export_legacy_format": False,
    }


def prepare(config: SFTConfig) -> SFTPlan:
    """Validate, then write the resolved recipe and LLaMA-Factory's YAML into output_dir."""
    validate(config)
    root = envs.workspace_root()
    deepspeed = _resolve_deepspeed(config.deepspeed, root) if config.deepspeed else None
    output_dir = Path(config.output_dir).expanduser().resolve()
    data_dir = Path(config.data).expanduser().resolve()
    write_resolved(config, output_dir)
    # LoRA trains an adapter next to the checkpoint and merges it, so output_dir is always a full thinker.
    train_dir = output_dir / LORA_ADAPTER_DIR if config.finetuning_type == "lora" else output_dir
    lf_yaml = output_dir / LLAMAFACTORY_YAML
    _write_yaml(lf_yaml, llamafactory_args(config, data_dir, train_dir, deepspeed))
    merge_command = None
    if config.finetuning_type == "lora":
        merge_yaml = output_dir / LLAMAFACTORY_MERGE_YAML
        _write_yaml(merge_yaml, merge_args(config, train_dir, output_dir))
        merge_command = envs.run_command(["llamafactory-cli", "export", str(merge_yaml)])
    env_path = envs.sft_env_path(root, config.sft_env)
    env = envs.sft_child_env(env_path)
    env.update(
        WANDB_DISABLED="true" if config.report_to == "none" else env.get("WANDB_DISABLED", ""),
        PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false",
    )
    if config.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CUDA torch build on a GPU-less (or GPU-hidden) run
    command = envs.run_command(["llamafactory-cli", "train", str(lf_yaml)])
    return SFTPlan(config, root, output_dir, lf_yaml, env_path, command, env, merge_command)


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


# LLaMA-Factory (HF Trainer) prints each log as a Python dict: {'loss': '7.213', 'grad_norm': '2.391', ...}
_LOG_DICT = re.compile(r"\{'(?:loss|train_runtime)'[^{}]*\}")


def parse_log_line(line: str) -> list[dict[str, Any]]:
    """The Trainer log dicts in one output line (values turned into numbers where they are numbers)."""
    found = []
    for match in _LOG_DICT.finditer(line):
        try:
            raw = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            continue
        found.append({k: _number(v) for k, v in raw.items()})
    return found


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


@dataclass
class SFTResult:
    output_dir: Path
    losses: list[float]
    train_runtime: float | None
    wall_seconds: float


def run(plan: SFTPlan, *, echo: Callable[[str], None] | None = None) -> SFTResult:
    """Run LLaMA-Factory in the SFT env (creating it first if needed), streaming its output.

    Each logged loss goes to ``sft_metrics.jsonl`` as it arrives; the full output to ``sft.log``.
    """
    echo = echo or _write_stdout
    envs.uv_executable()
    envs.ensure_sft_env(plan.root, plan.env_path)
    if plan.config.deepspeed:
        _check_deepspeed(plan.env_path)
    metrics_path, log_path = plan.output_dir / METRICS_FILE, plan.output_dir / LOG_FILE
    losses: list[float] = []
    runtime = None
    t0 = time.time()
    with metrics_path.open("w", encoding="utf-8") as metrics, log_path.open("w", encoding="utf-8") as log:
        for command in plan.commands:
            proc = subprocess.Popen(
                command,
                cwd=plan.root,
                env=plan.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                errors="replace",
            )
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    echo(line)
                    log.write(line)
                    for entry in parse_log_line(line):
                        if "loss" in entry:
                            losses.append(float(entry["loss"]))
                            record = {"log": len(losses), "time_s": round(time.time() - t0, 2), **entry}
                            metrics.write(json.dumps(record) + "\n")
                            metrics.flush()
                        elif "train_runtime" in entry:
                            runtime = float(entry["train_runtime"])
                code = proc.wait()
            except BaseException:
                proc.terminate()  # Ctrl-C or an echo failure: do not leave LLaMA-Factory training alone
                proc.wait()
                raise
            if code != 0:
                raise MSAError(f"LLaMA-Factory ({command[-2]}) exited with status {code}; see {log_path}")
    return SFTResult(plan.output_dir, losses, runtime, time.time() - t0)


def _check_deepspeed(env_path: Path) -> None:
    """DeepSpeed is not in the lock (it builds against the cluster's CUDA): say how to add it, before starting."""
    if not any(env_path.glob("lib/python*/site-packages/deepspeed/__init__.py")):
        raise ConfigError(
            f"the recipe uses DeepSpeed but the SFT environment {env_path} lacks it: install it once with "
            f"`uv pip install --python {env_path / 'bin' / 'python'} deepspeed` (or set deepspeed: null)"
        )


def _write_stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def run_sft(config: SFTConfig, *, print_command: bool = False, echo: Callable[[str], None] | None = None):
    """Validate and prepare; then print the command (print_command) or run it. Returns the plan or the result."""
    plan = prepare(config)
    if print_command:
        return plan
    return run(plan, echo=echo)


__all__ = [
    "LLAMAFACTORY_YAML",
    "METRICS_FILE",
    "RESOLVED_CONFIG_FILE",
    "SFTConfig",
    "SFTPlan",
    "SFTResult",
    "check_export",
    "llamafactory_args",
    "load_sft_config",
    "parse_log_line",
    "prepare",
    "run",
    "run_sft",
    "validate",
]
