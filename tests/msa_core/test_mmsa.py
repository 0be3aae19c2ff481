"""The MMSA reader: columns in any order, string ids, errors naming file/line/column, missing videos."""

from __future__ import annotations

from pathlib import Path

import pytest
from msa_core import ID_SEPARATOR, DataError, read_mmsa, safe_media_path

HEADER = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]


def row(
    video: str = "video_0001",
    clip: str = "0001",
    text: str = "nice",
    label: object = 0.4,
    mode: str = "train",
) -> list[object]:
    return [video, clip, text, label, 0.2, 0.6, 0.4, "Positive", mode]


def test_reads_any_column_order_and_keeps_ids(write_csv) -> None:
    header = ["mode", "label", "clip_id", "text", "video_id"]  # no unimodal labels, shuffled
    root = write_csv(
        header,
        [
            ["train", "-0.8", "0001", "bad, really bad", "video_0007"],
            ["test", "0.0", "0010", "meh", "video_0007"],
        ],
    )
    data = read_mmsa(root, "sims")
    assert len(data) == 2 and data.missing == []
    first = data.clips[0]
    assert (first.video_id, first.clip_id, first.text, first.label) == (
        "video_0007",
        "0001",
        "bad, really bad",
        -0.8,
    )
    assert first.id == f"video_0007{ID_SEPARATOR}0001" == "video_0007$_$0001"
    assert first.label_T is None and first.annotation is None and first.dataset == "sims"
    assert first.video_path == (root / "Raw" / "video_0007" / "0001.mp4").resolve()
    assert first.video_path.is_absolute()
    assert [c.mode for c in data] == ["train", "test"]
    assert set(data.by_id()) == {"video_0007$_$0001", "video_0007$_$0010"}


def test_full_columns_and_splits(write_csv) -> None:
    rows = [
        row(clip="0001", mode="train"),
        row(clip="0002", mode="val"),
        row(clip="0003", mode="dev"),
        row(clip="0004", mode="Test"),
    ]
    root = write_csv(HEADER, rows)
    data = read_mmsa(root, "sims")
    c = data.clips[0]
    assert (c.label_T, c.label_A, c.label_V, c.annotation) == (0.2, 0.6, 0.4, "Positive")
    assert [x.clip_id for x in data.split("valid")] == ["0002", "0003"]
    assert [x.clip_id for x in data.split("val")] == ["0002", "0003"]
    assert [x.clip_id for x in read_mmsa(root, "sims", split="test")] == ["0004"]
    with pytest.raises(DataError, match="unknown split 'bogus'"):
        data.split("bogus")
    with pytest.raises(DataError, match="unknown split 'bogus'"):
        read_mmsa(root, "sims", split="bogus")


def test_bom_and_quoted_multiline_text(tmp_path: Path, write_csv) -> None:
    text = '\ufeffvideo_id,clip_id,text,label,mode\nv1,1,"line one\nline ""two"", end",-2.4,train\n'
    root = write_csv([], [], raw_text=text)
    (root / "Raw" / "v1").mkdir(parents=True)
    (root / "Raw" / "v1" / "1.mp4").write_bytes(b"")
    data = read_mmsa(root, "mosi")
    assert data.clips[0].text == 'line one\nline "two", end'
    assert data.clips[0].clip_id == "1"


def expect_data_error(root: Path, *, line: int | None, column: str | None, match: str, **kwargs) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        read_mmsa(root, kwargs.pop("dataset", "sims"), **kwargs)
    err = info.value
    assert err.file == str(root / "label.csv")
    assert str(root / "label.csv") in str(err)
    assert err.line == line
    assert err.column == column
    return err


@pytest.mark.parametrize(
    ("bad", "column", "match"),
    [
        (row(label="high"), "label", "'high' is not a number"),
        (row(label=""), "label", "empty value"),
        (row(label="nan"), "label", "not a finite number"),
        (row(label="inf"), "label", "not a finite number"),
        (row(label=1.5), "label", r"outside sims's range \[-1, 1\]"),
        (row(mode="holdout"), "mode", "unknown split 'holdout'"),
        (row(video=""), "video_id", "empty id"),
        (row(clip="  "), "clip_id", "empty id"),
        (
            ["video_0001", "0002", "t", 0.2, "x", 0.1, 0.1, "Positive", "train"],
            "label_T",
            "'x' is not a number",
        ),
        (["video_0001", "0002", "t", 0.2, 0.1, "NaN", 0.1, "Positive", "train"], "label_A", "not a finite"),
    ],
)
def test_malformed_values_name_file_line_column(write_csv, bad: list, column: str, match: str) -> None:
    root = write_csv(HEADER, [row(), bad])
    expect_data_error(root, line=3, column=column, match=match)


