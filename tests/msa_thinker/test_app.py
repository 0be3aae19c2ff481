"""`msa-thinker app`: the cue marking, and the page in a real headless browser (Debian's chromium driven by
Playwright, no browser download) on the demo's model: pick a demo clip, analyse it, find the DC fields rendered."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msa_thinker.app import mark_cues, render_polarity, render_score
from msa_thinker.cli import app

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "runs" / "test-artifacts" / "app-page.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def test_each_sentence_is_marked_by_the_modalities_it_names() -> None:
    think = (
        'The words of the transcript, "I love it.", sound pleased. The voice is warm and its pitch rises! '
        "Visually the face is smiling, and the tone agrees. Overall the sentiment is positive."
    )
    assert mark_cues(think) == [
        ('The words of the transcript, "I love it.", sound pleased.', "text"),
        (" The voice is warm and its pitch rises!", "audio"),
        (" Visually the face is smiling, and the tone agrees.", "audio + visual"),
        (" Overall the sentiment is positive.", None),
    ]
    assert "".join(s for s, _ in mark_cues(think)) == think  # nothing lost


def test_polarity_and_score_render_the_record() -> None:
    rec = {"polarity": "negative", "parse_failed": False, "parse_reason": "strict", "score": -0.5}
    rec |= {"score_range": [-1.0, 1.0], "scale": "sims"}
    assert 'class="dc-negative">negative<' in render_polarity(rec)
    html = render_score(rec)
    assert "<b>-0.5</b> on the sims scale (-1 to 1)" in html and "left:25.0%" in html
    failed = {**rec, "parse_failed": True, "polarity": None, "parse_reason": "no_score", "score": None}
    assert "no DC answer (no_score)" in render_polarity(failed) and "no score" in render_score(failed)


def test_without_the_demo_the_app_says_what_to_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["app"])
    assert result.exit_code == 2 and "uv run msa-thinker demo" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the app did not listen on {port} in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_the_page_shows_a_demo_clips_dc_answer_in_a_real_browser(
    demo_run, tmp_path: Path, monkeypatch
) -> None:
    from msa_core import POLARITIES, read_mmsa
    from playwright.sync_api import sync_playwright

    port, log = _free_port(), tmp_path / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    script = str(Path(sys.executable).parent / "msa-thinker")
    with log.open("w") as out:  # as a user runs it after the demo: no --model, the demo's clips offered
        proc = subprocess.Popen(
            [script, "app", "--port", str(port)], cwd=demo_run.cwd, stdout=out, stderr=out, env=env
        )
    try:
        _wait_for(port, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}", wait_until="networkidle")
            page.click("#demo-clip input")
            option = page.get_by_role("option").first
            label = option.inner_text().strip()
            option.click()
            page.wait_for_function(
                "document.querySelector('#transcript textarea').value.length > 0", timeout=30_000
            )
            transcript = page.input_value("#transcript textarea")
            page.click("#analyse")
            page.wait_for_selector("#dc-polarity", timeout=180_000)
            polarity = page.inner_text("#dc-polarity").strip().lower()
            score = page.inner_text("#dc-score")
            reasoning = page.inner_text("#reasoning")
            page.locator("#raw-accordion").get_by_text("Raw output").click()  # one click away
            page.wait_for_function(
                "document.querySelector('#raw textarea')?.value.length > 0", timeout=10_000
            )
            raw = page.input_value("#raw textarea")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.click("#autofill")  # the model transcribes the clip into the box
            page.wait_for_function(
                "t => document.querySelector('#transcript textarea').value !== t",
                arg=transcript,
                timeout=120_000,
            )
            heard = page.input_value("#transcript textarea")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"screenshot: {SCREENSHOT}")

    # The page picked a demo clip and filled in its own transcript.
    dataset, ids = label.split(": ")
    clip = next(
        c
        for c in read_mmsa(demo_run.out / "data" / dataset, dataset, split="test").clips
        if f"{c.video_id}/{c.clip_id}" == ids
    )
    assert transcript == clip.text
    # What it shows is the model's answer for that clip: analyze on the same clip and transcript agrees.
    monkeypatch.chdir(demo_run.cwd)
    result = CliRunner().invoke(app, ["analyze", str(clip.video_path), "--transcript", transcript, "--json"])
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout.splitlines()[0])
    assert raw == rec["raw_output"] and raw.startswith("<polarity>")
    if rec["parse_failed"]:
        assert polarity.startswith("no dc answer")
    else:
        assert polarity == rec["polarity"] and polarity in POLARITIES
        assert f"{rec['score']:g} on the sims scale (-1 to 1)" in score
        marked = re.findall(r"\b(TEXT|AUDIO|VISUAL)\b", reasoning.upper())
        named = {x for _, m in mark_cues(rec["think"]) if m for x in m.split(" + ")}
        assert {m.lower() for m in marked} >= named and named  # each modality's cue is marked
    assert SCREENSHOT.stat().st_size > 10_000
    transcribed = CliRunner().invoke(app, ["analyze", str(clip.video_path), "--transcribe", "--json"])
    assert transcribed.exit_code == 0, transcribed.output
    rec = json.loads(transcribed.stdout.splitlines()[0])
    assert rec["transcript_source"] == "transcribed" and heard == rec["transcript"]
