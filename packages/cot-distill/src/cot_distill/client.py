"""The teacher client: the official ``openai`` AsyncOpenAI over its aiohttp transport, shared by several endpoints.

- Transport: ``openai.DefaultAioHttpClient`` (aiohttp under the SDK: far less CPU per request than httpx), one
  connection pool shared by one AsyncOpenAI per base URL; the SDK's own retries are off (``max_retries=0``).
- Hot path: request bodies arrive pre-serialised (bytes built once per clip, see cot_distill.generate) and go
  through ``AsyncOpenAI.post(..., content=..., cast_to=httpx2.Response)``, so the SDK neither re-validates the
  multimodal message list nor builds pydantic response models; the JSON answer is read with ``json.loads``.
- Spread: each request goes to the endpoint with the fewest requests in flight (ties rotate).
- Retries: HTTP 429 (honouring Retry-After), 5xx, timeouts and dropped connections, with exponential backoff and
  full jitter; anything else (400, 401, 404) fails at once. The concurrency cap lives in the caller (a fixed pool
  of workers in cot_distill.generate).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from msa_core import MSAError
from openai import AsyncOpenAI, DefaultAioHttpClient

from cot_distill.config import RetryConfig

CHAT_PATH = "/chat/completions"


class TeacherRequestError(Exception):
    """A request that failed for good (retries exhausted, or a non-retryable status)."""

    def __init__(self, kind: str, detail: str, *, attempts: int):
        self.kind = kind
        self.detail = detail
        self.attempts = attempts
        super().__init__(f"{kind} after {attempts} tr{'y' if attempts == 1 else 'ies'}: {detail}")


class TeacherUnavailable(MSAError):
    """The endpoint check before a batch failed: nothing was asked, the message says what to fix."""


@dataclass
class ChatAnswer:
    """One completed chat request."""

    texts: list[str | None]
    finish_reasons: list[str | None]
    prompt_tokens: int
    completion_tokens: int
    base_url: str
    latency_s: float
    tries: int


@dataclass
class ClientTotals:
    """Counters over the client's lifetime (reported in stats.json)."""

    requests: int = 0
    """HTTP requests sent, retries included."""
    completed: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    per_base_url: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "retries": self.retries,
            "failed": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "errors": dict(self.errors),
            "per_base_url": dict(self.per_base_url),
        }


def transport_cause(exc: BaseException) -> tuple[str, str] | None:
    """(kind, detail) when the root of ``exc`` is a refused connection or a failed DNS lookup.

    The aiohttp transport reports both as httpx's ConnectTimeout ("Request timed out."): look underneath.
    """
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return "dns", f"cannot resolve the host name ({seen.strerror or seen})"
        if isinstance(seen, ConnectionRefusedError):
            return "refused", "connection refused (nothing listens on that host and port)"
        seen = seen.__cause__ or seen.__context__
    return None


def _classify(exc: BaseException) -> tuple[str, bool, float | None]:
    """(error kind, retryable, server-suggested wait) for an exception raised by the SDK."""
    if isinstance(exc, openai.APIConnectionError) and (cause := transport_cause(exc)):
        return cause[0], True, None
    if isinstance(exc, openai.APITimeoutError):
        # The vendored aiohttp transport maps a dropped connection to httpx's ConnectTimeout: look underneath.
        return ("connection" if _dropped(exc) else "timeout"), True, None
    if isinstance(exc, openai.APIConnectionError):
        return "connection", True, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        wait = None
        retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = None
        if status == 429:
            return "http429", True, wait
        if status >= 500:
            return f"http{status}", True, wait
        if status == 408:
            return "http408", True, wait
        return f"http{status}", False, None
    if isinstance(exc, (asyncio.TimeoutError, ConnectionError, httpx2.TransportError)):
        return "connection", True, None
    if isinstance(exc, ValueError):  # a 200 whose body is not a chat completion
        return "bad_response", True, None
    raise exc


