"""Shared msa-rl fixtures: the tiny Omni thinker, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-Omni thinker + processor (seed 0), written once; treat it as read-only."""
    from msa_rl.tiny import build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("tiny-omni"), seed=0)


@pytest.fixture(scope="session")
def synthetic_sims_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic CH-SIMS-style clips (2 s, 64x64 H.264 + AAC) in the MMSA layout; read-only."""
    from msa_core.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synthetic-sims"), "sims", n=6, seed=0)
