"""`msa-thinker analyze` on the tiny thinker: a real folder's clips, the three transcript sources, resume, errors.

The tiny model is random, so its answers do not parse; what is checked here is what reaches the model and what the
records say. The DC answer of a trained model is checked in tests/e2e (the demo's model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clip_helpers import analyst_model, write_clip
from msa_core import build_prompt, get_spec
from typer.testing import CliRunner

from msa_thinker import analyze as analyze_mod
from msa_thinker.cli import app

runner = CliRunner()
FAST = ["--max-new-tokens", "6"]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return analyst_model(tiny_model_dir, tmp_path_factory.mktemp("analyst") / "model")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list, list]]:
    """Every (prompts, media) pair the real generator is asked for."""
    import msa_eval.predict

    calls: list[tuple[list, list]] = []
    real = msa_eval.predict.make_generator

    def make(settings, run_dir):
        generator = real(settings, run_dir)
        inner = generator.generate

        def generate(prompts, media):
            calls.append((list(prompts), list(media)))
            return inner(prompts, media)

        generator.generate = generate
        return generator

    monkeypatch.setattr(msa_eval.predict, "make_generator", make)
    return calls


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_folder_with_good_silent_long_and_broken_clips(
    model: Path, synthetic_sims_dir: Path, tmp_path: Path, recorded
) -> None:
    folder = _mkdir(tmp_path / "vlogs")
    for i, clip in enumerate(sorted((synthetic_sims_dir / "Raw").glob("*/*.mp4"))[:2]):
        shutil.copy(clip, folder / f"good{i}.mp4")
    write_clip(folder / "silent.mkv", 2.0, audio=False)
    write_clip(
        folder / "sub" / "long.mov", 35.0, fps=2
    )  # 70 frames at 2 fps > 16; 35 s of audio > the 30 s cap
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (folder / "empty.webm").write_bytes(b"")
    (folder / "notes.md").write_text("not a video")
    out = tmp_path / "out"

    result = runner.invoke(
        app, ["analyze", str(folder), "--model", str(model), "--json", "--out", str(out), *FAST]
    )
    assert result.exit_code == 0, result.output
    records = {Path(r["video"]).name: r for r in _lines(result.stdout)}
    assert set(records) == {"good0.mp4", "good1.mp4", "silent.mkv", "long.mov"}
    for rec in records.values():
        assert rec["raw_output"] and isinstance(rec["parse_failed"], bool)
        assert rec["parse_failed"] == (rec["parse_status"] == "failed")
        assert {"polarity", "think", "score", "parse_reason", "transcript_source"} <= set(rec)
        assert rec["media"]["fps"] == 2.0 and rec["media"]["max_frames"] == 16
    silent, long = records["silent.mkv"], records["long.mov"]
    assert (silent["clip"]["has_audio"], silent["media"]["audio_in_video"]) == (False, False)
    assert "no audio track" in silent["clip"]["note"]
    assert records["good0.mp4"]["media"]["audio_in_video"] is True
    assert long["clip"]["long"] and long["clip"]["frames"] == 16 and long["clip"]["audio_heard_s"] == 30.0
    assert "16 frames" in long["clip"]["note"] and "first 30.0 s" in long["clip"]["note"]
    # What reached the model: the long clip thinned to 16 frames; the silent clip without audio, in its own call.
    shapes = {len(m.frames): m.audio is None for _, media in recorded for m in media}
    assert shapes[16] is False
    assert any(all(m.audio is None for m in media) and len(media) == 1 for _, media in recorded)
    # Broken files named, skipped and counted.
    for name in ("broken.mp4", "empty.webm"):
        assert f"skipped {folder / name}" in result.stderr.replace("\n", "")
    assert "4 clip(s) analysed" in result.stderr and "2 skipped: unreadable 2" in result.stderr
    assert len((out / "analysis.jsonl").read_text().splitlines()) == 4

    # Resumable: a rerun analyses nothing and loads no model; a new clip is the only one done.
    recorded.clear()
    write_clip(folder / "new.mp4", 2.0)
    again = runner.invoke(
        app, ["analyze", str(folder), "--model", str(model), "--json", "--out", str(out), *FAST]
    )
    assert again.exit_code == 0, again.output
    assert [Path(r["video"]).name for r in _lines(again.stdout)] == ["new.mp4"]
    assert "1 clip(s) analysed, 4 already in" in again.stderr
    assert len(recorded) == 1 and len(recorded[0][0]) == 1
    # Other settings into the same folder are refused, and the records are kept.
    other = runner.invoke(
        app, ["analyze", str(folder), "--model", str(model), "--scale", "mosi", "--out", str(out)]
    )
    assert other.exit_code == 2 and "other settings" in other.stderr and "scale" in other.stderr
    assert len((out / "analysis.jsonl").read_text().splitlines()) == 5


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_transcripts_come_from_the_option_a_sidecar_or_the_model(
    model: Path, synthetic_sims_dir: Path, tmp_path: Path, recorded
) -> None:
    src = sorted((synthetic_sims_dir / "Raw").glob("*/*.mp4"))[0]
    for name in ("typed", "txt", "srt", "heard", "nothing"):
        shutil.copy(src, _mkdir(tmp_path / name) / "clip.mp4")
    (tmp_path / "txt" / "clip.txt").write_text("I really  love\nthis concert.\n")
    (tmp_path / "srt" / "clip.srt").write_text(
        "1\n00:00:00,000 --> 00:00:01,200\n<i>What a</i> day,\n\n2\n00:00:01,200 --> 00:00:02,000\n{\\an8}truly awful.\n"
    )
    sims = get_spec("sims")

    typed = runner.invoke(
        app,
        [
            "analyze",
            str(tmp_path / "typed/clip.mp4"),
            "--model",
            str(model),
            "--json",
            "--transcript",
            "so  so",
            *FAST,
        ],
    )
    assert typed.exit_code == 0, typed.output
    rec = _lines(typed.stdout)[0]
    assert (rec["transcript"], rec["transcript_source"]) == ("so so", "option")
    assert recorded[-1][0] == [build_prompt("so so", sims)]

    both = runner.invoke(
        app,
        [
            "analyze",
            str(tmp_path / "txt"),
            str(tmp_path / "srt/clip.mp4"),
            "--model",
            str(model),
            "--json",
            *FAST,
        ],
    )
    assert both.exit_code == 0, both.output
    by_dir = {Path(r["video"]).parent.name: r for r in _lines(both.stdout)}
    assert by_dir["txt"]["transcript"] == "I really love this concert."
    assert by_dir["srt"]["transcript"] == "What a day, truly awful."
    assert {r["transcript_source"] for r in by_dir.values()} == {"sidecar"}
    assert by_dir["srt"]["transcript_detail"].endswith("clip.srt")
    assert recorded[-1][0] == [
        build_prompt("I really love this concert.", sims),
        build_prompt("What a day, truly awful.", sims),
    ]

    recorded.clear()
    heard = runner.invoke(
        app, ["analyze", str(tmp_path / "heard"), "--model", str(model), "--json", "--transcribe", *FAST]
    )
    assert heard.exit_code == 0, heard.output
    rec = _lines(heard.stdout)[0]
    assert rec["transcript_source"] == "transcribed"
    # The Omni model itself was asked to transcribe the clip (same frames and audio), then analysed that text.
    (ask, ask_media), (analyse, analyse_media) = recorded
    assert ask == [analyze_mod.TRANSCRIBE_PROMPT] and ask_media[0].audio is not None
    assert ask_media[0] is analyse_media[0]
    assert analyse == [build_prompt(rec["transcript"], sims)]

    none = runner.invoke(app, ["analyze", str(tmp_path / "nothing"), "--model", str(model), *FAST])
    assert none.exit_code == 0, none.output
    assert "transcript (none): ''" in none.stdout and "no DC answer could be parsed" in none.stdout


def test_flatten_srt_keeps_only_the_words() -> None:
    srt = "\ufeff1\r\n00:00:01.5 --> 00:00:02.0\r\n\r\n12\n01:02:03,004 --> 01:02:04,000\n<b>Hi</b>  there\n2 cats\n"
    assert analyze_mod.flatten_srt(srt) == "Hi there 2 cats"


def test_usage_errors_name_what_is_wrong(
    model: Path, synthetic_sims_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    clip = sorted((synthetic_sims_dir / "Raw").glob("*/*.mp4"))[0]
    no_media = tmp_path / "no-media"
    shutil.copytree(model, no_media)
    (no_media / "media.json").unlink()
    cases = [
        (["analyze", str(clip), "--model", str(no_media)], "media.json is missing"),
        (["analyze", str(tmp_path / "nope.mp4"), "--model", str(model)], "no such file or folder"),
        (["analyze", str(tmp_path / "*.mov"), "--model", str(model)], "matches no video file"),
        (["analyze", str(synthetic_sims_dir / "label.csv"), "--model", str(model)], "not a video file"),
        (["analyze", str(clip), str(clip.parent), "--model", str(model), "--transcript", "hi"], "one clip"),
        (["analyze", str(clip), "--model", str(model), "--scale", "nope"], "nope"),
        (["analyze", str(clip), "--model", str(model), "--backend", "tpu"], "--backend"),
        (["analyze", str(clip), "--model", str(tmp_path / "missing-model")], "no such folder"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    monkeypatch.chdir(tmp_path)  # no runs/demo here
    result = runner.invoke(app, ["analyze", str(clip)])
    assert result.exit_code == 2 and "msa-thinker demo" in result.stderr
    (tmp_path / "file").write_text("x")
    result = runner.invoke(
        app, ["analyze", str(clip), "--model", str(model), "--out", str(tmp_path / "file")]
    )
    assert result.exit_code == 2 and "--out is a file" in result.stderr  # an output path: a usage error


@pytest.mark.slow
def test_the_demo_model_gives_dc_answers_with_the_readme_line(demo_run, tmp_path: Path, monkeypatch) -> None:
    """After `msa-thinker demo`, `msa-thinker analyze CLIP` (no --model: the demo's model) prints a DC answer."""
    from msa_core import POLARITIES, read_mmsa

    clips = read_mmsa(demo_run.out / "data" / "sims", "sims", split="test").clips[:3]
    names = {}
    for clip in clips:
        name = f"{clip.video_id}-{clip.clip_id}"
        names[name] = clip
        shutil.copy(clip.video_path, tmp_path / f"{name}.mp4")
        (tmp_path / f"{name}.txt").write_text(clip.text)
    monkeypatch.chdir(demo_run.cwd)  # where `runs/demo` is, as after the README's `uv run msa-thinker demo`
    run = runner.invoke(app, ["analyze", str(tmp_path), "--json"])
    assert run.exit_code == 0, run.output
    records = {Path(r["video"]).stem: r for r in _lines(run.stdout)}
    assert {k: r["transcript"] for k, r in records.items()} == {k: c.text for k, c in names.items()}
    assert {r["model"] for r in records.values()} == {str(demo_run.model.resolve())}
    parsed = [r for r in records.values() if r["parse_status"] == "ok"]
    assert parsed, [r["raw_output"] for r in records.values()]
    for rec in parsed:
        assert rec["polarity"] in POLARITIES and rec["think"] and -1.0 <= rec["score"] <= 1.0
    first = parsed[0]
    text = runner.invoke(app, ["analyze", first["video"]])
    assert text.exit_code == 0, text.output
    assert f"polarity:  {first['polarity']}" in text.stdout and f"reasoning: {first['think']}" in text.stdout
    assert f"score:     {first['score']:g} on the sims scale (-1 to 1)" in text.stdout
