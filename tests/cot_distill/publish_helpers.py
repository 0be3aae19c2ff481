"""Test data for export/push: a generate-style OUT directory built from msa-core only (no generate code)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from msa_core import PROMPT_VERSION, DCOutput, get_spec, read_mmsa
from msa_core.synthetic import make_dataset

TEACHER = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
STATS = {
    "requests": 14,
    "accepted": 11,
    "rejected": {"format": 2, "polarity": 1},
    "per_split": {"train": {"accepted": 7}, "valid": {"accepted": 2}, "test": {"accepted": 2}},
}


def accepted_row(clip, *, sample: int = 0) -> dict:
    """An accepted-answer line as the generate step writes it: the true score swapped into the answer."""
    polarity = get_spec(clip.dataset).polarity_of(clip.label)
    think = f"The transcript says '{clip.text}'; the voice and the face agree (sample {sample})."
    teacher = DCOutput(
        polarity=polarity, think=think, score={"negative": -0.5, "neutral": 0.0, "positive": 0.5}[polarity]
    )
    answer = DCOutput(polarity=polarity, think=think, score=clip.label)
    return {
        "id": clip.id,
        "video_id": clip.video_id,
        "clip_id": clip.clip_id,
        "dataset": clip.dataset,
        "split": clip.mode,
        "text": clip.text,
        "label": clip.label,
        "video_path": str(clip.video_path),
        "answer": answer.render(),
        "teacher_answer": teacher.render(),
        "polarity": polarity,
        "prompt_version": PROMPT_VERSION,
        "model": TEACHER,
        "sample": sample,
    }


def write_out(out: Path, rows: list[dict], stats: dict | None = STATS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "accepted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if stats is not None:
        (out / "stats.json").write_text(json.dumps(stats))
    (out / "config.yaml").write_text(f"model: {TEACHER}\n")
    return out


def make_generate_out(root: Path, n: int = 9, dataset: str = "sims") -> tuple[Path, list]:
    """Synthetic data under root/data, OUT under root/out: one accepted answer per clip (+1 repeat)."""
    data = make_dataset(root / "data", dataset=dataset, n=n, seed=0)
    clips = read_mmsa(data, dataset).clips
    rows = [accepted_row(c) for c in clips] + [accepted_row(clips[0], sample=1)]
    return write_out(root / "out", rows), clips


def write_silent_video(path: Path) -> Path:
    """An mp4 with a video stream and no audio track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
