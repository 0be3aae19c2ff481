"""The stage driver that `msa-thinker demo` and `msa-thinker mini-repro` share.

A run is a list of stages. Each writes into its own folders and, when it finishes, a marker
``<out>/.stages/<stage>.json`` (wall and CPU seconds, a one-line summary); a rerun skips every stage with a marker.
A failing stage raises StageFailed naming itself and its log (``<out>/logs/<stage>.log``), where everything it
printed, logged or warned went.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from msa_core import ConfigError, MSAError
from rich.markup import escape

STAGE_DIR = ".stages"


@dataclass
class Stage:
    name: str
    title: str
    outputs: list[Path]
    run: Callable[[StageContext], str]
    """Does the work; returns a one-line summary."""
    resumable: bool = False
    """Resumable stages keep a partial output (their own resume logic); the others start from a clean folder."""


@dataclass
class StageContext:
    paths: Any
    """Where the run writes (DemoPaths; the mini reproduction's own paths)."""
    size: Any
    """What the run does (DemoSize; the mini reproduction's recipe)."""
    log: TextIO
    log_path: Path
    state: dict[str, Any] = field(default_factory=dict)


class StageFailed(Exception):
    def __init__(self, stage: str, log_path: Path, message: str):
        self.stage, self.log_path = stage, log_path
        super().__init__(message)


@contextlib.contextmanager
def _captured(log: TextIO) -> Iterator[None]:
    """In-process stages print into their log, not over the demo's progress display."""
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _warnings_to(log):
            yield
    finally:
        root.removeHandler(handler)


@contextlib.contextmanager
def _warnings_to(log: TextIO) -> Iterator[None]:
    import warnings

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        log.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def offline_cpu_environment(threads: int) -> None:
    """Offline and on the CPU: nothing may reach a hub or probe for a GPU. Set before torch is imported (here, in
    the stages and in the SFT child, which inherits the environment)."""
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("MPLBACKEND", "Agg"),
        ("WANDB_DISABLED", "true"),
    ):
        os.environ.setdefault(key, value)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if "torch" in sys.modules:  # imported already (e.g. by a test): apply to this process too
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the SFT run, the teacher)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class StagesRun:
    timings: dict[str, float]
    """Wall seconds of each stage run now."""
    cpu: dict[str, float]
    """CPU seconds (user + system, children included) of each stage run now."""
    skipped: list[str]
    wall_s: float


def run_stages(
    plan: list[Stage],
    out: Path,
    context: Callable[[TextIO, Path], StageContext],
    *,
    console: Any,
    until: str | None = None,
) -> StagesRun:
    """Run every stage of ``plan`` without a marker in ``out/.stages``; raise StageFailed naming the stage and its
    log on a failure. ``context(log, log_path)`` makes each stage's context; ``until`` stops after that stage."""
    (out / STAGE_DIR).mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if until is not None:
        names = [st.name for st in plan]
        if until not in names:
            raise ConfigError(f"unknown stage {until!r}; stages: {', '.join(names)}")
        plan = plan[: names.index(until) + 1]
    run = StagesRun({}, {}, [], 0.0)
    started = time.perf_counter()
    for index, stage in enumerate(plan, start=1):
        tag = f"[{index}/{len(plan)}] {stage.name}"
        marker = out / STAGE_DIR / f"{stage.name}.json"
        if marker.is_file():
            prev = json.loads(marker.read_text())
            run.skipped.append(stage.name)
            console.print(
                f"[green]✓[/] {tag}: done earlier ({prev.get('seconds', 0):.1f} s) — {escape(prev.get('summary', ''))}",
                highlight=False,
                soft_wrap=True,
            )
            continue
        if not stage.resumable:
            for output in stage.outputs:
                if output.exists():
                    shutil.rmtree(output)
        log_path = logs / f"{stage.name}.log"
        t0, c0 = time.perf_counter(), cpu_seconds()
        with log_path.open("a", encoding="utf-8") as log:
            ctx = context(log, log_path)
            try:
                with console.status(f"{tag}: {stage.title} …"), _captured(log):
                    summary = stage.run(ctx)
            except (Exception, KeyboardInterrupt) as exc:
                log.write(traceback.format_exc())
                seconds = time.perf_counter() - t0
                message = (
                    str(exc) if isinstance(exc, MSAError | RuntimeError) else f"{type(exc).__name__}: {exc}"
                )
                console.print(
                    f"[red]✗[/] {tag} failed after {seconds:.1f} s: {escape(message)}",
                    highlight=False,
                    soft_wrap=True,
                )
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise StageFailed(stage.name, log_path, message) from exc
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        run.timings[stage.name], run.cpu[stage.name] = seconds, cpu
        marker.write_text(
            json.dumps(
                {
                    "seconds": round(seconds, 2),
                    "cpu_seconds": round(cpu, 2),
                    "summary": summary,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
            + "\n"
        )
        console.print(
            f"[green]✓[/] {tag}: {escape(summary)} ({seconds:.1f} s, {cpu:.1f} s CPU)",
            highlight=False,
            soft_wrap=True,
        )
    run.wall_s = time.perf_counter() - started
    return run


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
