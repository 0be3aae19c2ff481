"""Media helpers on PyAV (which bundles its own FFmpeg): probe, audio at 16 kHz, cached wav, frames at a fps.

Every failure (missing file, corrupt container, no audio track, zero length, no frames) raises
``msa_core.errors.MediaError`` naming the file and what is wrong, so a CLI can print it and stop.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from msa_core.errors import MediaError

DEFAULT_SR = 16000
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class MediaInfo:
    """What ``probe`` finds. Video fields are 0 for an audio-only file."""

    path: Path
    duration: float
    fps: float
    width: int
    height: int
    n_frames: int
    has_audio: bool
    audio_sample_rate: int | None
    # Samples the audio decoder yields at the track's own rate, counted from the packets (no decode): each packet
    # decodes to a whole codec frame (an AAC tail packet too) and priming packets (negative pts) are skipped.
    audio_samples: int = 0

    @property
    def has_video(self) -> bool:
        return self.n_frames > 0


@contextmanager
def _open(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open for reading; any FFmpeg or OS failure (also mid-decode) becomes a MediaError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MediaError("file not found" if not path.exists() else "not a regular file", file=path)
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", file=path)
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(
            f"cannot open media (corrupt or unsupported container): {_why(exc)}", file=path
        ) from None
    try:
        with container:
            yield container
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot decode media (corrupt or truncated): {_why(exc)}", file=path) from None


def _why(exc: BaseException) -> str:
    """FFmpeg's reason without the errno noise (the file is named by the MediaError already)."""
    return str(getattr(exc, "strerror", None) or exc)


def _duration(container: av.container.InputContainer, stream: av.stream.Stream | None) -> float:
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: str | Path) -> MediaInfo:
    """Duration, frame rate, size, frame count and audio presence from the container (demux, no decode)."""
    path = Path(path)
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise MediaError("no video or audio stream", file=path)
        duration = _duration(container, video if video is not None else audio)
        # Demux (no decode) to catch truncated files whose header is intact, and count frames that the header
        # does not store.
        packets = {"video": 0, "audio": 0}
        audio_start, audio_end = None, 0
        frame_size = audio.codec_context.frame_size if audio is not None else 0
        for packet in container.demux(*(s for s in (video, audio) if s is not None)):
            if packet.size:
                packets[packet.stream.type] += 1
                if packet.stream.type == "audio" and packet.pts is not None:
                    rate = packet.time_base * audio.codec_context.sample_rate
                    start, length = round(packet.pts * rate), round((packet.duration or 0) * rate)
                    audio_start = start if audio_start is None else min(audio_start, start)
                    audio_end = max(audio_end, start + max(frame_size or 0, length))
        fps, width, height, n_frames = 0.0, 0, 0, 0
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else 0.0
            width, height = video.codec_context.width, video.codec_context.height
            n_frames = video.frames or packets["video"]
            if not n_frames:
                raise MediaError("video stream has zero frames", file=path)
            if packets["video"] < n_frames:
                raise MediaError(
                    f"truncated: only {packets['video']} of {n_frames} video frames present", file=path
                )
            if duration <= 0 and fps:
                duration = n_frames / fps
        if audio is not None and not packets["audio"]:
            raise MediaError("audio track holds no data", file=path)
    if duration <= 0:
        raise MediaError("zero-length media (duration 0)", file=path)
    return MediaInfo(
        path=path,
        duration=duration,
        fps=fps,
        width=width,
        height=height,
        n_frames=n_frames,
        has_audio=audio is not None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        audio_samples=max(audio_end - max(audio_start or 0, 0), 0),
    )


def load_audio(path: str | Path, sr: int = DEFAULT_SR) -> np.ndarray:
    """The first audio track, resampled to ``sr`` Hz mono float32 in [-1, 1]."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError("no audio track", file=path)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks: list[np.ndarray] = []
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler count samples itself; container pts may jump
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise MediaError("audio track has zero samples", file=path)
    return np.clip(samples, -1.0, 1.0)


_hash_memo: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def content_hash(path: str | Path) -> str:
    """sha256 hex of the file's bytes, memoised on (path, size, mtime) so repeated calls are free."""
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        with _hash_lock:
            if key in _hash_memo:
                return _hash_memo[key]
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(_HASH_CHUNK):
                digest.update(block)
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    with _hash_lock:
        _hash_memo[key] = digest.hexdigest()
    return _hash_memo[key]


