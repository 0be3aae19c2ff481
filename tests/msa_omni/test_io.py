"""msa_omni.io: the audio-in-video switch is the effective one, media reach the model, the prompt renders right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from msa_core import (
    ConfigError,
    DCOutput,
    MediaError,
    MediaSettings,
    build_prompt,
    chat_messages,
    get_spec,
    read_mmsa,
)
from msa_omni import io as omni


@pytest.fixture(scope="module")
def thinker(tiny_model_dir: Path):
    return omni.load_thinker(tiny_model_dir)


@pytest.fixture(scope="module")
def clip(synthetic_sims_dir: Path):
    return read_mmsa(synthetic_sims_dir, "sims").clips[0]


@pytest.fixture(scope="module")
def media(clip) -> omni.ClipMedia:
    return omni.clip_media(clip.video_path, MediaSettings())


def _prompt(clip):
    return build_prompt(clip.text, get_spec("sims"))


def test_clip_media_decodes_frames_and_audio(media: omni.ClipMedia) -> None:
    assert media.frames.dtype.name == "uint8" and media.frames.shape[1:] == (64, 64, 3)
    assert len(media.frames) == 4 and len(media.frames) % 2 == 0  # 2 s at 2 fps; temporal patch of 2
    assert media.audio is not None and media.audio.dtype.name == "float32"
    assert abs(len(media.audio) - 32000) < 1600 and float(abs(media.audio).max()) > 0.01


def test_encode_prompt_has_audio_and_video_tokens(thinker, clip, media: omni.ClipMedia) -> None:
    _, processor = thinker
    batch = omni.encode_prompt(processor, _prompt(clip), media)
    # ~2 s of audio (AAC adds a few ms) -> ~50 audio tokens (25 per second);
    # 4 frames of 56x56 -> 2 temporal grids x 2x2 merged patches = 8 video tokens
    assert 48 <= omni.count_tokens(processor, batch, "audio") <= 52
    assert omni.count_tokens(processor, batch, "video") == 8  # size passed per call: no upscale to 336x336
    assert batch["video_grid_thw"].tolist() == [[2, 4, 4]]
    assert batch["video_second_per_grid"].tolist() == [pytest.approx(1.0)]  # temporal patch 2 / fps 2
    text = processor.tokenizer.decode(batch["input_ids"][0])
    # Audio interleaved inside the video turn (TMRoPE): one bracketed block, no separate audio turn.
    assert "<|vision_bos|><|audio_bos|>" in text and "<|audio_eos|><|vision_eos|>" in text
    assert text.count("<|audio_bos|>") == 1
    assert text.endswith("<|im_start|>assistant\n")


def test_wrong_audio_switch_gives_zero_audio_tokens(thinker, clip, media, monkeypatch) -> None:
    """The failure mode the switch guards against is real (0 audio tokens, no error), and encode_prompt refuses it."""
    _, processor = thinker
    text = omni.render_prompt(processor, _prompt(clip), with_video=True)
    ours = processor(
        text=[text],
        videos=[media.frames],
        audio=[media.audio],
        return_tensors="pt",
        **omni.audio_in_video_kwargs(MediaSettings(), fps=media.fps),
    )
    wrong_form = (
        {"use_audio_in_video": True}
        if omni._processor_takes_audio_indices()
        else {"load_audio_from_video": True}
    )
    wrong = processor(
        text=[text],
        videos=[media.frames],
        audio=[media.audio],
        return_tensors="pt",
        **wrong_form,
        videos_kwargs={"size": {"shortest_edge": 784, "longest_edge": 3136}},
    )
    assert omni.count_tokens(processor, ours, "audio") > 0
    assert omni.count_tokens(processor, wrong, "audio") == 0
    monkeypatch.setattr(omni, "audio_in_video_kwargs", lambda *a, **k: {"videos_kwargs": {}})
    with pytest.raises(MediaError, match="no audio tokens"):
        omni.encode_prompt(processor, _prompt(clip), media)


def test_forward_backward_generate_use_the_media(thinker, clip, media: omni.ClipMedia) -> None:
    model, processor = thinker
    answer = DCOutput(polarity="positive", think="The voice sounds cheerful.", score=0.5).render()
    batch = omni.encode_example(processor, _prompt(clip), media, answer)
    labels = batch["labels"][0]
    target = processor.tokenizer.decode(labels[labels != -100])
    assert target == answer + "<|im_end|>\n"
    model.zero_grad()
    out = model(**omni.model_forward_kwargs(batch))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    # Gradients reach both encoders: video and audio features are in the loss path.
    assert model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.audio_tower.conv1.weight.grad.abs().sum() > 0
    # Without use_audio_in_video the TMRoPE positions differ, so the loss does too (the kwarg is effective).
    with torch.no_grad():
        plain = model(
            **{k: v for k, v in omni.model_forward_kwargs(batch).items() if k != "use_audio_in_video"}
        )
    assert abs(plain.loss.item() - out.loss.detach().item()) > 1e-6

    prompt_batch = omni.encode_prompt(processor, _prompt(clip), media)
    with torch.no_grad():
        generated = model.generate(
            **omni.model_forward_kwargs(prompt_batch), max_new_tokens=6, min_new_tokens=6, do_sample=False
        )
    assert generated.shape[1] == prompt_batch["input_ids"].shape[1] + 6


def test_assistant_prefix_and_text_only(thinker, clip, media) -> None:
    _, processor = thinker
    prefix = "<polarity>positive</polarity>"
    hinted = omni.encode_prompt(processor, _prompt(clip), media, assistant_prefix=prefix)
    plain = omni.encode_prompt(processor, _prompt(clip), media)
    n = plain["input_ids"].shape[1]
    assert torch.equal(hinted["input_ids"][0, :n], plain["input_ids"][0])
    assert processor.tokenizer.decode(hinted["input_ids"][0, n:]) == prefix
    text_only = omni.encode_prompt(processor, _prompt(clip), None)
    assert "pixel_values_videos" not in text_only
    assert "use_audio_in_video" not in omni.model_forward_kwargs(text_only)


def test_drop_none_keys_keeps_the_template_from_inventing_media(thinker, clip) -> None:
    _, processor = thinker
    messages = chat_messages(_prompt(clip))
    messages[1]["content"][0].update({"video": None, "audio": None})  # what `datasets` does to missing keys
    bad = processor.apply_chat_template(messages, tokenize=False)
    good = processor.apply_chat_template(omni.drop_none_keys(messages), tokenize=False)
    # The text part turned into a media placeholder and the transcript vanished; cleaned, it renders as text.
    assert "<|AUDIO|>" in bad and _prompt(clip).user not in bad
    assert "<|AUDIO|>" not in good and "<|VIDEO|>" not in good and _prompt(clip).user in good


def test_check_thinker_dir_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert omni.check_thinker_dir(tiny_model_dir)["model_type"] == "qwen2_5_omni_thinker"
    # A Hub id that is not in the cache fails at once offline (the tests run with HF_HUB_OFFLINE=1), naming it.
    with pytest.raises(ConfigError, match=r"'Qwen/Qwen2.5-Omni-7B' is not in the local .*HF_HUB_OFFLINE"):
        omni.check_thinker_dir("Qwen/Qwen2.5-Omni-7B")
    with pytest.raises(ConfigError, match="does not exist"):
        omni.check_thinker_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        omni.check_thinker_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match=r"not a Qwen2\.5-Omni thinker"):
        omni.check_thinker_dir(tmp_path)
    with pytest.raises(ConfigError, match="not a torch dtype"):
        omni.load_thinker(tiny_model_dir, dtype="float33")


def test_load_thinker_from_a_full_omni_checkpoint(tmp_path: Path, thinker, tiny_model_dir: Path) -> None:
    """The base model (zero-shot rows) is a full Qwen2.5-Omni checkpoint: load its thinker, not the talker."""
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    model, processor = thinker
    full = Qwen2_5OmniForConditionalGeneration(
        Qwen2_5OmniConfig(thinker_config=model.config.to_dict(), enable_audio_output=False)
    )
    full.thinker.load_state_dict(model.state_dict())
    full.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    torch.save({}, tmp_path / "spk_dict.pt")  # real checkpoints ship the talker's speakers; loading reads it
    loaded, _ = omni.load_thinker(tmp_path)
    assert type(loaded).__name__ == omni.THINKER_ARCHITECTURE and not hasattr(loaded, "talker")
    reference = model.state_dict()
    assert all(torch.equal(value, reference[name]) for name, value in loaded.state_dict().items())


def test_thinned_clip_gives_the_processor_its_effective_fps(thinker, clip) -> None:
    """A clip longer than max_frames / fps is thinned; TMRoPE must place its frames at their real times."""
    _, processor = thinker
    settings = MediaSettings(fps=2.0, max_frames=2)
    media = omni.clip_media(clip.video_path, settings)
    # A 2 s clip at 2 fps gives 4 frames; thinned to 2, spread over the clip: 2 frames / 2 s = 1 fps.
    assert len(media.frames) == 2
    assert media.fps == pytest.approx(1.0)
    batch = omni.encode_prompt(processor, _prompt(clip), media, settings=settings)
    # One temporal grid of 2 frames spans 2 s at the effective rate (1 s had the asked-for 2 fps been passed on),
    # so the video grid covers the same 2 s as the audio's 50 positions.
    assert batch["video_second_per_grid"].tolist() == [pytest.approx(2.0)]
    assert omni.count_tokens(processor, batch, "audio") > 0
    full = omni.clip_media(clip.video_path, MediaSettings(fps=2.0, max_frames=16))
    assert len(full.frames) == 4 and full.fps == pytest.approx(2.0)
