"""`msa-thinker publish-model CHECKPOINT --repo-id ORG/NAME`: the model on the Hub with its card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def publish_model_command(
    checkpoint: Annotated[Path, typer.Argument(help="Output folder of `msa-rl sft` or `msa-rl grpo`.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repository, ORG/NAME.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to build the repository in. Default: runs/publish/<NAME>."),
    ] = None,
    eval_report: Annotated[
        Path | None,
        typer.Option(
            "--eval", help="`msa-eval report` folder (or its metrics.json): the card's evaluation table."
        ),
    ] = None,
    dataset_repo: Annotated[
        str | None,
        typer.Option(
            "--dataset-repo", help="Hub dataset the training answers were published to (cot-distill push)."
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Build the folder and list its files; upload nothing (no token needed)."
        ),
    ] = False,
) -> None:
    """Publish a trained checkpoint as a Hub model repository: weights, processor, media.json, the training
    recipes and a model card (base model, data, stages, evaluation, DC format, usage, limitations).

    The token is read from HF_TOKEN only and never written or printed."""
    from cot_distill.push import TOKEN_ENV, hub_token
    from msa_core import ConfigError, MSAError

    from msa_thinker.publish_model import build_folder, check_repo_id, upload

    try:
        check_repo_id(repo_id)
        if dataset_repo is not None:
            check_repo_id(dataset_repo)
        token = (
            None if dry_run else hub_token(TOKEN_ENV)
        )  # before any work: a push without a token stops here
        folder, files = build_folder(
            checkpoint,
            out or Path("runs/publish") / repo_id.split("/")[1],
            repo_id=repo_id,
            eval_report=eval_report,
            dataset_repo=dataset_repo,
        )
        typer.echo(f"built {folder}: {len(files)} files ({', '.join(files)})")
        if dry_run:
            typer.echo("dry run: nothing uploaded")
            return
        url = upload(folder, repo_id, private=private, token=token)  # type: ignore[arg-type]
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except MSAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(f"published {url}")
    typer.echo(f"run it: uv run msa-thinker analyze clip.mp4 --model {repo_id}")
