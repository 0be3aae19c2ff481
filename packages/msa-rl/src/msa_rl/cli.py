"""The msa-rl command line: one Typer app (app.py); each command lives in its own module and registers on it."""

from msa_rl.app import app


def main() -> None:
    app()


# Importing the command modules registers their commands on `app` (from msa_rl.app). They keep heavy imports
# (torch, transformers) inside the command bodies.
from msa_rl import (  # noqa: E402, F401
    grpo_cli,
    plan_cli,
    sft_cli,
    tiny_cli,
)

if __name__ == "__main__":
    main()
