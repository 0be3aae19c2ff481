"""The umbrella CLI: `msa-thinker demo`, `msa-thinker make-data`, and the stage CLIs as sub-commands."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cot_distill.cli import app as distill_app
from msa_eval.cli import app as eval_app
from msa_rl import plan_cli
from msa_rl.cli import app as rl_app

app = typer.Typer(
    name="msa-thinker",
    help="MSA-Thinker: interpretable multimodal sentiment analysis (DC reasoning + Hint-GRPO).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(
    distill_app, name="distill", help="cot-distill: teacher CoT distillation (same as `cot-distill`)."
)
app.add_typer(rl_app, name="rl", help="msa-rl: SFT and Hint-GRPO training (same as `msa-rl`).")
app.add_typer(eval_app, name="eval", help="msa-eval: predict, score, report (same as `msa-eval`).")
# The memory planner at the top level too (`msa-thinker plan` = `msa-rl plan`): it is asked before any stage runs.
app.command("plan")(plan_cli.plan)


@app.command("make-data")
def make_data(
    out_dir: Annotated[
        Path, typer.Argument(help="Directory to write: label.csv + Raw/<video_id>/<clip_id>.mp4.")
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="Dataset whose label scale and id style to imitate: sims, simsv2, mosi, mosei or a spec "
            "YAML path."
        ),
    ] = "sims",
    n: Annotated[int, typer.Option("--n", min=1, help="Number of clips to write.")] = 60,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed writes the same labels and media.")
    ] = 0,
    hard_fraction: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of hard clips whose transcript disagrees with voice and face."
        ),
    ] = 0.2,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a dataset already in OUT_DIR (its label.csv, Raw/ and synthetic.json are deleted first).",
        ),
    ] = False,
) -> None:
    """Write a synthetic MMSA-layout dataset (H.264 + AAC mp4s) whose sentiment all three modalities carry.

    A folder that already holds a dataset (label.csv or Raw/) is refused unless --force."""
    from collections import Counter

    from msa_core import POLARITIES, MSAError, get_spec, polarity_of, read_mmsa
    from msa_core.outdir import ensure_writable_dir
    from msa_core.synthetic import make_dataset, replace_dataset
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console()
    try:
        spec = get_spec(dataset)
        ensure_writable_dir(out_dir, "OUT_DIR")
        replace_dataset(out_dir, force)
        columns = (TextColumn("clips"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("clips", total=n)
            make_dataset(
                out_dir,
                spec,
                n=n,
                seed=seed,
                hard_fraction=hard_fraction,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        data = read_mmsa(out_dir, spec, missing="fail")
    except MSAError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    counts = Counter((c.mode, polarity_of(c.label, spec)) for c in data)
    hard = sum(
        1
        for c in data
        if c.label_T is not None and polarity_of(c.label_T, spec) != polarity_of(c.label, spec)
    )
    table = Table(title=f"{spec.title} synthetic: {len(data)} clips, {hard} hard")
    table.add_column("split")
    for polarity in POLARITIES:
        table.add_column(polarity, justify="right")
    table.add_column("total", justify="right")
    for mode in ("train", "valid", "test"):
        row = [counts[(mode, p)] for p in POLARITIES]
        table.add_row(mode, *map(str, row), str(sum(row)))
    console.print(table)
    console.print(f"wrote {data.root}", highlight=False, soft_wrap=True)


@app.command("demo")
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for every stage's output, logs and the report.")
    ] = Path("runs/demo"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete --out first and run every stage again.")
    ] = False,
    student: Annotated[
        str,
        typer.Option(
            help="Student family of the tiny thinker: qwen2.5-omni (the paper's) or qwen3-omni (MoE, 4 experts)."
        ),
    ] = "",
) -> None:
    """The whole pipeline on CPU in minutes: synthetic clips, stand-in teacher, distil, SFT, Hint-GRPO, report."""
    import sys

    from msa_core import MSAError
    from msa_omni.families import get_family
    from rich.console import Console

    from msa_thinker.demo import DemoSize, run_demo
    from msa_thinker.stage_driver import StageFailed, tail

    size = DemoSize()
    if student:
        try:
            size = DemoSize(student=get_family(student).name)
        except MSAError as exc:
            typer.echo(f"error: --student: {exc}", err=True)
            raise typer.Exit(2) from None
    console = Console(file=sys.stdout)
    try:
        result = run_demo(out, fresh=fresh, console=console, size=size)
    except StageFailed as exc:
        console.print(
            f"[red]stage {exc.stage!r} failed[/]; its log is {exc.log_path}. Last lines:", highlight=False
        )
        console.print(tail(exc.log_path), highlight=False, markup=False)
        raise typer.Exit(1) from None
    except MSAError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    console.print(f"\ndemo finished in {result.wall_s:.0f} s ({len(result.skipped)} stage(s) already done)")
    console.print(f"report:       {result.report}", highlight=False, soft_wrap=True)
    console.print(f"plots:        {result.report.parent / 'plots'}", highlight=False, soft_wrap=True)
    console.print(f"reward plots: {result.report.parent / 'training'}", highlight=False, soft_wrap=True)


class Protocol(StrEnum):
    v1 = "v1"
    v2 = "v2"


@app.command("mini-repro")
def mini_repro(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for every stage's output and the report "
            "(default: runs/mini-repro, -v2 and -quick appended; runs/mini-repro-v2-calibration with --calibrate).",
        ),
    ] = None,
    protocol: Annotated[
        Protocol,
        typer.Option(
            "--protocol",
            help="v1: the first experiment (configs/mini-repro/recipe.yaml); v2: the pre-registered one "
            "(configs/mini-repro/v2.yaml; docs/mini-repro.md).",
        ),
    ] = Protocol.v1,
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", min=1, help="Number of training seeds from the recipe's first_seed."),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Protocol v2's machinery on a few clips (configs/mini-repro/quick.yaml): checks outputs.",
        ),
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Run the recipe's calibration (validation split and training rewards only): calibration.md.",
        ),
    ] = False,
    report_only: Annotated[
        bool,
        typer.Option("--report-only", help="Only make the report again, from the seeds finished in --out."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Recipe (default: the protocol's; quick.yaml with --quick)."),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Change a recipe value, e.g. --set data.train_clips=60.")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete --out first and run every stage again.")
    ] = False,
) -> None:
    """The paper's ablations (Tables III-V, Fig. 3) on CPU with several seeds: report.md + results.json."""
    import sys

    from msa_core import MSAError
    from rich.console import Console

    from msa_thinker.mini_repro import (
        PROTOCOLS,
        QUICK_RECIPE,
        MiniPaths,
        load_mini_recipe,
        run_calibration,
        run_mini_repro,
    )
    from msa_thinker.stage_driver import StageFailed, tail

    console = Console(file=sys.stdout)
    if calibrate and report_only:
        console.print("[red]error:[/] --calibrate and --report-only exclude each other", highlight=False)
        raise typer.Exit(2)
    default_out = "runs/mini-repro" + ("-v2" if protocol == Protocol.v2 else "") + ("-quick" if quick else "")
    try:
        recipe = load_mini_recipe(
            config or (QUICK_RECIPE if quick else PROTOCOLS[protocol.value]), set_ or [], seeds=seeds
        )
        if calibrate:
            report = run_calibration(
                out or Path("runs/mini-repro-v2-calibration"), recipe, fresh=fresh, console=console
            )
            console.print(f"calibration: {report}", highlight=False, soft_wrap=True)
            return
        target = out or Path(default_out)
        if report_only:
            from msa_thinker.mini_repro_results import write_report

            paths = MiniPaths(target.resolve())
            write_report(paths, recipe)
            console.print(f"report:  {paths.report}", highlight=False, soft_wrap=True)
            return
        result = run_mini_repro(target, recipe, fresh=fresh, console=console)
    except StageFailed as exc:
        console.print(
            f"[red]stage {exc.stage!r} failed[/]; its log is {exc.log_path}. Last lines:", highlight=False
        )
        console.print(tail(exc.log_path), highlight=False, markup=False)
        raise typer.Exit(1) from None
    except MSAError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    console.print(f"\nmini-repro: {recipe.seeds} seed(s), {result.run.wall_s:.0f} s this call")
    console.print(f"report:  {result.report}", highlight=False, soft_wrap=True)
    console.print(f"results: {result.results}", highlight=False, soft_wrap=True)


