"""`cot-distill generate`: ask the teacher about every clip, store every answer, filter, summarise.

Flow: read the clips (msa_core.read_mmsa) → plan.json (each clip's request content key: clip id, media hash,
prompt version and text, model, sampling params) → look up stored answers in responses.jsonl → a fixed pool of
``concurrency`` workers takes (clip, sample) jobs and asks until an answer passes the re-ask filters or
``max_attempts`` answers are stored → outcomes.summarize writes accepted/rejected/stats (also after Ctrl-C).

Hot path (measured by bench/distill_throughput.py): each clip's request body is serialised once, ahead of the
workers, by a prefetcher (wav extraction and base64 happen there, in a thread); a request only appends its seed.
Answers are appended with one os.write each; the progress bar redraws from counters twice a second.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msa_core import (
    Clip,
    ConfigError,
    DataError,
    DatasetSpec,
    MediaError,
    MSAError,
    artifacts,
    get_spec,
    read_mmsa,
)
from msa_core.media import content_hash, extract_wav
from msa_core.outdir import claim_output_dir
from msa_core.skipped import Skip, media_reason, write_skipped

from cot_distill.cache import JsonlAppender, request_key, write_json_atomic
from cot_distill.client import ClientTotals, TeacherClient, TeacherRequestError
from cot_distill.config import DistillConfig, dump_config
from cot_distill.filters import AnswerFilter, Verdict, judge_messages
from cot_distill.outcomes import (
    FAILURES,
    JUDGEMENTS,
    PLAN,
    RESPONSES,
    evaluate,
    judge_id,
    load_stored,
    summarize,
)
from cot_distill.teacher_prompt import TeacherPrompt, dc_regex, load_teacher_prompt

CACHE_KEY_HEADER = "X-Cache-Key"
WAV_DIR = artifacts.WAV_DIR
PREFETCHERS = 2
"""Threads serialising request bodies ahead of the workers."""


@dataclass(eq=False)
class ClipRequest:
    """Everything about one clip's requests that does not change per sample/attempt."""

    clip: Clip
    media_hash: str
    content_key: str
    body_head: bytes | None = None
    """The serialised body without its closing brace (a seed is appended per request); freed when done."""
    ready: asyncio.Future[None] | None = None
    pending: int = 0
    """Sample jobs of this clip not finished yet."""


@dataclass(eq=False)
class SampleJob:
    req: ClipRequest
    sample: int
    answers: list[tuple[dict[str, Any], Verdict]] = field(default_factory=list)
    judged: bool = True
    """Whether the last verdict already includes the judge's (stored answers are evaluated with it)."""


@dataclass
class GenerateResult:
    out: Path
    stats: dict[str, Any]
    requests: int
    """HTTP requests sent in this run (retries included)."""
    completed: int
    """Requests answered in this run."""
    request_phase_s: float
    interrupted: bool
    request_phase_cpu_s: float = 0.0
    """CPU time of this process during the request phase (all threads)."""
    warnings: list[str] = field(default_factory=list)
    """Things worked around (labels clipped onto the scale), for the CLI to print."""


class GenerateInterrupted(KeyboardInterrupt):
    """Ctrl-C during generate: the summary of what finished is written; ``result`` describes it."""

    def __init__(self, result: GenerateResult):
        super().__init__("interrupted")
        self.result = result


def structured_regex(cfg: DistillConfig) -> str:
    """The structured-output regex of a run: the dataset's scale, the filter's reasoning length."""
    return dc_regex(get_spec(cfg.dataset), cfg.filters.min_think_chars, cfg.filters.max_think_chars)


def sampling_signature(cfg: DistillConfig) -> dict[str, Any]:
    """Everything besides prompt and media that changes an answer (part of the cache key)."""
    s = cfg.sampling
    return {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
        "seed": s.seed,
        "extra": s.extra,
        "structured_outputs": {"regex": structured_regex(cfg)} if cfg.structured_outputs else None,
        "mm_processor_kwargs": cfg.mm_processor_kwargs,
        "audio_part": cfg.send_audio,
    }


def request_seed(base: int | None, sample: int, attempt: int) -> int | None:
    """Each (sample, attempt) gets its own seed: a fixed one would repeat a rejected answer on re-ask."""
    return None if base is None else base + 1000 * sample + attempt


def answer_key(content_key: str, sample: int, attempt: int) -> str:
    """The cache key of one request: the clip's content key plus which sample and attempt it is."""
    return request_key(
        clip_id="",
        media_hash=content_key,
        prompt_version="",
        system="",
        user="",
        model="",
        sampling={},
        sample=sample,
        attempt=attempt,
    )