def test_empty_unimodal_labels_are_none(write_csv) -> None:
    root = write_csv(HEADER, [["v", "1", "t", 0.2, "", " ", "", "", "train"]])
    clip = read_mmsa(root, "sims").clips[0]
    assert (clip.label_T, clip.label_A, clip.label_V, clip.annotation) == (None, None, None, None)


def test_range_check_can_be_disabled(write_csv) -> None:
    root = write_csv(HEADER, [row(label=2.0)])
    assert read_mmsa(root, "sims", check_range=False).clips[0].label == 2.0


def test_field_count_errors(write_csv) -> None:
    root = write_csv(HEADER, [row(), [*row(clip="0002"), "surplus"]])
    expect_data_error(root, line=3, column=None, match="10 fields, header has 9")
    root = write_csv(HEADER, [row(), ["video_0001", "0002", "t"]])
    expect_data_error(root, line=3, column=None, match="fewer fields")


def test_missing_required_column(write_csv) -> None:
    root = write_csv(["video_id", "clip_id", "text", "mode"], [["v", "1", "t", "train"]])
    expect_data_error(root, line=1, column=None, match="missing column.*label")


def test_no_label_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"label\.csv not found") as info:
        read_mmsa(tmp_path, "sims")
    assert info.value.file == str(tmp_path.resolve() / "label.csv")


def test_undecodable_csv(write_csv) -> None:
    root = write_csv([], [], raw_text="")
    (root / "label.csv").write_bytes(b"video_id,clip_id,text,label,mode\nv,1,\xff\xfe bad,0.1,train\n")
    with pytest.raises(DataError, match="UTF-8") as info:
        read_mmsa(root, "sims")
    assert info.value.file == str(root / "label.csv")


@pytest.mark.parametrize(
    ("video", "clip", "column"),
    [
        ("../x", "0001", "video_id"),
        ("video_0001", "../x", "clip_id"),
        ("..", "0001", "video_id"),
        ("video_0001", "a/b", "clip_id"),
        ("video_0001", "..\\x", "clip_id"),
    ],
)
def test_escaping_ids_rejected(write_csv, video: str, clip: str, column: str) -> None:
    root = write_csv(HEADER, [row(), row(video=video, clip=clip)])
    err = expect_data_error(root, line=3, column=column, match="escape")
    assert repr(video if column == "video_id" else clip) in str(err)


def test_safe_media_path(tmp_path: Path) -> None:
    assert safe_media_path(tmp_path, "v", "01") == (tmp_path / "Raw" / "v" / "01.mp4").resolve()
    assert safe_media_path(tmp_path, "v", "01", ext=".wav").suffix == ".wav"
    with pytest.raises(DataError):
        safe_media_path(tmp_path, "v", "..")
    # A symlinked video folder pointing outside the dataset is caught by resolving the path.
    (tmp_path / "Raw").mkdir()
    (tmp_path / "Raw" / "link").symlink_to(tmp_path.parent)
    with pytest.raises(DataError, match="outside"):
        safe_media_path(tmp_path, "link", "x")


def test_duplicate_ids(write_csv) -> None:
    root = write_csv(HEADER, [row(), row(clip="0002"), row()])
    expect_data_error(
        root, line=4, column=None, match=r"duplicate id 'video_0001\$_\$0001' \(first on line 2\)"
    )


def test_zero_padded_ids_distinct(write_csv) -> None:
    root = write_csv(HEADER, [row(clip="1"), row(clip="01"), row(clip="0001")])
    assert [c.clip_id for c in read_mmsa(root, "sims")] == ["1", "01", "0001"]


