"""`msa-rl plan` (also `msa-thinker plan`): peak memory per GPU of a recipe, before anything loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from msa_core import MSAError

from msa_rl.app import app, fail


@app.command("plan")
def plan(
    recipe: Annotated[
        Path, typer.Argument(help="An SFT or GRPO recipe YAML (configs/sft/*.yaml, configs/grpo/*.yaml).")
    ],
    gpus: Annotated[
        int, typer.Option("--gpus", min=1, help="GPUs the run uses (processes; ZeRO partitions over them).")
    ] = 1,
    gpu_mem: Annotated[
        float, typer.Option("--gpu-mem", min=1.0, help="Memory of one GPU in GiB (e.g. 80, 24).")
    ] = 80.0,
    stage: Annotated[
        str, typer.Option("--stage", help="auto (from the recipe's keys), sft or grpo.")
    ] = "auto",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a recipe key: KEY=VALUE (YAML value), repeatable, as for training."
        ),
    ] = None,
    prompt_tokens: Annotated[
        int | None,
        typer.Option(
            "--prompt-tokens",
            min=1,
            help="Longest prompt in tokens (default: the length preflight over the recipe's data, else the media "
            "budget: max_frames at video_size with their audio).",
        ),
    ] = None,
) -> None:
    """Estimate peak memory per GPU (weights, gradients, optimizer, reference, activations, vLLM) and say whether
    the recipe fits and which recipe changes would make it fit. Exit 0: fits; 1: does not fit or an error."""
    from msa_rl.plan import detect_stage, load_stage_recipe, plan_recipe

    if stage not in ("auto", "sft", "grpo"):
        typer.echo(f"error: --stage must be auto, sft or grpo, not {stage!r}", err=True)
        raise typer.Exit(2)
    if not recipe.is_file():
        typer.echo(f"error: recipe {recipe} not found", err=True)
        raise typer.Exit(2)
    try:
        which: Literal["sft", "grpo"] = detect_stage(recipe) if stage == "auto" else stage  # type: ignore[assignment]
        loaded = load_stage_recipe(recipe, which, list(set_ or []))
        result = plan_recipe(loaded, which, gpus=gpus, gpu_mem_gib=gpu_mem, prompt_tokens=prompt_tokens)
    except MSAError as exc:
        raise fail(exc) from None
    typer.echo(result.render())
    raise typer.Exit(0 if result.fits else 1)
