"""Shared fixtures for cot-distill tests: one synthetic dataset and stand-in teachers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cot_distill.standin import ServerThread, StandInTeacher, parse_faults
from msa_core.synthetic import make_dataset

N_CLIPS = 24


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic SIMS clips (all splits), shared by every test (wavs land in OUT/wav16k, content-named)."""
    return make_dataset(tmp_path_factory.mktemp("distill-data"), "sims", n=N_CLIPS, seed=0)


@pytest.fixture
def standin(dataset: Path, tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    """Factory: ``standin(faults="...", latency=0.0, **teacher_kwargs)`` → a running server with a request log."""
    servers: list[ServerThread] = []

    def start(faults: str = "", **kwargs: Any) -> ServerThread:
        kwargs.setdefault("request_log", tmp_path / f"requests-{len(servers)}.jsonl")
        kwargs.setdefault("slow_seconds", 1.5)
        teacher = StandInTeacher(data=dataset, dataset="sims", faults=parse_faults(faults), **kwargs)
        server = ServerThread(teacher)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
