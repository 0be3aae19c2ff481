"""Fixtures for the msa-core tests: small synthetic datasets (built once per session), a CSV writer."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from msa_core.synthetic import make_dataset

SIMS_N, MOSI_N = 30, 18


@pytest.fixture(scope="session")
def sims_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("sims"), "sims", n=SIMS_N, seed=1, hard_fraction=0.2)


@pytest.fixture(scope="session")
def mosi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("mosi"), "mosi", n=MOSI_N, seed=2, hard_fraction=0.3)


@pytest.fixture(scope="session")
def sizes() -> dict[str, int]:
    """Clip counts of the session datasets (tests import nothing from conftest: tests/ is no package)."""
    return {"sims": SIMS_N, "mosi": MOSI_N}


@pytest.fixture(scope="session")
def clip_mp4(sims_dir: Path) -> Path:
    """One synthetic clip: 2 s, 64x64 H.264 at 10 fps + AAC 16 kHz mono."""
    return sorted((sims_dir / "Raw").glob("*/*.mp4"))[0]


WriteCSV = Callable[..., Path]


@pytest.fixture
def write_csv(tmp_path: Path) -> WriteCSV:
    """Write ``tmp_path/label.csv`` from a header and rows, plus empty mp4s for the rows unless told not."""

    def write(
        header: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        videos: bool = True,
        raw_text: str | None = None,
    ) -> Path:
        path = tmp_path / "label.csv"
        if raw_text is not None:
            path.write_text(raw_text, encoding="utf-8")
        else:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)
        if videos and raw_text is None and "video_id" in header and "clip_id" in header:
            vi, ci = header.index("video_id"), header.index("clip_id")
            for row in rows:
                if (
                    len(row) > max(vi, ci)
                    and "/" not in f"{row[vi]}{row[ci]}"
                    and ".." not in f"{row[vi]}{row[ci]}"
                ):
                    mp4 = tmp_path / "Raw" / str(row[vi]) / f"{row[ci]}.mp4"
                    mp4.parent.mkdir(parents=True, exist_ok=True)
                    mp4.write_bytes(b"")
        return tmp_path

    return write
