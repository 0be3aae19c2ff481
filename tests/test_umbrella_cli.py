"""The umbrella CLI's own command: `msa-thinker make-data`."""

from __future__ import annotations

from pathlib import Path

from msa_core import probe, read_mmsa
from typer.testing import CliRunner

from msa_thinker.cli import app

runner = CliRunner()


def test_make_data_writes_a_loadable_dataset(tmp_path: Path) -> None:
    out = tmp_path / "data" / "sims"
    result = runner.invoke(
        app,
        ["make-data", str(out), "--dataset", "sims", "--n", "9", "--seed", "4", "--hard-fraction", "0.34"],
    )
    assert result.exit_code == 0, result.output
    data = read_mmsa(out, "sims", missing="fail")
    assert len(data) == 9
    assert all(probe(c.video_path).has_audio for c in data)
    # Summary: clip and hard counts, a row per split with counts per polarity, and the path.
    assert "9 clips, 3 hard" in result.output
    for mode in ("train", "valid", "test"):
        assert any(line.split()[1:2] == [mode] for line in result.output.splitlines()), result.output
    assert "negative" in result.output and "positive" in result.output
    assert str(out.resolve()) in result.output.replace("\n", "")


def test_make_data_mosi_ids(tmp_path: Path) -> None:
    result = runner.invoke(app, ["make-data", str(tmp_path), "--dataset", "mosi", "--n", "3"])
    assert result.exit_code == 0, result.output
    assert read_mmsa(tmp_path, "mosi").clips[0].video_id == "synthvid01"


def test_make_data_never_overwrites_a_dataset_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runner.invoke(app, ["make-data", str(data), "--n", "6", "--seed", "1"]).exit_code == 0
    before = {p.relative_to(data): p.read_bytes() for p in data.rglob("*") if p.is_file()}
    again = runner.invoke(app, ["make-data", str(data), "--n", "3", "--seed", "2"])
    assert again.exit_code == 2, again.output
    assert (
        str(data) in again.output and "already holds a dataset" in again.output and "--force" in again.output
    )
    assert {p.relative_to(data): p.read_bytes() for p in data.rglob("*") if p.is_file()} == before  # intact
    (data / "notes.txt").write_text("mine")
    forced = runner.invoke(app, ["make-data", str(data), "--n", "3", "--seed", "2", "--force"])
    assert forced.exit_code == 0, forced.output
    rows = (data / "label.csv").read_text().splitlines()[1:]
    mp4s = sorted(p.relative_to(data / "Raw") for p in (data / "Raw").rglob("*.mp4"))
    assert len(rows) == 3 and len(mp4s) == 3  # the old clips are gone: no orphans
    assert (data / "notes.txt").read_text() == "mine"  # what make-data did not make stays


def test_make_data_errors_are_clean(tmp_path: Path) -> None:
    result = runner.invoke(app, ["make-data", str(tmp_path), "--dataset", "nope", "--n", "3"])
    assert result.exit_code == 1
    assert "unknown dataset 'nope'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "label.csv").exists()
    blocked = tmp_path / "a_file"
    blocked.write_text("x")
    result = runner.invoke(app, ["make-data", str(blocked), "--n", "3"])
    assert result.exit_code == 2 and "OUT_DIR is a file, not a folder" in result.output
    assert runner.invoke(app, ["make-data", str(tmp_path), "--hard-fraction", "1.5"]).exit_code == 2
    assert runner.invoke(app, ["make-data", str(tmp_path), "--n", "0"]).exit_code == 2
