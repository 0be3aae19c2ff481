"""The umbrella CLI: `msa-thinker demo`, `msa-thinker make-data`, and the stage CLIs as sub-commands."""

import typer

from cot_distill.cli import app as distill_app
from msa_eval.cli import app as eval_app
from msa_rl.cli import app as rl_app

app = typer.Typer(
    name="msa-thinker",
    help="MSA-Thinker: interpretable multimodal sentiment analysis (DC reasoning + Hint-GRPO).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(distill_app, name="distill", help="cot-distill: teacher CoT distillation (same as `cot-distill`).")
app.add_typer(rl_app, name="rl", help="msa-rl: SFT and Hint-GRPO training (same as `msa-rl`).")
app.add_typer(eval_app, name="eval", help="msa-eval: predict, score, report (same as `msa-eval`).")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
