"""A stand-in teacher: an OpenAI-compatible HTTP server standing in for Qwen3-Omni-30B (served by vLLM).

It answers ``/v1/chat/completions`` in the DC format from the clip's own label, so the demo and the tests exercise
the real client, cache, retries and filters without a GPU. Endpoints: ``GET /v1/models``,
``POST /v1/chat/completions``.

How it recovers the label: it reads the dataset's ``label.csv`` (``--data DIR --dataset NAME``) and finds the clip
from the request's ``video_url`` part: a ``file://`` URL names ``Raw/<video_id>/<clip_id>.mp4``; a ``data:`` URL is
matched by the SHA-256 of its base64 payload (indexed on first use); failing both, the quoted transcript in the
text is looked up. A request with no video part is taken as an LLM-judge request and answered PLAUSIBLE.

Noise (``--faults "wrong_polarity=0.1,malformed=0.05,http429=0.05,http500=0.05,drop=0.02,slow=0.05"``), drawn
per request from a generator seeded by (seed, SHA-256 of the body, how often that body was seen), so a run is
reproducible whatever the arrival order and a retried request gets a fresh draw:
- transport: ``http429``, ``http500``, ``drop`` (connection closed without an answer), ``slow`` (answers after
  ``--slow-seconds``), ``not_json`` (HTTP 200 with an HTML page, as a misconfigured proxy sends);
- content: ``wrong_polarity`` (tag, score and reasoning of another class), ``score_side`` (right tag, score on
  another side), ``malformed`` (a missing ``</think>``), ``short_think``, ``long_think``, ``one_modality``
  (reasoning names only the text), ``contradiction`` (last sentence states another polarity), ``judge_reject``
  (judge requests answered IMPLAUSIBLE).
``--request-log FILE`` appends one JSON line per request received: time, body SHA-256, the client's
``X-Cache-Key`` header, clip, fault and status (``--log-bodies`` adds the parsed body, for tests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aiohttp import web
from msa_core import Clip, ConfigError, DatasetSpec, read_mmsa
from msa_core.outdir import ensure_writable_file

TRANSPORT_FAULTS = ("http429", "http500", "drop", "slow", "not_json")
CONTENT_FAULTS = (
    "wrong_polarity",
    "score_side",
    "malformed",
    "short_think",
    "long_think",
    "one_modality",
    "contradiction",
    "judge_reject",
)
STANDIN_MODEL = "Qwen/Qwen3-Omni-30B-A3B-Instruct"
_TRANSCRIPT = re.compile(r'Transcript: "(.*?)"\n')
_WORDS = {
    "negative": ("displeased", "tense and low", "frowning, with a downturned mouth"),
    "neutral": ("matter-of-fact", "level and even", "calm, without a marked expression"),
    "positive": ("pleased", "warm and lively", "smiling, with raised cheeks"),
}


def parse_faults(spec: str | None) -> dict[str, float]:
    """``"name=p,name=p"`` → {name: p}; unknown names and probabilities outside [0, 1] are a ConfigError."""
    faults: dict[str, float] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in TRANSPORT_FAULTS + CONTENT_FAULTS:
            raise ConfigError(
                f"--faults: unknown fault {name!r}; known: {', '.join(TRANSPORT_FAULTS + CONTENT_FAULTS)}"
            )
        try:
            p = float(value)
        except ValueError:
            raise ConfigError(f"--faults: {item!r} needs a probability, e.g. {name}=0.05") from None
        if not 0 <= p <= 1:
            raise ConfigError(f"--faults: {name} probability {p} is outside [0, 1]")
        faults[name] = p
    for group in (TRANSPORT_FAULTS, CONTENT_FAULTS):
        if sum(faults.get(n, 0.0) for n in group) > 1 + 1e-9:
            raise ConfigError(f"--faults: probabilities of {', '.join(group)} add up to more than 1")
    return faults


def _pick(rng: random.Random, faults: dict[str, float], names: tuple[str, ...]) -> str | None:
    u = rng.random()
    acc = 0.0
    for name in names:
        acc += faults.get(name, 0.0)
        if u < acc:
            return name
    return None


@dataclass
class StandInTeacher:
    """The request handler state: the clip index, the noise, the request log."""

    data: Path
    dataset: str
    latency: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    slow_seconds: float = 5.0
    request_log: Path | None = None
    log_bodies: bool = False
    model: str = STANDIN_MODEL
    api_key_env: str | None = None

    def __post_init__(self) -> None:
        if self.request_log:  # appended to, never replaced
            ensure_writable_file(self.request_log, "--request-log")
        ds = read_mmsa(self.data, self.dataset)
        self.spec: DatasetSpec = ds.spec
        self.by_path: dict[tuple[str, str], Clip] = {(c.video_id, c.clip_id): c for c in ds.clips}
        self.by_text: dict[str, Clip] = {}
        for c in ds.clips:
            self.by_text.setdefault(" ".join(c.text.split()), c)
        self._clips = ds.clips
        self._by_data_hash: dict[str, Clip] | None = None
        self._seen: dict[str, int] = {}
        self._log_fd = (
            os.open(self.request_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if self.request_log
            else None
        )
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        self._auth = f"Bearer {key}" if key else None
        self.requests = 0

    # -- clip lookup -------------------------------------------------------------------------------------------
    def _data_index(self) -> dict[str, Clip]:
        if self._by_data_hash is None:
            self._by_data_hash = {
                hashlib.sha256(base64.b64encode(c.video_path.read_bytes())).hexdigest(): c
                for c in self._clips
            }
        return self._by_data_hash

    def find_clip(self, body: dict[str, Any]) -> Clip | None:
        text = ""
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                text += content
                continue
            for part in content or []:
                kind = part.get("type")
                if kind == "video_url":
                    url = (part.get("video_url") or {}).get("url", "")
                    clip = self._clip_from_url(url)
                    if clip is not None:
                        return clip
                elif kind == "text":
                    text += part.get("text", "")
        m = _TRANSCRIPT.search(text)
        return self.by_text.get(" ".join(m.group(1).split())) if m else None

    def _clip_from_url(self, url: str) -> Clip | None:
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            return self.by_path.get((path.parent.name, path.stem))
        if url.startswith("data:"):
            payload = url.split(",", 1)[-1]
            return self._data_index().get(hashlib.sha256(payload.encode()).hexdigest())
        return None

    # -- answers -----------------------------------------------------------------------------------------------
    def _band_score(self, polarity: str) -> float:
        s = self.spec
        mid = {
            "negative": (s.score_min + s.neutral_low) / 2,
            "neutral": (s.neutral_low + s.neutral_high) / 2,
            "positive": (s.neutral_high + s.score_max) / 2,
        }[polarity]
        return round(mid, 2)

    def _cue_polarities(self, clip: Clip, polarity: str) -> tuple[str, str, str]:
        """What transcript, voice and face each show: their own labels (label_T/A/V) when the clip has them,
        so an incongruent clip (transcript one way, voice and face the other) is described as it is."""
        from msa_core import polarity_of

        own = (clip.label_T, clip.label_A, clip.label_V)
        return tuple(polarity if v is None else polarity_of(v, self.spec) for v in own)  # type: ignore[return-value]

    def _think(
        self, clip: Clip, polarity: str, conclusion: str, *, text_only: bool = False, faithful: bool = False
    ) -> str:
        """``faithful``: each cue as the clip shows it; else every cue as ``polarity`` (the faults' answers)."""
        cues = self._cue_polarities(clip, polarity) if faithful else (polarity,) * 3
        word, voice, face = _WORDS[cues[0]][0], _WORDS[cues[1]][1], _WORDS[cues[2]][2]
        quote = " ".join(clip.text.replace("<", " ").replace(">", " ").split())[:80]
        parts = [f'The words of the transcript, "{quote}", sound {word}.']
        if not text_only:
            parts.append(f"In the audio the voice is {voice}, and its pitch and prosody agree.")
            parts.append(f"Visually the face is {face}.")
        parts.append(f"Overall the sentiment is {conclusion}.")
        return " ".join(parts)

    def answer(self, clip: Clip, fault: str | None, rng: random.Random) -> str:
        from msa_core import polarity_of

        truth = polarity_of(clip.label, self.spec)
        others = [p for p in ("negative", "neutral", "positive") if p != truth]
        polarity, score = (
            truth,
            clip.label + rng.gauss(0.0, 0.05 * (self.spec.score_max - self.spec.score_min)),
        )
        score = min(max(score, self.spec.score_min), self.spec.score_max)
        if polarity_of(score, self.spec) != truth:
            score = clip.label
        score = round(score, 2)
        if polarity_of(score, self.spec) != truth:  # rounding crossed a band edge
            score = clip.label
        think = self._think(clip, truth, truth, faithful=True)
        if fault == "wrong_polarity":
            polarity = rng.choice(others)
            score, think = self._band_score(polarity), self._think(clip, polarity, polarity)
        elif fault == "score_side":
            score = self._band_score(rng.choice(others))
        elif fault == "short_think":
            think = f"{truth.capitalize()}."
        elif fault == "long_think":
            think = " ".join([think] * (5000 // len(think) + 1))
        elif fault == "one_modality":
            think = self._think(clip, truth, truth, text_only=True, faithful=True)
        elif fault == "contradiction":
            think = self._think(clip, truth, rng.choice(others), faithful=True)
        close_think = "" if fault == "malformed" else "</think>"
        return f"<polarity>{polarity}</polarity><think>{think}{close_think}<score>{score:g}</score>"

    # -- HTTP --------------------------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self._log_fd is not None:
            os.write(self._log_fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())

    async def models(self, request: web.Request) -> web.Response:
        if self._auth is not None and request.headers.get("Authorization") != self._auth:
            return _error(401, "stand-in: missing or wrong API key")
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "stand-in"}],
            }
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests += 1
        # Every decision is taken, and logged, on receipt: the log is complete even if the client goes away.
        record, status, respond = self._decide(raw, request.headers)
        self._log(record)
        if status == "dropped":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if record.get("fault") == "slow" or (status == 200 and self.latency > 0):
            await asyncio.sleep(self.slow_seconds if record.get("fault") == "slow" else self.latency)
        return respond()

    def _decide(self, raw: bytes, headers: Any) -> tuple[dict[str, Any], int | str, Any]:
        digest = hashlib.sha256(raw).hexdigest()
        count = self._seen.get(digest, 0)
        self._seen[digest] = count + 1
        record: dict[str, Any] = {
            "t": round(time.time(), 4),
            "sha256": digest,
            "key": headers.get("X-Cache-Key"),
            "n_seen": count,
        }

        def fail(status: int, message: str, **kw: Any) -> tuple[dict[str, Any], int, Any]:
            record["status"] = status
            return record, status, lambda: _error(status, message, **kw)

        if self._auth is not None and headers.get("Authorization") != self._auth:
            return fail(401, "stand-in: missing or wrong API key")
        try:
            body = json.loads(raw)
        except ValueError:
            return fail(400, "stand-in: body is not JSON")
        if self.log_bodies:
            record["body"] = body
        if body.get("model") != self.model:
            return fail(404, f"The model `{body.get('model')}` does not exist.")
        rng = random.Random(f"{self.seed}:{digest}:{count}")
        is_judge = not _has_video(body)
        clip = None if is_judge else self.find_clip(body)
        record["kind"] = "judge" if is_judge else "answer"
        record["clip"] = clip.id if clip else None
        transport = _pick(rng, self.faults, TRANSPORT_FAULTS)
        content = _pick(rng, self.faults, CONTENT_FAULTS)
        record["fault"] = transport or content
        if transport == "http429":
            return fail(429, "stand-in: too many requests", retry_after="0")
        if transport == "http500":
            return fail(500, "stand-in: internal error")
        if transport == "drop":
            record["status"] = "dropped"
            return record, "dropped", None
        if transport == "not_json":
            record["status"] = 200
            return (
                record,
                200,
                lambda: web.Response(text="<html>stand-in: not JSON</html>", content_type="text/html"),
            )
        if is_judge:
            # `cot-distill doctor` asks how many beeps its audio part holds: answer honestly from the audio that
            # arrived, so the stand-in passes the audio check only when the client really sent audio.
            from cot_distill.doctor import answer_audio_probe

            probe_answer = answer_audio_probe(body.get("messages") or [])
            if probe_answer is not None:
                texts = [probe_answer]
            else:
                texts = ["IMPLAUSIBLE" if content == "judge_reject" else "PLAUSIBLE"]
        elif clip is None:
            return fail(400, "stand-in: no clip of the dataset matches this request")
        else:
            texts = [self.answer(clip, content if content != "judge_reject" else None, rng)]
            texts += [self.answer(clip, None, rng) for _ in range(int(body.get("n") or 1) - 1)]
        record["status"] = 200
        prompt_tokens, completion_tokens = len(raw) // 4, sum(len(t) for t in texts) // 4
        completion = {
            "id": f"chatcmpl-{digest[:16]}-{count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                for i, t in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        payload = json.dumps(completion).encode()
        return record, 200, lambda: web.Response(body=payload, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def close(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None


def _has_video(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list) and any(p.get("type") == "video_url" for p in content):
            return True
    return False


def _error(status: int, message: str, *, retry_after: str | None = None) -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return web.json_response(
        {"error": {"message": message, "type": "stand_in", "code": status}}, status=status, headers=headers
    )


async def _start(teacher: StandInTeacher, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(teacher.app(), access_log=None, handle_signals=False)
    await runner.setup()
    # A short shutdown grace: 'slow' answers still sleeping are not worth waiting for.
    site = web.TCPSite(runner, host, port, backlog=1024, shutdown_timeout=0.25)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # port 0 → the port the OS chose
    return runner, bound


def serve(
    teacher: StandInTeacher, host: str = "127.0.0.1", port: int = 8000, *, announce: bool = True
) -> None:
    """Run until interrupted; prints ``stand-in teacher listening on http://HOST:PORT/v1`` once bound."""

    async def main() -> None:
        runner, bound = await _start(teacher, host, port)
        if announce:
            print(f"stand-in teacher listening on http://{host}:{bound}/v1", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            teacher.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class ServerThread:
    """The stand-in running on its own event loop in a background thread (tests, the demo)."""

    def __init__(self, teacher: StandInTeacher, host: str = "127.0.0.1", port: int = 0):
        self.teacher = teacher
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(port,), daemon=True, name="stand-in-teacher")
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("stand-in teacher did not start")
        if self._error is not None:
            raise self._error

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner, self.port = self._loop.run_until_complete(_start(self.teacher, self.host, port))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self.teacher.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
