"""``cot-distill doctor``: is the teacher endpoint up, does it answer, and does it really hear audio?

The audio check sends a generated clip of N short beeps (N picked at random, 2 to 5, unless given) as an
explicit audio part and asks how many beeps it holds: the answer must name N. A server that drops the audio
part (vLLM without audio support, a proxy stripping media, a client never attaching it) can only guess.

Before it, a protocol check that needs no capable model: the same request with and without the audio part must
cost more prompt tokens with it (``usage.prompt_tokens``), i.e. the audio reaches the model's input. With
``protocol_only`` (``--protocol-only``) the beep count is skipped: a tiny random test model cannot count.

A stand-in server can pass honestly by calling ``answer_audio_probe(messages)``: it decodes the audio part of
the probe request, counts the beeps and returns the number (or a refusal when no audio part arrived).
"""

from __future__ import annotations

import base64
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from msa_core.media import load_audio, write_wav

SR = 16000
BEEP_S, GAP_S, PAD_S, TONE_HZ = 0.25, 0.5, 0.3, 660.0
AUDIO_PROBE_QUESTION = "How many beeps do you hear in this audio clip? Answer with one number only."
TEXT_PROBE = "Reply with the single word: ready"
NO_AUDIO_REPLY = "I did not receive any audio."
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_WORDS = {w: i for i, w in enumerate(_NUMBER_WORDS)}
_NUMBER = re.compile(r"\b(\d+|" + "|".join(_WORDS) + r")\b", re.IGNORECASE)


# ---------------------------------------------------------------- the probe clip
def beeps(n: int, sr: int = SR) -> np.ndarray:
    """Mono float32: ``n`` tone bursts of BEEP_S seconds, GAP_S apart, with silence before and after."""
    if not 1 <= n <= 10:
        raise ValueError(f"beep count must be 1..10, got {n}")
    t = np.arange(int(BEEP_S * sr)) / sr
    ramp = np.minimum(
        1.0, np.minimum(t, t[::-1]) / 0.01
    )  # 10 ms fades: no clicks that sound like extra beeps
    tone = (0.5 * np.sin(2 * np.pi * TONE_HZ * t) * ramp).astype(np.float32)
    gap, pad = np.zeros(int(GAP_S * sr), np.float32), np.zeros(int(PAD_S * sr), np.float32)
    parts = [pad]
    for i in range(n):
        parts += [tone] + ([gap] if i < n - 1 else [])
    return np.concatenate([*parts, pad])


def wav_bytes(audio: np.ndarray, sr: int = SR) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return write_wav(Path(tmp) / "probe.wav", audio, sr).read_bytes()


