"""`msa-rl sft`: cold-start SFT of the Omni thinker through LLaMA-Factory (in the SFT environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from msa_core import MSAError, artifacts

from msa_rl.app import app, fail


@app.command("sft")
def sft(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="SFT recipe YAML (configs/sft/*.yaml, configs/demo/sft.yaml)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a recipe key: KEY=VALUE (YAML value), repeatable, e.g. model=tiny."
        ),
    ] = None,
    print_command: Annotated[
        bool,
        typer.Option(
            "--print-command",
            help="Validate, write the YAML files and print the command instead of training.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Train even when the memory plan says the recipe does not fit the GPU."),
    ] = False,
) -> None:
    """Fine-tune a Qwen2.5-Omni thinker on a cot-distill export with LLaMA-Factory (paper stage 1)."""
    from msa_core.outdir import check_writable_dir, claim_output_dir
    from msa_core.recipe import unchosen_defaults
    from msa_omni import check_thinker_dir

    from msa_rl.sft import load_sft_config, prepare, run

    try:
        recipe = load_sft_config(config, set_ or [])
        for line in unchosen_defaults(recipe, ("model", "output_dir")):
            typer.echo(f"note: {line}", err=True)
        check_writable_dir(recipe.output_dir, "output_dir")
        check_thinker_dir(recipe.model)  # a Hub id offline fails here, before any folder is made
        with claim_output_dir(recipe.output_dir, "output_dir"):  # checked before any work; one job per folder
            plan = prepare(recipe)
            if print_command:
                typer.echo(f"# recipe: {plan.output_dir / artifacts.SFT_CONFIG}")
                typer.echo(f"# LLaMA-Factory YAML: {plan.llamafactory_yaml}")
                typer.echo(f"# first use creates the SFT environment: {plan.sync_shell()}")
                typer.echo(plan.shell())
                return
            result = run(plan, force=force)
    except MSAError as exc:
        raise fail(exc) from None
    losses = result.losses
    summary = f"first loss {losses[0]:.4f}, last {losses[-1]:.4f}" if losses else "no loss logged"
    typer.echo(f"SFT done in {result.wall_seconds:.0f}s ({summary}); checkpoint: {result.output_dir}")
