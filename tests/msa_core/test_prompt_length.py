"""msa_core.prompt_length: the token arithmetic, the distribution line, refusing and dropping long clips."""

from __future__ import annotations

import pytest
from msa_core import DataError, MediaSettings
from msa_core.prompt_length import (
    ClipTokens,
    audio_tokens,
    distribution,
    over_limit,
    resized_frame,
    video_tokens,
)


def test_frames_are_resized_into_the_pixel_bounds_in_28_px_steps() -> None:
    small = MediaSettings()  # 56x56 budget, 784 px floor
    assert resized_frame(64, 64, small) == (56, 56)
    assert resized_frame(20, 20, small) == (28, 28)  # upscaled to one merged patch
    big = MediaSettings(video_size=(256, 256), min_pixels=256)
    assert resized_frame(640, 360, big) == (336, 168)  # 336*168 <= 65536, aspect kept
    # 5 frames pad to 6 (temporal patch 2): 3 x (56/28) x (56/28)
    assert video_tokens(5, 64, 64, small) == 3 * 2 * 2


def test_audio_is_25_tokens_a_second_up_to_the_processors_cap() -> None:
    assert audio_tokens(16000) == 25  # 100 mel frames -> 50 -> 25
    # 102 mel frames -> 51 -> 25; one more sample starts mel frame 103 -> 52 -> 26
    assert audio_tokens(102 * 160) == 25 and audio_tokens(102 * 160 + 1) == 26
    assert audio_tokens(60 * 16000, max_samples=30 * 16000) == 750
    assert audio_tokens(0) == 0


def _clips(*totals: int) -> list[ClipTokens]:
    return [ClipTokens(f"clip{t}", video=t - 10, audio=0, text=10) for t in totals]


def test_distribution_line() -> None:
    line = distribution(_clips(100, 300, 200, 400))
    assert "4 clips" in line and "min 100" in line and "median 200" in line and "max 400" in line


def test_long_clips_are_refused_by_name_longest_first() -> None:
    counts = _clips(100, 900, 300, 700)
    assert over_limit(counts, None, "error", field="cutoff_len") == []
    assert over_limit(counts, 900, "error", field="cutoff_len") == []
    with pytest.raises(DataError) as err:
        over_limit(counts, 250, "error", field="cutoff_len")
    message = str(err.value)
    assert "3 of 4 clips need more than cutoff_len=250" in message
    assert message.index("clip900 (900)") < message.index("clip700 (700)") < message.index("clip300")
    assert "clip100" not in message and "on_long_clip=drop" in message


def test_drop_returns_the_long_clips_unless_nothing_would_be_left() -> None:
    counts = _clips(100, 900, 300)
    dropped = over_limit(counts, 250, "drop", field="max_prompt_length")
    assert sorted(c.clip_id for c in dropped) == ["clip300", "clip900"]
    with pytest.raises(DataError, match="3 of 3 clips need more than max_prompt_length=50"):
        over_limit(counts, 50, "drop", field="max_prompt_length")
