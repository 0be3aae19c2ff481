"""`msa-eval predict` on the tiny thinker: output schema, resume, torn lines, batching, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msa_core import ConfigError, DCOutput, MediaSettings, artifacts, get_spec, read_mmsa
from msa_eval import predict as P
from msa_eval.cli import app
from typer.testing import CliRunner

KEYS = {
    "id",
    "dataset",
    "split",
    "label",
    "text",
    "raw_output",
    "polarity",
    "score",
    "parse_status",
    "parse_reason",
}
FAST = {"batch_size": 2, "max_new_tokens": 6}


# Fixtures live here, not in conftest.py (shared with the metrics/report tests), built once per module.
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from a second thread, and on a busy 2-core machine spinning OpenMP threads
    make generation ~100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-Omni thinker + processor (seed 0); treat it as read-only."""
    from msa_rl.tiny import build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("tiny-omni"), seed=0)


@pytest.fixture(scope="module")
def eval_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic MMSA datasets whose clips are all in the test split: sims (5 clips) and mosi (3 clips)."""
    from msa_core.synthetic import make_dataset

    root = tmp_path_factory.mktemp("eval-data")
    return {
        "sims": make_dataset(root / "sims", "sims", n=5, seed=1, splits=(0, 0, 1)),
        "mosi": make_dataset(root / "mosi", "mosi", n=3, seed=2, splits=(0, 0, 1)),
    }


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class CountingGenerate:
    """Wraps the HF generator to record, per generate() call, the clips whose answers it produced."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from msa_omni import HFGenerator

        self.clips: list[str] = []
        self.batches: list[list[str]] = []
        real_generate, real_record = HFGenerator.generate, P.make_record

        def generate(gen, prompts, media):
            self.batches.append([])
            return real_generate(gen, prompts, media)

        def make_record(clip, spec, split, raw):
            self.clips.append(clip.id)
            if spec.name not in self.batches[-1]:
                self.batches[-1] = sorted([*self.batches[-1], spec.name])
            return real_record(clip, spec, split, raw)

        monkeypatch.setattr(HFGenerator, "generate", generate)
        monkeypatch.setattr(P, "make_record", make_record)


