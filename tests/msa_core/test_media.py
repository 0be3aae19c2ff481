"""PyAV media helpers: probe, audio at 16 kHz, cached wav extraction, frame sampling, clear errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from msa_core import MediaError, content_hash, extract_wav, load_audio, media, probe, sample_frames, write_wav
from msa_core.media import sample_model_frames


def write_video(
    path: Path,
    n_frames: int = 20,
    fps: int = 10,
    *,
    audio: bool = False,
    faststart: bool = False,
    size: int = 32,
) -> Path:
    """An H.264 mp4 whose frame i is uniformly grey with value 10 * i (a frame's index can be read back)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = 0.3 * np.sin(2 * np.pi * 300 * np.arange(int(16000 * n_frames / fps)) / 16000)
            for k in range(0, samples.size, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    samples[None, k : k + 1024].astype(np.float32), format="flt", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 16000, k
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def test_probe_synthetic_clip(clip_mp4: Path) -> None:
    info = probe(clip_mp4)
    assert info.path == clip_mp4
    assert info.has_audio and info.has_video
    assert info.audio_sample_rate == 16000
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.fps == pytest.approx(10.0)
    assert (info.width, info.height, info.n_frames) == (64, 64, 20)


def test_no_audio_track(tmp_path: Path) -> None:
    path = write_video(tmp_path / "silent.mp4")
    info = probe(path)
    assert not info.has_audio and info.audio_sample_rate is None and info.n_frames == 20
    for func in (load_audio, lambda p: extract_wav(p, out_dir=tmp_path / "wav")):
        with pytest.raises(MediaError, match="no audio track") as err:
            func(path)
        assert err.value.file == str(path) and str(path) in str(err.value)
    assert not (tmp_path / "wav").exists() or not any((tmp_path / "wav").iterdir())


def test_audio_only_file(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav", 0.5 * np.sin(np.linspace(0, 200, 8000)))
    info = probe(wav)
    assert info.has_audio and not info.has_video
    assert info.duration == pytest.approx(0.5)
    assert load_audio(wav).shape == (8000,)
    with pytest.raises(MediaError, match="no video stream"):
        sample_frames(wav)


def corrupt_variants(clip: Path, tmp_path: Path) -> dict[str, Path]:
    data = clip.read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated": data[: len(data) // 2],
        "text": b"not a video at all\n" * 20,
        "empty": b"",
    }
    out = {}
    for name, payload in files.items():
        out[name] = tmp_path / f"{name}.mp4"
        out[name].write_bytes(payload)
    # A file whose header survives (moov first) but whose media data is cut off.
    full = write_video(tmp_path / "faststart.mp4", n_frames=20, faststart=True)
    out["cut_data"] = tmp_path / "cut_data.mp4"
    out["cut_data"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out["missing"] = tmp_path / "absent.mp4"
    return out


@pytest.mark.parametrize(
    "func", [probe, load_audio, sample_frames], ids=["probe", "load_audio", "sample_frames"]
)
def test_corrupt_files_raise_media_error(clip_mp4: Path, tmp_path: Path, func) -> None:
    for name, path in corrupt_variants(clip_mp4, tmp_path).items():
        if func is load_audio and name == "cut_data":
            continue  # that file has no audio track at all
        with pytest.raises(MediaError) as err:
            func(path)
        assert err.value.file == str(path), name
        assert str(path) in str(err.value)


def test_error_messages_say_what_is_wrong(clip_mp4: Path, tmp_path: Path) -> None:
    files = corrupt_variants(clip_mp4, tmp_path)
    expected = {
        "random": "corrupt",
        "truncated": "corrupt",
        "empty": "empty",
        "missing": "not found",
        "cut_data": "truncated",
    }
    for name, word in expected.items():
        with pytest.raises(MediaError, match=word):
            probe(files[name])
    with pytest.raises(MediaError, match="not a regular file"):
        probe(tmp_path)


def test_load_audio_resamples_to_mono_16k(clip_mp4: Path) -> None:
    audio = load_audio(clip_mp4)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 32000 <= audio.size <= 32000 + 2048  # 2 s, plus AAC's frame padding at most
    assert np.abs(audio).max() <= 1.0
    half = load_audio(clip_mp4, sr=8000)
    assert abs(half.size - audio.size / 2) <= 1024
    # The tone survives the codec and the resampler: same peak frequency at both rates.
    peaks = [
        np.fft.rfftfreq(a.size, 1 / sr)[np.abs(np.fft.rfft(a)).argmax()]
        for a, sr in ((audio, 16000), (half, 8000))
    ]
    assert peaks[0] == pytest.approx(peaks[1], abs=2.0)
    assert 100 < peaks[0] < 450


def test_extract_wav_cached(clip_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "wavs"
    first = extract_wav(clip_mp4, out_dir=out_dir)
    assert first.parent == out_dir and content_hash(clip_mp4) in first.name
    with wave.open(str(first)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() == load_audio(clip_mp4).size
    stamp = first.stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached wav must not be decoded again")

    monkeypatch.setattr(media, "load_audio", no_decoding)
    second = extract_wav(clip_mp4, out_dir=out_dir)
    assert second == first and second.stat().st_mtime_ns == stamp
    copy = tmp_path / "elsewhere" / "renamed.mp4"  # same bytes elsewhere: same cache entry
    copy.parent.mkdir()
    shutil.copy(clip_mp4, copy)
    assert extract_wav(copy, out_dir=out_dir) == first
    assert [p.name for p in out_dir.iterdir()] == [first.name]  # no temporary files left behind


def test_extract_wav_default_cache_and_rate(
    clip_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = extract_wav(clip_mp4, sr=8000)
    assert path.parent == tmp_path / "cache" / "msa-thinker" / "wav"
    assert path.name.endswith("-8000.wav")
    with wave.open(str(path)) as w:
        assert w.getframerate() == 8000
    assert extract_wav(clip_mp4) != path  # another rate is another file


def test_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert content_hash(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert content_hash(str(path)) == content_hash(path)
    path.write_bytes(b"xyz" * 999)
    os.utime(path, ns=(1, 1))  # a new size and mtime invalidate the memo
    assert content_hash(path) == hashlib.sha256(b"xyz" * 999).hexdigest()
    with pytest.raises(MediaError, match="cannot read"):
        content_hash(tmp_path / "absent.bin")


def test_sample_frames_counts(clip_mp4: Path) -> None:
    frames = sample_frames(clip_mp4, fps=2.0)
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.uint8
    assert sample_frames(clip_mp4, fps=10).shape[0] == 20
    assert sample_frames(clip_mp4, fps=1).shape[0] == 2
    assert sample_frames(clip_mp4, fps=2, max_frames=3).shape[0] == 3
    assert sample_frames(clip_mp4, fps=2, size=(32, 48)).shape == (4, 32, 48, 3)  # size is (height, width)


def test_sample_frames_pick_by_timestamp(tmp_path: Path) -> None:
    path = write_video(tmp_path / "ramp.mp4", n_frames=20, fps=10)
    grey = sample_frames(path, fps=2.0)[..., 0].mean(axis=(1, 2))
    assert np.allclose(grey, [0, 50, 100, 150], atol=4)  # frames 0, 5, 10, 15 (instants 0, 0.5, 1, 1.5 s)
    spread = sample_frames(path, fps=10.0, max_frames=4)[..., 0].mean(axis=(1, 2))
    assert np.allclose(spread, [0, 60, 130, 190], atol=4)  # evenly over the whole clip: frames 0, 6, 13, 19
    upsampled = sample_frames(path, fps=20.0)  # more instants than frames: the nearest frame repeats
    assert upsampled.shape[0] == 40
    assert np.allclose(upsampled[::2, ..., 0].mean(axis=(1, 2)), np.arange(20) * 10, atol=4)


def test_sample_frames_bad_arguments(clip_mp4: Path) -> None:
    with pytest.raises(ValueError, match="fps"):
        sample_frames(clip_mp4, fps=0)
    with pytest.raises(ValueError, match="max_frames"):
        sample_frames(clip_mp4, max_frames=0)


def test_sample_model_frames_spreads_over_the_decoded_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "ramp.mp4", n_frames=20, fps=10)  # frame k has grey level 10 k
    frames, _ = sample_model_frames(path, fps=2.0, max_frames=16)
    # LLaMA-Factory's indices: linspace(0, 19, 4) -> 0, 6, 12, 19
    assert np.allclose(frames[..., 0].mean(axis=(1, 2)), [0, 60, 120, 190], atol=4)
