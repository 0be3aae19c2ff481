"""`msa-rl grpo`, `msa-rl train` and `msa-rl plot` (heavy imports stay inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from msa_core import MSAError

from msa_rl.app import app, fail

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Recipe YAML (see configs/).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a recipe key: KEY=VALUE (YAML value; dotted keys for sections), repeatable."
    ),
]


@app.command("grpo")
def grpo(
    config: ConfigOption = None,
    set_: SetOption = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Require a checkpoint in output_dir and continue from the last one."),
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore existing checkpoints and start over.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Train even when the memory plan says the recipe does not fit the GPU."),
    ] = False,
) -> None:
    """Hint-GRPO from an SFT checkpoint (paper stage 2); resumes from the last checkpoint when one exists."""
    from msa_core.recipe import unchosen_defaults

    from msa_rl.grpo_config import load_grpo_recipe

    try:
        if resume and fresh:
            raise MSAError("--resume and --fresh exclude each other")
        overrides = list(set_ or [])
        if resume or fresh:
            overrides.append(f"resume={'always' if resume else 'never'}")
        recipe = load_grpo_recipe(config, overrides)
        recipe.require_inputs()
        for line in unchosen_defaults(recipe, ("output_dir",)):
            typer.echo(f"note: {line}", err=True)
        from msa_rl.grpo import run_grpo

        out = run_grpo(recipe, force=force)
    except MSAError as exc:
        raise fail(exc) from None
    typer.echo(f"GRPO done; model and metrics.jsonl in {out}")


@app.command("train")
def train(config: ConfigOption = None, set_: SetOption = None) -> None:
    """SFT (LLaMA-Factory) then Hint-GRPO from one recipe (configs/train/*.yaml); a rerun continues."""
    from msa_rl.train import load_train_recipe, run_train

    try:
        recipe = load_train_recipe(config, set_ or [])
        out = run_train(
            recipe,
            base=config.parent if config is not None else None,
            source=str(config) if config is not None else None,
            note=lambda line: typer.echo(f"note: {line}", err=True),
        )
    except MSAError as exc:
        raise fail(exc) from None
    typer.echo(f"SFT + GRPO done; final model in {out}")


@app.command("plot")
def plot(
    runs: Annotated[list[Path], typer.Argument(help="GRPO output directories (each holds metrics.jsonl).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the PNG files.")] = Path("plots"),
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Legend label per run, in order (default: folder names)."),
    ] = None,
    smoothing: Annotated[
        float,
        typer.Option(min=0.0, max=0.99, help="Exponential smoothing weight of the solid curves (0: none)."),
    ] = 0.6,
    post_hint: Annotated[
        bool,
        typer.Option(
            "--post-hint/--no-post-hint",
            help="Also draw, dashed, the reward after hints of runs that hinted (it contains the injected true "
            "polarity); the solid curve is always the policy's own sampled reward, before hints.",
        ),
    ] = True,
) -> None:
    """Reward curves of several runs overlaid (paper Fig. 3: the pre-hint sampled reward) and their hard / zero-std
    group fractions."""
    from msa_rl.plot import plot_runs

    try:
        paths = plot_runs(runs, out, labels=label, smoothing=smoothing, post_hint=post_hint)
    except MSAError as exc:
        raise fail(exc) from None
    for p in paths:
        typer.echo(f"wrote {p}")
