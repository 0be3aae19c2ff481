"""MediaSettings (one model for SFT, GRPO and predict) and the effective rate of thinned clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from msa_core import ConfigError, MediaSettings, artifacts
from msa_core.media import model_frame_count, sample_model_frames
from pydantic import ValidationError


def test_written_next_to_a_checkpoint_and_read_back(tmp_path: Path) -> None:
    assert MediaSettings.read(tmp_path) is None
    settings = MediaSettings(fps=1.0, max_frames=8, video_size=(64, 48), min_pixels=256)
    assert settings.write(tmp_path) == tmp_path / artifacts.MEDIA_SETTINGS
    assert MediaSettings.read(tmp_path) == settings and settings.max_pixels == 64 * 48
    (tmp_path / artifacts.MEDIA_SETTINGS).write_text('{"fps": 1.0, "colour": "red"}')
    with pytest.raises(ConfigError, match="colour"):
        MediaSettings.read(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_frames": 3}, "even"),
        ({"fps": 0}, "greater than 0"),
        ({"video_size": (10, 10)}, "min_pixels"),
    ],
)
def test_invalid_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ValidationError, match=message):
        MediaSettings(**kwargs)


def test_model_frame_count_follows_llamafactory() -> None:
    assert model_frame_count(2.0, 2.0, 16, 20) == 4  # floor(duration x fps)
    assert model_frame_count(2.3, 2.0, 16, 23) == 4  # floor, not ceil: LLaMA-Factory's count
    assert model_frame_count(10.0, 2.0, 8, 100) == 8  # capped by max_frames
    assert model_frame_count(1.0, 30.0, None, 10) == 10  # never more than the clip has
    assert model_frame_count(0.2, 2.0, 8, 5) == 1  # at least one


def test_sample_model_frames_reports_the_rate_of_what_it_returned(clip_mp4: Path) -> None:
    frames, fps = sample_model_frames(clip_mp4, fps=2.0, max_frames=2)
    assert len(frames) == 2 and fps == pytest.approx(1.0)  # 2 frames over the 2 s clip
    frames, fps = sample_model_frames(clip_mp4, fps=2.0, max_frames=None)
    assert len(frames) == 4 and fps == pytest.approx(2.0)
