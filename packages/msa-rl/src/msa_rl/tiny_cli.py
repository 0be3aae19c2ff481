"""`msa-rl tiny-model`: write the tiny offline Qwen2.5-Omni thinker used by tests and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msa_rl.app import app, fail


@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the model and processor into.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights (same seed, same weights).")] = 0,
) -> None:
    """Build a tiny random Qwen2.5-Omni thinker + processor offline (loads with from_pretrained)."""
    from msa_core import MSAError
    from msa_core.outdir import ensure_writable_dir

    try:
        ensure_writable_dir(out_dir, "OUT_DIR")
    except MSAError as exc:
        raise fail(exc) from None
    from msa_rl.tiny import build_tiny_omni

    path = build_tiny_omni(out_dir, seed=seed)
    typer.echo(f"wrote tiny Qwen2.5-Omni thinker to {path}")
