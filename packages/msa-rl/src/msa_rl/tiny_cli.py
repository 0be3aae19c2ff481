"""`msa-rl tiny-model`: write the tiny offline Omni thinker (of any registered family) used by tests and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msa_rl.app import app, fail


@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the model and processor into.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights (same seed, same weights).")] = 0,
    hidden: Annotated[
        int,
        typer.Option(
            help="Hidden size, a multiple of 64 (4 heads). 128 for vLLM: its CPU attention needs head_dim >= 32."
        ),
    ] = 64,
    family: Annotated[
        str,
        typer.Option(
            help="Model family of the tiny thinker (msa_omni.families): qwen2.5-omni or qwen3-omni."
        ),
    ] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Write into an OUT_DIR that already holds files (a model there is replaced)."
        ),
    ] = False,
) -> None:
    """Build a tiny random Omni thinker + processor offline (loads with from_pretrained).

    OUT_DIR must be empty or new unless --force: a trained model there would be overwritten."""
    from msa_core import MSAError, OutputPathError
    from msa_core.outdir import ensure_writable_dir
    from msa_omni.families import DEFAULT_FAMILY, get_family

    if hidden < 64 or hidden % 64:
        typer.echo(f"error: --hidden must be a positive multiple of 64, got {hidden}", err=True)
        raise typer.Exit(2)
    try:
        entry = get_family(family) if family else DEFAULT_FAMILY
    except MSAError as exc:
        typer.echo(f"error: --family: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        ensure_writable_dir(out_dir, "OUT_DIR")
        held = sorted(p.name for p in out_dir.iterdir())
        if held and not force:
            raise OutputPathError(
                f"OUT_DIR already holds files (e.g. {held[0]}); choose an empty or new OUT_DIR, or pass --force "
                "to write the tiny model over them",
                file=out_dir,
            )
    except MSAError as exc:
        raise fail(exc) from None
    from msa_rl.tiny import build_tiny_omni

    path = build_tiny_omni(out_dir, seed=seed, hidden=hidden, family=entry)
    typer.echo(f"wrote {entry.tiny.about} to {path}")
