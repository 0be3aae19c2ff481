"""Cold-start SFT (paper §III-A.4) through LLaMA-Factory 0.9.5, run in the SFT environment.

``msa-rl sft`` reads a recipe (``sft_recipe.SFTConfig``), checks the cot-distill export and the model BEFORE
anything heavy starts, writes the resolved recipe, the media settings and LLaMA-Factory's YAML into
``output_dir``, creates the SFT environment on first use and runs ``llamafactory-cli train`` there, streaming its
output and recording each logged loss in ``output_dir/sft_metrics.jsonl``. The output directory is an HF
checkpoint (thinker + processor) that the default environment loads for GRPO.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from msa_core import ConfigError, JsonlAppender, MSAError, artifacts, envs
from msa_core.outdir import claim_output_dir

from msa_rl.moe import router_aux_view, router_logits_off
from msa_rl.sft_recipe import (
    ExportSummary,
    SFTConfig,
    check_export,
    llamafactory_args,
    load_sft_config,
    merge_args,
    model_family,
    resolve_deepspeed,
    uses_router_aux,
    validate,
    write_kept_datasets,
    write_resolved,
)

LORA_ADAPTER_DIR = "lora-adapter"
# Holds the sitecustomize.py that applies a family's LLaMA-Factory fix at interpreter start (msa_rl.lf_site).
LF_SITE_DIR = Path(__file__).with_name("lf_site")


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
    router_aux: bool = False  # trained with the router loss on: switched off in the checkpoint afterwards

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


def prepare(config: SFTConfig) -> SFTPlan:
    """Validate, then write the resolved recipe and LLaMA-Factory's YAML into output_dir."""
    summary = validate(config)
    root = envs.workspace_root()
    deepspeed = resolve_deepspeed(config.deepspeed, root) if config.deepspeed else None
    output_dir = Path(config.output_dir).expanduser().resolve()
    data_dir = Path(config.data).expanduser().resolve()
    write_resolved(config, output_dir)
    # LoRA trains an adapter next to the checkpoint and merges it, so output_dir is always a full thinker.
    train_dir = output_dir / LORA_ADAPTER_DIR if config.finetuning_type == "lora" else output_dir
    lf_yaml = output_dir / artifacts.LLAMAFACTORY_YAML
    dataset_dir = write_kept_datasets(summary, output_dir) if summary.dropped else None
    moe_family = uses_router_aux(config)
    base = None
    if moe_family is not None:  # a mixture of experts: its router loss on (msa_rl.moe)
        base = router_aux_view(
            Path(config.model).expanduser().resolve(), config.router_aux_loss_coef, output_dir
        )
    _write_yaml(lf_yaml, llamafactory_args(config, data_dir, train_dir, deepspeed, dataset_dir, base))
    merge_command = None
    if config.finetuning_type == "lora":
        merge_yaml = output_dir / artifacts.LLAMAFACTORY_MERGE_YAML
        _write_yaml(merge_yaml, merge_args(config, train_dir, output_dir, base))
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
    family = model_family(config)
    if family is not None and family.lf_patch:  # the family's LLaMA-Factory fix, in every LF process
        env["MSA_THINKER_LF_PATCH"] = family.lf_patch
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(LF_SITE_DIR), env.get("PYTHONPATH", "")) if p)
    command = envs.run_command(["llamafactory-cli", "train", str(lf_yaml)])
    return SFTPlan(config, root, output_dir, lf_yaml, env_path, command, env, merge_command, base is not None)


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


def run(plan: SFTPlan, *, echo: Callable[[str], None] | None = None, force: bool = False) -> SFTResult:
    """Run LLaMA-Factory in the SFT env (creating it first if needed), streaming its output.

    Each logged loss goes to ``sft_metrics.jsonl`` as it arrives; the full output to ``sft.log``. On a GPU the
    memory plan (``msa_rl.plan``) is printed first, and a recipe that does not fit is refused with the changes
    that would make it fit, unless ``force``.
    """
    echo = echo or _write_stdout
    if plan.config.device != "cpu":
        from msa_rl.plan import check_fits, sft_gpus

        check_fits(
            plan.config, "sft", force=force, echo=lambda text: echo(text + "\n"), gpus_and_mem=sft_gpus()
        )
    envs.uv_executable()
    envs.ensure_sft_env(plan.root, plan.env_path)
    if plan.config.deepspeed:
        _check_deepspeed(plan.env_path)
    metrics_path, log_path = plan.output_dir / artifacts.SFT_METRICS, plan.output_dir / artifacts.SFT_LOG
    metrics_path.unlink(missing_ok=True)  # this run's losses only
    losses: list[float] = []
    runtime = None
    t0 = time.time()
    with JsonlAppender(metrics_path) as metrics, log_path.open("w", encoding="utf-8") as log:
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
                            metrics.append(record)
                        elif "train_runtime" in entry:
                            runtime = float(entry["train_runtime"])
                code = proc.wait()
            except BaseException:
                proc.terminate()  # Ctrl-C or an echo failure: do not leave LLaMA-Factory training alone
                proc.wait()
                raise
            if code != 0:
                raise MSAError(f"LLaMA-Factory ({command[-2]}) exited with status {code}; see {log_path}")
    if plan.router_aux:
        router_logits_off(plan.output_dir)
    return SFTResult(plan.output_dir, losses, runtime, time.time() - t0)


def _check_deepspeed(env_path: Path) -> None:
    """The lock's ``sft`` extra carries DeepSpeed; an environment synced by hand without it is refused up front."""
    if not any(env_path.glob("lib/python*/site-packages/deepspeed/__init__.py")):
        raise ConfigError(
            f"the recipe uses DeepSpeed but the SFT environment {env_path} lacks it: delete {env_path} and rerun "
            "`msa-rl sft` to create it from the lock (or set deepspeed: null)"
        )


def _write_stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def run_sft(config: SFTConfig, *, print_command: bool = False, echo: Callable[[str], None] | None = None):
    """Validate and prepare; then print the command (print_command) or run it. Returns the plan or the result."""
    with claim_output_dir(config.output_dir, "output_dir"):  # one job per output folder
        plan = prepare(config)
        if print_command:
            return plan
        return run(plan, echo=echo)


__all__ = [
    "ExportSummary",
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
