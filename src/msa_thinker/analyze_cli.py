"""`msa-thinker analyze VIDEO...`: polarity, reasoning and score for any clips (see ``msa_thinker.analyze``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def render_text(rec: dict[str, Any]) -> str:
    """A record as a person reads it: the clip, its transcript and where it came from, then the DC answer."""
    lo, hi = rec["score_range"]
    source = rec["transcript_source"]
    if source == "sidecar":
        source = f"sidecar {Path(rec['transcript_detail']).name}"
    lines = [f"== {rec['video']}", f"transcript ({source}): {rec['transcript']!r}"]
    if rec["parse_failed"]:
        lines.append(
            f"no DC answer could be parsed ({rec['parse_reason']}); raw output: {rec['raw_output']!r}"
        )
    else:
        lines.append(f"polarity:  {rec['polarity'] or '?'}")
        lines.append(f"reasoning: {rec['think'] or '(none)'}")
        flag = "" if rec["parse_status"] == "ok" else f"  [not a strict DC answer: {rec['parse_reason']}]"
        lines.append(f"score:     {rec['score']:g} on the {rec['scale']} scale ({lo:g} to {hi:g}){flag}")
    if rec["clip"]["note"]:
        lines.append(f"note:      {rec['clip']['note']}")
    return "\n".join(lines)


def analyze_command(
    videos: Annotated[
        list[str],
        typer.Argument(help="Video files (mp4, mkv, webm, mov), folders (searched recursively) or globs."),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Trained checkpoint folder (with media.json) or a hub model id ORG/NAME. "
            "Default: the demo's model, runs/demo/models/hint-grpo.",
        ),
    ] = None,
    scale: Annotated[
        str,
        typer.Option(
            help="Score scale and polarity rule: sims ([-1, 1]), mosi ([-3, 3]), another dataset name or a spec YAML."
        ),
    ] = "sims",
    transcript: Annotated[
        str | None,
        typer.Option(
            "--transcript", help="The transcript of the (one) clip. Default: a sidecar clip.txt or clip.srt."
        ),
    ] = None,
    transcribe: Annotated[
        bool,
        typer.Option(
            "--transcribe",
            help="For a clip with no --transcript and no sidecar file, ask the model itself to transcribe its speech.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON line per clip (raw output, parsed DC fields, media settings, parse_failed).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder: append every answer to OUT/analysis.jsonl; a rerun skips the clips already there.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start OUT/analysis.jsonl over instead of resuming.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            help="hf (transformers generate) or vllm (GPU, or vLLM's CPU build), as msa-eval predict."
        ),
    ] = "hf",
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per generate call.")] = 4,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Longest answer (and transcript) in tokens.")
    ] = 256,
    dtype: Annotated[
        str,
        typer.Option(help="Model dtype: auto (bfloat16 on a GPU, float32 on a CPU), float32 or bfloat16."),
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (hf backend).")] = "auto",
    max_model_len: Annotated[
        int | None, typer.Option(help="vllm backend: context length. Default: the model's.")
    ] = None,
) -> None:
    """Polarity, reasoning and score for your own clips, with a trained model; no label.csv needed.

    Clips without audio are analysed from frames and transcript; long clips are thinned as in training (a note
    says what the model keeps); unreadable files are named, skipped and counted.
    """
    from msa_core import ConfigError, MSAError
    from rich.console import Console
    from rich.markup import escape

    from msa_thinker.analyze import analyze

    err = Console(stderr=True)

    def show(rec: dict[str, Any]) -> None:
        if as_json:
            typer.echo(json.dumps(rec, ensure_ascii=False))
        else:
            typer.echo(render_text(rec) + "\n")

    def skipped(skip) -> None:
        err.print(
            f"[yellow]skipped[/] {escape(skip.path)}: {escape(skip.detail)}", highlight=False, soft_wrap=True
        )

    try:
        summary = analyze(
            videos,
            model=model,
            scale=scale,
            transcript=transcript,
            transcribe=transcribe,
            out=out,
            overwrite=overwrite,
            backend=backend,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            dtype=dtype,
            device=device,
            max_model_len=max_model_len,
            on_record=show,
            on_skip=skipped,
        )
    except ConfigError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except MSAError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    err.print(f"analyze: {escape(summary.line())}", highlight=False, soft_wrap=True)
    if summary.skips and not summary.analysed and not summary.already_done:
        raise typer.Exit(1)