def default_wav_cache() -> Path:
    """``$XDG_CACHE_HOME/msa-thinker/wav`` (``~/.cache/msa-thinker/wav`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "msa-thinker" / "wav"


def write_wav(path: str | Path, audio: np.ndarray, sr: int = DEFAULT_SR) -> Path:
    """Mono float audio as 16-bit PCM, written atomically (tmp file + rename): never half a wav."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, wave.open(fh, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sr)
            out.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def extract_wav(path: str | Path, out_dir: str | Path | None = None, sr: int = DEFAULT_SR) -> Path:
    """The audio track as a ``sr`` Hz mono 16-bit wav named by the media's content hash; reused if present.

    The same bytes always give the same path, so a second call (or a copy of the mp4 elsewhere) does no work.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_wav_cache()
    target = out_dir / f"{content_hash(path)}-{sr}.wav"
    if target.is_file():
        return target
    return write_wav(target, load_audio(path, sr=sr), sr=sr)


def _target_times(duration: float, fps: float, max_frames: int | None) -> np.ndarray:
    """Sampling instants k/fps inside the clip; evenly thinned over the whole clip when above max_frames."""
    count = max(1, math.ceil(duration * fps - 1e-6))
    times = np.arange(count) / fps
    if max_frames is not None and count > max_frames:
        times = np.linspace(0.0, times[-1], max_frames)
    return times


def _pick_nearest(timed: Iterator[tuple[float, av.VideoFrame]], targets: np.ndarray) -> list[av.VideoFrame]:
    """For each instant, the decoded frame nearest to it (one frame may serve several instants)."""
    picked: list[av.VideoFrame] = []
    prev: tuple[float, av.VideoFrame] | None = None
    for t, frame in timed:
        while len(picked) < len(targets) and t >= targets[len(picked)]:
            target = targets[len(picked)]
            use_prev = prev is not None and target - prev[0] < t - target
            picked.append(prev[1] if use_prev else frame)
        prev = (t, frame)
        if len(picked) == len(targets):
            break
    if prev is not None:
        picked.extend(prev[1] for _ in range(len(targets) - len(picked)))  # instants after the last frame
    return picked


def _check_sampling(fps: float, max_frames: int | None) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")


def _video_stream(container: av.container.InputContainer, path: Path) -> av.stream.Stream:
    if not container.streams.video:
        raise MediaError("no video stream", file=path)
    return container.streams.video[0]


def sample_frames(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Frames at ``fps`` as uint8 (T, H, W, 3) RGB: by timestamp, the frame nearest each instant k/fps.

    ``max_frames`` caps T by spreading the samples evenly over the whole clip.
    ``size=(height, width)`` resizes (the order of the array's axes).
    """
    path = Path(path)
    _check_sampling(fps, max_frames)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0

        def timed() -> Iterator[tuple[float, av.VideoFrame]]:
            start = None
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / rate
                start = t if start is None else start
                yield t - start, frame

        duration = _duration(container, stream)
        if duration > 0:
            picked = _pick_nearest(timed(), _target_times(duration, fps, max_frames))
        else:  # no duration in the container: decode everything, then measure it from the timestamps
            frames = list(timed())
            duration = frames[-1][0] + 1.0 / rate if frames else 0.0
            picked = _pick_nearest(iter(frames), _target_times(duration, fps, max_frames)) if frames else []
        if not picked:
            raise MediaError("video stream has zero decodable frames", file=path)
        height, width = size if size is not None else (picked[0].height, picked[0].width)
        arrays = [f.reformat(width=width, height=height, format="rgb24").to_ndarray() for f in picked]
    return np.stack(arrays).astype(np.uint8, copy=False)


def model_frame_count(duration: float, fps: float, max_frames: int | None, total_frames: int) -> int:
    """How many frames a clip gives the model: ``floor(duration * fps)``, at least 1, at most ``max_frames`` and
    the clip's own frame count (LLaMA-Factory's rule, which the SFT stage uses and every other stage follows)."""
    count = max(1, math.floor(duration * fps))
    return min(total_frames, count, max_frames if max_frames is not None else count)


def sample_model_frames(
    path: str | Path, fps: float = 2.0, max_frames: int | None = None
) -> tuple[np.ndarray, float]:
    """Frames as a model is trained on them, and their effective rate.

    ``model_frame_count`` frames spread evenly over the clip's decoded frames (``linspace(0, total - 1, n)``, as
    LLaMA-Factory and Qwen's own video loader pick them), and the rate ``n / duration`` that the processor must be
    told: with the asked-for ``fps``, a clip thinned by ``max_frames`` would have its frames placed too close
    together in time, and TMRoPE's video positions would drift away from the audio's (25 per second).
    """
    path = Path(path)
    _check_sampling(fps, max_frames)
    with _open(path) as container:
        stream = _video_stream(container, path)
        duration, total = _duration(container, stream), int(stream.frames or 0)
        if total <= 0 or duration <= 0:  # no frame count or duration in the container: decode to count them
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            total, duration = len(decoded), duration if duration > 0 else len(decoded) / rate
            if not decoded:
                raise MediaError("video stream has zero decodable frames", file=path)
            count = model_frame_count(duration, fps, max_frames, total)
            picked = [decoded[i] for i in np.linspace(0, total - 1, count).astype(np.int64)]
        else:
            count = model_frame_count(duration, fps, max_frames, total)
            wanted = np.linspace(0, total - 1, count).astype(np.int64).tolist()
            picked: list[np.ndarray] = []
            for index, frame in enumerate(container.decode(stream)):
                while len(picked) < count and wanted[len(picked)] == index:
                    picked.append(frame.to_ndarray(format="rgb24"))
                if len(picked) == count:
                    break
            if not picked:
                raise MediaError("video stream has zero decodable frames", file=path)
            picked += [picked[-1]] * (count - len(picked))  # the container promised more frames than it held
    return np.stack(picked).astype(np.uint8, copy=False), count / duration
