"""msa_rl.grpo: training clips from an MMSA directory or a cot-distill export, and their media encoding."""

from __future__ import annotations

import json
from pathlib import Path

import grpo_helpers
import pytest
from grpo_helpers import recipe
from msa_core import DataError, DCOutput, build_prompt, get_spec, read_mmsa
from msa_rl.grpo import ClipEncoder, read_training_rows

# session fixtures shared by the GRPO test modules (built once, see grpo_helpers)
grpo_clips = grpo_helpers.grpo_clips


def accepted_answers(clips: Path, out: Path) -> Path:
    """A cot-distill generate directory with one accepted answer per clip (the true polarity and score)."""
    data = read_mmsa(clips, "sims")
    out.mkdir(parents=True)
    with (out / "accepted.jsonl").open("w") as fh:
        for c in data.clips:
            answer = DCOutput(
                polarity=data.spec.polarity_of(c.label), think="A warm voice.", score=c.label
            ).render()
            fh.write(
                json.dumps(
                    {
                        "video_id": c.video_id,
                        "clip_id": c.clip_id,
                        "dataset": "sims",
                        "split": c.mode,
                        "text": c.text,
                        "label": c.label,
                        "video_path": str(c.video_path),
                        "answer": answer,
                    }
                )
                + "\n"
            )
    return out


def test_mmsa_rows_carry_the_one_prompt(grpo_clips: Path, tmp_path: Path) -> None:
    rows = read_training_rows(recipe(tmp_path, grpo_clips, tmp_path))
    clips = read_mmsa(grpo_clips, "sims").clips
    assert len(rows) == len(clips) == 12
    row, clip = rows[0], clips[0]
    prompt = build_prompt(clip.text, get_spec("sims"))
    assert row["prompt"] == [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": prompt.user},
    ]
    assert (row["label"], row["dataset"], row["id"]) == (clip.label, "sims", clip.id)
    assert Path(row["video"]).is_file()
    assert len(read_training_rows(recipe(tmp_path, grpo_clips, tmp_path, limit=3))) == 3
    with pytest.raises(DataError, match="no test clips"):
        read_training_rows(recipe(tmp_path, grpo_clips, tmp_path, split="test"))


@pytest.mark.parametrize("formats", [("llamafactory",), ("llamafactory", "hf")])
def test_export_rows_equal_the_mmsa_rows(grpo_clips: Path, tmp_path: Path, formats) -> None:
    """An export (LLaMA-Factory only, as the demo writes it, or with the parquet copy) gives the same prompts,
    labels and datasets as reading the clips directly; videos point into the export."""
    from cot_distill.export import export

    export(accepted_answers(grpo_clips, tmp_path / "gen"), tmp_path / "export", formats=formats)
    from_export = read_training_rows(recipe(tmp_path, tmp_path / "export", tmp_path))
    from_mmsa = read_training_rows(recipe(tmp_path, grpo_clips, tmp_path))
    key = lambda r: r["id"]  # noqa: E731
    assert len(from_export) == len(from_mmsa)
    for a, b in zip(sorted(from_export, key=key), sorted(from_mmsa, key=key), strict=True):
        assert (a["id"], a["prompt"], a["dataset"]) == (b["id"], b["prompt"], b["dataset"])
        assert a["label"] == pytest.approx(b["label"], abs=1e-4)
        assert Path(a["video"]).is_file() and Path(a["video"]).is_relative_to((tmp_path / "export").resolve())


def test_bad_data_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_training_rows(recipe(tmp_path, tmp_path / "missing", tmp_path))
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "dataset_info.json").write_text(
        json.dumps({"a": {"file_name": "a.json"}, "b": {"file_name": "b.json"}})
    )
    with pytest.raises(DataError, match=r"which dataset_info\.json entry"):
        read_training_rows(recipe(tmp_path, tmp_path / "exp", tmp_path))


def test_clip_encoder_gives_audio_in_video_inputs_and_caches(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path
) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    encoder = ClipEncoder(processor, cache_size=1)
    rows = read_training_rows(recipe(tmp_path, grpo_clips, tmp_path))
    enc = encoder(rows[0])
    assert set(enc.mm) >= {
        "pixel_values_videos",
        "video_grid_thw",
        "video_second_per_grid",
        "input_features",
        "feature_attention_mask",
    }
    ids = enc.prompt_ids
    assert ids.count(processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")) > 0
    assert ids.count(processor.tokenizer.convert_tokens_to_ids("<|VIDEO|>")) > 0
    assert processor.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    assert encoder(rows[0]) is enc  # cached
    encoder(rows[1])
    assert encoder(rows[0]) is not enc  # evicted (cache_size=1), re-encoded


def test_prompt_length_preflight_refuses_or_drops_long_clips(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path, capsys
) -> None:
    """Before GRPO starts: the distribution is printed; clips over max_prompt_length stop the run (named, nothing
    written) or, with on_long_clip=drop, leave it (counted and named)."""
    from msa_omni.lengths import ClipPrompt, estimate_tokens, load_processor
    from msa_rl.grpo import check_prompt_lengths, run_grpo

    processor = load_processor(tiny_model_dir)
    base = recipe(tiny_model_dir, grpo_clips, tmp_path / "run")
    rows = read_training_rows(base)
    assert check_prompt_lengths(base, rows, processor=processor) == rows  # no limit by default
    assert f"{len(rows)} clips, tokens per example: min" in capsys.readouterr().out

    prompts = [
        ClipPrompt(r["id"], r["video"], build_prompt(c.text, get_spec("sims")))
        for r, c in zip(rows, read_mmsa(grpo_clips, "sims").clips, strict=True)
    ]
    totals = {c.clip_id: c.total for c in estimate_tokens(processor, prompts, base.media)}
    limit = min(totals.values())
    longer = sorted(i for i, t in totals.items() if t > limit)
    assert 0 < len(longer) < len(rows)  # the transcripts differ in length

    with pytest.raises(DataError) as err:
        run_grpo(recipe(tiny_model_dir, grpo_clips, tmp_path / "run", max_prompt_length=limit))
    assert f"{len(longer)} of {len(rows)} clips need more than max_prompt_length={limit}" in str(err.value)
    longest = max(totals, key=totals.get)
    assert f"{longest} ({totals[longest]})" in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written

    dropping = recipe(tiny_model_dir, grpo_clips, tmp_path, max_prompt_length=limit, on_long_clip="drop")
    kept = check_prompt_lengths(dropping, rows, processor=processor)
    assert sorted(r["id"] for r in kept) == sorted(i for i in totals if i not in longer)
    out = capsys.readouterr().out
    assert f"dropped {len(longer)} of {len(rows)} clips over max_prompt_length={limit}" in out
    assert all(i in out for i in longer)
