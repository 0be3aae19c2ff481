"""Shared helpers for msa-eval tests: small synthetic prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def synthetic_rows(dataset: str, n: int, seed: int, noise: float, fail_every: int = 0) -> list[dict]:
    """Labels on the dataset's scale, noisy scores; every `fail_every`-th score is a parse failure (null)."""
    rng = np.random.default_rng(seed)
    if dataset in ("mosi", "mosei"):
        labels = np.round(rng.uniform(-3, 3, n) * 3) / 3
        lim = 3.0
    else:
        labels = np.round(rng.uniform(-1, 1, n) * 5) / 5
        lim = 1.0
    rows = []
    for i, label in enumerate(labels):
        score = float(np.clip(label + rng.normal(0, noise), -lim, lim))
        failed = fail_every and i % fail_every == fail_every - 1
        rows.append(
            {
                "id": f"v{i // 4}$_${i % 4:04d}",
                "label": float(label),
                "score": None if failed else score,
                "raw": "<score>…</score>",
            }
        )
    return rows


@pytest.fixture(name="write_jsonl")
def write_jsonl_fixture():
    return write_jsonl


@pytest.fixture(name="synthetic_rows")
def synthetic_rows_fixture():
    return synthetic_rows


@pytest.fixture
def make_run(tmp_path):
    """make_run(name, {dataset: rows}) -> run directory holding <dataset>.jsonl files."""

    def _make(name: str, files: dict[str, list[dict]]) -> Path:
        run = tmp_path / "runs" / name
        run.mkdir(parents=True, exist_ok=True)
        for dataset, rows in files.items():
            write_jsonl(run / f"{dataset}.jsonl", rows)
        return run

    return _make
