"""The ``vllm serve`` command for the Qwen3-Omni teacher, run through ``uvx`` outside the workspace lock.

Why outside the lock: the workspace pins vLLM 0.31 for GRPO rollouts, while Qwen3-Omni's M-RoPE for audio and
video was fixed in vLLM 0.32, so the teacher runs from its own throw-away ``uvx`` environment.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from msa_core import ConfigError

DEFAULT_MODEL = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
DEFAULT_VLLM = "0.33.0"
# One video and its audio track per request, never images: the distillation prompt is one clip.
MM_LIMITS = {"image": 0, "video": 1, "audio": 1}


@dataclass(frozen=True)
class ServeOptions:
    model: str = DEFAULT_MODEL
    data_root: Path = Path(".")
    tp: int = 2
    port: int = 8000
    host: str = "127.0.0.1"
    max_model_len: int = 32768
    num_frames: int = 32
    vllm_version: str = DEFAULT_VLLM
    extra_args: tuple[str, ...] = ()


def serve_command(opts: ServeOptions) -> list[str]:
    """argv of ``uvx --from vllm==<ver> vllm serve ...`` (the data root is made absolute)."""
    for name, value in (
        ("tp", opts.tp),
        ("port", opts.port),
        ("max_model_len", opts.max_model_len),
        ("num_frames", opts.num_frames),
    ):
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return [
        "uvx",
        "--from",
        f"vllm=={opts.vllm_version}",
        "vllm",
        "serve",
        opts.model,
        # file:// media URLs are only served from here: the teacher can read the dataset and nothing else.
        "--allowed-local-media-path",
        str(Path(opts.data_root).expanduser().resolve()),
        "--limit-mm-per-prompt",
        json.dumps(MM_LIMITS, separators=(",", ":")),
        "--max-model-len",
        str(opts.max_model_len),
        "-tp",
        str(opts.tp),
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "--dtype",
        "bfloat16",
        "--media-io-kwargs",
        json.dumps({"video": {"num_frames": opts.num_frames}}, separators=(",", ":")),
        *opts.extra_args,
    ]


def format_command(argv: list[str]) -> str:
    return shlex.join(argv)


def run_command(argv: list[str], data_root: Path) -> int:
    """Run the server in the foreground; returns its exit code (Ctrl-C stops it)."""
    if not Path(data_root).is_dir():
        raise ConfigError(f"--data-root {data_root} is not a directory")
    if shutil.which(argv[0]) is None:
        raise ConfigError(f"{argv[0]!r} not found on PATH: install uv (https://docs.astral.sh/uv/)")
    # Drop the workspace's environment so uvx builds and uses its own, whatever `uv run` set up for us.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    try:
        return subprocess.run(argv, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 130