def media_url(path: Path, mode: str, mime: str) -> str:
    """A ``file://`` URL (the server reads the file) or a ``data:`` URL (the bytes travel in the request)."""
    if mode == "file":
        return path.resolve().as_uri()
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


class Generator:
    """One generate run over a resolved config."""

    def __init__(self, cfg: DistillConfig, *, config_dir: Path | None = None):
        if not cfg.data:
            raise ConfigError(
                "no dataset: give --data DIR (an MMSA root with label.csv) or `data:` in the config"
            )
        self.cfg = cfg
        self.spec: DatasetSpec = get_spec(cfg.dataset)
        self.teacher: TeacherPrompt = load_teacher_prompt(cfg.teacher_prompt, relative_to=config_dir)
        self.out = Path(cfg.out)
        self.filter = AnswerFilter(cfg.filters, self.spec)
        self.data_root = Path(cfg.data).resolve()
        # Derived audio never goes into the dataset folder (often read-only on clusters): OUT/wav16k by default.
        self.wav_dir = Path(cfg.wav_dir) if cfg.wav_dir else self.out / WAV_DIR
        # file:// URLs work only inside the server's --allowed-local-media-path (the data root): a wav elsewhere
        # travels in the request as a data: URL (16 kHz mono 16-bit: ~32 kB per second of audio).
        self.audio_url_mode = (
            "file"
            if cfg.media_url == "file" and self.wav_dir.resolve().is_relative_to(self.data_root)
            else "data"
        )
        self.skipped: list[Skip] = []
        self.warnings: list[str] = []
        self.judge = judge_id(cfg.filters.judge, cfg.model) if cfg.filters.judge.enabled else None
        self.counts = {"accepted": 0, "rejected": 0, "failed": 0, "done": 0, "cached": 0}
        self.totals: ClientTotals | None = None
        self.request_phase_s = 0.0
        self.request_phase_cpu_s = 0.0
        self._sampling = sampling_signature(cfg)

    # planning ---------------------------------------------------------------------------------------------------
    def clips(self) -> list[Clip]:
        split = None if self.cfg.split == "all" else self.cfg.split
        ds = read_mmsa(self.data_root, self.spec, split=split, on_bad_label=self.cfg.on_bad_label)
        self.warnings += ds.warnings()
        clips, skipped = ds.clips, ds.skipped
        if self.cfg.limit:
            clips = clips[: self.cfg.limit]
        self.skipped = list(skipped)
        if not clips and not skipped:
            raise DataError(f"no clips in split {self.cfg.split!r}", file=self.data_root / "label.csv")
        return clips

    def plan(self, clips: list[Clip]) -> list[ClipRequest]:
        """Content keys for every clip, written to plan.json before any request (outcomes are decided from it)."""
        reqs = []
        for clip in clips:
            prompt = self.teacher.build(clip.text, self.spec)
            try:
                media_hash = content_hash(clip.video_path)
            except MediaError as exc:
                self.skipped.append(
                    Skip(clip.id, self.spec.name, str(clip.video_path), "unreadable", exc.reason)
                )
                continue
            content_key = request_key(
                clip_id=clip.id,
                media_hash=media_hash,
                prompt_version=prompt.version,
                system=prompt.system,
                user=prompt.user,
                model=self.cfg.model,
                sampling=self._sampling,
                sample=-1,
                attempt=-1,
            )
            reqs.append(ClipRequest(clip, media_hash, content_key))
        clip_rows = [
            {
                "id": r.clip.id,
                "video_id": r.clip.video_id,
                "clip_id": r.clip.clip_id,
                "split": r.clip.mode,
                "label": r.clip.label,
                "text": r.clip.text,
                "video_path": str(r.clip.video_path),
                "media_hash": r.media_hash,
                "content_key": r.content_key,
            }
            for r in reqs
        ]
        write_json_atomic(
            self.out / PLAN,
            {
                "dataset": self.spec.name,
                "data": str(self.data_root),
                "split": self.cfg.split,
                "samples_per_clip": self.cfg.samples_per_clip,
                "prompt_version": self.teacher.full_version,
                "model": self.cfg.model,
                "clips": clip_rows,
            },
        )
        return reqs

    def jobs(self, reqs: list[ClipRequest]) -> deque[SampleJob]:
        """Sample jobs still needing a request, with their stored answers (repairs a torn last line first)."""
        stored = load_stored(self.out, repair=True)
        jobs: deque[SampleJob] = deque()
        for req in reqs:
            for sample in range(self.cfg.samples_per_clip):
                job = SampleJob(req, sample)
                for attempt, rec in sorted(stored.answers.get((req.content_key, sample), {}).items()):
                    if attempt != len(job.answers):
                        break
                    verdict = evaluate(
                        self.filter, rec, req.clip.label, judge=self.judge, judgements=stored.judgements
                    )
                    job.answers.append((rec, verdict))
                if job.answers and self._finished(job):
                    self.counts["cached"] += 1
                    self._count(job, failed=False)
                    continue
                req.pending += 1
                jobs.append(job)
        return jobs

    def _finished(self, job: SampleJob) -> bool:
        verdict = job.answers[-1][1]
        if verdict.reason == "judge_missing":
            return False
        return not self.filter.reasks(verdict) or len(job.answers) >= self.cfg.max_attempts

    # request bodies ---------------------------------------------------------------------------------------------
    def build_head(self, req: ClipRequest) -> bytes:
        """Serialise the clip's request body without its closing brace (wav extraction, base64: runs in a thread)."""
        cfg, clip = self.cfg, req.clip
        prompt = self.teacher.build(clip.text, self.spec)
        parts: list[dict[str, Any]] = [
            {
                "type": "video_url",
                "video_url": {"url": media_url(clip.video_path, cfg.media_url, "video/mp4")},
            }
        ]
        if cfg.send_audio:
            # The audio track goes as its own part: per-request use_audio_in_video needs a server flag and
            # fails on clips without audio (docs/architecture.md, "The teacher through vLLM").
            wav = extract_wav(clip.video_path, out_dir=self.wav_dir)
            parts.append(
                {"type": "audio_url", "audio_url": {"url": media_url(wav, self.audio_url_mode, "audio/wav")}}
            )
        parts.append({"type": "text", "text": prompt.user})
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": [{"role": "system", "content": prompt.system}, {"role": "user", "content": parts}],
            "temperature": cfg.sampling.temperature,
            "top_p": cfg.sampling.top_p,
            "max_tokens": cfg.sampling.max_tokens,
            **cfg.sampling.extra,
        }
        if cfg.mm_processor_kwargs:
            body["mm_processor_kwargs"] = cfg.mm_processor_kwargs
        if cfg.structured_outputs:
            # vLLM >= 0.12 reads only this field; the old guided_regex/guided_json are silently ignored.
            body["structured_outputs"] = {"regex": structured_regex(cfg)}
        return json.dumps(body, ensure_ascii=False).encode()[:-1]

    def body(self, head: bytes, sample: int, attempt: int) -> bytes:
        seed = request_seed(self.cfg.sampling.seed, sample, attempt)
        return head + (b"}" if seed is None else b', "seed": %d}' % seed)

    async def _prefetch(self, order: Iterator[ClipRequest], slots: asyncio.Semaphore) -> None:
        """Serialise bodies in job order, at most ``slots`` clips ahead (bounds memory with data: URLs)."""
        for req in order:
            await slots.acquire()
            try:
                req.body_head = await asyncio.to_thread(self.build_head, req)
            except Exception as exc:  # MediaError and kin: the clip's samples fail with it
                req.ready.set_exception(exc)
                req.ready.exception()  # mark retrieved; each waiting sample re-raises it
            else:
                req.ready.set_result(None)

    async def _head(self, req: ClipRequest) -> bytes:
        if not req.ready.done():
            await asyncio.shield(req.ready)
        req.ready.result()  # re-raises a preparation error
        return req.body_head

    # the run ----------------------------------------------------------------------------------------------------
    async def _run_sample(
        self,
        job: SampleJob,
        client: TeacherClient,
        stores: dict[str, JsonlAppender],
        slots: asyncio.Semaphore,
    ) -> None:
        req = job.req
        failed = False
        try:
            while True:
                if job.answers:
                    rec, verdict = job.answers[-1]
                    if self.judge is not None and (
                        (verdict.ok and not job.judged) or verdict.reason == "judge_missing"
                    ):
                        verdict = await self._judge(rec, req.clip, client, stores)
                        job.answers[-1] = (rec, verdict)
                        job.judged = True
                    if not self.filter.reasks(verdict):
                        break
                if len(job.answers) >= self.cfg.max_attempts:
                    break
                if not await self._ask(job, client, stores):
                    failed = True
                    break
        finally:
            req.pending -= 1
            if req.pending == 0:
                req.body_head = None
                slots.release()
        self._count(job, failed)

    async def _ask(self, job: SampleJob, client: TeacherClient, stores: dict[str, JsonlAppender]) -> bool:
        """One request for the job's next attempt; stores the answer (True) or the failure (False)."""
        req, attempt = job.req, len(job.answers)
        key = answer_key(req.content_key, job.sample, attempt)
        try:
            body = self.body(await self._head(req), job.sample, attempt)
            answer = await client.chat_raw(body, headers={CACHE_KEY_HEADER: key})
        except (TeacherRequestError, MSAError, OSError) as exc:  # failed for good, or unusable media
            kind = exc.kind if isinstance(exc, TeacherRequestError) else "media"
            if kind == "media" and job.sample == 0:
                reason = media_reason(exc) if isinstance(exc, MediaError) else "unreadable"
                detail = getattr(exc, "reason", str(exc))
                self.skipped.append(
                    Skip(req.clip.id, self.spec.name, str(req.clip.video_path), reason, detail)
                )
            stores["failures"].append(
                {
                    "content_key": req.content_key,
                    "clip": req.clip.id,
                    "sample": job.sample,
                    "attempt": attempt,
                    "kind": kind,
                    "detail": str(exc),
                    "t": round(time.time(), 3),
                }
            )
            return False
        rec = {
            "key": key,
            "content_key": req.content_key,
            "clip": req.clip.id,
            "sample": job.sample,
            "attempt": attempt,
            "model": self.cfg.model,
            "prompt_version": self.teacher.full_version,
            "answer": answer.texts[0] if answer.texts else None,
            "finish_reason": answer.finish_reasons[0] if answer.finish_reasons else None,
            "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens},
            "base_url": answer.base_url,
            "latency_s": round(answer.latency_s, 4),
            "tries": answer.tries,
            "t": round(time.time(), 3),
        }
        stores["responses"].append(rec)
        job.answers.append((rec, self.filter.check(rec["answer"], req.clip.label)))
        job.judged = False
        return True

    def _count(self, job: SampleJob, failed: bool) -> None:
        c = self.counts
        c["done"] += 1
        if any(v.ok for _, v in job.answers):
            c["accepted"] += 1
        elif job.answers:
            c["rejected"] += 1
        elif failed:
            c["failed"] += 1

    async def _judge(
        self, rec: dict[str, Any], clip: Clip, client: TeacherClient, stores: dict[str, JsonlAppender]
    ) -> Verdict:
        judge = self.cfg.filters.judge
        body = {
            "model": judge.model or self.cfg.model,
            "max_tokens": judge.max_tokens,
            "temperature": 0.0,
            "messages": judge_messages(judge.instruction, clip.text, rec["answer"]),
        }
        try:
            answer = await client.chat(body, headers={CACHE_KEY_HEADER: f"judge-{rec['key']}"})
        except TeacherRequestError:
            reply = None  # judge_missing: a later run asks again
        else:
            reply = answer.texts[0] if answer.texts else ""
            stores["judgements"].append(
                {"answer_key": rec["key"], "judge": self.judge, "reply": reply, "t": round(time.time(), 3)}
            )
        judgements = {(rec["key"], self.judge): {"reply": reply}} if reply is not None else {}
        return evaluate(self.filter, rec, clip.label, judge=self.judge, judgements=judgements)

    async def run(self, jobs: deque[SampleJob], api_key: str, progress: Any = None) -> float:
        """Work through the jobs; returns the request phase's wall time."""
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        order: list[ClipRequest] = []
        for job in jobs:
            if job.req.ready is None:
                job.req.ready = loop.create_future()
                order.append(job.req)
        slots = asyncio.Semaphore(2 * cfg.concurrency + 8)
        stores = {
            name: JsonlAppender(self.out / fname)
            for name, fname in (("responses", RESPONSES), ("judgements", JUDGEMENTS), ("failures", FAILURES))
        }
        client = TeacherClient(cfg.base_urls, api_key, cfg.retry)
        self.totals = client.totals
        try:
            await client.preflight(cfg.model, cfg.api_key_env, timeout_s=cfg.retry.connect_timeout_s + 20)
        except BaseException:
            await client.aclose()
            raise

        async def worker() -> None:
            while jobs:
                await self._run_sample(jobs.popleft(), client, stores, slots)

        started, cpu_started = time.perf_counter(), time.process_time()
        order_iter = iter(order)
        helpers = [asyncio.create_task(self._prefetch(order_iter, slots)) for _ in range(PREFETCHERS)]
        if progress is not None:
            helpers.append(asyncio.create_task(self._tick(progress, client, started)))
        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(cfg.concurrency, len(jobs))))))
        finally:
            elapsed = self.request_phase_s = time.perf_counter() - started
            self.request_phase_cpu_s = time.process_time() - cpu_started
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await client.aclose()
            for store in stores.values():
                store.close()
        return elapsed

    async def _tick(self, progress: Any, client: TeacherClient, started: float) -> None:
        while True:
            progress.update(self.counts, client.totals, time.perf_counter() - started)
            await asyncio.sleep(0.5)


