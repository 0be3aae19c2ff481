"""msa_core.envs: the workspace root and the uv commands for the side environments."""

from __future__ import annotations

from pathlib import Path

import pytest
from msa_core import ConfigError, envs

ROOT = Path(__file__).resolve().parents[2]


def test_workspace_root_and_env_commands(tmp_path: Path, monkeypatch) -> None:
    assert envs.workspace_root() == ROOT
    assert envs.workspace_root(tmp_path) == ROOT  # falls back to this checkout (editable install)
    env = envs.sft_child_env(Path("rel/sft"), {"VIRTUAL_ENV": "/x", "PATH": "/bin"})
    assert "VIRTUAL_ENV" not in env and Path(env["UV_PROJECT_ENVIRONMENT"]).is_absolute()
    assert envs.sync_command()[1:] == ["sync", "--locked", "--package", "msa-rl", "--extra", "sft"]
    monkeypatch.setenv(envs.ROOT_ENV_VAR, str(tmp_path))
    with pytest.raises(ConfigError, match="not the msa-thinker workspace root"):
        envs.workspace_root()


def test_a_side_env_is_stale_after_a_pyproject_change(tmp_path: Path) -> None:
    """uv.lock does not record entry points (msa-omni's vLLM plugin): a member's pyproject change re-syncs too."""
    root = tmp_path / "ws"
    (root / "packages" / "a").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    (root / "uv.lock").write_text("version = 1\n")
    member = root / "packages" / "a" / "pyproject.toml"
    member.write_text('[project]\nname = "a"\n')
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")
    (env / envs.SYNC_MARKER).write_text(envs._lock_hash(root))
    assert envs.env_ready(env, root)
    member.write_text(
        '[project]\nname = "a"\n[project.entry-points."vllm.general_plugins"]\np = "a:register"\n'
    )
    assert not envs.env_ready(env, root)
