"""`msa-thinker analyze`: a trained thinker's DC answer for any video clip, with no dataset around it.

Clips come from files, folders (searched recursively) or globs; no ``label.csv``. The prompt is the training prompt
(``msa_core.build_prompt`` on the clip's transcript, for the chosen scale), the frames and audio are sampled with
the checkpoint's own ``media.json``, and generation is ``msa-eval predict``'s (``msa_eval.predict.make_generator``:
HF or vLLM). What a real folder holds is handled clip by clip: a clip without an audio track is analysed from its
frames and transcript (and says so), a long clip is thinned as in training (and says what is kept), an unreadable
file is named, skipped and counted.

The transcript of a clip comes from ``--transcript`` (one clip), a sidecar file next to it (``clip.txt``, or
``clip.srt`` with its numbers and timings dropped), or ``--transcribe``: the same Omni model asked to write down the
clip's speech (no other ASR model). Each record says which.

With ``--out DIR`` every answer is appended to ``DIR/analysis.jsonl`` (crash-safe, like predict); a rerun skips
the clips already there (same path and same bytes) and refuses other settings.
"""

from __future__ import annotations

import contextlib
import glob
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msa_core import (
    PROMPT_VERSION,
    ConfigError,
    DataError,
    DCOutput,
    JsonlAppender,
    MediaError,
    Prompt,
    build_prompt,
    get_spec,
)
from msa_core.jsonl import read_jsonl, write_json_atomic
from msa_core.media_settings import MediaSettings
from msa_core.outdir import claim_output_dir
from msa_core.skipped import Skip, describe, media_reason
from msa_core.spec import DatasetSpec

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov")
ANALYSIS_FILE = "analysis.jsonl"
SETTINGS_FILE = "analyze.json"
DEMO_MODEL = Path("runs/demo/models/hint-grpo")
"""The model `msa-thinker demo` trains last (SFT + Hint-GRPO): the default of analyze and app."""

TranscriptSource = Literal["option", "sidecar", "transcribed", "none"]

# Qwen2.5-Omni's own system prompt: the base model learnt speech recognition under it.
TRANSCRIBE_PROMPT = Prompt(
    system=(
        "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving auditory "
        "and visual inputs, as well as generating text and speech."
    ),
    user=(
        "Transcribe the speech in this clip word for word, in the language it is spoken in. "
        "Answer with the transcript only."
    ),
    version="transcribe-v1",
)


# ------------------------------------------------------------------------------------------------------ inputs
def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """The video files named by ``inputs``: files, folders (recursive) and globs, in order, each once.

    A name that matches nothing, or a file that is not mp4/mkv/webm/mov, is a ConfigError naming it.
    """
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            hits = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not hits:
                raise ConfigError(f"{text}: folder holds no {'/'.join(s[1:] for s in VIDEO_SUFFIXES)} file")
        elif path.is_file():
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                raise ConfigError(
                    f"{text}: not a video file (expected {', '.join(VIDEO_SUFFIXES)}); give videos, folders or globs"
                )
            hits = [path]
        elif glob.has_magic(text):
            hits = sorted(
                Path(p)
                for p in glob.glob(str(path), recursive=True)
                if Path(p).suffix.lower() in VIDEO_SUFFIXES and Path(p).is_file()
            )
            if not hits:
                raise ConfigError(f"{text}: the pattern matches no video file")
        else:
            raise ConfigError(f"{text}: no such file or folder")
        found.extend(hits)
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


@dataclass(frozen=True)
class Transcript:
    text: str
    source: TranscriptSource
    detail: str = ""
    """The sidecar file, or why there is none."""

    def as_dict(self) -> dict[str, str]:
        return {"transcript": self.text, "transcript_source": self.source, "transcript_detail": self.detail}


_SRT_TIMING = re.compile(r"^\s*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}\s*-->\s*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}")
_SRT_MARKUP = re.compile(r"<[^>]+>|\{\\[^}]*\}")


def flatten_srt(text: str) -> str:
    """The spoken words of an .srt file on one line: cue numbers, timings and markup dropped."""
    words = []
    for line in text.replace("\ufeff", "").splitlines():
        if not line.strip() or line.strip().isdigit() or _SRT_TIMING.match(line):
            continue
        words.append(_SRT_MARKUP.sub("", line).strip())
    return " ".join(" ".join(words).split())


