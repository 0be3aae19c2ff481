"""The synthetic MMSA dataset: loads cleanly, real H.264 + AAC mp4s, labels on the scale, splits, hard share,
and every modality actually carries the sentiment."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from msa_core import (
    ConfigError,
    get_spec,
    load_audio,
    make_dataset,
    polarity_of,
    probe,
    read_mmsa,
    sample_frames,
    synthetic,
)
from msa_core.synthetic import COLUMNS, NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS


@pytest.fixture(scope="module")
def sims(sims_dir: Path):
    return read_mmsa(sims_dir, "sims", missing="fail")


@pytest.fixture(scope="module")
def mosi(mosi_dir: Path):
    return read_mmsa(mosi_dir, "mosi", missing="fail")


def test_reader_loads_everything(sims, mosi, sims_dir: Path, sizes: dict[str, int]) -> None:
    assert len(sims) == sizes["sims"] == 30 and sims.missing == []
    assert len(mosi) == sizes["mosi"] == 18 and mosi.missing == []
    header = (sims_dir / "label.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == COLUMNS


def test_every_mp4_is_h264_and_aac(sims, mosi) -> None:
    for clip in [*sims, *mosi]:
        info = probe(clip.video_path)
        assert info.has_video and info.has_audio
        assert (info.width, info.height, info.fps, info.n_frames) == (64, 64, 10.0, 20)
        assert info.duration == pytest.approx(2.0, abs=0.05)
        assert info.audio_sample_rate == 16000
        with av.open(str(clip.video_path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
            assert audio.codec_context.name == "aac" and audio.codec_context.channels == 1


def test_ids(sims, mosi, sizes: dict[str, int]) -> None:
    assert all(re.fullmatch(r"video_\d{4}", c.video_id) and re.fullmatch(r"\d{4}", c.clip_id) for c in sims)
    assert sims.clips[0].video_id == "video_0001" and sims.clips[0].clip_id == "0001"
    assert all(
        re.fullmatch(r"synthvid\d{2}", c.video_id) and re.fullmatch(r"[1-9]\d*", c.clip_id) for c in mosi
    )
    assert len({c.id for c in sims}) == sizes["sims"]
    assert len({c.video_id for c in sims}) < sizes["sims"]  # several clips per video, as in the real corpora


def test_labels_on_the_scale(sims, mosi) -> None:
    for data, spec in ((sims, get_spec("sims")), (mosi, get_spec("mosi"))):
        for clip in data:
            for value in (clip.label, clip.label_T, clip.label_A, clip.label_V):
                assert value is not None and spec.score_min <= value <= spec.score_max
            assert clip.annotation == polarity_of(clip.label, spec).capitalize()
    # SIMS labels are multiples of 0.2 written with one decimal; MOSI ones are multiples of 1/3 or of 0.2.
    for clip in sims:
        assert round(clip.label * 5) == pytest.approx(clip.label * 5, abs=1e-9)
    for clip in mosi:
        assert any(abs(clip.label * k - round(clip.label * k)) < 1e-5 for k in (3, 5))
    assert max(c.label for c in mosi) > 1.0  # the [-3, 3] scale is used, not only [-1, 1]


def test_splits_have_every_polarity(sims, mosi) -> None:
    for data in (sims, mosi):
        counts = Counter((c.mode, polarity_of(c.label, data.spec)) for c in data)
        for mode in ("train", "valid", "test"):
            for polarity in ("negative", "neutral", "positive"):
                assert counts[(mode, polarity)] >= 1, (data.spec.name, mode, polarity)
    sizes = Counter(c.mode for c in sims)
    assert sizes == {"train": 18, "valid": 6, "test": 6}  # 0.6 / 0.2 / 0.2 of 30


def hard_ids(data) -> set[str]:
    return {c.id for c in data if polarity_of(c.label_T, data.spec) != polarity_of(c.label, data.spec)}


def test_hard_share(sims, mosi, sims_dir: Path, sizes: dict[str, int]) -> None:
    assert len(hard_ids(sims)) == round(0.2 * sizes["sims"])
    assert len(hard_ids(mosi)) == round(0.3 * sizes["mosi"])
    manifest = json.loads((sims_dir / "synthetic.json").read_text())
    assert set(manifest["hard_ids"]) == hard_ids(sims)
    assert manifest["n"] == sizes["sims"] and manifest["dataset"] == "sims"
    for data in (sims, mosi):
        for clip in data:  # voice and face always agree with the joint label (they are the majority)
            assert polarity_of(clip.label_A, data.spec) == polarity_of(clip.label, data.spec)
            assert polarity_of(clip.label_V, data.spec) == polarity_of(clip.label, data.spec)


def tone(path: Path) -> tuple[float, float]:
    audio = load_audio(path)
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.size, 1 / 16000)[spectrum.argmax()]), float(np.sqrt(np.mean(audio**2)))


def background(path: Path) -> np.ndarray:
    """Mean RGB of the top and bottom bands, which the face never covers."""
    frames = sample_frames(path, fps=2).astype(float)
    return np.concatenate([frames[:, :6], frames[:, -6:]], axis=1).reshape(-1, 3).mean(axis=0)


def test_modalities_carry_the_label(sims, mosi) -> None:
    for data in (sims, mosi):
        pitch, loud, warmth, labels_a, labels_v, labels = [], [], [], [], [], []
        for clip in data:
            freq, rms = tone(clip.video_path)
            rgb = background(clip.video_path)
            pitch.append(np.log2(freq))
            loud.append(rms)
            warmth.append(rgb[0] - rgb[2])
            labels_a.append(clip.label_A)
            labels_v.append(clip.label_V)
            labels.append(clip.label)
            sign = np.sign(clip.label_A)
            assert np.sign(np.log2(freq / 220.0)) == sign or abs(np.log2(freq / 220.0)) < 0.02
            assert np.sign(rgb[0] - rgb[2]) == np.sign(clip.label_V) or abs(rgb[0] - rgb[2]) < 5
        assert np.corrcoef(labels_a, pitch)[0, 1] > 0.95
        assert np.corrcoef(labels_a, loud)[0, 1] > 0.9
        assert np.corrcoef(labels_v, warmth)[0, 1] > 0.9
        assert np.corrcoef(labels, pitch)[0, 1] > 0.8  # the joint label follows voice and face
        assert np.corrcoef(labels, warmth)[0, 1] > 0.8


def test_text_carries_the_text_label(sims, mosi) -> None:
    pools = {"positive": POSITIVE_WORDS, "negative": NEGATIVE_WORDS, "neutral": NEUTRAL_WORDS}
    for data in (sims, mosi):
        for clip in data:
            words = set(re.findall(r"[a-z]+", clip.text.lower()))
            polarity = polarity_of(clip.label_T, data.spec)
            assert words & set(pools[polarity]), clip.text
            others = {w for p, pool in pools.items() if p != polarity for w in pool}
            assert not words & others, clip.text


def test_deterministic(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", "sims", n=6, seed=5)
    b = make_dataset(tmp_path / "b", "sims", n=6, seed=5)
    c = make_dataset(tmp_path / "c", "sims", n=6, seed=6)
    assert (a / "label.csv").read_bytes() == (b / "label.csv").read_bytes()
    assert (a / "label.csv").read_bytes() != (c / "label.csv").read_bytes()
    clips = sorted((a / "Raw").glob("*/*.mp4"))
    assert len(clips) == 6
    for clip in clips:  # the media too, byte for byte (the encoder runs single-threaded for this)
        assert clip.read_bytes() == (b / clip.relative_to(a)).read_bytes()


def test_hard_fraction_extremes_and_splits(tmp_path: Path) -> None:
    none = read_mmsa(make_dataset(tmp_path / "none", "mosei", n=9, hard_fraction=0.0), "mosei")
    assert hard_ids(none) == set()
    every = read_mmsa(
        make_dataset(tmp_path / "all", "simsv2", n=9, hard_fraction=1.0, splits=(1, 0, 0)), "simsv2"
    )
    assert len(hard_ids(every)) == 9
    assert {c.mode for c in every} == {"train"}
    tiny = read_mmsa(make_dataset(tmp_path / "tiny", "sims", n=1), "sims", missing="fail")
    assert len(tiny) == 1


def test_user_spec(tmp_path: Path) -> None:
    spec_path = tmp_path / "five.yaml"
    spec_path.write_text(
        "name: test_synth_five\nscore_min: -5\nscore_max: 5\nneutral_low: -1\nneutral_high: 1\n"
        "neutral_low_inclusive: false\nneutral_high_inclusive: false\nmetric_family: sims\n"
    )
    data = read_mmsa(make_dataset(tmp_path / "d", str(spec_path), n=6), str(spec_path), missing="fail")
    assert {polarity_of(c.label, data.spec) for c in data} == {"negative", "neutral", "positive"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"hard_fraction": 1.5},
        {"hard_fraction": -0.1},
        {"splits": (0.5, 0.5)},
        {"splits": (1, -1, 1)},
        {"splits": (0, 0, 0)},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        make_dataset(tmp_path / "x", "sims", **{"n": 3, **kwargs})
    assert not (tmp_path / "x" / "label.csv").exists()


def test_crash_leaves_no_half_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = make_dataset(tmp_path / "d", "sims", n=3, seed=0)
    before = (out / "label.csv").read_bytes()
    real_write = synthetic._write_mp4
    calls = {"n": 0}

    def failing(path, frames, audio):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # a crash in the middle of a run
        real_write(path, frames, audio)

    monkeypatch.setattr(synthetic, "_write_mp4", failing)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(out, "sims", n=6, seed=1)
    assert (out / "label.csv").read_bytes() == before  # the old label.csv is untouched, not half rewritten
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    fresh = tmp_path / "fresh"
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        make_dataset(fresh, "sims", n=6, seed=1)
    assert not (fresh / "label.csv").exists()


def test_progress_callback(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    make_dataset(tmp_path, "mosi", n=4, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_media_mapping_is_monotone() -> None:
    xs = np.linspace(-1, 1, 11)
    freqs, amps = zip(*(synthetic.tone_for(x) for x in xs), strict=True)
    assert np.all(np.diff(freqs) > 0) and np.all(np.diff(amps) > 0)
    assert synthetic.tone_for(0.0)[0] == 220.0
    warmth = [synthetic.colour_for(x)[0] - synthetic.colour_for(x)[2] for x in xs]
    assert np.all(np.diff(warmth) > 0)
    assert np.allclose(synthetic.colour_for(0.0), 128)