def check_out_dir(out: Path, spec: DatasetSpec, data_root: Path, model: str, force: bool) -> None:
    """Refuse an OUT holding another dataset's or another teacher's answers (``--force`` overrides)."""
    path = out / PLAN
    if force or not path.is_file():
        return
    try:
        plan = json.loads(path.read_text())
    except ValueError:
        return  # a torn plan is rewritten below
    theirs = {"dataset": plan.get("dataset"), "data": plan.get("data"), "model": plan.get("model")}
    ours = {"dataset": spec.name, "data": str(data_root), "model": model}
    diff = [k for k in ours if theirs[k] is not None and theirs[k] != ours[k]]
    if diff:
        shown = ", ".join(f"{k} {theirs[k]!r} (now {ours[k]!r})" for k in diff)
        raise ConfigError(
            f"{out} holds answers of another run: {shown}; choose another --out, or pass --force to add "
            "this run's answers to it"
        )


def run_problem(stats: dict[str, Any], cfg: DistillConfig) -> str | None:
    """Why a finished run did not do its job (exit 1), or None.

    Not done: no clip to ask about, no sample answered by the teacher, or more than ``max_failed_fraction`` of
    the samples failed for good (after retries). Clips skipped for their media do not count against the run.
    """
    by_kind = stats.get("failed_by_kind") or {}
    media = int(by_kind.get("media", 0))
    askable = stats["expected"] - media
    teacher_failed = stats["failed"] - media
    answered = stats["accepted"] + stats["rejected"]
    if stats["expected"] == 0 or askable <= 0:
        return "no clip could be sent to the teacher"
    if answered == 0 and stats.get("pending", 0) == 0:
        return "the teacher answered no request"
    if teacher_failed / askable > cfg.max_failed_fraction:
        return (
            f"{teacher_failed} of {askable} samples failed for good, more than max_failed_fraction "
            f"{cfg.max_failed_fraction:g}; rerun to ask only for those"
        )
    return None