def sidecar_transcript(video: Path) -> Transcript | None:
    """``clip.txt`` (as written) or ``clip.srt`` (flattened) next to ``clip.mp4``, if there is one."""
    for suffix in (".txt", ".srt"):
        side = video.with_suffix(suffix)
        if side.is_file():
            try:
                raw = side.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"unreadable transcript ({exc})", file=side) from None
            text = flatten_srt(raw) if suffix == ".srt" else " ".join(raw.split())
            return Transcript(text, "sidecar", str(side))
    return None


# ------------------------------------------------------------------------------------------------------- media
@dataclass(frozen=True)
class Kept:
    """What the model gets of a clip (from the container, before decoding)."""

    duration_s: float
    has_audio: bool
    frames: int
    frame_every_s: float
    audio_heard_s: float
    long: bool

    def note(self) -> str:
        """One line for a clip the model does not see whole at its native rate; empty otherwise."""
        parts = []
        if not self.has_audio:
            parts.append("no audio track: analysed from its frames and transcript only")
        if self.long:
            parts.append(
                f"long clip ({self.duration_s:.1f} s): the model sees {self.frames} frames spread over the whole "
                f"clip (one every {self.frame_every_s:.1f} s)"
                + (
                    f" and hears the first {self.audio_heard_s:.1f} s of its audio (the processor's limit)"
                    if self.has_audio and self.audio_heard_s < self.duration_s - 0.05
                    else ""
                )
            )
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 3),
            "has_audio": self.has_audio,
            "frames": self.frames,
            "frame_every_s": round(self.frame_every_s, 3),
            "audio_heard_s": round(self.audio_heard_s, 3),
            "long": self.long,
            "note": self.note(),
        }


def kept_of(path: Path, settings: MediaSettings, max_audio_s: float) -> Kept:
    """What the model gets of ``path`` under ``settings`` (``media.probe``: a MediaError names a bad file)."""
    from msa_core import media

    info = media.probe(path)
    if not info.has_video:
        raise MediaError("no video stream", file=path)
    frames = media.model_frame_count(info.duration, settings.fps, settings.max_frames, info.n_frames)
    frames += frames % 2  # padded to the 2-frame temporal patch
    thinned = info.duration * settings.fps > settings.max_frames + 1e-6
    heard = min(info.duration, max_audio_s) if info.has_audio else 0.0
    return Kept(
        duration_s=info.duration,
        has_audio=info.has_audio,
        frames=frames,
        frame_every_s=info.duration / frames,
        audio_heard_s=heard,
        long=thinned or (info.has_audio and info.duration > max_audio_s + 0.05),
    )


def clip_settings(settings: MediaSettings, kept: Kept) -> MediaSettings:
    """The media settings one clip is encoded with: without audio-in-video when it has no audio track."""
    if settings.audio_in_video and not kept.has_audio:
        return settings.model_copy(update={"audio_in_video": False})
    return settings


# ------------------------------------------------------------------------------------------------------- model
def resolve_model(model: str | Path | None) -> Path:
    """A local checkpoint folder for ``model``: a folder as given, a hub id downloaded (``huggingface_hub``,
    its cache, ``HF_TOKEN`` and ``HF_ENDPOINT``), or the demo's model when None."""
    if model is None:
        if not DEMO_MODEL.is_dir():
            raise ConfigError(
                f"no --model given and the demo's model {DEMO_MODEL} is not there: run `uv run msa-thinker demo` "
                "first, or pass --model DIR|HUB_ID"
            )
        return DEMO_MODEL
    path = Path(model).expanduser()
    if path.exists():
        return path
    parts = str(model).split("/")
    if not (len(parts) == 2 and all(parts) and not str(model).startswith((".", "~"))):
        raise ConfigError(f"--model {model}: no such folder (and not a hub id like ORG/NAME)")
    return download_model(str(model))


def download_model(repo_id: str) -> Path:
    """Every file of the hub model ``repo_id`` (cached by huggingface_hub); a one-line ConfigError if it fails."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type="model"))
    except RepositoryNotFoundError:
        raise ConfigError(
            f"--model {repo_id}: no such model on the hub (or it is private: set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError as exc:
        raise ConfigError(
            f"--model {repo_id}: not in the local cache and the hub cannot be reached ({exc})"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise ConfigError(f"--model {repo_id}: download failed: {exc}") from None


def trained_media(model_dir: Path) -> MediaSettings:
    """The checkpoint's ``media.json``; a ConfigError saying what to do when it has none."""
    settings = MediaSettings.read(model_dir)
    if settings is None:
        from msa_core import artifacts

        raise ConfigError(
            f"{model_dir / artifacts.MEDIA_SETTINGS} is missing: analyze samples frames exactly as the model was "
            "trained, and only a checkpoint of `msa-rl sft`/`grpo` (or one published by `msa-rl push-model`) "
            "records how"
        )
    return settings


