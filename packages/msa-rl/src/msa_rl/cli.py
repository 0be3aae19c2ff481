"""The msa-rl command line: one Typer app."""

import typer

app = typer.Typer(
    name="msa-rl",
    help="Train MSA-Thinker: tiny offline Omni model, cold-start SFT (LLaMA-Factory), Hint-GRPO (TRL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
