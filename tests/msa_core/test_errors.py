"""User-facing errors name the file, line and column."""

from __future__ import annotations

from pathlib import Path

from msa_core import ConfigError, DataError, MediaError, MSAError


def test_data_error_names_location() -> None:
    err = DataError("'x' is not a number", file=Path("/d/label.csv"), line=3, column="label")
    assert str(err) == "/d/label.csv, line 3, column 'label': 'x' is not a number"
    assert (err.file, err.line, err.column, err.reason) == ("/d/label.csv", 3, "label", "'x' is not a number")


def test_data_error_partial_location() -> None:
    assert str(DataError("bad", file="f.csv")) == "f.csv: bad"
    assert str(DataError("bad", line=2)) == "line 2: bad"
    assert str(DataError("bad")) == "bad"


def test_hierarchy() -> None:
    media = MediaError("no audio track", file="a.mp4")
    assert isinstance(media, DataError) and isinstance(media, MSAError) and isinstance(media, ValueError)
    assert str(media) == "a.mp4: no audio track"
    assert isinstance(ConfigError("x"), MSAError) and isinstance(ConfigError("x"), ValueError)
    assert not isinstance(ConfigError("x"), DataError)
