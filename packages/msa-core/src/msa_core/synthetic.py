"""A synthetic dataset in the MMSA layout whose sentiment is carried by all three modalities.

Each clip is a real mp4 written with PyAV (H.264 yuv420p 64x64 at 10 fps, 2 s, plus AAC 16 kHz mono):
- text: a short English sentence whose adjective comes from a positive/negative/neutral pool, with an
  intensifier growing with the text label's magnitude;
- audio: a tone whose pitch (110 Hz at the most negative score, 220 Hz neutral, 440 Hz most positive) and
  loudness both rise with the audio label;
- video: a cartoon face on a background whose colour moves from grey (neutral) towards warm yellow
  (positive) or dark blue (negative) with the visual label, and a mouth that smiles or frowns.
A share of "hard" (incongruent) clips has a transcript that disagrees with voice and face; their multimodal label
follows the majority (audio + visual), so a text-only reader gets them wrong (docs/mini-repro.md).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from msa_core.errors import ConfigError, OutputPathError
from msa_core.spec import POLARITIES, DatasetSpec, Polarity, get_spec, polarity_of

SIZE, FPS, SECONDS, SAMPLE_RATE = 64, 10, 2.0, 16000
CLIPS_PER_VIDEO = 3
COLUMNS = ("video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode")
SPLIT_NAMES = ("train", "valid", "test")

POSITIVE_WORDS = (
    "great",
    "wonderful",
    "excellent",
    "delightful",
    "amazing",
    "lovely",
    "fantastic",
    "brilliant",
)
NEGATIVE_WORDS = (
    "terrible",
    "awful",
    "boring",
    "dreadful",
    "horrible",
    "disappointing",
    "miserable",
    "annoying",
)
NEUTRAL_WORDS = ("ordinary", "average", "typical", "standard", "regular", "plain")
WORDS: dict[Polarity, tuple[str, ...]] = {
    "positive": POSITIVE_WORDS,
    "negative": NEGATIVE_WORDS,
    "neutral": NEUTRAL_WORDS,
}
TOPICS = ("movie", "food", "trip", "show", "book", "game", "weather", "meeting", "class", "concert")
TEMPLATES = (
    "The {topic} was {word}.",
    "I think the {topic} is {word}.",
    "Honestly, the {topic} felt {word}.",
    "My {topic} this week was {word}.",
)

_GREY = np.array([128.0, 128.0, 128.0])
_WARM = np.array([235.0, 190.0, 60.0])  # positive
_BLUE = np.array([30.0, 45.0, 145.0])  # negative
_SKIN = np.array([205.0, 165.0, 135.0])


def _unit(score: float, spec: DatasetSpec) -> float:
    """A score mapped to [-1, 1] around 0 (0 stays 0), so the media mapping is the same for every scale."""
    scale = max(abs(spec.score_min), abs(spec.score_max))
    return float(np.clip(score / scale, -1.0, 1.0))


def tone_for(x: float) -> tuple[float, float]:
    """(frequency in Hz, amplitude) of the tone for a unit score x in [-1, 1]: both rise with it."""
    return 220.0 * 2.0**x, 0.08 + 0.17 * (x + 1.0) / 2.0


def colour_for(x: float) -> np.ndarray:
    """Background RGB for a unit score: grey at 0, towards warm yellow (x > 0) or dark blue (x < 0)."""
    end = _WARM if x > 0 else _BLUE
    return _GREY + abs(x) * (end - _GREY)


def _text_for(label_t: float, spec: DatasetSpec, rng: np.random.Generator) -> str:
    polarity = polarity_of(label_t, spec)
    word = str(rng.choice(WORDS[polarity]))
    strength = abs(_unit(label_t, spec))
    if polarity != "neutral":
        adverb = "fairly" if strength < 0.45 else "really" if strength < 0.8 else "absolutely"
        word = f"{adverb} {word}"
    return str(rng.choice(TEMPLATES)).format(topic=rng.choice(TOPICS), word=word)


def _audio_for(x: float, rng: np.random.Generator) -> np.ndarray:
    freq, amp = tone_for(x)
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, SECONDS - t) / 0.02)  # 20 ms fades: no clicks at the edges
    tone = amp * ramp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return (tone + rng.normal(0.0, 0.004, t.size)).astype(np.float32)


def _frames_for(x: float, rng: np.random.Generator) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    background = colour_for(x)
    frames = []
    phase = rng.uniform(0, 2 * np.pi)
    for i in range(int(SECONDS * FPS)):
        cx = SIZE / 2 + 3.0 * math.sin(phase + i * 0.6)  # the face sways so consecutive frames differ
        cy = SIZE / 2
        img = np.broadcast_to(background, (SIZE, SIZE, 3)).copy()
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 17.0**2] = _SKIN
        for ex in (cx - 6, cx + 6):
            img[(xx - ex) ** 2 + (yy - (cy - 5)) ** 2 <= 2.2**2] = 30.0
        # Mouth: a parabola that opens upwards (smile) for x > 0, downwards (frown) for x < 0, flat at 0.
        mouth_y = cy + 7 - 6.0 * x * (1 - ((xx - cx) / 8.0) ** 2)
        img[(np.abs(xx - cx) <= 8) & (np.abs(yy - mouth_y) <= 1.2)] = 40.0
        img += rng.normal(0.0, 3.0, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def _write_mp4(path: Path, frames: Sequence[np.ndarray], audio: np.ndarray) -> None:
    """H.264 + AAC mp4, written to a temporary name and renamed, so a crash never leaves half a clip."""
    import av  # on first use: the word lists and label helpers import without PyAV (e.g. on a bare GPU node)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with av.open(tmp, "w", format="mp4") as container:
            # A seed must give the same bytes. Measured: x264's threads and its macroblock-tree rate control
            # (mbtree) each made repeated runs differ; B-frames stay, as in real mp4s.
            options = {"threads": "1", "x264-params": "mbtree=0"}
            video = container.add_stream("libx264", rate=FPS, options=options)
            video.codec_context.thread_count = 1
            video.codec_context.thread_type = "NONE"
            video.width = video.height = SIZE
            video.pix_fmt = "yuv420p"
            sound = container.add_stream("aac", rate=SAMPLE_RATE)
            sound.layout = "mono"
            for i, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                frame.pts = i
                container.mux(video.encode(frame))
            container.mux(video.encode())
            step = 1024
            for k in range(0, audio.size, step):
                frame = av.AudioFrame.from_ndarray(audio[None, k : k + step], format="flt", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = k
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def label_grid(spec: DatasetSpec) -> np.ndarray:
    """Label values as annotators produce them: SIMS-style steps of 0.2; MOSI-style steps of 1/3 and 0.2."""
    lo, hi = spec.score_min, spec.score_max
    steps = (1 / 3, 0.2) if spec.metric_family == "mosi" else ((hi - lo) / 10,)
    values = {round(lo + k * s, 6) for s in steps for k in range(round((hi - lo) / s) + 1)}
    return np.array(sorted(v for v in values if lo <= v <= hi))


def _values_by_polarity(spec: DatasetSpec) -> dict[Polarity, np.ndarray]:
    grid = label_grid(spec)
    pools = {p: grid[[polarity_of(v, spec) == p for v in grid]] for p in POLARITIES}
    for p, pool in pools.items():
        if pool.size == 0:  # a user spec whose band holds no grid value: use the band's middle
            middle = {
                "neutral": (spec.neutral_low + spec.neutral_high) / 2,
                "negative": spec.score_min,
                "positive": spec.score_max,
            }[p]
            pools[p] = np.array([middle])
    return pools


def _near(pool: np.ndarray, centre: float, width: float, rng: np.random.Generator) -> float:
    """A same-polarity value close to ``centre``: unimodal labels scatter around the joint one."""
    close = pool[np.abs(pool - centre) <= width + 1e-9]
    return float(rng.choice(close if close.size else pool))


def _contrary(polarity: Polarity, rng: np.random.Generator) -> Polarity:
    """The transcript's polarity in a hard clip: mostly the opposite one, sometimes neutral."""
    if polarity == "neutral":
        return "positive" if rng.random() < 0.5 else "negative"
    opposite: Polarity = "negative" if polarity == "positive" else "positive"
    return opposite if rng.random() < 0.75 else "neutral"