def test_predict_cli_writes_schema_then_resume_generates_nothing(
    tiny_model_dir, eval_sets, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    args = [
        "predict",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(run),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "6",
    ]
    for name, root in eval_sets.items():
        args += ["--data", str(root), "--dataset", name]
    counter = CountingGenerate(monkeypatch)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    for name, root in eval_sets.items():
        expected = {c.id: c.label for c in read_mmsa(root, name, split="test")}
        recs = _lines(run / f"{name}.jsonl")
        assert {r["id"]: r["label"] for r in recs} == expected
        for r in recs:
            assert set(r) == KEYS
            assert r["dataset"] == name and r["split"] == "test"
            assert isinstance(r["raw_output"], str)
            assert r["parse_status"] in ("ok", "recovered", "failed")
            assert (r["score"] is None) == (r["parse_status"] == "failed")
            # The stored parse is exactly what msa-core's lenient parser says about the raw text.
            parsed = DCOutput.parse_lenient(r["raw_output"], get_spec(name))
            assert (r["score"], r["parse_status"], r["parse_reason"]) == (
                parsed.score,
                parsed.status,
                parsed.reason,
            )
    assert sorted(counter.clips) == sorted(
        c.id for name, root in eval_sets.items() for c in read_mmsa(root, name, split="test")
    )
    # 5 sims + 3 mosi clips in batches of 2: the third batch holds the last sims clip and the first mosi one.
    assert len(counter.batches) == 4 and counter.batches[2] == ["mosi", "sims"]
    config = json.loads((run / artifacts.PREDICT_CONFIG).read_text())
    assert set(config["datasets"]) == set(eval_sets)

    before = {name: (run / f"{name}.jsonl").read_bytes() for name in eval_sets}
    counter.clips.clear()
    # A finished run must not even load the model.
    monkeypatch.setattr(P, "make_generator", lambda *a, **k: pytest.fail("model loaded on a finished run"))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert counter.clips == []
    assert {name: (run / f"{name}.jsonl").read_bytes() for name in eval_sets} == before
    assert "0 predicted, 5 already done" in again.output


def test_resume_after_kill_redoes_only_missing_and_drops_torn_line(
    tiny_model_dir, eval_sets, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    pairs = [(eval_sets["sims"], "sims")]
    P.predict(tiny_model_dir, pairs, run, **FAST)
    path = run / "sims.jsonl"
    full = _lines(path)
    # Simulate a kill: two finished lines lost and half of the next one written.
    kept = path.read_text().splitlines(keepends=True)[:-2]
    path.write_text("".join(kept) + '{"id": "video_0002$_$0001", "lab')

    counter = CountingGenerate(monkeypatch)
    [summary] = P.predict(tiny_model_dir, pairs, run, **FAST)
    assert sorted(counter.clips) == sorted(r["id"] for r in full[-2:])
    assert (summary.skipped, summary.generated) == (len(full) - 2, 2)
    resumed = _lines(path)  # every line parses: the torn fragment is gone
    assert sorted(r["id"] for r in resumed) == sorted(r["id"] for r in full)
    # Greedy decoding: the redone clips get the same answers as the first time.
    assert {r["id"]: r["raw_output"] for r in resumed} == {r["id"]: r["raw_output"] for r in full}


def test_left_padded_batches_match_single_clip_generation(tiny_model_dir, eval_sets, tmp_path):
    pairs = [(eval_sets["sims"], "sims")]
    P.predict(tiny_model_dir, pairs, tmp_path / "b1", batch_size=1, max_new_tokens=12)
    P.predict(tiny_model_dir, pairs, tmp_path / "b5", batch_size=5, max_new_tokens=12)
    one = {r["id"]: r["raw_output"] for r in _lines(tmp_path / "b1" / "sims.jsonl")}
    five = {r["id"]: r["raw_output"] for r in _lines(tmp_path / "b5" / "sims.jsonl")}
    assert one == five
    assert any(one.values())  # something was generated


def test_resume_with_other_settings_is_refused(tiny_model_dir, eval_sets, tmp_path):
    pairs = [(eval_sets["mosi"], "mosi")]
    P.predict(tiny_model_dir, pairs, tmp_path, limit=1, **FAST)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        P.predict(tiny_model_dir, pairs, tmp_path, limit=1, batch_size=2, max_new_tokens=7)
    # --overwrite starts the dataset afresh with the new settings.
    [summary] = P.predict(
        tiny_model_dir, pairs, tmp_path, limit=1, batch_size=2, max_new_tokens=7, overwrite=True
    )
    assert (summary.generated, summary.skipped) == (1, 0)


def test_read_finished_tolerates_a_torn_last_line(tmp_path):
    path = tmp_path / "sims.jsonl"
    path.write_text(
        '{"id": "a", "label": 0.2, "score": 0.1}\n\n{"id": "b", "label": -0.4, "score": null}\n{"id": "c"'
    )
    done = P.read_finished(path)
    assert sorted(done) == ["a", "b"]
    assert path.read_text().endswith('"score": null}\n')  # fragment cut so appends stay line-aligned


def test_read_finished_names_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "sims.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(P.DataError, match="line 2"):
        P.read_finished(path)


def test_make_record_parses_with_the_dataset_scale(eval_sets):
    clip = read_mmsa(eval_sets["mosi"], "mosi", split="test").clips[0]
    rec = P.make_record(
        clip,
        get_spec("mosi"),
        "test",
        "<polarity>positive</polarity><think>warm voice</think><score>2.5</score>",
    )
    assert (rec["polarity"], rec["score"], rec["parse_status"]) == ("positive", 2.5, "ok")
    assert rec["id"] == clip.id and rec["label"] == clip.label
    cut = P.make_record(clip, get_spec("sims"), "test", "<polarity>negative</polarity><think>flat")
    assert (cut["score"], cut["parse_status"]) == (None, "failed")


def test_cli_rejects_unpaired_data_and_dataset(tiny_model_dir, eval_sets, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path),
            "--data",
            str(eval_sets["sims"]),
            "--dataset",
            "sims",
            "--dataset",
            "mosi",
        ],
    )
    assert result.exit_code == 2
    assert "one --dataset per --data" in result.output


def test_cli_reports_missing_data_cleanly(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "r"),
            "--data",
            str(tmp_path / "nowhere"),
            "--dataset",
            "sims",
        ],
    )
    assert result.exit_code == 1
    assert "label.csv not found" in result.output
    assert "Traceback" not in result.output


