"""cot-distill doctor against a tiny aiohttp OpenAI-compatible server on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from cot_distill.cli import app
from cot_distill.doctor import (
    NO_AUDIO_REPLY,
    answer_audio_probe,
    beeps,
    count_beeps,
    first_number,
    normalize_base_url,
)
from typer.testing import CliRunner

MODEL = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
runner = CliRunner()


@dataclass
class Fake:
    """Server behaviour: ``hears`` passes the audio parts on, ``chat_status`` fails every chat request."""

    hears: bool = True
    chat_status: int = 200
    models: tuple[str, ...] = (MODEL,)
    auth: list[str] = field(default_factory=list)


def _app(fake: Fake) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in fake.models],
            }
        )

    async def chat(request: web.Request) -> web.Response:
        fake.auth.append(request.headers.get("Authorization", ""))
        if fake.chat_status != 200:
            return web.json_response({"error": {"message": "engine dead"}}, status=fake.chat_status)
        body = await request.json()
        messages = body["messages"]
        if not fake.hears:  # a server that silently drops media parts, as a misconfigured one would
            messages = [
                {**m, "content": [p for p in m["content"] if p.get("type") == "text"]}
                if isinstance(m["content"], list)
                else m
                for m in messages
            ]
        text = answer_audio_probe(messages)
        if text is None:
            text = "ready"
        # Like a real server: every media part that reaches the model adds prompt tokens.
        media = sum(
            1
            for m in messages
            if isinstance(m["content"], list)
            for p in m["content"]
            if p.get("type") != "text"
        )
        prompt_tokens = 10 + 100 * media
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 1,
                    "total_tokens": prompt_tokens + 1,
                },
            }
        )

    application = web.Application(client_max_size=16 * 1024**2)
    application.router.add_get("/v1/models", models)
    application.router.add_post("/v1/chat/completions", chat)
    return application


@pytest.fixture
def server():
    """Start a fake on a free loopback port in a thread; yields (fake, base_url)."""
    fake = Fake()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def start() -> None:
        runner_ = web.AppRunner(_app(fake))
        await runner_.setup()
        site = web.TCPSite(runner_, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner_
        holder["port"] = site._server.sockets[0].getsockname()[1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield fake, f"http://127.0.0.1:{holder['port']}"
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _doctor(base_url: str, *extra: str):
    return runner.invoke(app, ["doctor", "--base-url", base_url, "--model", MODEL, "--timeout", "20", *extra])


def test_beep_probe_round_trips():
    for n in range(1, 7):
        assert count_beeps(beeps(n)) == n
    assert count_beeps(beeps(3) * 0) == 0
    assert first_number("I hear four beeps.") == 4 and first_number("3") == 3 and first_number("none") is None


def test_answer_audio_probe_needs_the_audio_part():
    assert answer_audio_probe([{"role": "user", "content": "hello"}]) is None
    from cot_distill.doctor import AUDIO_PROBE_QUESTION

    assert answer_audio_probe(
        [{"role": "user", "content": [{"type": "text", "text": AUDIO_PROBE_QUESTION}]}]
    ) == (NO_AUDIO_REPLY)


def test_all_checks_pass_on_a_server_that_hears(server, monkeypatch):
    fake, url = server
    monkeypatch.setenv("DOCTOR_KEY", "sk-local-123")
    result = _doctor(url, "--beeps", "4", "--api-key-env", "DOCTOR_KEY")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[:2] for line in lines[:4]] == [
        ["PASS", "models"],
        ["PASS", "text"],
        ["PASS", "tokens"],
        ["PASS", "audio"],
    ]
    assert "counted 4 beeps" in result.output and "4/4 checks passed" in result.output
    assert "110 prompt tokens with the audio part, 10 without" in result.output
    assert fake.auth == ["Bearer sk-local-123"] * 4 and "sk-local-123" not in result.output


def test_random_beep_count_and_file_url_check(server, tmp_path):
    _, url = server
    result = _doctor(url + "/v1", "--media-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "PASS  file" in result.output and "5/5 checks passed" in result.output
    assert list(tmp_path.iterdir()) == []  # the probe wav is removed after the check


def test_a_server_that_drops_audio_fails_the_audio_check(server):
    fake, url = server
    fake.hears = False
    result = _doctor(url, "--beeps", "3")
    assert result.exit_code == 1
    assert "PASS  models" in result.output and "PASS  text" in result.output
    assert "FAIL  tokens  10 prompt tokens with the audio part, 10 without" in result.output
    assert f"FAIL  audio   expected 3 beeps, answer {NO_AUDIO_REPLY!r}" in result.output
    assert "failed: tokens, audio" in result.output


def test_protocol_only_skips_the_beep_count_and_still_catches_dropped_audio(server, tmp_path):
    fake, url = server
    result = _doctor(url, "--protocol-only", "--media-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "PASS  tokens" in result.output and "3/3 checks passed" in result.output
    names = [line.split()[1] for line in result.output.splitlines()[:-1]]
    assert names == ["models", "text", "tokens"]
    fake.hears = False
    result = _doctor(url, "--protocol-only")
    assert result.exit_code == 1 and "failed: tokens" in result.output


def test_model_not_served_and_http_errors_are_precise(server):
    fake, url = server
    fake.models = ("other/model",)
    fake.chat_status = 500
    result = _doctor(url, "--beeps", "2")
    assert result.exit_code == 1
    assert f"FAIL  models  {MODEL!r} is not served by {url}/v1; it lists ['other/model']" in result.output
    assert "FAIL  text    HTTP 500" in result.output and "engine dead" in result.output
    assert "FAIL  tokens  HTTP 500" in result.output and "FAIL  audio   HTTP 500" in result.output


def test_unreachable_server_stops_after_the_first_check():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _doctor(f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"FAIL  models  cannot connect to http://127.0.0.1:{port}/v1" in result.output
    assert (
        "SKIP  text" in result.output and "SKIP  tokens" in result.output and "SKIP  audio" in result.output
    )


def test_base_url_normalisation():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/") == "http://h:8000/v1"
    assert normalize_base_url("http://h/openai/v1/") == "http://h/openai/v1"


def test_doctor_passes_against_the_stand_in_teacher(standin):
    """The stand-in answers doctor's audio probe from the audio part it received, so all checks pass."""
    server = standin()
    result = runner.invoke(
        app, ["doctor", "--base-url", server.base_url, "--model", server.teacher.model, "--beeps", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "PASS  audio" in result.output and "counted 5 beeps" in result.output
