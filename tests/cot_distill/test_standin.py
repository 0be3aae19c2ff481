"""The stand-in teacher over real HTTP (aiohttp client on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cot_distill.standin import STANDIN_MODEL, parse_faults
from distill_helpers import read_lines
from msa_core import ConfigError, DCOutput, get_spec, read_mmsa

SIMS = get_spec("sims")


def _post(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async def go() -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers or {}) as r:
            return r.status, await r.json()

    return asyncio.run(go())


def _request(video_url: str, text: str = "x", model: str = STANDIN_MODEL) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": video_url}},
                    {"type": "text", "text": text},
                ],
            }
        ],
    }


def test_fault_spec_parsing():
    assert parse_faults("http429=0.1, drop=0.02,") == {"http429": 0.1, "drop": 0.02}
    assert parse_faults(None) == {}
    with pytest.raises(ConfigError, match="unknown fault 'teapot'"):
        parse_faults("teapot=0.1")
    with pytest.raises(ConfigError, match="outside"):
        parse_faults("drop=1.5")
    with pytest.raises(ConfigError, match="add up"):
        parse_faults("http429=0.6,http500=0.6")


def test_models_and_answers_from_the_label(standin, dataset: Path):
    server = standin()
    url = server.base_url

    async def models() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(url + "/models") as r:
            return await r.json()

    assert [m["id"] for m in asyncio.run(models())["data"]] == [STANDIN_MODEL]
    for clip in read_mmsa(dataset, "sims").clips[:6]:
        status, data = _post(url + "/chat/completions", _request(clip.video_path.as_uri()))
        assert status == 200
        out = DCOutput.parse_strict(data["choices"][0]["message"]["content"], SIMS)
        assert out.polarity == SIMS.polarity_of(clip.label) == SIMS.polarity_of(out.score)
        assert data["usage"]["completion_tokens"] > 0


def test_clip_found_from_data_url_or_transcript(standin, dataset: Path):
    server = standin()
    clip = read_mmsa(dataset, "sims").clips[4]
    data_url = "data:video/mp4;base64," + base64.b64encode(clip.video_path.read_bytes()).decode()
    status, _ = _post(server.base_url + "/chat/completions", _request(data_url))
    assert status == 200
    status, _ = _post(
        server.base_url + "/chat/completions",
        _request("http://elsewhere/v.mp4", text=f'Transcript: "{clip.text}"\nMore.'),
    )
    assert status == 200
    status, data = _post(server.base_url + "/chat/completions", _request("http://elsewhere/v.mp4"))
    assert status == 400 and "no clip" in data["error"]["message"]
    assert [r["clip"] for r in read_lines(server.teacher.request_log)] == [clip.id, clip.id, None]


def test_wrong_model_key_and_judge_requests(standin, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STANDIN_TEST_KEY", "sk-standin-1")
    server = standin(faults="judge_reject=1.0", api_key_env="STANDIN_TEST_KEY")
    judge = {"model": STANDIN_MODEL, "messages": [{"role": "user", "content": "Is this plausible?"}]}
    status, _ = _post(server.base_url + "/chat/completions", judge)
    assert status == 401
    auth = {"Authorization": "Bearer sk-standin-1"}
    status, data = _post(server.base_url + "/chat/completions", judge, auth)
    assert status == 200 and data["choices"][0]["message"]["content"] == "IMPLAUSIBLE"
    status, data = _post(server.base_url + "/chat/completions", {**judge, "model": "gpt-x"}, auth)
    assert status == 404 and "gpt-x" in data["error"]["message"]


def test_noise_is_seeded_per_body_and_retries_draw_again(standin, dataset: Path):
    clip = read_mmsa(dataset, "sims").clips[0]
    body = _request(clip.video_path.as_uri())
    runs = []
    for _ in range(2):
        server = standin(faults="http500=0.5", seed=7)
        statuses = [_post(server.base_url + "/chat/completions", body)[0] for _ in range(8)]
        runs.append(statuses)
        log = read_lines(server.teacher.request_log)
        assert [r["n_seen"] for r in log] == list(range(8))
        assert len({r["sha256"] for r in log}) == 1
    assert runs[0] == runs[1]  # same seed, same body, same sequence
    assert set(runs[0]) == {200, 500}  # each retry of the same body is a fresh draw


def test_log_bodies_records_what_was_received(standin, dataset: Path):
    server = standin(log_bodies=True)
    clip = read_mmsa(dataset, "sims").clips[0]
    body = {**_request(clip.video_path.as_uri()), "structured_outputs": {"regex": "a+"}}
    _post(server.base_url + "/chat/completions", body, {"X-Cache-Key": "k1"})
    (record,) = read_lines(server.teacher.request_log)
    assert (
        record["body"] == json.loads(json.dumps(body)) and record["key"] == "k1" and record["status"] == 200
    )


def test_an_incongruent_clip_is_described_as_it_is(dataset: Path):
    """Transcript one way, voice and face the other: the answer says so, and concludes with the label's polarity."""
    import random

    from cot_distill.standin import StandInTeacher
    from msa_core import polarity_of

    teacher = StandInTeacher(data=dataset, dataset="sims")
    clips = read_mmsa(dataset, "sims").clips
    hard = [c for c in clips if polarity_of(c.label_T, SIMS) != polarity_of(c.label, SIMS)]
    easy = [c for c in clips if polarity_of(c.label_T, SIMS) == polarity_of(c.label, SIMS)]
    assert hard and easy
    words = {"negative": "displeased", "neutral": "matter-of-fact", "positive": "pleased"}
    for clip in (hard[0], easy[0]):
        answer = DCOutput.parse_strict(teacher.answer(clip, None, random.Random(0)), SIMS)
        truth = polarity_of(clip.label, SIMS)
        assert answer.polarity == truth
        assert f"sound {words[polarity_of(clip.label_T, SIMS)]}." in answer.think
        assert answer.think.endswith(f"Overall the sentiment is {truth}.")
    # A wrong_polarity fault still describes every cue its own (wrong) way.
    wrong = DCOutput.parse_strict(teacher.answer(hard[0], "wrong_polarity", random.Random(0)), SIMS)
    assert f"sound {words[wrong.polarity]}." in wrong.think
