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