def test_missing_videos_skip_and_fail(write_csv) -> None:
    rows = [row(clip=f"{i:04d}") for i in range(1, 9)]
    root = write_csv(HEADER, rows)
    for i in (2, 3, 4, 5, 6, 7, 8):
        (root / "Raw" / "video_0001" / f"{i:04d}.mp4").unlink()
    data = read_mmsa(root, "sims")  # skip is the default
    assert [c.clip_id for c in data] == ["0001"]
    assert len(data.missing) == 7
    assert data.missing[0] == "video_0001$_$0002"
    err = expect_data_error(root, line=None, column=None, match="7 clip", missing="fail")
    assert "video_0001$_$0002" in str(err) and "video_0001$_$0006" in str(err)
    assert "video_0001$_$0007" not in str(err)  # only the first few are named
    assert "…" in str(err)


def test_user_spec_dataset(write_csv, tmp_path: Path) -> None:
    spec_path = tmp_path / "ten.yaml"
    spec_path.write_text(
        "name: test_reader_ten\nscore_min: 0\nscore_max: 10\nneutral_low: 4\nneutral_high: 6\n"
        "metric_family: sims\n"
    )
    root = write_csv(HEADER, [row(label=7.5)])
    data = read_mmsa(root, str(spec_path))
    assert data.spec.name == "test_reader_ten" and data.clips[0].label == 7.5


def test_labels_a_hair_off_the_scale_are_clipped_and_counted(write_csv) -> None:
    root = write_csv(HEADER, [row(label="1.0000001"), row(clip="0002", label="-1.0000004"), row(clip="0003")])
    data = read_mmsa(root, "sims")
    assert [c.label for c in data] == [1.0, -1.0, 0.4]
    assert [(line, value) for line, _, value in data.clipped] == [(2, 1.0000001), (3, -1.0000004)]
    (warning,) = data.warnings()
    assert "2 label(s) outside sims's range [-1, 1] clipped" in warning and "1.0000001" in warning


def test_an_off_scale_label_error_shows_the_exact_value(write_csv) -> None:
    root = write_csv(HEADER, [row(), row(clip="0002", label="1.00001")])
    err = expect_data_error(root, line=3, column="label", match=r"label 1\.00001 outside sims's range")
    assert "--on-bad-label" in str(err)


def test_on_bad_label_skip_records_and_clip_clips(write_csv) -> None:
    root = write_csv(HEADER, [row(), row(clip="0002", label="2.5"), row(clip="0003", label="-3")])
    skipped = read_mmsa(root, "sims", on_bad_label="skip")
    assert [c.clip_id for c in skipped] == ["0001"] and skipped.clipped == []
    assert [(s.id, s.reason) for s in skipped.skipped] == [
        ("video_0001$_$0002", "bad_label"),
        ("video_0001$_$0003", "bad_label"),
    ]
    assert "line 3: label 2.5" in skipped.skipped[0].detail
    clipped = read_mmsa(root, "sims", on_bad_label="clip")
    assert [c.label for c in clipped] == [0.4, 1.0, -1.0] and len(clipped.clipped) == 2
    with pytest.raises(DataError, match="--on-bad-label must be one of"):
        read_mmsa(root, "sims", on_bad_label="ignore")


def test_header_only_csv_missing_raw_and_csv_folder_are_errors(write_csv, tmp_path: Path) -> None:
    root = write_csv(HEADER, [])
    expect_data_error(root, line=None, column=None, match="header but no rows")
    root = write_csv(HEADER, [row()], videos=False)
    with pytest.raises(DataError, match=r"Raw/ folder not found.*Raw/video_0001/0001\.mp4") as info:
        read_mmsa(root, "sims")
    assert info.value.file == str(root / "Raw")
    (root / "label.csv").unlink()
    (root / "label.csv").mkdir()
    with pytest.raises(DataError, match=r"label\.csv is a folder"):
        read_mmsa(root, "sims")


def test_missing_videos_are_recorded_as_skipped(write_csv) -> None:
    root = write_csv(HEADER, [row(), row(clip="0002")])
    (root / "Raw" / "video_0001" / "0002.mp4").unlink()
    data = read_mmsa(root, "sims")
    (skip,) = data.skipped
    assert (skip.id, skip.reason, skip.path) == (
        "video_0001$_$0002",
        "missing",
        str(root / "Raw/video_0001/0002.mp4"),
    )
