"""The msa-eval command line: one Typer app."""

import typer

app = typer.Typer(
    name="msa-eval",
    help="Predict with a trained model and score it exactly as MMSA does; write the paper's tables and plots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
