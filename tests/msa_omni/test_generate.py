"""msa_omni.generate without an engine: the KV cache the project's vLLM CPU engines ask for."""

from __future__ import annotations

import os

import pytest
from msa_core import ConfigError
from msa_omni.generate import CPU_KV_CACHE_ENV, CPU_KV_CACHE_GIB, set_cpu_kv_cache


def test_cpu_kv_cache_default_env_and_option(monkeypatch) -> None:
    monkeypatch.delenv(CPU_KV_CACHE_ENV, raising=False)
    assert set_cpu_kv_cache() == CPU_KV_CACHE_GIB == 2  # not vLLM's 92 % of the RAM
    assert os.environ[CPU_KV_CACHE_ENV] == "2"  # where vLLM (and its engine process) reads it
    monkeypatch.setenv(CPU_KV_CACHE_ENV, "5")
    assert set_cpu_kv_cache() == 5  # the caller's own setting
    assert set_cpu_kv_cache(3) == 3 and os.environ[CPU_KV_CACHE_ENV] == "3"  # the option wins


def test_bad_kv_cache_sizes_name_their_source(monkeypatch) -> None:
    monkeypatch.setenv(CPU_KV_CACHE_ENV, "lots")
    with pytest.raises(ConfigError, match=r"\$VLLM_CPU_KVCACHE_SPACE='lots' must be a whole number"):
        set_cpu_kv_cache()
    with pytest.raises(ConfigError, match=r"--cpu-kv-cache-gib must be at least 1"):
        set_cpu_kv_cache(0)
    with pytest.raises(ConfigError, match=r"vllm_cpu_kv_cache_gib must be at least 1"):
        set_cpu_kv_cache(0, option="vllm_cpu_kv_cache_gib")
