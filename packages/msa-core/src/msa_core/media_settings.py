"""How a clip becomes model input: one model shared by the SFT and GRPO recipes and by prediction.

Training writes it next to every checkpoint (``artifacts.MEDIA_SETTINGS``); ``msa-eval predict`` reads it back,
so a model is evaluated on frames sampled exactly as it was trained on (a model trained on 128 frames of 256x256
that is shown 16 frames of 56x56 answers a different question).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from msa_core.errors import ConfigError

# The Qwen2-VL processors' smallest frame (one 28x28 merged patch); smaller frames are upscaled to it.
MIN_FRAME_PIXELS = 28 * 28


class MediaSettings(BaseModel):
    """Frame sampling and size, and whether the clip's audio is interleaved into its video turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fps: float = Field(2.0, gt=0, description="Frames per second sampled from each clip (before thinning).")
    max_frames: int = Field(
        16, ge=2, description="At most this many frames per clip; longer clips are thinned evenly."
    )
    video_size: tuple[int, int] = Field(
        (56, 56), description="Frame pixel budget as (width, height): frames are downscaled to width*height."
    )
    min_pixels: int = Field(
        MIN_FRAME_PIXELS, ge=1, description="Frames smaller than this many pixels are upscaled."
    )
    audio_in_video: bool = Field(
        True, description="Interleave each clip's audio track with its video frames (TMRoPE)."
    )

    @model_validator(mode="after")
    def _check(self) -> MediaSettings:
        if self.max_frames % 2:
            raise ValueError("max_frames must be even (the temporal patch is 2 frames)")
        if min(self.video_size) < 1:
            raise ValueError("video_size must be two positive integers (width, height)")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) exceeds video_size's {self.max_pixels} pixels")
        return self

    @property
    def max_pixels(self) -> int:
        return self.video_size[0] * self.video_size[1]

    def write(self, directory: str | Path) -> Path:
        """Record the settings next to a checkpoint (``directory/media.json``)."""
        from msa_core.artifacts import MEDIA_SETTINGS

        path = Path(directory) / MEDIA_SETTINGS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> MediaSettings | None:
        """The settings a checkpoint was trained with, or None if it has none (a hub model, an old run)."""
        from msa_core.artifacts import MEDIA_SETTINGS

        path = Path(directory) / MEDIA_SETTINGS
        if not path.is_file():
            return None
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(f"{path}: unreadable media settings: {exc}") from None
