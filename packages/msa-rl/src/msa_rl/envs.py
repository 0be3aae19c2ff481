"""The SFT environment (LLaMA-Factory 0.9.5, transformers 5.6): where it lives, creating it, running in it.

The workspace lock resolves two environments (docs/architecture.md, "Environments and pins"): the default ``.venv`` and
``.venvs/sft``. Every uv command for the sft extra MUST carry an absolute ``UV_PROJECT_ENVIRONMENT`` and drop
``VIRTUAL_ENV``; without it uv re-syncs the default ``.venv`` into the SFT fork (trl downgraded, pytest removed).
All such commands are built here and nowhere else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path

from msa_core import ConfigError

SFT_ENV_DIR = Path(".venvs") / "sft"
SFT_EXTRA = "sft"
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


def sft_env_path(root: Path | None = None, override: str | Path | None = None) -> Path:
    """Absolute path of the SFT environment (``<root>/.venvs/sft`` unless overridden)."""
    if override:
        return Path(override).expanduser().resolve()
    return (root or workspace_root()) / SFT_ENV_DIR


def uv_executable() -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise ConfigError(
            "`uv` is not on PATH: install it (https://docs.astral.sh/uv/) to create the SFT environment"
        )
    return uv


def sft_child_env(env_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a child process in the SFT env: its own project env, no inherited venv."""
    env = dict(os.environ if base is None else base)
    env.pop("VIRTUAL_ENV", None)
    env["UV_PROJECT_ENVIRONMENT"] = str(env_path.resolve())
    return env


def sync_command(uv: str = "uv") -> list[str]:
    return [uv, "sync", "--locked", "--package", SFT_PACKAGE, "--extra", SFT_EXTRA]


def run_command(args: Sequence[str], uv: str = "uv") -> list[str]:
    """``uv run`` of ``args`` inside the SFT env (the caller sets the env vars from ``sft_child_env``)."""
    return [uv, "run", "--frozen", "--package", SFT_PACKAGE, "--extra", SFT_EXTRA, *args]


def _lock_hash(root: Path) -> str:
    return hashlib.sha256((root / "uv.lock").read_bytes()).hexdigest()


def sft_env_ready(env_path: Path, root: Path) -> bool:
    """The env exists and was synced from the current uv.lock."""
    marker = env_path / SYNC_MARKER
    return (
        (env_path / "bin" / "python").exists()
        and marker.is_file()
        and marker.read_text().strip() == _lock_hash(root)
    )


def ensure_sft_env(root: Path | None = None, env_path: Path | None = None, *, quiet: bool = False) -> Path:
    """Create (or re-sync after a lock change) the SFT environment; a no-op when it is up to date."""
    root = root or workspace_root()
    env_path = env_path or sft_env_path(root)
    if sft_env_ready(env_path, root):
        return env_path
    uv = uv_executable()
    if not quiet:
        print(
            f"[msa-rl] syncing the SFT environment at {env_path} (LLaMA-Factory; first use only)", flush=True
        )
    proc = subprocess.run(
        sync_command(uv),
        cwd=root,
        env=sft_child_env(env_path),
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        raise ConfigError(
            f"creating the SFT environment failed (uv sync, exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    (env_path / SYNC_MARKER).write_text(_lock_hash(root))
    return env_path


def sft_python(env_path: Path) -> Path:
    """The SFT env's interpreter, for small scripts that need transformers 5.6 (tests, checks)."""
    return env_path / "bin" / "python"