# ------------------------------------------------------------------------------------------------------ driver
@dataclass(frozen=True)
class AnalyzeSettings:
    """Everything that changes the answers (recorded in ``OUT/analyze.json``; a rerun must keep it)."""

    model: str
    scale: str
    backend: str = "hf"
    max_new_tokens: int = 256
    batch_size: int = 4
    transcribe: bool = False
    dtype: str = "auto"
    device: str = "auto"
    max_model_len: int | None = None

    def identity(self, media: MediaSettings) -> dict[str, Any]:
        return {
            "model": self.model,
            "scale": self.scale,
            "backend": self.backend,
            "max_new_tokens": self.max_new_tokens,
            "transcribe": self.transcribe,
            "prompt_version": PROMPT_VERSION,
            "media": media.model_dump(mode="json"),
        }


@dataclass
class AnalyzeSummary:
    total: int = 0
    analysed: int = 0
    already_done: int = 0
    parse_failures: int = 0
    skips: list[Skip] = field(default_factory=list)
    out_file: Path | None = None

    def line(self) -> str:
        text = f"{self.analysed} clip(s) analysed"
        if self.already_done:
            text += f", {self.already_done} already in {self.out_file}"
        text += f", {self.parse_failures} parse failure(s)"
        if self.skips:
            text += f", {len(self.skips)} skipped: {describe(self.skips)}"
        if self.out_file is not None:
            text += f" -> {self.out_file}"
        return text


@dataclass
class _Job:
    video: Path
    key: str
    kept: Kept | None = None
    transcript: Transcript | None = None
    media: Any = None


def _clip_key(video: Path) -> str:
    from msa_core import content_hash

    return f"{video.resolve()}#{content_hash(video)[:16]}"


def _open_out(out: Path, identity: dict[str, Any], overwrite: bool) -> tuple[Path, set[str]]:
    """``OUT/analysis.jsonl`` and the keys already in it; refuses a folder of another kind or other settings."""
    records, settings_path = out / ANALYSIS_FILE, out / SETTINGS_FILE
    if records.exists() and not settings_path.is_file():
        raise DataError(
            f"{records} was not written by analyze (no {SETTINGS_FILE} beside it); use another --out"
        )
    if overwrite:
        records.unlink(missing_ok=True)
    if records.exists():
        prev = json.loads(settings_path.read_text(encoding="utf-8"))
        diff = [k for k in identity if prev.get(k) != identity[k]]
        if diff:
            shown = ", ".join(f"{k}: {prev.get(k)!r} -> {identity[k]!r}" for k in diff)
            raise ConfigError(
                f"{records} was written with other settings ({shown}); use another --out or --overwrite"
            )
    write_json_atomic(settings_path, identity)
    done = {str(r["key"]) for r in read_jsonl(records, repair=True) if isinstance(r, dict) and "key" in r}
    return records, done


def make_record(job: _Job, raw: str, spec: DatasetSpec, media: MediaSettings, model: str) -> dict[str, Any]:
    parsed = DCOutput.parse_lenient(raw, spec)
    assert job.kept is not None and job.transcript is not None
    return {
        "video": str(job.video),
        "key": job.key,
        "model": model,
        "scale": spec.name,
        "score_range": [spec.score_min, spec.score_max],
        **job.transcript.as_dict(),
        "raw_output": raw,
        "polarity": parsed.polarity,
        "think": parsed.think,
        "score": parsed.score,
        "parse_status": parsed.status,
        "parse_reason": parsed.reason,
        "parse_failed": parsed.status == "failed",
        "media": clip_settings(media, job.kept).model_dump(mode="json"),
        "clip": job.kept.as_dict(),
    }


