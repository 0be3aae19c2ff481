"""TeacherClient over real HTTP against the stand-in: retries per fault kind, give-up, spreading, backoff."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from cot_distill.client import TeacherClient, TeacherRequestError
from cot_distill.config import RetryConfig
from cot_distill.standin import STANDIN_MODEL
from distill_helpers import read_lines
from msa_core import read_mmsa

FAST = RetryConfig(max_retries=10, backoff_base_s=0.01, backoff_max_s=0.05, request_timeout_s=0.5)


def _body(dataset: Path, i: int = 0, model: str = STANDIN_MODEL) -> dict:
    clip = read_mmsa(dataset, "sims").clips[i]
    return {
        "model": model,
        "seed": i,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": clip.video_path.as_uri()}},
                    {"type": "text", "text": "x"},
                ],
            }
        ],
    }


def _ask(urls: list[str], bodies: list[dict], retry: RetryConfig = FAST):
    async def go():
        async with TeacherClient(urls, "sk-test", retry) as client:
            answers = await asyncio.gather(*(client.chat(b) for b in bodies), return_exceptions=True)
            return answers, client.totals

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("http429", "http429"), ("http500", "http500"), ("drop", "connection"), ("slow", "timeout")],
)
def test_each_fault_kind_is_retried_until_answered(standin, dataset: Path, fault: str, kind: str):
    server = standin(faults=f"{fault}=0.5", seed=3)
    # Only the slow fault should time out: a generous timeout elsewhere keeps a busy CI machine from adding
    # timeout retries that the fault count would not explain.
    timeout_s = 1.0 if kind == "timeout" else 10.0  # the stand-in sleeps 1.5 s on a slow fault
    retry = FAST.model_copy(update={"request_timeout_s": timeout_s})
    answers, totals = _ask([server.base_url], [_body(dataset, i) for i in range(6)], retry)
    assert all(not isinstance(a, Exception) and a.texts[0].startswith("<polarity>") for a in answers)
    log = read_lines(server.teacher.request_log)
    faulted = [r for r in log if r["fault"] == fault]
    assert faulted, "the seeded noise produced no fault of this kind"
    assert totals.errors[kind] == len(faulted) == totals.retries
    assert totals.completed == 6 and totals.requests == len(log)
    assert max(a.tries for a in answers) > 1


@pytest.mark.parametrize(
    ("fault", "kind"), [("http429", "http429"), ("http500", "http500"), ("drop", "connection")]
)
def test_gives_up_after_max_retries(standin, dataset: Path, fault: str, kind: str):
    server = standin(faults=f"{fault}=1.0")
    retry = RetryConfig(max_retries=2, backoff_base_s=0.01, backoff_max_s=0.02, request_timeout_s=0.5)
    (err,), totals = _ask([server.base_url], [_body(dataset)], retry)
    assert isinstance(err, TeacherRequestError) and err.kind == kind and err.attempts == 3
    assert len(read_lines(server.teacher.request_log)) == 3 and totals.failed == 1


def test_client_errors_are_not_retried(standin, dataset: Path):
    server = standin()
    (err,), _ = _ask([server.base_url], [_body(dataset, model="not-served")])
    assert isinstance(err, TeacherRequestError) and err.kind == "http404" and err.attempts == 1
    assert len(read_lines(server.teacher.request_log)) == 1


def test_requests_spread_over_several_base_urls(standin, dataset: Path):
    a, b = standin(latency=0.05), standin(latency=0.05)
    answers, totals = _ask([a.base_url, b.base_url], [_body(dataset, i % 24) for i in range(40)])
    assert not any(isinstance(x, Exception) for x in answers)
    counts = [len(read_lines(s.teacher.request_log)) for s in (a, b)]
    assert sum(counts) == 40 and min(counts) >= 15  # least-in-flight keeps them even
    assert totals.per_base_url == {a.base_url: counts[0], b.base_url: counts[1]}
    assert totals.prompt_tokens > 0 and totals.completion_tokens > 0


def test_backoff_is_jittered_under_a_doubling_ceiling():
    client_cls = TeacherClient.__new__(TeacherClient)
    client_cls.retry = RetryConfig(backoff_base_s=0.5, backoff_max_s=4.0)
    client_cls._rng = random.Random(0)
    waits = [[client_cls.backoff(k) for _ in range(200)] for k in range(6)]
    for k, ws in enumerate(waits):
        ceiling = min(4.0, 0.5 * 2**k)
        assert min(ws) >= 0 and max(ws) <= ceiling and max(ws) > 0.7 * ceiling  # full jitter fills the range
        assert len(set(ws)) > 150
    assert client_cls.backoff(0, suggested=2.0) >= 2.0  # Retry-After is honoured
    assert client_cls.backoff(0, suggested=100.0) <= 4.0  # within the cap


def test_a_refused_connection_is_reported_as_such_not_as_a_timeout(dataset: Path):
    retry = RetryConfig(max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02, connect_timeout_s=2)
    (err,), totals = _ask(["http://127.0.0.1:9/v1"], [_body(dataset)], retry)
    assert isinstance(err, TeacherRequestError) and err.kind == "refused" and err.attempts == 2
    assert "127.0.0.1:9/v1: connection refused" in str(err) and "timed out" not in str(err)
    assert totals.errors == {"refused": 2}


def test_an_unknown_host_is_reported_as_a_dns_failure():
    """The aiohttp transport wraps a failed lookup as a connect timeout; the cause underneath is what counts.
    (Built by hand: a live lookup would depend on the machine's resolver.)"""
    import socket

    import httpx2
    import openai
    from cot_distill.client import _classify, transport_cause

    lookup = socket.gaierror(-2, "Name or service not known")
    inner = httpx2.ConnectTimeout("Cannot connect to host no-such-host.invalid:8000")
    inner.__cause__ = lookup
    exc = openai.APITimeoutError(request=httpx2.Request("POST", "http://no-such-host.invalid:8000/v1"))
    exc.__cause__ = inner
    assert transport_cause(exc) == ("dns", "cannot resolve the host name (Name or service not known)")
    assert _classify(exc)[0] == "dns"
    assert transport_cause(openai.APITimeoutError(request=httpx2.Request("GET", "http://h/v1"))) is None
