"""Clips a real folder holds, written with PyAV: with and without an audio track, long, broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np


def write_clip(path: Path, seconds: float, *, audio: bool = True, fps: int = 4, size: int = 32) -> Path:
    """An H.264 (+ AAC 16 kHz) clip of ``seconds``; the container follows the suffix (mp4, mkv, mov)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * fps)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for i in range(n):
            img = np.full((size, size, 3), (37 * i) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * seconds)) / 16000)
            for k in range(0, samples.size, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    samples[None, k : k + 1024].astype(np.float32), format="flt", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 16000, k
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def analyst_model(tiny_model_dir: Path, dest: Path) -> Path:
    """A copy of the tiny thinker with the media.json a trained checkpoint carries."""
    from msa_core.media_settings import MediaSettings

    shutil.copytree(tiny_model_dir, dest)
    MediaSettings().write(dest)
    return dest