def _assign_splits(
    classes: list[Polarity], fractions: Sequence[float], rng: np.random.Generator
) -> list[str]:
    """Stratified by polarity: every split with a share gets every class when that class has enough clips."""
    modes = [""] * len(classes)
    active = [s for s, f in enumerate(fractions) if f > 0]
    for polarity in POLARITIES:
        members = [i for i, c in enumerate(classes) if c == polarity]
        rng.shuffle(members)
        m = len(members)
        exact = [m * f for f in fractions]
        counts = [math.floor(e) for e in exact]
        for s in sorted(range(len(fractions)), key=lambda s: exact[s] - counts[s], reverse=True)[
            : m - sum(counts)
        ]:
            counts[s] += 1
        if m >= len(active):
            for s in active:
                while counts[s] == 0:
                    donor = max(active, key=lambda d: counts[d])
                    counts[donor] -= 1
                    counts[s] += 1
        start = 0
        for s, count in enumerate(counts):
            for i in members[start : start + count]:
                modes[i] = SPLIT_NAMES[s]
            start += count
    return modes


def _check_args(n: int, hard_fraction: float, splits: Sequence[float]) -> list[float]:
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if not 0.0 <= hard_fraction <= 1.0:
        raise ConfigError(f"hard_fraction must be within [0, 1], got {hard_fraction!r}")
    if len(splits) != 3 or any(not (f >= 0) for f in splits) or sum(splits) <= 0:
        raise ConfigError(
            f"splits must be three non-negative train/valid/test fractions, got {tuple(splits)!r}"
        )
    return [f / sum(splits) for f in splits]


