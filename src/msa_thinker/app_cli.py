"""`msa-thinker app`: the Gradio page (see ``msa_thinker.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def app_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Trained checkpoint folder or hub id ORG/NAME. Default: the demo's model, runs/demo/models/hint-grpo.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to serve on (0.0.0.0 to reach it from other machines).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    demo_data: Annotated[
        Path, typer.Option(help="Where `msa-thinker demo` wrote its data: the page offers its test clips.")
    ] = Path("runs/demo/data"),
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer (and transcript) in tokens.")] = 256,
) -> None:
    """Serve a web page: upload or pick a clip, see its polarity, reasoning (cues marked) and score."""
    from msa_core import ConfigError, MSAError

    from msa_thinker.app import serve

    try:
        serve(model, host=host, port=port, demo_data=demo_data, max_new_tokens=max_new_tokens)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except MSAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
