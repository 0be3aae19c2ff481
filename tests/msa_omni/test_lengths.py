"""msa_omni.lengths / msa_core.prompt_length: the metadata-only token estimate equals the processor's own count."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from msa_core import MediaSettings, build_prompt, get_spec, media
from msa_omni import io as omni
from msa_omni.lengths import ClipPrompt, estimate_tokens, load_processor, max_audio_samples

# (seconds, audio sample rate, (width, height)): the synthetic data's own format, a resampled 44.1 kHz track with
# an odd frame size, and a clip longer than the tiny processor's 30 s of audio.
CLIPS = [(2.0, 16000, (64, 64)), (3.3, 44100, (96, 54)), (33.0, 22050, (32, 32))]
SETTINGS = {
    "default": MediaSettings(),
    # 4 frames at most: every clip here longer than 2 s is thinned; frames upscaled to >= 256 px, <= 128x96
    "thinned": MediaSettings(max_frames=4, video_size=(128, 96), min_pixels=256),
    "no-audio": MediaSettings(audio_in_video=False, fps=1.0),
}


def write_clip(path: Path, seconds: float, sample_rate: int, size: tuple[int, int], fps: int = 10) -> Path:
    """An H.264 + AAC mp4 of ``seconds`` (grey ramp frames, a quiet sine)."""
    audio = (0.1 * np.sin(np.arange(int(seconds * sample_rate)) / 10)).astype(np.float32)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate)
        sound.layout = "mono"
        for i in range(round(seconds * fps)):
            img = np.full((size[1], size[0], 3), (7 * i) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for k in range(0, audio.size, 1024):
            chunk = av.AudioFrame.from_ndarray(audio[None, k : k + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = sample_rate, k
            container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("length-clips")
    return [write_clip(root / f"clip{i}.mp4", *spec) for i, spec in enumerate(CLIPS)]


@pytest.fixture(scope="module", params=["qwen2.5-omni", "qwen3-omni"])
def processor(request: pytest.FixtureRequest):
    """Each family's tiny processor: the estimate follows its family's token rules."""
    name = "tiny_model_dir" if request.param == "qwen2.5-omni" else "tiny_qwen3_model_dir"
    return load_processor(request.getfixturevalue(name))


def test_probe_counts_the_decoded_audio_samples(clips: list[Path]) -> None:
    """probe's sample count (from packets, no decode) is what load_audio decodes: exactly at 16 kHz; resampled,
    the estimate (rounded up) is at most one sample over (the resampler's rounding), never under."""
    for path in clips:
        info = media.probe(path)
        estimate = -(-info.audio_samples * 16000 // info.audio_sample_rate)
        decoded = media.load_audio(path).size
        if info.audio_sample_rate == 16000:
            assert decoded == info.audio_samples, path
        assert estimate - 1 <= decoded <= estimate, path


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_estimate_equals_the_processors_count(name: str, clips: list[Path], processor) -> None:
    settings = SETTINGS[name]
    prompt = build_prompt("Honestly, the movie felt wonderful.", get_spec("sims"))
    answer = "<think>A warm voice.</think><polarity>positive</polarity><score>0.8</score>"
    estimates = estimate_tokens(processor, [ClipPrompt(p.name, p, prompt, answer) for p in clips], settings)
    for path, est in zip(clips, estimates, strict=True):
        clip = omni.clip_media(path, settings)
        batch = omni.encode_prompt(processor, prompt, clip, settings=settings)
        assert est.video == omni.count_tokens(processor, batch, "video"), path
        assert est.audio == omni.count_tokens(processor, batch, "audio"), path
        assert est.prompt == batch["input_ids"].shape[1], path
        if name == "default":  # SFT's count: the prompt, the answer and its end of turn
            example = omni.encode_example(processor, prompt, clip, answer, settings=settings)
            assert est.total == example["input_ids"].shape[1] > est.prompt, path
    qwen3 = type(processor).__name__.startswith("Qwen3")
    if (
        name == "thinned" and not qwen3
    ):  # 3.3 s: 6 frames thinned to 4, 96x54 resized to 84x56: 2 x 3 x 2 patches
        assert estimates[1].video == 2 * 3 * 2
    if name == "thinned" and qwen3:  # 96x54 resized in 32 px steps to 96x64: 2 temporal x 3 x 2 tokens
        assert estimates[1].video == 2 * 3 * 2
    if (
        settings.audio_in_video and not qwen3
    ):  # the tiny processor keeps 30 s of audio: 750 tokens at 25 a second
        assert max_audio_samples(processor) == 30 * 16000 and estimates[2].audio == 750
    if settings.audio_in_video and qwen3:  # no cap: all 33 s, 13 tokens per 100 mel frames (1 s)
        assert estimates[2].audio > 33 * 12
