"""Commands ``generate``, ``filter`` and ``stand-in-teacher``, registered on the shared cot-distill app.

Implementation modules are imported inside each command (PyAV, the SDK): the umbrella CLI imports this module.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from msa_core import MSAError, artifacts

from cot_distill.app import app, fail


class Split(StrEnum):
    train = "train"
    valid = "valid"
    test = "test"
    all = "all"


class MediaUrl(StrEnum):
    file = "file"
    data = "data"


class OnBadLabel(StrEnum):
    error = "error"
    skip = "skip"
    clip = "clip"


def _summary(stats: dict, out: Path | None = None) -> str:
    from msa_core.skipped import SKIPPED_FILE, describe, read_skipped

    reasons = ", ".join(f"{k} {v}" for k, v in stats["rejected_by_reason"].items()) or "none"
    line = (
        f"{stats['accepted']} accepted, {stats['rejected']} rejected, {stats['failed']} failed"
        f"{', ' + str(stats['pending']) + ' pending' if stats['pending'] else ''} of {stats['expected']} "
        f"(yield {stats['yield']:.1%}); rejections: {reasons}"
    )
    examples = stats.get("failure_examples") or {}
    for kind, n in (stats.get("failed_by_kind") or {}).items():
        example = f", e.g. {examples[kind]}" if examples.get(kind) else ""
        line += f"\nfailed ({kind}): {n} sample(s){example}"
    skipped = read_skipped(out, stats["dataset"]) if out is not None else []
    if skipped:
        line += f"\n{len(skipped)} clip(s) skipped: {describe(skipped)}; all listed in {out / SKIPPED_FILE}"
    run = stats.get("run")
    if run and run.get("completed"):
        line += (
            f"\n{run['completed']} answers in {run['request_phase_s']:.1f}s ({run['req_per_s']:.1f} req/s), "
            f"{run['samples_from_cache']} samples from cache"
        )
    return line


@app.command("generate")
def generate_cmd(
    config: Annotated[
        Path | None, typer.Option("--config", help="Distill config YAML (see configs/distill/).")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="MMSA dataset root (label.csv + Raw/).")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset spec: sims, simsv2, mosi, mosei or a YAML.")
    ] = None,
    split: Annotated[Split | None, typer.Option(help="Split to distil (train, valid, test, all).")] = None,
    base_url: Annotated[
        list[str] | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible endpoint, e.g. http://HOST:8000/v1; repeat to spread "
            "the load over several servers.",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Teacher model name as served.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (resumes what is there).")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Most requests in flight.")] = None,
    samples_per_clip: Annotated[int | None, typer.Option(min=1, help="Answers wanted per clip.")] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            min=1, help="Answers asked per sample when they fail to parse or get the polarity wrong."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N clips of the split.")] = None,
    media_url: Annotated[
        MediaUrl | None, typer.Option(help="Send media as file:// URLs or data: URLs.")
    ] = None,
    structured_outputs: Annotated[
        bool | None,
        typer.Option(
            "--structured-outputs/--no-structured-outputs",
            help="Constrain decoding to the DC format (vLLM structured_outputs regex).",
        ),
    ] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Env variable holding the API key.")] = None,
    teacher_prompt: Annotated[
        str | None, typer.Option(help="Teacher instruction YAML (version + text).")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override any config key, e.g. --set sampling.temperature=0.2 (repeatable)."
        ),
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show the progress bar.")
    ] = None,
    on_bad_label: Annotated[
        OnBadLabel | None,
        typer.Option(
            help="A label off the dataset's scale by more than 1e-6: error (default), skip the clip, or clip "
            "it onto the scale. Within 1e-6 it is clipped with a warning."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into an OUT that holds another dataset's or teacher's answers."),
    ] = False,
) -> None:
    """Ask the teacher for DC answers over a dataset split, filter them, and write OUT/accepted.jsonl & co.

    Rerunning (or resuming after a crash or Ctrl-C) sends no request whose answer is already in OUT.
    Exits 1 when the endpoint check fails (nothing is asked), when no sample was answered, or when more than
    max_failed_fraction (default 0.05) of the samples failed for good; exits 130 on Ctrl-C."""
    from cot_distill.config import config_dir, load_config
    from cot_distill.generate import GenerateInterrupted, generate, run_problem

    overrides = {
        "data": str(data) if data else None,
        "dataset": dataset,
        "split": split.value if split else None,
        "base_urls": base_url or None,
        "model": model,
        "out": str(out) if out else None,
        "concurrency": concurrency,
        "samples_per_clip": samples_per_clip,
        "max_attempts": max_attempts,
        "limit": limit,
        "media_url": media_url.value if media_url else None,
        "structured_outputs": structured_outputs,
        "api_key_env": api_key_env,
        "teacher_prompt": teacher_prompt,
        "progress": progress,
        "on_bad_label": on_bad_label.value if on_bad_label else None,
    }
    try:
        cfg = load_config(config, sets=sets, overrides=overrides)
        result = generate(cfg, config_dir=config_dir(config), force=force)
    except GenerateInterrupted as exc:
        typer.echo(f"interrupted; everything finished is kept in {exc.result.out}", err=True)
        typer.echo(_summary(exc.result.stats, exc.result.out), err=True)
        raise typer.Exit(130) from None
    except MSAError as exc:
        raise fail(exc) from None
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(_summary(result.stats, result.out))
    typer.echo(f"wrote {result.out}/accepted.jsonl, rejected.jsonl, stats.json")
    problem = run_problem(result.stats, cfg)
    if problem is not None:
        raise fail(ValueError(f"{problem} (details in {result.out}/failures.jsonl)"))


@app.command("filter")
def filter_cmd(
    out: Annotated[Path, typer.Argument(help="Output directory of `cot-distill generate`.")],
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a filter setting first, e.g. --set filters.min_think_chars=80."),
    ] = None,
) -> None:
    """Re-run the filters over OUT/responses.jsonl offline (no request) and rewrite accepted/rejected/stats."""
    from msa_core import DataError, get_spec
    from msa_core.lock import OutputLock

    from cot_distill.config import dump_config, load_config
    from cot_distill.outcomes import summarize

    try:
        if not (out / artifacts.DISTILL_CONFIG).is_file():
            raise DataError(
                f"not a generate output folder (no {artifacts.DISTILL_CONFIG}): give the --out of "
                "`cot-distill generate`",
                file=out,
            )
        with OutputLock(out, option="OUT"):  # not while a generate writes there
            cfg = load_config(out / artifacts.DISTILL_CONFIG, sets=sets)
            stats = summarize(out, cfg, get_spec(cfg.dataset))
            if sets:
                dump_config(cfg, out / artifacts.DISTILL_CONFIG)
    except MSAError as exc:
        raise fail(exc) from None
    typer.echo(_summary(stats, out))


@app.command("stand-in-teacher")
def standin_cmd(
    data: Annotated[Path, typer.Option(help="MMSA dataset root whose label.csv the answers come from.")],
    dataset: Annotated[str, typer.Option(help="Dataset spec name or YAML.")] = "sims",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port (0: any free port; the bound URL is printed).")
    ] = 8000,
    latency: Annotated[
        float, typer.Option(min=0.0, help="Seconds before each answer (a real teacher's decode time).")
    ] = 0.0,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Noise, e.g. 'wrong_polarity=0.1,malformed=0.05,http429=0.05,http500=0.05,drop=0.02,"
            "slow=0.05'; see the module docs for all kinds."
        ),
    ] = None,
    slow_seconds: Annotated[float, typer.Option(min=0.0, help="Delay of a 'slow' answer.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the noise (per request body, order-independent).")] = 0,
    request_log: Annotated[
        Path | None, typer.Option(help="Append one JSON line per request received.")
    ] = None,
    log_bodies: Annotated[
        bool, typer.Option("--log-bodies", help="Put each parsed body in the request log.")
    ] = False,
    model: Annotated[str, typer.Option(help="Model name to serve.")] = "Qwen/Qwen3-Omni-30B-A3B-Instruct",
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer $VAR' (the value read from this env var)."),
    ] = None,
) -> None:
    """Serve a stand-in for Qwen3-Omni-30B (vLLM's OpenAI API): DC answers from the clips' labels, with noise.

    For the demo, tests and benchmarks: /v1/models and /v1/chat/completions on HOST:PORT."""
    from cot_distill.standin import StandInTeacher, parse_faults, serve

    try:
        teacher = StandInTeacher(
            data=data,
            dataset=dataset,
            latency=latency,
            faults=parse_faults(faults),
            seed=seed,
            slow_seconds=slow_seconds,
            request_log=request_log,
            log_bodies=log_bodies,
            model=model,
            api_key_env=api_key_env,
        )
    except MSAError as exc:
        raise fail(exc) from None
    try:
        serve(teacher, host, port)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise fail(
            ValueError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port (0: any free "
                "port) or --host"
            )
        ) from None