def replace_dataset(out_dir: str | Path, force: bool) -> None:
    """Make room for a new dataset in ``out_dir``: one already there (label.csv or Raw/, synthetic or real) is an
    OutputPathError unless ``force``, which deletes its label.csv, Raw/ and synthetic.json (nothing else)."""
    out = Path(out_dir)
    found = [name for name in ("label.csv", "Raw") if (out / name).exists()]
    if not found:
        return
    if not force:
        raise OutputPathError(
            f"OUT_DIR already holds a dataset ({' and '.join(found)}); choose another OUT_DIR, or pass --force to "
            "replace it",
            file=out,
        )
    for name in ("label.csv", "synthetic.json"):
        (out / name).unlink(missing_ok=True)
    raw = out / "Raw"
    if raw.is_symlink() or raw.is_file():
        raw.unlink()
    elif raw.is_dir():
        shutil.rmtree(raw)


def make_dataset(
    out_dir: str | Path,
    dataset: str | DatasetSpec = "sims",
    n: int = 60,
    seed: int = 0,
    *,
    hard_fraction: float = 0.2,
    splits: Sequence[float] = (0.6, 0.2, 0.2),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``n`` clips in the MMSA layout under ``out_dir`` and return it.

    Writes ``Raw/<video_id>/<clip_id>.mp4``, then ``label.csv`` (last and atomically: a crash leaves no half
    file) and ``synthetic.json`` (the parameters and the ids of the hard clips). Deterministic per seed.
    ``progress(done, total)`` is called after each clip.
    """
    spec = get_spec(dataset)
    fractions = _check_args(n, hard_fraction, splits)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pools = _values_by_polarity(spec)
    classes: list[Polarity] = [POLARITIES[i % 3] for i in range(n)]
    rng.shuffle(classes)
    hard = set(rng.choice(n, size=round(hard_fraction * n), replace=False).tolist())
    modes = _assign_splits(classes, fractions, rng)
    width = 0.2 * (spec.score_max - spec.score_min) / 2  # unimodal labels stay within 20 % of the half-range
    sims_style = spec.metric_family == "sims"

    rows, hard_ids = [], []
    for i in range(n):
        clip_rng = np.random.default_rng([seed, i])
        polarity = classes[i]
        label = float(clip_rng.choice(pools[polarity]))
        label_a = _near(pools[polarity], label, width, clip_rng)
        label_v = _near(pools[polarity], label, width, clip_rng)
        if i in hard:
            # The transcript disagrees; voice and face (the majority) decide the joint label.
            text_polarity = _contrary(polarity, clip_rng)
            label_t = float(clip_rng.choice(pools[text_polarity]))
        else:
            label_t = _near(pools[polarity], label, width, clip_rng)
        v, j = divmod(i, CLIPS_PER_VIDEO)
        video_id = f"video_{v + 1:04d}" if sims_style else f"synthvid{v + 1:02d}"
        clip_id = f"{j + 1:04d}" if sims_style else str(j + 1)
        _write_mp4(
            out / "Raw" / video_id / f"{clip_id}.mp4",
            _frames_for(_unit(label_v, spec), clip_rng),
            _audio_for(_unit(label_a, spec), clip_rng),
        )
        if i in hard:
            hard_ids.append(f"{video_id}$_${clip_id}")
        rows.append(
            {
                "video_id": video_id,
                "clip_id": clip_id,
                "text": _text_for(label_t, spec, clip_rng),
                "label": _num(label),
                "label_T": _num(label_t),
                "label_A": _num(label_a),
                "label_V": _num(label_v),
                "annotation": polarity_of(label, spec).capitalize(),
                "mode": modes[i],
            }
        )
        if progress is not None:
            progress(i + 1, n)

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text_atomic(out / "label.csv", buffer.getvalue())
    manifest = {
        "generator": "msa_core.synthetic",
        "dataset": spec.name,
        "n": n,
        "seed": seed,
        "hard_fraction": hard_fraction,
        "splits": dict(zip(SPLIT_NAMES, fractions, strict=True)),
        "media": {"size": SIZE, "fps": FPS, "seconds": SECONDS, "sample_rate": SAMPLE_RATE},
        "hard_ids": hard_ids,
    }
    _write_text_atomic(out / "synthetic.json", json.dumps(manifest, indent=1) + "\n")
    return out


def _num(value: float) -> str:
    """Labels as MMSA's CSVs print them: at most 6 decimals, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0")
    text = text + "0" if text.endswith(".") else text
    return "0.0" if text == "-0.0" else text
