"""The one Typer app of msa-rl; command modules register on it (see cli.py).

It lives apart from cli.py so that `python -m msa_rl.cli` (e.g. under `accelerate launch --module`) registers the
commands on the same app object that it runs.
"""

import typer

app = typer.Typer(
    name="msa-rl",
    help="Train MSA-Thinker: tiny offline Omni model, cold-start SFT (LLaMA-Factory), Hint-GRPO (TRL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Train MSA-Thinker: tiny offline Omni model, cold-start SFT (LLaMA-Factory), Hint-GRPO (TRL)."""
    # A callback keeps `msa-rl <command>` a command group even while only one command is registered.


def fail(exc: Exception, code: int | None = None) -> typer.Exit:
    """Print a user-facing error (no traceback) and give the Exit to raise: ``raise fail(exc) from None``.

    The status is ``code``, else the error's own (2 for a usage error such as an unwritable output path), else 1."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code if code is not None else getattr(exc, "exit_code", 1))
