"""generate end to end over real HTTP against the stand-in teacher on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import N_CLIPS
from cot_distill.config import dump_config
from cot_distill.generate import generate
from cot_distill.outcomes import summarize
from cot_distill.teacher_prompt import dc_regex
from distill_helpers import fast_config, read_lines
from msa_core import DCOutput, get_spec, read_mmsa

SIMS = get_spec("sims")
CONTENT_FAULTS = (
    "wrong_polarity=0.1,score_side=0.1,malformed=0.1,short_think=0.1,long_think=0.1,"
    "one_modality=0.1,contradiction=0.1"
)


def _labels(dataset: Path) -> dict[str, float]:
    return {c.id: c.label for c in read_mmsa(dataset, "sims").clips}


def test_clean_run_accepts_everything_with_the_true_score(standin, dataset: Path, tmp_path: Path):
    server = standin()
    cfg = fast_config(dataset, tmp_path / "out", [server.base_url], samples_per_clip=2)
    result = generate(cfg)
    stats = result.stats
    assert stats["expected"] == N_CLIPS * 2 == stats["accepted"] + stats["rejected"] + stats["failed"]
    assert stats["accepted"] == N_CLIPS * 2 and stats["pending"] == 0
    assert stats["tokens"]["completion"] > 0 and stats["run"]["completed"] == N_CLIPS * 2
    assert sum(v["expected"] for v in stats["per_split"].values()) == N_CLIPS * 2
    assert set(stats["per_polarity"]) == {"negative", "neutral", "positive"}
    labels = _labels(dataset)
    accepted = read_lines(tmp_path / "out" / "accepted.jsonl")
    swapped = 0
    for rec in accepted:
        final = DCOutput.parse_strict(rec["answer"], SIMS)
        teacher = DCOutput.parse_strict(rec["teacher_answer"], SIMS)
        assert final.score == labels[rec["id"]] == rec["label"]  # the true score, not the teacher's
        assert final.think == teacher.think and final.polarity == teacher.polarity == rec["polarity"]
        swapped += teacher.score != final.score
        assert rec["prompt_version"] == "dc-v1+teacher-v1" and Path(rec["video_path"]).is_file()
    assert swapped > len(accepted) // 2  # the stand-in's scores are noisy, so the swap is visible
    for name in ("responses.jsonl", "rejected.jsonl", "stats.json", "config.yaml", "plan.json"):
        assert (tmp_path / "out" / name).is_file()


def test_every_filter_reason_over_http(standin, dataset: Path, tmp_path: Path):
    server = standin(faults=CONTENT_FAULTS + ",judge_reject=0.3", seed=1)
    cfg = fast_config(
        dataset,
        tmp_path / "out",
        [server.base_url],
        samples_per_clip=4,
        max_attempts=1,
        sets=["filters.judge.enabled=true"],
    )
    stats = generate(cfg).stats
    reasons = set(stats["rejected_by_reason"])
    for expected in (
        "polarity_tag",
        "polarity_score",
        "think_too_short",
        "think_too_long",
        "few_modalities",
        "conclusion_contradicts",
        "judge_implausible",
    ):
        assert expected in reasons
    assert any(r.startswith("format:") for r in reasons)
    assert stats["accepted"] + stats["rejected"] + stats["failed"] == N_CLIPS * 4
    rejected = read_lines(tmp_path / "out" / "rejected.jsonl")
    assert len(rejected) == stats["rejected"] and all(r["reason"] and r["attempts"] for r in rejected)
    judged = read_lines(tmp_path / "out" / "judgements.jsonl")
    assert judged and {j["reply"] for j in judged} == {"PLAUSIBLE", "IMPLAUSIBLE"}
    log = read_lines(server.teacher.request_log)
    assert sum(r["kind"] == "judge" for r in log) == len(judged)


def test_reasks_on_format_and_polarity_with_fresh_seeds(standin, dataset: Path, tmp_path: Path):
    server = standin(faults="wrong_polarity=0.35,malformed=0.15", seed=2, log_bodies=True)
    cfg = fast_config(dataset, tmp_path / "out", [server.base_url], samples_per_clip=2, max_attempts=5)
    stats = generate(cfg).stats
    responses = read_lines(tmp_path / "out" / "responses.jsonl")
    assert max(r["attempt"] for r in responses) >= 1
    assert stats["accepted"] > 0.9 * N_CLIPS * 2
    by_sample: dict[tuple, list[int]] = {}
    for rec in read_lines(server.teacher.request_log):
        content = rec["body"]["messages"][1]["content"]
        by_sample.setdefault((content[0]["video_url"]["url"], rec["body"]["seed"] // 1000), []).append(
            rec["body"]["seed"]
        )
    assert any(len(seeds) > 1 for seeds in by_sample.values())
    assert all(len(set(seeds)) == len(seeds) for seeds in by_sample.values())  # each attempt its own seed


def test_request_body_has_media_parts_and_structured_outputs(standin, dataset: Path, tmp_path: Path):
    server = standin(log_bodies=True)
    before = sorted(p for p in dataset.rglob("*") if "derived-wav" not in p.parts)
    cfg = fast_config(
        dataset,
        tmp_path / "out",
        [server.base_url],
        limit=4,
        structured_outputs=True,
        mm_processor_kwargs={"fps": 2},
    )
    assert generate(cfg).stats["accepted"] == 4
    log = read_lines(server.teacher.request_log)
    assert len(log) == 4
    for rec in log:
        body = rec["body"]
        assert body["structured_outputs"] == {"regex": dc_regex(get_spec("sims"), 40, 4000)}
        assert not [k for k in body if k.startswith("guided")]
        assert body["mm_processor_kwargs"] == {"fps": 2}
        parts = body["messages"][1]["content"]
        assert [p["type"] for p in parts] == ["video_url", "audio_url", "text"]
        assert parts[0]["video_url"]["url"].startswith("file://") and parts[0]["video_url"]["url"].endswith(
            ".mp4"
        )
        # The wav lies in OUT (outside the server's allowed media path), so it travels inline.
        assert parts[1]["audio_url"]["url"].startswith("data:audio/wav;base64,UklGR")
        assert 'Transcript: "' in parts[2]["text"] and body["messages"][0]["role"] == "system"
        assert (
            body["temperature"] == cfg.sampling.temperature and body["max_tokens"] == cfg.sampling.max_tokens
        )
    assert len(list((tmp_path / "out" / "wav16k").glob("*.wav"))) == 4
    assert sorted(p for p in dataset.rglob("*") if "derived-wav" not in p.parts) == before  # nothing written


def test_a_wav_dir_inside_the_data_root_travels_as_a_file_url(standin, dataset: Path, tmp_path: Path):
    server = standin(log_bodies=True)
    wav_dir = dataset / "derived-wav"
    cfg = fast_config(dataset, tmp_path / "out", [server.base_url], limit=2, wav_dir=str(wav_dir))
    assert generate(cfg).stats["accepted"] == 2
    for rec in read_lines(server.teacher.request_log):
        wav = Path(rec["body"]["messages"][1]["content"][1]["audio_url"]["url"].removeprefix("file://"))
        assert wav.suffix == ".wav" and wav.is_file() and wav.parent == wav_dir


def test_data_urls_carry_audio_explicitly(standin, dataset: Path, tmp_path: Path):
    server = standin(log_bodies=True)
    cfg = fast_config(dataset, tmp_path / "out", [server.base_url], limit=3, media_url="data")
    assert generate(cfg).stats["accepted"] == 3
    for rec in read_lines(server.teacher.request_log):
        parts = rec["body"]["messages"][1]["content"]
        assert parts[0]["video_url"]["url"].startswith("data:video/mp4;base64,")
        assert parts[1]["audio_url"]["url"].startswith("data:audio/wav;base64,UklGR")  # "RIFF"


def test_rerun_sends_nothing_and_offline_filter_needs_no_server(standin, dataset: Path, tmp_path: Path):
    server = standin(faults="wrong_polarity=0.2")
    out = tmp_path / "out"
    cfg = fast_config(dataset, out, [server.base_url], samples_per_clip=2, max_attempts=2)
    first = generate(cfg)
    n_log = len(read_lines(server.teacher.request_log))
    second = generate(cfg)
    assert second.requests == 0 and len(read_lines(server.teacher.request_log)) == n_log
    assert second.stats["accepted"] == first.stats["accepted"]
    assert second.stats["run"]["samples_from_cache"] == N_CLIPS * 2
    server.stop()
    strict = cfg.model_copy(update={"filters": cfg.filters.model_copy(update={"min_think_chars": 10_000})})
    stats = summarize(out, strict, SIMS)
    assert stats["accepted"] == 0 and stats["rejected_by_reason"]["think_too_short"] > 0
    assert stats["rejected"] == N_CLIPS * 2


def test_torn_last_line_is_tolerated_and_only_its_answer_asked_again(standin, dataset: Path, tmp_path: Path):
    server = standin()
    out = tmp_path / "out"
    cfg = fast_config(dataset, out, [server.base_url], limit=6)
    generate(cfg)
    path = out / "responses.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # the last answer torn mid-line, as a crash mid-write leaves it
    before = len(read_lines(server.teacher.request_log))
    again = generate(cfg)
    assert again.requests == 1 and again.stats["accepted"] == 6
    records = read_lines(path)  # every line parses: the torn tail was cut before appending
    assert len(records) == 6 and len({r["key"] for r in records}) == 6
    assert len(read_lines(server.teacher.request_log)) == before + 1


def test_failures_are_counted_and_retried_on_resume(standin, dataset: Path, tmp_path: Path):
    server = standin(faults="http500=1.0")
    out = tmp_path / "out"
    cfg = fast_config(dataset, out, [server.base_url], limit=3, sets=["retry.max_retries=1"])
    stats = generate(cfg).stats
    assert stats["failed"] == 3 and stats["failed_by_kind"] == {"http500": 3} and stats["accepted"] == 0
    healthy = standin()
    stats = generate(cfg.model_copy(update={"base_urls": [healthy.base_url]})).stats
    assert stats["accepted"] == 3 and stats["failed"] == 0


def test_secrets_are_sent_but_never_written(
    standin, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    secret = "sk-distill-secret-4242"
    monkeypatch.setenv("TEACHER_API_KEY", secret)
    server = standin(api_key_env="TEACHER_API_KEY", log_bodies=True)
    out = tmp_path / "out"
    cfg = fast_config(dataset, out, [server.base_url], limit=4, api_key_env="TEACHER_API_KEY")
    assert generate(cfg).stats["accepted"] == 4  # the stand-in refuses requests without the key
    written = [p for p in (*out.rglob("*"), server.teacher.request_log) if p.is_file()]
    assert len(written) >= 6
    for path in written:
        assert secret.encode() not in path.read_bytes(), path


def _subprocess_generate(cfg_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cot_distill.cli", "generate", "--config", str(cfg_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} lines")


@pytest.mark.parametrize("how", ["kill9", "ctrl_c"])
def test_resume_after_an_interrupted_run_repeats_no_stored_request(
    standin, dataset: Path, tmp_path: Path, how: str
):
    server = standin(latency=0.15)
    out = tmp_path / "out"
    cfg = fast_config(
        dataset,
        out,
        [server.base_url],
        samples_per_clip=2,
        concurrency=4,
        sets=["retry.request_timeout_s=10"],
    )
    cfg_path = tmp_path / "cfg.yaml"
    dump_config(cfg, cfg_path)
    proc = _subprocess_generate(cfg_path)
    responses = out / "responses.jsonl"
    _wait_for_lines(responses, 10, proc)
    proc.send_signal(signal.SIGKILL if how == "kill9" else signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    if how == "kill9":
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: exit 130, everything finished summarised
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr
        stats = json.loads((out / "stats.json").read_text())
        assert stats["pending"] > 0 and stats["run"]["interrupted"]
        assert stats["accepted"] == len(read_lines(out / "accepted.jsonl")) > 0
    lines = responses.read_text().splitlines()
    kept = [json.loads(line) for line in lines[:-1]]
    with contextlib.suppress(ValueError):  # the last line may be torn by the kill
        kept.append(json.loads(lines[-1]))
    assert 10 <= len(kept) < N_CLIPS * 2
    log_before = len(read_lines(server.teacher.request_log))

    result = generate(cfg)
    stats = result.stats
    assert stats["accepted"] + stats["rejected"] + stats["failed"] == N_CLIPS * 2 and stats["pending"] == 0
    after = read_lines(server.teacher.request_log)[log_before:]
    stored_keys = {r["key"] for r in kept}
    assert not stored_keys & {r["key"] for r in after}  # no stored answer asked again
    final = read_lines(responses)
    assert [r["key"] for r in final[: len(kept)]] == [r["key"] for r in kept]  # no line lost
    assert len({r["key"] for r in final}) == len(final) == N_CLIPS * 2
    assert stats["run"]["samples_from_cache"] == len(kept)  # one answer per sample: nothing is rejected
    assert result.requests == len(after) == N_CLIPS * 2 - len(kept)


def _write_silent_mp4(path: Path) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_a_clip_without_audio_fails_alone(tmp_path: Path):
    from cot_distill.standin import ServerThread, StandInTeacher
    from msa_core.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", "sims", n=3, seed=1)
    silent = read_mmsa(data, "sims").clips[1]
    _write_silent_mp4(silent.video_path)
    with ServerThread(StandInTeacher(data=data, dataset="sims")) as server:
        stats = generate(fast_config(data, tmp_path / "out", [server.base_url], samples_per_clip=2)).stats
    assert stats["accepted"] == 4 and stats["failed"] == 2 and stats["failed_by_kind"] == {"media": 2}
    failures = read_lines(tmp_path / "out" / "failures.jsonl")
    assert {f["clip"] for f in failures} == {silent.id} and "audio" in failures[0]["detail"]


def test_skipped_clips_are_counted_named_and_recorded(tmp_path: Path):
    from cot_distill.cli import app
    from cot_distill.standin import ServerThread, StandInTeacher
    from msa_core.synthetic import make_dataset
    from typer.testing import CliRunner

    data = make_dataset(tmp_path / "data", "sims", n=4, seed=1, splits=(1, 0, 0))
    clips = read_mmsa(data, "sims").clips
    missing, corrupt, silent = clips[0], clips[1], clips[2]
    with ServerThread(StandInTeacher(data=data, dataset="sims")) as server:
        missing.video_path.unlink()
        corrupt.video_path.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
        _write_silent_mp4(silent.video_path)
        out = tmp_path / "out"
        argv = [
            "generate",
            "--data",
            str(data),
            "--base-url",
            server.base_url,
            "--out",
            str(out),
            "--no-progress",
        ]
        res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output  # media skips do not fail the run: the one good clip was answered
    flat = " ".join(res.output.split())
    assert "1 accepted, 0 rejected, 2 failed of 3" in flat and "failed (media): 2 sample(s)" in flat
    assert (
        f"3 clip(s) skipped: missing 1 ({missing.video_path}), unreadable 1 ({corrupt.video_path}), "
        f"no_audio 1 ({silent.video_path}); all listed in {out / 'skipped.jsonl'}"
    ) in flat
    recorded = {r["id"]: r["reason"] for r in read_lines(out / "skipped.jsonl")}
    assert recorded == {missing.id: "missing", corrupt.id: "unreadable", silent.id: "no_audio"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["skipped"] == {"clips": 3, "by_reason": {"missing": 1, "unreadable": 1, "no_audio": 1}}
    assert not list(data.rglob("*.wav"))  # nothing derived was written into the dataset


def test_run_problem_is_the_exit_status_rule():
    from cot_distill.config import DistillConfig
    from cot_distill.generate import run_problem

    cfg = DistillConfig(data="d")

    def stats(accepted=0, rejected=0, failed=0, media=0, pending=0):
        expected = accepted + rejected + failed + pending
        kinds = {"http500": failed - media, "media": media}
        return {
            "expected": expected,
            "accepted": accepted,
            "rejected": rejected,
            "failed": failed,
            "pending": pending,
            "failed_by_kind": {k: v for k, v in kinds.items() if v},
        }

    assert run_problem(stats(accepted=95, rejected=0, failed=5), cfg) is None  # 5 % is allowed
    assert "6 of 100 samples failed" in run_problem(stats(accepted=90, rejected=4, failed=6), cfg)
    assert run_problem(stats(accepted=0, rejected=3), cfg) is None  # answered, though rejected
    assert run_problem(stats(failed=4), cfg) == "the teacher answered no request"
    assert run_problem(stats(failed=3, media=3), cfg) == "no clip could be sent to the teacher"
    assert run_problem(stats(accepted=2, failed=5, media=5), cfg) is None  # media skips do not count
    assert run_problem(stats(), cfg) == "no clip could be sent to the teacher"
    loose = cfg.model_copy(update={"max_failed_fraction": 0.5})
    assert run_problem(stats(accepted=60, failed=40), loose) is None


def test_an_out_folder_of_another_run_needs_force(standin, dataset: Path, tmp_path: Path):
    server = standin()
    out = tmp_path / "out"
    assert generate(fast_config(dataset, out, [server.base_url], limit=2)).stats["accepted"] == 2
    other = fast_config(dataset, out, [server.base_url], limit=2, model="another/teacher")
    from msa_core import ConfigError

    with pytest.raises(
        ConfigError, match="model 'Qwen/Qwen3-Omni-30B-A3B-Instruct' \\(now 'another/teacher'\\)"
    ):
        generate(other)
    again = fast_config(dataset, out, [server.base_url], limit=2)
    assert generate(again, force=True).stats["accepted"] == 2  # the same run resumes without --force too
    assert generate(again).requests == 0


def test_a_second_generate_on_the_same_out_is_refused_and_a_killed_ones_lock_taken_over(
    standin, dataset: Path, tmp_path: Path, capsys
):
    """Two real `cot-distill generate` on one --out: the second is refused before asking anything, naming the
    first's pid and command (before the lock, both ran and stored every answer twice). After kill -9 of the first,
    the next run takes the stale lock over, says so, and ends with each sample answered once."""
    from msa_core.lock import LOCK_FILE, holder

    slow, quick = standin(latency=0.5), standin()  # the first run lasts (48 s) until it is killed
    out = tmp_path / "out"
    cfg = fast_config(
        dataset, out, [slow.base_url], samples_per_clip=2, concurrency=1, sets=["retry.request_timeout_s=10"]
    )
    cfg_path = tmp_path / "cfg.yaml"
    dump_config(cfg, cfg_path)
    first = _subprocess_generate(cfg_path)
    _wait_for_lines(out / "responses.jsonl", 4, first)
    assert holder(out)["pid"] == first.pid
    second = _subprocess_generate(cfg_path)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 1, stderr
    assert (
        f"pid {first.pid}" in stderr and "in use by another job" in stderr and "generate --config" in stderr
    )
    assert "Traceback" not in stderr

    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert (out / LOCK_FILE).is_file() and holder(out) is None  # left behind, held by nobody
    result = generate(cfg.model_copy(update={"base_urls": [quick.base_url]}))
    assert f"took over the lock of {out} from pid {first.pid}" in " ".join(capsys.readouterr().err.split())
    final = read_lines(out / "responses.jsonl")
    assert len({r["key"] for r in final}) == len(final) == N_CLIPS * 2  # every sample answered once
    assert result.stats["pending"] == 0 and not (out / LOCK_FILE).exists()