def generate(
    cfg: DistillConfig,
    *,
    config_dir: Path | None = None,
    show_progress: bool | None = None,
    force: bool = False,
) -> GenerateResult:
    """Run (or resume) a distillation. On Ctrl-C everything finished is kept, the summary is written, and
    GenerateInterrupted (a KeyboardInterrupt) is raised with the result."""
    gen = Generator(cfg, config_dir=config_dir)
    clips = gen.clips()
    check_out_dir(gen.out, gen.spec, gen.data_root, cfg.model, force)
    with claim_output_dir(gen.out, "--out"):  # one generate per folder: no request asked twice
        return _generate(gen, cfg, clips, show_progress)


def _generate(gen: Generator, cfg: DistillConfig, clips: list, show_progress: bool | None) -> GenerateResult:
    dump_config(cfg, gen.out / artifacts.DISTILL_CONFIG)
    reqs = gen.plan(clips)
    write_skipped(gen.out, gen.spec.name, gen.skipped)
    jobs = gen.jobs(reqs)
    if show_progress is None:
        show_progress = cfg.progress and sys.stderr.isatty()
    progress = None
    if show_progress and jobs:
        from cot_distill.progress import DistillProgress

        progress = DistillProgress(len(reqs) * cfg.samples_per_clip)
    interrupted = False
    try:
        if progress is not None:
            progress.start(gen.counts)
        if jobs:
            asyncio.run(gen.run(jobs, os.environ.get(cfg.api_key_env, ""), progress))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress is not None:
            progress.update(
                gen.counts, gen.totals, gen.request_phase_s
            )  # the final counts, not the last tick
            progress.stop()
        write_skipped(gen.out, gen.spec.name, gen.skipped)
    totals, elapsed = gen.totals, gen.request_phase_s
    requests, completed = (totals.requests, totals.completed) if totals else (0, 0)
    run = {
        "requests": requests,
        "completed": completed,
        "request_phase_s": round(elapsed, 3),
        "req_per_s": round(completed / elapsed, 2) if elapsed else 0.0,
        "samples_from_cache": gen.counts["cached"],
        "interrupted": interrupted,
        "client": totals.as_dict() if totals else None,
    }
    stats = summarize(gen.out, cfg, gen.spec, run=run)
    result = GenerateResult(
        gen.out, stats, requests, completed, elapsed, interrupted, gen.request_phase_cpu_s, gen.warnings
    )
    if interrupted:
        raise GenerateInterrupted(result)
    return result
