"""Helpers shared by the cot-distill tests (importable: the tests directory is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cot_distill.config import DistillConfig, load_config


def fast_config(dataset: Path, out: Path, base_urls: list[str], **overrides: Any) -> DistillConfig:
    """A generate config for tests: all splits, quick retries, short timeouts, no progress bar."""
    sets = overrides.pop("sets", [])
    base = {
        "data": str(dataset),
        "split": "all",
        "out": str(out),
        "base_urls": base_urls,
        "concurrency": 8,
        "progress": False,
    }
    base.update(overrides)
    return load_config(
        sets=[
            "retry.backoff_base_s=0.01",
            "retry.backoff_max_s=0.05",
            "retry.request_timeout_s=0.75",
            "retry.max_retries=8",
            *sets,
        ],
        overrides=base,
    )


def read_lines(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
