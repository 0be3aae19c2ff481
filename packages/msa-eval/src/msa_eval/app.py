"""The one Typer app of msa-eval; command modules register on it (cli.py imports them)."""

import typer

app = typer.Typer(
    name="msa-eval",
    help="Predict with a trained model and score it exactly as MMSA does; write the paper's tables and "
    "plots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
