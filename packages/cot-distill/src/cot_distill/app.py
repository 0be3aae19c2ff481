"""The one Typer app of cot-distill; command modules register on it (see cli.py)."""

import typer

app = typer.Typer(
    name="cot-distill",
    help="Distil Discrimination-Calibration chain-of-thought answers from an Omni teacher (Qwen3-Omni-30B via vLLM, "
    "or any OpenAI-compatible endpoint) over video+audio+text clips, filter them, export and publish the dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def fail(exc: Exception, code: int | None = None) -> typer.Exit:
    """Print a user-facing error (no traceback) and give the Exit to raise: ``raise fail(exc) from None``.

    The status is ``code``, else the error's own (2 for a usage error such as an unwritable output path), else 1."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code if code is not None else getattr(exc, "exit_code", 1))
