"""The msa-eval command line: ``score`` and ``report`` live here; every command registers on
``msa_eval.app.app``.

Heavy work (numpy metrics, matplotlib) is imported inside the commands so that the umbrella CLI starts fast.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from msa_core import MSAError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from msa_eval.app import app

# Other command modules (predict_cli) register on `app` when imported: see the bottom of this file.

_err = Console(stderr=True)


class OnFailure(StrEnum):
    """What enters the metrics for a parse failure (score null/NaN); failures are always counted."""

    neutral = "neutral"
    skip = "skip"
    error = "error"


@contextmanager
def _user_errors() -> Iterator[None]:
    """Print user-facing errors without a traceback (exit 1) and msa-eval's own warnings as clean lines."""
    from msa_eval.metrics import MetricWarning
    from msa_eval.report import ReportWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MetricWarning)
            warnings.simplefilter("always", ReportWarning)
            try:
                yield
            finally:
                for w in caught:
                    if issubclass(w.category, MetricWarning | ReportWarning):
                        _err.print(
                            f"[yellow]warning:[/yellow] {escape(str(w.message))}",
                            markup=True,
                            highlight=False,
                            soft_wrap=True,
                        )
    except MSAError as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _fmt(key: str, value) -> str:
    from msa_eval.metrics import COUNT_KEYS, PERCENT_KEYS

    if key in COUNT_KEYS:
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return f"{100 * value:.2f}" if key in PERCENT_KEYS else f"{value:.4f}"


@app.command()
def score(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="Predictions JSONL: one object per clip with 'label' and "
            "'score' (null = parse failure); other fields may be present."
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset name (mosi, mosei, sims, simsv2) or a spec YAML path; picks the metric family.",
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON object of unrounded fractions (NaN as null) instead of a table."
        ),
    ] = False,
    on_failure: Annotated[
        OnFailure,
        typer.Option(
            "--on-failure",
            help="Parse failures: 'neutral' scores them 0, "
            "'skip' drops them, 'error' refuses the "
            "file. Always counted.",
        ),
    ] = OnFailure.neutral,
) -> None:
    """Score one predictions file exactly as MMSA's metricsTop.py does (plus Acc3, n and parse failures)."""
    from msa_core import get_spec
    from msa_core.skipped import SKIPPED_FILE

    from msa_eval.score import json_safe, score_file_with_coverage

    with _user_errors():
        spec = get_spec(dataset)
        metrics, coverage, skips = score_file_with_coverage(predictions, spec, on_failure.value)
    if skips:
        coverage += f"; listed in {predictions.parent / SKIPPED_FILE}"
    if as_json:
        _err.print(coverage, highlight=False, soft_wrap=True)
        typer.echo(json.dumps(json_safe(metrics)))
        return
    console = Console()
    console.print(
        f"{spec.title} · {predictions} · on failure: {on_failure.value}", highlight=False, soft_wrap=True
    )
    console.print(coverage, highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        label = key if key not in ("n", "parse_failures") else key.replace("_", " ")
        table.add_row(label, _fmt(key, value))
    console.print(table)
    _err.print("accuracies and F1 ×100; MAE and Corr as is", style="dim")


@app.command()
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories, each holding <dataset>.jsonl files; "
            "the directory name is the run's name (table row)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output folder for report.md, tables.tex, metrics.csv, metrics.json and plots/.",
        ),
    ],
    train_domain: Annotated[
        str | None,
        typer.Option(
            "--train-domain",
            help="Dataset the runs were trained on; datasets of its metric family are marked ID, others OOD.",
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset", "-d", help="Datasets to report (repeatable); default: every <dataset>.jsonl found."
        ),
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=0, help="Clip resamples for the 95% intervals and the paired test (0 = none)."
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    on_failure: Annotated[
        OnFailure,
        typer.Option(
            "--on-failure",
            help="Parse failures: 'neutral' scores them 0, "
            "'skip' drops them, 'error' marks the "
            "cell unusable. Always counted.",
        ),
    ] = OnFailure.neutral,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Run (folder name) every other run is compared with in the paired test. Default: the first run.",
        ),
    ] = None,
) -> None:
    """Tables I/II as in the paper (best bold, second underlined), bootstrap intervals, paired tests, plots.

    Runs are compared on the clips they all share (the table says so, with n per run); every run is tested
    against --baseline with a paired bootstrap."""
    from msa_eval.report import write_report

    with _user_errors():
        result = write_report(
            run_dirs,
            out,
            train_domain=train_domain,
            datasets=dataset or None,
            n_boot=bootstrap,
            seed=seed,
            on_failure=on_failure.value,
            baseline=baseline,
        )
    for path in result.files:
        typer.echo(str(path))


def main() -> None:
    app()


import msa_eval.predict_cli  # noqa: E402,F401

if __name__ == "__main__":
    main()