@app.command("paper")
def paper(
    tables: Annotated[
        list[Path], typer.Argument(help="Table files, e.g. configs/paper/table1.yaml (several: merged).")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a pipeline variable, e.g. --set sims=/data/CH-SIMS."),
    ] = None,
    run: Annotated[
        bool, typer.Option("--run", help="Run the commands in order instead of printing them.")
    ] = False,
    student: Annotated[
        str | None,
        typer.Option(
            help="Student family whose recipes the commands use: qwen2.5-omni (the paper's, default) or "
            "qwen3-omni (the 30B-A3B thinker)."
        ),
    ] = None,
) -> None:
    """The commands reproducing paper tables I-V on real data and GPUs (distil, SFT, GRPO, predict, report)."""
    from msa_core import MSAError

    from msa_thinker.paper import execute, plan, render

    try:
        server, steps = plan(list(tables), set_ or [], student)
        if run:
            execute(steps, echo=typer.echo)
        else:
            typer.echo(render(server, steps), nl=False)
    except MSAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@app.command("doctor")
def doctor(
    audio: Annotated[
        bool,
        typer.Option(
            "--audio-check/--no-audio-check",
            help="Check that the installed transformers turns audio in a video into audio tokens (a few s).",
        ),
    ] = True,
    model: Annotated[
        str | None,
        typer.Option(help="Also report the student family of this model directory (or Hub id)."),
    ] = None,
) -> None:
    """Check this machine: Python, uv, FFmpeg, the SFT and vLLM environments, CUDA and GPU memory, DeepSpeed,
    and whether transformers' audio-in-video yields audio tokens; with --model, which student family a model is.
    Each line passes or says how to fix it; exits 1 when a check FAILs (a WARN is only needed by some stages)."""
    from msa_thinker.doctor import FAIL, WARN, run_checks

    results = run_checks(typer.echo, audio=audio, model=model)
    failed = [r.name for r in results if r.status == FAIL]
    warned = [r.name for r in results if r.status == WARN]
    typer.echo(
        f"{len(results) - len(failed) - len(warned)}/{len(results)} ready"
        + (f"; warnings: {', '.join(warned)}" if warned else "")
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


from msa_thinker.analyze_cli import analyze_command  # noqa: E402
from msa_thinker.app_cli import app_command  # noqa: E402
from msa_thinker.publish_model_cli import publish_model_command  # noqa: E402

app.command("analyze")(analyze_command)
app.command("publish-model")(publish_model_command)
app.command("app")(app_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