class TeacherClient:
    """Chat completions against one or more OpenAI-compatible endpoints, with retries and usage totals."""

    def __init__(
        self, base_urls: list[str], api_key: str, retry: RetryConfig, *, rng: random.Random | None = None
    ):
        if not base_urls:
            raise ValueError("at least one base URL is needed")
        self.retry = retry
        self.base_urls = list(base_urls)
        timeout = httpx2.Timeout(retry.request_timeout_s, connect=retry.connect_timeout_s)
        self._http = DefaultAioHttpClient(timeout=timeout)
        self._clients = [
            AsyncOpenAI(
                base_url=url,
                api_key=api_key or "EMPTY",
                http_client=self._http,
                max_retries=0,
                timeout=timeout,
            )
            for url in self.base_urls
        ]
        # Absolute URLs: the SDK then parses each URL once instead of merging a path into its base URL.
        self._chat_urls = [f"{url.rstrip('/')}{CHAT_PATH}" for url in self.base_urls]
        self._in_flight = [0] * len(self._clients)
        self._turn = 0
        self._rng = rng or random.Random()
        self.totals = ClientTotals()

    def _pick(self) -> int:
        n = len(self._clients)
        if n == 1:
            return 0
        self._turn = (self._turn + 1) % n
        order = [(self._turn + i) % n for i in range(n)]
        return min(order, key=self._in_flight.__getitem__)

    def backoff(self, retry_index: int, suggested: float | None = None) -> float:
        """Seconds to wait before retry ``retry_index`` (0-based): full jitter under a doubling ceiling."""
        ceiling = min(self.retry.backoff_max_s, self.retry.backoff_base_s * (2**retry_index))
        wait = self._rng.uniform(0, ceiling)
        if suggested is not None:
            wait = max(wait, min(suggested, self.retry.backoff_max_s))
        return wait

    async def chat_raw(self, body: bytes, *, headers: dict[str, str] | None = None) -> ChatAnswer:
        """POST a serialised chat-completions body; retry transient failures; return the answer texts."""
        tries = 0
        while True:
            tries += 1
            index = self._pick()
            client = self._clients[index]
            self._in_flight[index] += 1
            self.totals.requests += 1
            started = time.perf_counter()
            wait: float | None = None
            try:
                response = await client.post(
                    self._chat_urls[index],
                    cast_to=httpx2.Response,
                    content=body,
                    options={"headers": headers or {}},
                )
                try:
                    data = json.loads(response.content)
                except ValueError:
                    head = response.content[:80].decode("utf-8", "replace")
                    raise ValueError(f"not a chat completion: the body is not JSON ({head!r})") from None
                choices = data["choices"]
                texts = [c.get("message", {}).get("content") for c in choices]
                finish = [c.get("finish_reason") for c in choices]
                usage = data.get("usage") or {}
            except Exception as exc:
                if isinstance(exc, (KeyError, TypeError)):
                    exc = ValueError(f"not a chat completion: {exc!r}")
                kind, retryable, suggested = _classify(exc)
                self.totals.errors[kind] += 1
                if not retryable or tries > self.retry.max_retries:
                    self.totals.failed += 1
                    cause = transport_cause(exc)
                    detail = f"{self.base_urls[index]}: {cause[1]}" if cause else _short(exc)
                    raise TeacherRequestError(kind, detail, attempts=tries) from None
                self.totals.retries += 1
                wait = self.backoff(tries - 1, suggested)
            finally:
                self._in_flight[index] -= 1
            if wait is not None:
                await asyncio.sleep(wait)
                continue
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            totals = self.totals
            totals.completed += 1
            totals.prompt_tokens += prompt_tokens
            totals.completion_tokens += completion_tokens
            totals.per_base_url[self.base_urls[index]] += 1
            return ChatAnswer(
                texts,
                finish,
                prompt_tokens,
                completion_tokens,
                self.base_urls[index],
                time.perf_counter() - started,
                tries,
            )

    async def chat(self, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> ChatAnswer:
        """Convenience: serialise a body dict and send it."""
        return await self.chat_raw(json.dumps(body).encode(), headers=headers)

    async def list_models(self) -> list[str]:
        """Model ids served by the first endpoint."""
        page = await self._clients[0].models.list()
        return [m.id for m in page.data]

    async def preflight(self, model: str, api_key_env: str, timeout_s: float = 30.0) -> None:
        """Before a batch: every endpoint answers GET /models, accepts the key and lists ``model``.

        Raises TeacherUnavailable naming the endpoint and the cause (refused, DNS, HTTP 401/404/5xx, not an
        OpenAI API, model not served) so a run stops at once instead of failing every request.
        """
        for url, client in zip(self.base_urls, self._clients, strict=True):
            where = f"teacher endpoint {url}"
            try:
                page = await asyncio.wait_for(client.models.list(), timeout_s)
                served = [m.id for m in page.data]
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (401, 403):
                    raise TeacherUnavailable(
                        f"{where} refused the API key (HTTP {status}): export the key in ${api_key_env} "
                        "(or name another variable with --api-key-env)"
                    ) from None
                if status == 404:
                    raise TeacherUnavailable(
                        f"{where}: GET /models gave HTTP 404; is this the OpenAI API root (usually ending "
                        "in /v1)?"
                    ) from None
                body = exc.response.text.strip().replace("\n", " ")[:200] if exc.response is not None else ""
                raise TeacherUnavailable(f"{where}: GET /models gave HTTP {status} {body}".rstrip()) from None
            except (TimeoutError, openai.APIConnectionError, httpx2.TransportError) as exc:
                cause = transport_cause(exc)
                if cause is not None and cause[0] == "refused":
                    detail = (
                        "connection refused: is the teacher running? (`cot-distill serve` prints its command)"
                    )
                elif cause is not None:
                    detail = cause[1]
                else:
                    detail = f"no answer to GET /models within {timeout_s:g} s ({_short(exc)})"
                raise TeacherUnavailable(f"{where}: {detail}") from None
            except Exception as exc:  # a 200 that is no model list: not an OpenAI-compatible server
                raise TeacherUnavailable(
                    f"{where}: the answer to GET /models is not an OpenAI model list ({_short(exc)}); "
                    "is this an OpenAI-compatible server?"
                ) from None
            if model not in served:
                raise TeacherUnavailable(
                    f"{where} does not serve model {model!r}; it serves {served}: fix --model"
                )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> TeacherClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _dropped(exc: BaseException) -> bool:
    import aiohttp

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
