"""The msa-rl command line: one Typer app; each command lives in its own module and registers on ``app``."""

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


def main() -> None:
    app()


# Command modules import `app` from here, so they are imported after it exists. They keep heavy imports
# (torch, transformers) inside the command bodies.
from msa_rl import (  # noqa: E402, F401
    grpo_cli,
    sft_cli,
    tiny_cli,
)

if __name__ == "__main__":
    main()