def _batches(items: list[_Job], size: int) -> Iterator[list[_Job]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def analyze(
    videos: Sequence[str | Path],
    *,
    model: str | Path | None = None,
    scale: str = "sims",
    transcript: str | None = None,
    transcribe: bool = False,
    out: str | Path | None = None,
    overwrite: bool = False,
    backend: str = "hf",
    batch_size: int = 4,
    max_new_tokens: int = 256,
    dtype: str = "auto",
    device: str = "auto",
    max_model_len: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_skip: Callable[[Skip], None] | None = None,
) -> AnalyzeSummary:
    """Analyse every clip; each answer goes to ``on_record`` (and ``OUT/analysis.jsonl``), each skip to ``on_skip``.

    Everything that can be refused is checked before a model loads: the inputs, the scale, the model folder and its
    media.json, --out.
    """
    if backend not in ("hf", "vllm"):
        raise ConfigError(f"--backend is hf or vllm, got {backend!r}")
    if batch_size < 1 or max_new_tokens < 1:
        raise ConfigError("--batch-size and --max-new-tokens must be positive")
    paths = find_videos(videos)
    if transcript is not None and len(paths) != 1:
        raise ConfigError(f"--transcript is the transcript of one clip; {len(paths)} clips were given")
    spec = get_spec(scale)
    from msa_omni import check_thinker_dir

    model_dir = resolve_model(model)
    check_thinker_dir(model_dir)
    media = trained_media(model_dir)
    settings = AnalyzeSettings(
        model=str(model_dir.resolve()),
        scale=spec.name,
        backend=backend,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        transcribe=transcribe,
        dtype=dtype,
        device=device,
        max_model_len=max_model_len,
    )
    summary = AnalyzeSummary(total=len(paths))
    with contextlib.ExitStack() as stack:
        done: set[str] = set()
        if out is not None:  # checked and locked before any work: one analyze per --out folder
            stack.enter_context(claim_output_dir(out, "--out"))
            summary.out_file, done = _open_out(Path(out), settings.identity(media), overwrite)
        _run(paths, done, summary, settings, media, spec, out, transcript, transcribe, on_record, on_skip)
    return summary


def _run(
    paths: list[Path],
    done: set[str],
    summary: AnalyzeSummary,
    settings: AnalyzeSettings,
    media: MediaSettings,
    spec: DatasetSpec,
    out: str | Path | None,
    transcript: str | None,
    transcribe: bool,
    on_record: Callable[[dict[str, Any]], None] | None,
    on_skip: Callable[[Skip], None] | None,
) -> None:
    appender = None
    jobs = []
    for video in paths:
        try:
            key = _clip_key(video)
        except MediaError as exc:
            _skip(summary, video, exc, on_skip)
            continue
        if key in done:
            summary.already_done += 1
        else:
            jobs.append(_Job(video, key))
    if not jobs:
        return
    scratch = tempfile.TemporaryDirectory(
        prefix="msa-analyze-"
    )  # the vLLM engine's model folder, without --out
    generator = _Lazy(settings, media, Path(out) if out is not None else Path(scratch.name))
    if summary.out_file is not None:
        appender = JsonlAppender(summary.out_file)
    try:
        for batch in _batches(jobs, settings.batch_size):
            ready = _load_batch(batch, media, generator, summary, on_skip)
            _fill_transcripts(ready, transcript, transcribe, generator)
            if not ready:
                continue
            for job, raw in _generate(generator, ready, spec):
                rec = make_record(job, raw, spec, media, settings.model)
                summary.analysed += 1
                summary.parse_failures += rec["parse_failed"]
                if appender is not None:
                    appender.append(rec)
                if on_record:
                    on_record(rec)
                job.media = None  # frames of a finished clip are not kept
    finally:
        if appender is not None:
            appender.close()
        scratch.cleanup()


class _Lazy:
    """The generator, loaded on first need (a finished rerun loads no model), and the processor's audio cap."""

    def __init__(self, settings: AnalyzeSettings, media: MediaSettings, work_dir: Path):
        self.settings, self.media, self.work_dir = settings, media, work_dir
        self._generator = None

    def get(self):
        if self._generator is None:
            from msa_eval.predict import PredictSettings, make_generator

            predict_settings = PredictSettings(
                model=self.settings.model,
                backend=self.settings.backend,  # type: ignore[arg-type]
                batch_size=self.settings.batch_size,
                max_new_tokens=self.settings.max_new_tokens,
                media=self.media,
                dtype=self.settings.dtype,
                device=self.settings.device,
                max_model_len=self.settings.max_model_len,
            )
            self._generator = make_generator(predict_settings, self.work_dir)
        return self._generator

    def max_audio_s(self) -> float:
        from msa_core.prompt_length import AUDIO_RATE, DEFAULT_MAX_AUDIO_SAMPLES

        processor = getattr(self.get(), "processor", None)
        extractor = getattr(processor, "feature_extractor", None)
        return int(getattr(extractor, "n_samples", DEFAULT_MAX_AUDIO_SAMPLES)) / AUDIO_RATE


def _skip(
    summary: AnalyzeSummary, video: Path, exc: MediaError, on_skip: Callable[[Skip], None] | None
) -> None:
    skip = Skip(str(video), "analyze", str(video), media_reason(exc), exc.reason)
    summary.skips.append(skip)
    if on_skip:
        on_skip(skip)


def _load_batch(
    batch: list[_Job],
    media: MediaSettings,
    generator: _Lazy,
    summary: AnalyzeSummary,
    on_skip: Callable[[Skip], None] | None,
) -> list[_Job]:
    """Probe and decode each clip of the batch; unreadable ones are skipped (named and counted)."""
    from msa_omni import clip_media

    ready = []
    for job in batch:
        try:
            job.kept = kept_of(job.video, media, generator.max_audio_s())
            job.media = clip_media(job.video, clip_settings(media, job.kept))
        except MediaError as exc:
            _skip(summary, job.video, exc, on_skip)
            continue
        ready.append(job)
    return ready


def _same_audio_groups(jobs: list[_Job]) -> list[list[_Job]]:
    """Clips with and without an audio track in separate generate calls: a batch shares one audio-in-video
    switch (positions differ), and rows without audio features cannot be collated with rows that have them."""
    groups = [
        [j for j in jobs if j.kept is not None and j.kept.has_audio],
        [j for j in jobs if not (j.kept and j.kept.has_audio)],
    ]
    return [g for g in groups if g]


def _generate(generator: _Lazy, jobs: list[_Job], spec: DatasetSpec) -> Iterator[tuple[_Job, str]]:
    for group in _same_audio_groups(jobs):
        prompts = [build_prompt(j.transcript.text, spec) for j in group]  # type: ignore[union-attr]
        yield from zip(group, generator.get().generate(prompts, [j.media for j in group]), strict=True)


def _fill_transcripts(jobs: list[_Job], given: str | None, transcribe: bool, generator: _Lazy) -> None:
    """Each clip's transcript: --transcript, else the sidecar, else (with --transcribe) the model's own."""
    to_transcribe = []
    for job in jobs:
        if given is not None:
            job.transcript = Transcript(" ".join(given.split()), "option")
        elif (side := sidecar_transcript(job.video)) is not None:
            job.transcript = side
        elif transcribe and job.kept is not None and job.kept.has_audio:
            to_transcribe.append(job)
        else:
            why = "no audio track to transcribe" if transcribe else "no sidecar .txt/.srt; try --transcribe"
            job.transcript = Transcript("", "none", why)
    if to_transcribe:
        answers = generator.get().generate(
            [TRANSCRIBE_PROMPT] * len(to_transcribe), [j.media for j in to_transcribe]
        )
        for job, text in zip(to_transcribe, answers, strict=True):
            job.transcript = Transcript(
                " ".join(text.split()), "transcribed", f"by the model ({TRANSCRIBE_PROMPT.version})"
            )


class Analyst:
    """One loaded model answering one clip at a time (the app); the same steps as ``analyze``."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        backend: str = "hf",
        max_new_tokens: int = 256,
        dtype: str = "auto",
        device: str = "auto",
    ):
        from msa_omni import check_thinker_dir

        model_dir = resolve_model(model)
        check_thinker_dir(model_dir)
        self.media = trained_media(model_dir)
        self.settings = AnalyzeSettings(
            model=str(model_dir.resolve()),
            scale="sims",
            backend=backend,
            max_new_tokens=max_new_tokens,
            batch_size=1,
            dtype=dtype,
            device=device,
        )
        self.generator = _Lazy(self.settings, self.media, Path(tempfile.mkdtemp(prefix="msa-analyst-")))

    def _load(self, video: str | Path) -> _Job:
        path = Path(video)
        job = _Job(path, _clip_key(path))
        summary = AnalyzeSummary()
        if not _load_batch([job], self.media, self.generator, summary, None):
            raise MediaError(summary.skips[0].detail, file=path)
        return job

    def transcribe(self, video: str | Path) -> Transcript:
        """The clip's speech as the model hears it (``--transcribe``); source ``none`` for a clip without audio."""
        job = self._load(video)
        _fill_transcripts([job], None, True, self.generator)
        assert job.transcript is not None
        return job.transcript

    def analyze(
        self,
        video: str | Path,
        *,
        scale: str = "sims",
        transcript: str | None = None,
        transcribe: bool = False,
    ) -> dict[str, Any]:
        """One clip's record, as ``analyze`` writes it; an empty ``transcript`` counts as none given."""
        spec = get_spec(scale)
        job = self._load(video)
        _fill_transcripts(
            [job], transcript if transcript and transcript.strip() else None, transcribe, self.generator
        )
        ((job, raw),) = list(_generate(self.generator, [job], spec))
        return make_record(job, raw, spec, self.media, self.settings.model)