def count_beeps(audio: np.ndarray, sr: int = SR) -> int:
    """Tone bursts in ``audio``: 10 ms RMS frames above 30 % of the loudest, short gaps and blips ignored."""
    hop = max(1, sr // 100)
    frames = len(audio) // hop
    if frames == 0:
        return 0
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1))
    if rms.max() < 1e-3:
        return 0
    on = rms > 0.3 * rms.max()
    runs, start = [], None
    for i, flag in enumerate([*on, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append([start, i])
            start = None
    merged: list[list[int]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] < 6:  # a dip under 60 ms is the same beep
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    return sum(1 for a, b in merged if b - a >= 4)  # under 40 ms is a click, not a beep


def first_number(text: str) -> int | None:
    m = _NUMBER.search(text or "")
    if m is None:
        return None
    word = m.group(1).lower()
    return _WORDS[word] if word in _WORDS else int(word)


# ---------------------------------------------------------------- for stand-in servers
def _audio_from_part(part: dict[str, Any]) -> np.ndarray | None:
    """Decode an OpenAI/vLLM audio content part (``audio_url`` data:/file:// or ``input_audio``)."""
    if part.get("type") == "input_audio":
        data = base64.b64decode(part["input_audio"]["data"])
    elif part.get("type") == "audio_url":
        url = part["audio_url"]["url"]
        if url.startswith("data:"):
            data = base64.b64decode(url.split(",", 1)[1])
        elif url.startswith("file://"):
            return load_audio(unquote(urlparse(url).path))
        else:
            return None
    else:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.wav"
        path.write_bytes(data)
        return load_audio(path)


def answer_audio_probe(messages: list[dict[str, Any]]) -> str | None:
    """The honest answer to doctor's audio probe, or None when ``messages`` is not that probe.

    Counts the beeps of the audio part that arrived; with no audio part it says so (and the check fails).
    """
    last = messages[-1] if messages else {}
    content = last.get("content")
    if not isinstance(content, list):
        return NO_AUDIO_REPLY if isinstance(content, str) and AUDIO_PROBE_QUESTION in content else None
    texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    if not any(AUDIO_PROBE_QUESTION in t for t in texts):
        return None
    for part in content:
        if isinstance(part, dict) and (audio := _audio_from_part(part)) is not None:
            return str(count_beeps(audio))
    return NO_AUDIO_REPLY


# ---------------------------------------------------------------- the checks
@dataclass
class CheckResult:
    name: str
    ok: bool | None  # None: not run
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]
        return f"{status}  {self.name:<7} {self.detail}" + (
            f"  ({self.seconds:.1f} s)" if self.ok is not None else ""
        )


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` → ``http://host:8000/v1``; a URL with a path is kept as given."""
    url = url.rstrip("/")
    return url + "/v1" if urlparse(url).path in ("", "/") else url


class NotOpenAIServer(Exception):
    """The endpoint answers HTTP, but not the OpenAI API (an HTML page, JSON of another shape)."""


def _describe(exc: Exception, base_url: str) -> tuple[str, bool]:
    """(message, reachable) for an openai client exception."""
    import openai

    if isinstance(exc, NotOpenAIServer):
        return (
            f"{base_url} is not an OpenAI-compatible server: GET {base_url}/models answered {exc}, not the OpenAI "
            "model list; give the API root of a vLLM (or other OpenAI-compatible) server as --base-url",
            False,
        )
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out waiting for {base_url}", True
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect to {base_url} ({exc.__cause__ or exc})", False
    if isinstance(exc, openai.APIStatusError):
        body = exc.response.text.strip().replace("\n", " ")
        return f"HTTP {exc.status_code} from {base_url}: {body[:300]}", True
    return f"{type(exc).__name__}: {exc}", True


def _chat(client, model: str, content: Any, max_tokens: int) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0.0
    )
    return (reply.choices[0].message.content or "").strip() if reply.choices else ""


def _prompt_tokens(client, model: str, content: Any) -> int:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=1, temperature=0.0
    )
    usage = getattr(reply, "usage", None)
    return int(getattr(usage, "prompt_tokens", 0) or 0)


def _tokens_check(client, model: str, url: str) -> tuple[bool, str]:
    text = {"type": "text", "text": AUDIO_PROBE_QUESTION}
    with_audio = _prompt_tokens(client, model, [{"type": "audio_url", "audio_url": {"url": url}}, text])
    without = _prompt_tokens(client, model, [text])
    if with_audio > without > 0:
        return (
            True,
            f"{with_audio} prompt tokens with the audio part, {without} without: the audio reaches the model",
        )
    if without == 0:
        return (
            False,
            "the server reports no usage.prompt_tokens: cannot tell whether the audio reaches the model",
        )
    return False, (
        f"{with_audio} prompt tokens with the audio part, {without} without: the audio part is dropped before "
        "the model (start vLLM with --limit-mm-per-prompt allowing audio; check the model is Omni)"
    )


def _audio_check(client, model: str, n: int, url: str) -> tuple[bool, str]:
    content = [
        {"type": "audio_url", "audio_url": {"url": url}},
        {"type": "text", "text": AUDIO_PROBE_QUESTION},
    ]
    answer = _chat(client, model, content, max_tokens=32)
    got = first_number(answer)
    if got == n:
        return True, f"counted {n} beeps: the model hears the audio part"
    return False, (
        f"expected {n} beeps, answer {answer[:200]!r}: the audio part did not reach the model or it "
        "cannot hear it (start vLLM with --limit-mm-per-prompt allowing audio; check the model is Omni)"
    )


def run_checks(
    base_url: str,
    model: str,
    *,
    api_key: str = "EMPTY",
    n_beeps: int | None = None,
    media_dir: Path | None = None,
    timeout: float = 120.0,
    echo: Callable[[str], None] = print,
    protocol_only: bool = False,
) -> list[CheckResult]:
    """Run every check in order, printing each result as it comes; stop early if the server is unreachable.

    ``protocol_only``: skip the beep counts (audio, file), which need a model that can hear.
    """
    import openai

    base_url = normalize_base_url(base_url)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
    n = n_beeps if n_beeps is not None else int(np.random.default_rng().integers(2, 6))
    audio = wav_bytes(beeps(n))

    def models() -> tuple[bool, str]:
        try:
            served = [str(m.id) for m in client.models.list()]
        except openai.APIStatusError as exc:
            kind = exc.response.headers.get("content-type", "").split(";")[0] or "no content type"
            if "json" not in kind:  # a web page or another service on that port
                raise NotOpenAIServer(f"HTTP {exc.status_code} with {kind}") from None
            raise
        except (openai.APIConnectionError, openai.AuthenticationError):
            raise
        except (
            Exception
        ) as exc:  # 200 with HTML or JSON of another shape: the client cannot read a model list
            raise NotOpenAIServer(f"something else ({type(exc).__name__})") from None
        if model in served:
            return True, f"{model!r} is served"
        return False, f"{model!r} is not served by {base_url}; it lists {served}"

    def text() -> tuple[bool, str]:
        answer = _chat(client, model, TEXT_PROBE, max_tokens=16)
        return (True, f"answered {answer[:60]!r}") if answer else (False, "empty answer to a text request")

    data_url = "data:audio/wav;base64," + base64.b64encode(audio).decode()

    def tokens() -> tuple[bool, str]:
        return _tokens_check(client, model, data_url)

    def audio_data() -> tuple[bool, str]:
        return _audio_check(client, model, n, data_url)

    def audio_file() -> tuple[bool, str]:
        path = Path(media_dir).resolve() / f"cot-distill-doctor-{n}-beeps.wav"
        path.write_bytes(audio)
        try:
            ok, detail = _audio_check(client, model, n, path.as_uri())
        finally:
            path.unlink(missing_ok=True)
        hint = "" if ok else f" (is {path.parent} under the server's --allowed-local-media-path?)"
        return ok, detail + hint

    checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("models", models),
        ("text", text),
        ("tokens", tokens),
    ]
    if not protocol_only:
        checks.append(("audio", audio_data))
        if media_dir is not None:
            checks.append(("file", audio_file))
    results: list[CheckResult] = []
    reachable, stopped = True, ""
    for name, check in checks:
        if not reachable:
            result = CheckResult(name, None, f"not run: {stopped}")
        else:
            t0 = time.perf_counter()
            try:
                ok, detail = check()
            except Exception as exc:  # report the failure of this check precisely, then go on
                detail, reachable = _describe(exc, base_url)
                stopped = (
                    "not an OpenAI-compatible server"
                    if isinstance(exc, NotOpenAIServer)
                    else "the server is unreachable"
                )
                ok = False
            result = CheckResult(name, ok, detail, time.perf_counter() - t0)
        results.append(result)
        echo(result.line())
    return results
