"""cot-distill export: LLaMA-Factory sharegpt + dataset_info.json, HF parquet, media, card, errors."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import wave
from pathlib import Path

import pytest
from cot_distill.cli import app
from cot_distill.export import export, hf_features
from msa_core import SYSTEM_PROMPT, DataError, build_prompt, get_spec
from publish_helpers import TEACHER, accepted_row, make_generate_out, write_out, write_silent_video
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SFT_PYTHON = ROOT / ".venvs" / "sft" / "bin" / "python"
runner = CliRunner()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    out, clips = make_generate_out(root)
    return out, clips


@pytest.fixture(scope="module")
def exported(generated, tmp_path_factory):
    out, clips = generated
    to = tmp_path_factory.mktemp("export") / "ds"
    result = runner.invoke(app, ["export", str(out), "--to", str(to)])
    assert result.exit_code == 0, result.output
    return to, clips, result.output


def _lf(to: Path, name: str) -> list[dict]:
    return json.loads((to / name).read_text())


def test_llamafactory_records_have_the_student_prompt_and_relative_media(exported):
    to, clips, _ = exported
    info = json.loads((to / "dataset_info.json").read_text())
    by_id = {c.id: c for c in clips}
    splits = {c.mode for c in clips}
    assert set(info) == {"msa_cot" if s == "train" else f"msa_cot_{s}" for s in splits}
    seen = 0
    for key, entry in info.items():
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {
            "messages": "messages",
            "system": "system",
            "videos": "videos",
            "audios": "audios",
        }
        assert entry["tags"]["role_tag"] == "role" and entry["tags"]["user_tag"] == "user"
        for rec in _lf(to, entry["file_name"]):
            seen += 1
            assert set(rec) == {"id", "messages", "system", "videos", "audios"}
            clip = by_id[rec["id"]]
            assert (key == "msa_cot") == (clip.mode == "train")
            user, assistant = rec["messages"]
            prompt = build_prompt(clip.text, get_spec("sims"))
            assert user == {"role": "user", "content": "<video><audio>" + prompt.user}
            assert "teacher" not in user["content"].lower()
            assert (
                assistant["role"] == "assistant" and f"<score>{clip.label:g}</score>" in assistant["content"]
            )
            assert rec["system"] == SYSTEM_PROMPT
            assert rec["videos"] == [f"video/{clip.video_id}/{clip.clip_id}.mp4"]
            video = to / rec["videos"][0]
            assert not video.is_symlink() and video.read_bytes() == clip.video_path.read_bytes()
            (audio,) = rec["audios"]
            assert audio.startswith("audio/") and not Path(audio).is_absolute()
            with wave.open(str(to / audio)) as w:
                assert (w.getnchannels(), w.getframerate()) == (1, 16000) and w.getnframes() > 16000
    assert seen == len(clips) + 1  # the repeated sample of clip 0 is its own record


def test_wav_is_extracted_once_per_clip_and_reexport_reuses_it(generated, tmp_path):
    out, clips = generated
    to = tmp_path / "ds"
    export(out, to)
    wavs = sorted((to / "audio").glob("*.wav"))
    assert len(wavs) == len(clips)
    before = {p: p.stat().st_mtime_ns for p in wavs}
    # Re-export without the test split, in one format: wavs reused; the parquet copy, the test split's
    # dataset_info entry and file, and the dropped clips' media removed.
    rows = [json.loads(line) for line in (out / "accepted.jsonl").read_text().splitlines()]
    dropped = [r for r in rows if r["split"] == "test"]
    assert dropped
    write_out(tmp_path / "out2", [r for r in rows if r["split"] != "test"])
    export(tmp_path / "out2", to, formats=["llamafactory"])
    after = {p: p.stat().st_mtime_ns for p in sorted((to / "audio").glob("*.wav"))}
    assert len(after) == len(clips) - len({r["id"] for r in dropped})
    assert all(before[p] == t for p, t in after.items())
    assert not any((to / "video" / r["video_id"] / f"{r['clip_id']}.mp4").exists() for r in dropped)
    assert not list((to / "data").glob("*.parquet"))
    assert "msa_cot_test" not in json.loads((to / "dataset_info.json").read_text())
    assert not (to / "msa_cot_test.json").exists()
    assert json.loads((to / "export.json").read_text())["hf"] == {}


def test_hf_parquet_loads_with_datasets_and_keeps_the_schema(exported, generated):
    from datasets import ClassLabel, load_dataset

    to, clips, _ = exported
    files = {
        s: str(to / "data" / f"{s}.parquet")
        for s in ("train", "valid", "test")
        if (to / "data" / f"{s}.parquet").exists()
    }
    ds = load_dataset("parquet", data_files=files)
    assert sum(len(d) for d in ds.values()) == len(clips) + 1
    train = ds["train"]
    assert train.features == hf_features()
    assert isinstance(train.features["polarity"], ClassLabel)
    row = train[0]
    lf = {r["id"]: r for r in _lf(to, "msa_cot.json")}[row["id"]]
    assert (
        row["messages"] == lf["messages"] and row["videos"] == lf["videos"] and row["audios"] == lf["audios"]
    )
    assert train.features["polarity"].int2str(row["polarity"]) == get_spec("sims").polarity_of(row["label"])
    assert row["model"] == TEACHER and row["teacher_answer"].startswith("<polarity>")
    assert sorted(r["sample"] for r in ds[clips[0].mode] if r["id"] == clips[0].id) == [0, 1]


def test_card_names_teacher_prompt_yields_sizes_and_licence(exported):
    to, clips, output = exported
    card = (to / "README.md").read_text()
    assert TEACHER in card and "dc-v1" in card
    assert "rejected.format | 2" in card and "requests | 14" in card
    assert "research use only" in card  # sims spec's licence note
    assert "path: data/train.parquet" in card
    manifest = json.loads((to / "export.json").read_text())
    assert sum(s["records"] for s in manifest["splits"].values()) == len(clips) + 1
    assert f"over {len(clips)} clips" in output


def test_link_option_symlinks_videos(generated, tmp_path):
    out, clips = generated
    result = export(out, tmp_path / "linked", formats=["hf"], link=True)
    video = tmp_path / "linked" / "video" / clips[0].video_id / f"{clips[0].clip_id}.mp4"
    assert video.is_symlink() and video.resolve() == clips[0].video_path
    assert not (tmp_path / "linked" / "dataset_info.json").exists() and result.hf_files


def test_missing_accepted_file_is_a_clean_cli_error(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--to", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "accepted.jsonl not found" in result.output and "Traceback" not in result.output


def test_missing_mp4_names_the_line(generated, tmp_path):
    _, clips = generated
    rows = [accepted_row(c) for c in clips[:3]]
    rows[1]["video_path"] = str(tmp_path / "gone.mp4")
    out = write_out(tmp_path / "out", rows)
    with pytest.raises(DataError, match=r"accepted.jsonl, line 2, column 'video_path': missing mp4"):
        export(out, tmp_path / "x")


def test_clip_without_audio_is_refused(generated, tmp_path):
    _, clips = generated
    row = accepted_row(clips[0])
    row["video_path"] = str(write_silent_video(tmp_path / "silent.mp4"))
    out = write_out(tmp_path / "out", [row])
    result = runner.invoke(app, ["export", str(out), "--to", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert f"clip {clips[0].id}: no audio track" in result.output and "silent.mp4" in result.output


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("answer", "<polarity>positive</polarity>no think", "not a strict DC answer"),
        ("label", 0.95, "must carry the true polarity and the true score"),
        ("dataset", "nope", "unknown dataset"),
        ("split", "dev2", "split 'dev2'"),
    ],
)
def test_bad_rows_are_refused(generated, tmp_path, field, value, message):
    _, clips = generated
    row = accepted_row(next(c for c in clips if c.label < 0))
    row[field] = value
    with pytest.raises(DataError, match=message):
        export(write_out(tmp_path / "out", [row]), tmp_path / "x")


def test_refuses_a_non_empty_foreign_directory(generated, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="not empty"):
        export(generated[0], tmp_path / "x")


LF_CHECK = textwrap.dedent(
    """
    import json, os, re, sys
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from msa_core import Prompt, chat_messages
    from msa_rl.tiny import build_tiny_omni
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    model_dir, data_dir, out_dir, expected = sys.argv[1:5]
    build_tiny_omni(model_dir)
    model_args, data_args, training_args, _, _ = get_train_args(dict(
        stage="sft", do_train=True, model_name_or_path=model_dir, template="qwen2_omni", dataset="msa_cot",
        dataset_dir=data_dir, use_audio_in_video=True, video_maxlen=4, video_max_pixels=3136, cutoff_len=4096,
        output_dir=out_dir, overwrite_cache=True, report_to="none", use_cpu=True, bf16=False,
        preprocessing_num_workers=None, finetuning_type="full"))
    tok = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tok["tokenizer"], data_args)
    ds = get_dataset(template, model_args, data_args, training_args, stage="sft", **tok)["train_dataset"]
    tk = tok["tokenizer"]
    row = ds[0]
    ids, labels = row["input_ids"], row["labels"]
    lf_prompt = tk.decode([t for t, l in zip(ids, labels) if l == -100])
    # The same clip through the model's own chat template (what GRPO and predict render), audio in video.
    prompt = Prompt(**json.loads(expected))
    chat = tok["processor"].apply_chat_template(chat_messages(prompt, video="clip.mp4"),
                                                add_generation_prompt=True, tokenize=False)
    media = lambda s: re.sub(r"<\\|vision_bos\\|>.*?<\\|vision_eos\\|>", "<MEDIA>", s, flags=re.S)
    print("ROWS", len(ds))
    print("AUDIO", ids.count(tk.convert_tokens_to_ids("<|AUDIO|>")))
    print("VIDEO", ids.count(tk.convert_tokens_to_ids("<|VIDEO|>")))
    print("SAME_AS_CHAT_TEMPLATE", media(lf_prompt) == media(chat) and media(chat).count("<MEDIA>") == 1)
    print("TRAINED", json.dumps(tk.decode([t for t, l in zip(ids, labels) if l != -100])))
    """
)


@pytest.mark.slow
def test_llamafactory_loads_the_export_with_qwen2_omni(exported, tmp_path):
    """LLaMA-Factory (SFT env) reads the export: media, audio tokens, the student's exact prompt."""
    to, clips, _ = exported
    from msa_core.envs import ensure_sft_env

    # A fresh clone has no SFT environment yet: create it as `msa-rl sft` would (a no-op once it exists).
    ensure_sft_env(quiet=True)
    assert SFT_PYTHON.is_file(), "ensure_sft_env did not create the SFT environment"
    first = _lf(to, "msa_cot.json")[0]
    clip = next(c for c in clips if c.id == first["id"])
    prompt = build_prompt(clip.text, get_spec("sims"))
    expected = json.dumps({"system": prompt.system, "user": prompt.user})
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run(
        [str(SFT_PYTHON), "-c", LF_CHECK, str(tmp_path / "tiny"), str(to), str(tmp_path / "o"), expected],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.split(" ", 1)[0].isupper())
    assert int(lines["ROWS"]) == len(_lf(to, "msa_cot.json"))
    assert int(lines["AUDIO"]) > 0 and int(lines["VIDEO"]) > 0
    assert lines["SAME_AS_CHAT_TEMPLATE"] == "True"
    # Only the answer (and the turn's end) is trained.
    assert json.loads(lines["TRAINED"]).rstrip("\n") == first["messages"][1]["content"] + "<|im_end|>"