def test_vllm_backend_without_vllm_says_how_to_install(tiny_model_dir, eval_sets, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(ConfigError, match="--extra vllm"):
        P.predict(tiny_model_dir, [(eval_sets["mosi"], "mosi")], tmp_path, backend="vllm", limit=1)


def test_media_settings_come_from_the_checkpoints_media_json(tiny_model_dir, eval_sets, tmp_path):
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model / artifacts.MEDIA_SETTINGS).unlink()  # a hub model, or a checkpoint saved without it
    pairs = [(eval_sets["mosi"], "mosi")]
    with pytest.raises(ConfigError, match=r"model/media\.json: not found.*give --max-frames, --video-size"):
        P.predict(model, pairs, tmp_path / "none", limit=1, fps=2.0, **FAST)  # no silent defaults
    assert not (tmp_path / "none").exists()  # refused before any work
    P.predict(model, pairs, tmp_path / "none", limit=1, fps=2.0, max_frames=16, video_size=(56, 56), **FAST)
    MediaSettings(fps=1.0, max_frames=6, video_size=(56, 56)).write(model)  # what training writes
    P.predict(model, pairs, tmp_path / "a", limit=1, **FAST)
    P.predict(model, pairs, tmp_path / "b", limit=1, max_frames=2, **FAST)  # an explicit value wins
    recorded = [
        json.loads((tmp_path / r / artifacts.PREDICT_CONFIG).read_text())["datasets"]["mosi"]
        for r in ("none", "a", "b")
    ]
    assert [(r["fps"], r["max_frames"], r["video_size"]) for r in recorded] == [
        (2.0, 16, [56, 56]),
        (1.0, 6, [56, 56]),
        (1.0, 2, [56, 56]),
    ]
    (model / artifacts.MEDIA_SETTINGS).write_text('{"fps": -1}')
    with pytest.raises(ConfigError, match=r"media\.json"):
        P.predict(model, pairs, tmp_path / "c", limit=1, **FAST)


def test_missing_and_corrupt_clips_are_skipped_named_and_shown_by_score_and_report(
    tiny_model_dir, eval_sets, tmp_path
):
    import shutil

    data = Path(shutil.copytree(eval_sets["sims"], tmp_path / "sims"))
    clips = read_mmsa(data, "sims", split="test").clips
    assert len(clips) == 5
    missing, corrupt = clips[1], clips[3]
    missing.video_path.unlink()
    corrupt.video_path.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    run = tmp_path / "run"
    args = ["predict", "--model", str(tiny_model_dir), "--data", str(data), "--dataset", "sims"]
    result = CliRunner().invoke(app, [*args, "--out", str(run), "--batch-size", "3", "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "sims: 3 predicted, 0 already done" in flat and ", 2 skipped ->" in flat
    assert f"missing 1 ({missing.video_path}), unreadable 1 ({corrupt.video_path})" in flat
    skipped = {r["id"]: r["reason"] for r in _lines(run / "skipped.jsonl")}
    assert skipped == {missing.id: "missing", corrupt.id: "unreadable"}
    assert len(_lines(run / "sims.jsonl")) == 3

    scored = CliRunner().invoke(app, ["score", str(run / "sims.jsonl"), "--dataset", "sims"])
    assert scored.exit_code == 0, scored.output
    assert "n = 3 of 5 (2 skipped: missing 1, unreadable 1)" in " ".join(scored.output.split())

    report = CliRunner().invoke(
        app, ["report", str(run), "--out", str(tmp_path / "report"), "--bootstrap", "0"]
    )
    assert report.exit_code == 0, report.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert "n = 3 of 5 (2 skipped: missing 1, unreadable 1)" in md
    assert str(missing.video_path) in md and str(corrupt.video_path) in md  # named in the warnings
    cell = json.loads((tmp_path / "report" / "metrics.json").read_text())["results"]["run"]["sims"]
    assert cell["clips"] == 5 and {s["reason"] for s in cell["skipped"]} == {"missing", "unreadable"}
    assert "not a registered dataset" not in report.output  # skipped.jsonl is not taken for a dataset

    # --on-media-error fail stops at the corrupt clip, naming it.
    stopped = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r2"), "--on-media-error", "fail"])
    assert stopped.exit_code == 1 and str(corrupt.video_path) in " ".join(stopped.output.split())
