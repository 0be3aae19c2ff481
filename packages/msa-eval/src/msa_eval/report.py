"""``msa-eval report``: score runs on datasets; write the paper's tables, CSV/JSON and plots.

A run directory holds one ``<dataset>.jsonl`` per dataset; the run's name is the directory's name. A run
without a dataset's file (or with an unusable one) gets '–' in that dataset's cells and a warning, never a
crash.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from msa_core import DataError, DatasetSpec, MSAError, UsageError, get_spec, list_specs
from msa_core import artifacts as A
from msa_core.outdir import ensure_writable_dir
from msa_core.skipped import SKIPPED_FILE, Skip, describe

from msa_eval.bootstrap import bootstrap_ci, paired_bootstrap
from msa_eval.metrics import PERCENT_KEYS, MetricWarning, metrics_from_samples, prepare
from msa_eval.predictions import (
    Predictions,
    Resolved,
    apply_failure_policy,
    check_dataset,
    check_labels,
    coverage_text,
    read_predictions,
    skipped_clips,
)
from msa_eval.score import json_safe
from msa_eval.tables import (
    TABLE_NAMES,
    DatasetColumn,
    format_value,
    latex_interval_table,
    latex_table,
    markdown_interval_table,
    markdown_table,
)

CONFIDENCE = 0.95
ALL_VALUE_KEYS = (
    "acc2_has0",
    "f1_has0",
    "acc2_non0",
    "f1_non0",
    "acc2",
    "f1",
    "acc3",
    "acc5",
    "acc7",
    "mae",
    "corr",
)
FAMILY_ORDER = ("sims", "mosi")
OUTPUT_FILES = (A.REPORT_MARKDOWN, A.REPORT_LATEX, A.REPORT_CSV, A.REPORT_JSON)


class ReportWarning(UserWarning):
    """Something the report works around (a missing dataset file, an unusable cell, an unknown file name)."""


@dataclass
class Cell:
    """One run × dataset."""

    run: str
    dataset: str
    status: str  # "ok" | "missing" | "error"
    message: str = ""
    path: Path | None = None
    predictions: Predictions | None = None
    resolved: Resolved | None = None
    metrics: dict | None = None
    ci: dict[str, tuple[float, float]] | None = None
    per_sample: object = None
    skips: list[Skip] = field(default_factory=list)
    """Clips ``msa-eval predict`` left out of this file (RUN_DIR/skipped.jsonl)."""
    predicted: int = 0
    """Clips in the file; ``predictions`` holds only the clips every run shares when the runs differ."""

    @property
    def coverage(self) -> str:
        """``n = 3 of 5 (2 skipped: missing 1, unreadable 1)``."""
        return coverage_text(int(self.metrics["n"]), self.predicted, self.skips)


@dataclass
class ReportResult:
    """What ``write_report`` produced."""

    out: Path
    files: list[Path]
    warnings: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


class _Notes:
    """Warnings both collected (for report.md / metrics.json) and emitted (for the CLI and tests)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def warn(self, message: str, category: type[Warning] = ReportWarning) -> None:
        self.items.append(message)
        warnings.warn(message, category, stacklevel=3)


def _run_names(run_dirs: list[Path]) -> list[str]:
    names: list[str] = []
    for d in run_dirs:
        name = d.resolve().name
        base, k = name, 2
        while name in names:  # two runs called alike (a/best, b/best): keep them apart
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def _dataset_order(spec: DatasetSpec) -> tuple:
    builtin = ["sims", "simsv2", "mosi", "mosei"]
    family = (
        FAMILY_ORDER.index(spec.metric_family) if spec.metric_family in FAMILY_ORDER else len(FAMILY_ORDER)
    )
    rank = builtin.index(spec.name) if spec.name in builtin else len(builtin)
    return (family, rank, spec.name)


def _discover_datasets(run_dirs: list[Path], notes: _Notes) -> list[DatasetSpec]:
    known = {s.name: s for s in list_specs()}
    found: dict[str, DatasetSpec] = {}
    for d in run_dirs:
        for f in sorted(d.glob("*.jsonl")):
            if f.name == SKIPPED_FILE:
                continue
            if f.stem in known:
                found[f.stem] = known[f.stem]
            else:
                notes.warn(
                    f"{f}: {f.stem!r} is not a registered dataset; file ignored (pass --dataset to add it)"
                )
    return sorted(found.values(), key=_dataset_order)


def _score_cell(
    run: str, run_dir: Path, spec: DatasetSpec, on_failure: str, n_boot: int, seed: int, notes: _Notes
) -> Cell:
    path = run_dir / f"{spec.name}.jsonl"
    if not path.is_file():
        notes.warn(f"run {run!r} has no {path.name} ({path}); its {spec.title} cells show '–'")
        return Cell(run, spec.name, "missing", message=f"{path.name} not found", path=path)
    try:
        pred = read_predictions(path)
    except MSAError as exc:
        notes.warn(f"run {run!r}, {spec.title}: {exc}; its cells show '–'")
        return Cell(run, spec.name, "error", message=str(exc), path=path)
    # A file holding another dataset's rows is a mistake to fix, not a cell to leave out: it stops the report.
    check_dataset(pred, spec, option="its file name")
    try:
        check_labels(pred, spec)
        skips = skipped_clips(pred, spec)
        cell = _measure(run, spec, path, pred, skips, on_failure, n_boot, seed, notes)
    except MSAError as exc:
        notes.warn(f"run {run!r}, {spec.title}: {exc}; its cells show '–'")
        return Cell(run, spec.name, "error", message=str(exc), path=path)
    if skips:
        notes.warn(
            f"run {run!r}, {spec.title}: {len(skips)} of {len(pred.records) + len(skips)} clips were skipped "
            f"at prediction: {describe(skips)}; see {run_dir / SKIPPED_FILE}"
        )
    return cell


def _measure(
    run: str,
    spec: DatasetSpec,
    path: Path,
    pred: Predictions,
    skips: list[Skip],
    on_failure: str,
    n_boot: int,
    seed: int,
    notes: _Notes,
    predicted: int | None = None,
) -> Cell:
    """Metrics and intervals of ``pred`` (all of a file's clips, or the ones every run shares)."""
    resolved = apply_failure_policy(pred, on_failure)
    ps = prepare(resolved.preds, resolved.labels, spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricWarning)
        metrics = metrics_from_samples(ps, parse_failures=resolved.parse_failures)
    for w in caught:
        if issubclass(w.category, MetricWarning):
            notes.warn(f"run {run!r}, {spec.title}: {w.message}", MetricWarning)
    ci = bootstrap_ci(ps, n_boot, seed, CONFIDENCE) if n_boot > 0 else None
    return Cell(
        run,
        spec.name,
        "ok",
        path=path,
        predictions=pred,
        resolved=resolved,
        metrics=metrics,
        ci=ci,
        per_sample=ps,
        skips=skips,
        predicted=len(pred.records) if predicted is None else predicted,
    )


@dataclass(frozen=True)
class SharedClips:
    """A dataset whose runs predicted different clips: every run is scored on the ``n`` clips all of them have."""

    n: int
    predicted: dict[str, int]  # run -> clips in its file


def _subset(pred: Predictions, keep: list[int]) -> Predictions:
    idx = np.asarray(keep, dtype=np.int64)
    return Predictions(
        pred.path,
        [pred.records[i] for i in keep],
        pred.labels[idx],
        pred.scores[idx],
        [pred.lines[i] for i in keep],
    )


def _compare_on_shared_clips(
    spec: DatasetSpec, cells: dict, runs: list[str], on_failure: str, n_boot: int, seed: int, notes: _Notes
) -> SharedClips | None:
    """Rank runs on equal footing: when their files hold different clips, re-score every run on the clips all of
    them share (by id). Files without ids are compared as they are, with a warning when their lengths differ."""
    ok = [cells[(run, spec.name)] for run in runs if cells[(run, spec.name)].status == "ok"]
    if len(ok) < 2:
        return None
    ids = {c.run: c.predictions.ids for c in ok}
    counts = {c.run: len(c.predictions.records) for c in ok}
    if any(v is None for v in ids.values()):
        if len(set(counts.values())) > 1:
            notes.warn(
                f"{spec.title}: runs hold different numbers of clips ({', '.join(f'{r} {n}' for r, n in counts.items())}) "
                "and some file has no ids, so the clips they share cannot be found: their rows are not comparable"
            )
        return None
    shared = set.intersection(*(set(v) for v in ids.values()))
    if all(len(v) == len(shared) for v in ids.values()):
        return None
    if not shared:
        notes.warn(
            f"{spec.title}: the runs share no clip; each is scored on its own clips and the rows are not comparable"
        )
        return None
    for c in ok:
        keep = [i for i, key in enumerate(ids[c.run]) if key in shared]
        cells[(c.run, spec.name)] = _measure(
            c.run,
            spec,
            c.path,
            _subset(c.predictions, keep),
            c.skips,
            on_failure,
            n_boot,
            seed,
            notes,
            counts[c.run],
        )
    notes.warn(
        f"{spec.title}: runs cover different clips ({', '.join(f'{r} {n}' for r, n in counts.items())}); every run "
        f"is scored on the {len(shared)} clips all of them share"
    )
    return SharedClips(len(shared), counts)


def _match(a: Cell, b: Cell, notes: _Notes) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions (into each cell's resolved arrays) of the clips both runs scored.

    Matched by ``id`` if both files have unique ids, else by line order.
    """
    ids_a, ids_b = a.predictions.ids, b.predictions.ids
    by_id = (
        ids_a is not None
        and ids_b is not None
        and len(set(ids_a)) == len(ids_a)
        and len(set(ids_b)) == len(ids_b)
    )
    if by_id:
        keys_a = [ids_a[i] for i in a.resolved.kept]
        keys_b = [ids_b[i] for i in b.resolved.kept]
    else:
        if len(a.predictions.records) != len(b.predictions.records):
            notes.warn(
                f"{a.dataset}: no unique ids in both runs and the files differ in length; "
                f"pairing clips by line order on the common prefix"
            )
        keys_a, keys_b = list(a.resolved.kept), list(b.resolved.kept)
    where_b = {k: i for i, k in enumerate(keys_b)}
    pairs = [(i, where_b[k]) for i, k in enumerate(keys_a) if k in where_b]
    sel_a = np.asarray([p[0] for p in pairs], dtype=np.int64)
    sel_b = np.asarray([p[1] for p in pairs], dtype=np.int64)
    return sel_a, sel_b, "id" if by_id else "line order"


def _paired(a: Cell, b: Cell, spec: DatasetSpec, n_boot: int, seed: int, notes: _Notes) -> dict | None:
    sel_a, sel_b, matched_on = _match(a, b, notes)
    if sel_a.size == 0:
        notes.warn(f"{spec.title}: runs {a.run!r} and {b.run!r} share no clips; no paired test")
        return None
    la, lb = a.resolved.labels[sel_a], b.resolved.labels[sel_b]
    if (differ := int(np.count_nonzero(la != lb))) > 0:
        notes.warn(
            f"{spec.title}: {differ} paired clips have different labels in {a.run!r} and {b.run!r}; "
            f"each run is scored against its own labels"
        )
    ps_a = prepare(a.resolved.preds[sel_a], la, spec)
    ps_b = prepare(b.resolved.preds[sel_b], lb, spec)
    return {
        "n_common": int(sel_a.size),
        "matched_on": matched_on,
        "metrics": paired_bootstrap(ps_a, ps_b, n_boot, seed),
    }


def _plots(
    out: Path, runs: list[str], specs: list[DatasetSpec], cells: dict, titles: dict[str, str]
) -> list[Path]:
    from msa_eval.plots import RunPanel, plot_confusion, plot_scatter, plot_summary

    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    summary: dict[tuple[str, str, str], float] = {}
    for spec in specs:
        panels = []
        for run in runs:
            cell = cells[(run, spec.name)]
            if cell.status != "ok":
                continue
            ps = cell.per_sample
            failed = cell.predictions.failed[cell.resolved.kept]
            panels.append(
                RunPanel(
                    run, cell.resolved.preds, cell.resolved.labels, failed, ps.pred_polarity, ps.true_polarity
                )
            )
            acc2 = cell.metrics.get("acc2", cell.metrics.get("acc2_non0"))
            summary[(run, spec.name, "acc2")] = acc2
            summary[(run, spec.name, "corr")] = cell.metrics["corr"]
        if not panels:
            continue
        files.append(plot_confusion(titles[spec.name], panels, plot_dir / f"{spec.name}_confusion.png"))
        files.append(plot_scatter(titles[spec.name], spec, panels, plot_dir / f"{spec.name}_scatter.png"))
    if summary:
        files.append(
            plot_summary(runs, [(s.name, titles[s.name]) for s in specs], summary, plot_dir / "summary.png")
        )
    return files


def _caption(specs: list[DatasetSpec], titles: dict[str, str], train_domain: DatasetSpec | None) -> str:
    names = [titles[s.name] for s in specs]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    text = f"Performance comparison on {listed}."
    if train_domain is not None:
        text += f" All models are trained on the {train_domain.title} dataset."
    return text


def _csv_rows(runs, specs, cells, domains) -> list[dict]:
    rows = []
    for run in runs:
        for spec in specs:
            cell = cells[(run, spec.name)]
            row = {
                "run": run,
                "dataset": spec.name,
                "domain": domains[spec.name] or "",
                "family": spec.metric_family,
                "status": cell.status,
            }
            m, ci = cell.metrics or {}, cell.ci or {}
            row["n"] = m.get("n", "")
            row["clips"] = cell.predicted + len(cell.skips) if cell.predictions else ""
            row["skipped"] = len(cell.skips) if cell.predictions else ""
            row["parse_failures"] = m.get("parse_failures", "")
            for key in ALL_VALUE_KEYS:
                row[key] = repr(m[key]) if key in m else ""
            for key in ALL_VALUE_KEYS:
                lo_hi = ci.get(key)
                row[f"{key}_ci_low"] = repr(lo_hi[0]) if lo_hi else ""
                row[f"{key}_ci_high"] = repr(lo_hi[1]) if lo_hi else ""
            rows.append(row)
    return rows


def _failures_table(runs, specs, cells, titles) -> str:
    header = ["Model"] + [f"{titles[s.name]}<br>n of clips (skipped); parse failures" for s in specs]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * len(specs)) + "|"]
    for run in runs:
        row = [run]
        for s in specs:
            cell = cells[(run, s.name)]
            if cell.status != "ok":
                row.append("–")
                continue
            n_lines = len(cell.predictions.records)
            fails = cell.metrics["parse_failures"]
            row.append(f"{cell.coverage}; {fails} ({100 * fails / n_lines:.1f}%)")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _paired_markdown(paired: dict, titles: dict[str, str], run_a: str, run_b: str) -> str:
    lines = [
        f"| Dataset | Metric | {run_a} | {run_b} | {run_b} − {run_a} | p |",
        "|:---|:---|---:|---:|---:|---:|",
    ]
    for name, res in paired.items():
        where = f"{titles[name]} (n={res['n_common']}, by {res['matched_on']})"
        for key, r in res["metrics"].items():
            diff = r["diff"]
            diff_text = (
                "NaN" if np.isnan(diff) else (f"{100 * diff:+.1f}" if key in PERCENT_KEYS else f"{diff:+.3f}")
            )
            p = "NaN" if np.isnan(r["p_value"]) else f"{r['p_value']:.4f}"
            lines.append(
                f"| {where} | {key} | {format_value(key, r['a'])} | {format_value(key, r['b'])} | "
                f"{diff_text} | {p} |"
            )
            where = ""
    return "\n".join(lines)


@dataclass
class ScoredRuns:
    """Every run × dataset scored, with what the tables need to say about them (no file written yet)."""

    runs: list[str]
    dirs: list[Path]
    specs: list[DatasetSpec]
    train: DatasetSpec | None
    domains: dict[str, str | None]
    titles: dict[str, str]
    cells: dict[tuple[str, str], Cell]
    paired: dict[str, dict]
    on_failure: str
    n_boot: int
    seed: int
    notes: _Notes
    baseline: str = ""
    shared: dict[str, SharedClips] = field(default_factory=dict)

    def by_family(self) -> dict[str, list[DatasetSpec]]:
        return {f: [s for s in self.specs if s.metric_family == f] for f in FAMILY_ORDER}

    def metric_cells(self) -> dict[tuple[str, str], dict]:
        return {k: c.metrics for k, c in self.cells.items() if c.status == "ok"}

    def ci_cells(self) -> dict[tuple[str, str], dict]:
        return {k: c.ci for k, c in self.cells.items() if c.status == "ok" and c.ci}

    def columns(self, family: str) -> list[DatasetColumn]:
        return [DatasetColumn(s.name, self.titles[s.name]) for s in self.by_family()[family]]


def score_runs(
    run_dirs: list[str | Path],
    *,
    train_domain: str | None = None,
    datasets: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    on_failure: str = "neutral",
    baseline: str | None = None,
) -> ScoredRuns:
    """Score every run × dataset on the clips the runs share (metrics, bootstrap intervals), and test every run
    against ``baseline`` (default: the first run) with a paired bootstrap."""
    notes = _Notes()
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise DataError("report needs at least one run directory")
    for d in dirs:
        if not d.is_dir():
            raise DataError("run directory not found (expected a folder of <dataset>.jsonl files)", file=d)
    if n_boot < 0:
        raise ValueError("--bootstrap must be >= 0")
    runs = _run_names(dirs)
    if baseline is not None and baseline not in runs:
        raise UsageError(f"--baseline {baseline!r} is not one of the runs ({', '.join(runs)})")
    base = baseline if baseline is not None else runs[0]
    specs = (
        sorted({s.name: s for s in map(get_spec, datasets)}.values(), key=_dataset_order)
        if datasets
        else _discover_datasets(dirs, notes)
    )
    if not specs:
        raise DataError("no <dataset>.jsonl files of a registered dataset in any run directory")
    train = get_spec(train_domain) if train_domain else None
    domains = {
        s.name: (("ID" if s.metric_family == train.metric_family else "OOD") if train else None)
        for s in specs
    }
    titles = {s.name: f"{s.title} ({domains[s.name]})" if domains[s.name] else s.title for s in specs}
    cells = {
        (run, s.name): _score_cell(run, d, s, on_failure, n_boot, seed, notes)
        for run, d in zip(runs, dirs, strict=True)
        for s in specs
    }
    shared = {
        s.name: found
        for s in specs
        if (found := _compare_on_shared_clips(s, cells, runs, on_failure, n_boot, seed, notes)) is not None
    }
    paired: dict[str, dict[str, dict]] = {}  # run -> dataset -> its test against the baseline
    if len(runs) >= 2 and n_boot > 0:
        for run in runs:
            if run == base:
                continue
            for s in specs:
                a, b = cells[(base, s.name)], cells[(run, s.name)]
                if a.status == "ok" and b.status == "ok" and (res := _paired(a, b, s, n_boot, seed, notes)):
                    paired.setdefault(run, {})[s.name] = res
    return ScoredRuns(
        runs,
        dirs,
        specs,
        train,
        domains,
        titles,
        cells,
        paired,
        on_failure,
        n_boot,
        seed,
        notes,
        base,
        shared,
    )


def _clips_line(sc: ScoredRuns, specs: list[DatasetSpec]) -> str:
    """Under each table: the clips each row rests on, and when runs differed, that only shared clips count."""
    parts = []
    for spec in specs:
        ns = [
            f"`{run}` {int(cell.metrics['n'])}"
            for run in sc.runs
            if (cell := sc.cells[(run, spec.name)]).status == "ok"
        ]
        if not ns:
            continue
        text = f"{sc.titles[spec.name]}: {', '.join(ns)}"
        if (sh := sc.shared.get(spec.name)) is not None:
            held = ", ".join(f"`{r}` {n}" for r, n in sh.predicted.items())
            text += f" (**compared on the {sh.n} clips every run has**; clips predicted: {held})"
        parts.append(text)
    return "n per run: " + "; ".join(parts) + "." if parts else ""


def render_markdown(scored: ScoredRuns, plot_files: list[Path]) -> str:
    """report.md: the paper's tables, parse failures, intervals, the paired test, plots and warnings."""
    sc = scored
    md = ["# msa-eval report", ""]
    md.append("Runs: " + ", ".join(f"`{r}` ({d})" for r, d in zip(sc.runs, sc.dirs, strict=True)) + ".  ")
    if sc.train:
        md.append(
            f"Trained on {sc.train.title}: datasets of its metric family are in-domain (ID), others "
            f"out-of-domain (OOD).  "
        )
    md.append(
        f"Unparsable outputs: policy `{sc.on_failure}`"
        + (" (scored 0, the neutral centre)" if sc.on_failure == "neutral" else "")
        + "; always counted under parse failures.  "
    )
    md.append(
        "Accuracies and F1 ×100; MAE and Corr as is. **Best** in bold, <u>second</u> underlined; "
        "metrics computed exactly as MMSA's `metricsTop.py`."
    )
    by_family, metric_cells, ci_cells = sc.by_family(), sc.metric_cells(), sc.ci_cells()
    for family in FAMILY_ORDER:
        if not by_family[family]:
            continue
        style = "SIMS-style" if family == "sims" else "MOSI-style"
        md += [
            "",
            f"## {TABLE_NAMES[family]} ({style} datasets)",
            "",
            _caption(by_family[family], sc.titles, sc.train),
            "",
            markdown_table(family, sc.runs, sc.columns(family), metric_cells),
            "",
            _clips_line(sc, by_family[family]),
        ]
        if family == "mosi":
            md += [
                "",
                "Acc2 and F1 here are Non0 (clips with label ≠ 0, positive = `> 0`), as the papers print "
                "them; Has0, Acc3 and Acc5 are in `metrics.csv` and `metrics.json`.",
            ]
    md += ["", "## Clips and parse failures", "", _failures_table(sc.runs, sc.specs, sc.cells, sc.titles)]
    if ci_cells:
        md += [
            "",
            f"## Bootstrap {int(CONFIDENCE * 100)}% intervals",
            "",
            f"Percentile intervals from {sc.n_boot} resamples of the clips (seed {sc.seed}).",
        ]
        for family in FAMILY_ORDER:
            if by_family[family]:
                md += [
                    "",
                    f"### {TABLE_NAMES[family]}",
                    "",
                    markdown_interval_table(family, sc.runs, sc.columns(family), ci_cells),
                ]
    if sc.paired:
        md += [
            "",
            f"## Paired bootstrap tests against `{sc.baseline}`",
            "",
            f"Each run and the baseline re-scored on the same {sc.n_boot} resamples of their common clips; "
            f"two-sided p-value of the difference. Choose the baseline with `--baseline RUN`.",
        ]
        for run, tests in sc.paired.items():
            md += [
                "",
                f"### `{run}` vs `{sc.baseline}`",
                "",
                _paired_markdown(tests, sc.titles, sc.baseline, run),
            ]
    if plot_files:
        md += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plot_files]
    if sc.notes.items:
        md += ["", "## Warnings", ""] + [f"- {w}" for w in sc.notes.items]
    return "\n".join(md) + "\n"


def render_latex(scored: ScoredRuns) -> str:
    """tables.tex: the paper's tables (booktabs), and their bootstrap intervals."""
    sc = scored
    tex = ["% msa-eval report tables; needs \\usepackage{booktabs}.", ""]
    by_family, metric_cells, ci_cells = sc.by_family(), sc.metric_cells(), sc.ci_cells()
    for family in FAMILY_ORDER:
        if not by_family[family]:
            continue
        cols = sc.columns(family)
        caption = _caption(by_family[family], sc.titles, sc.train)
        tex += [latex_table(family, sc.runs, cols, metric_cells, caption, f"tab:{family}"), ""]
        if ci_cells:
            tex += [
                latex_interval_table(
                    family,
                    sc.runs,
                    cols,
                    ci_cells,
                    f"Bootstrap {int(CONFIDENCE * 100)}% percentile intervals ({sc.n_boot} clip "
                    f"resamples). " + caption,
                    f"tab:{family}-ci",
                ),
                "",
            ]
    return "\n".join(tex) + "\n"


def metrics_json(scored: ScoredRuns) -> dict:
    """metrics.json: settings, datasets, every cell's metrics and intervals, the paired test, warnings."""
    sc = scored
    return {
        "settings": {
            "runs": sc.runs,
            "run_dirs": [str(d) for d in sc.dirs],
            "datasets": [s.name for s in sc.specs],
            "train_domain": sc.train.name if sc.train else None,
            "on_failure": sc.on_failure,
            "bootstrap": sc.n_boot,
            "seed": sc.seed,
            "confidence": CONFIDENCE,
        },
        "datasets": {
            s.name: {"title": sc.titles[s.name], "family": s.metric_family, "domain": sc.domains[s.name]}
            for s in sc.specs
        },
        "results": {run: {s.name: _cell_json(sc.cells[(run, s.name)]) for s in sc.specs} for run in sc.runs},
        "shared_clips": {name: {"n": sh.n, "predicted": sh.predicted} for name, sh in sc.shared.items()},
        "paired_test": {"baseline": sc.baseline, "runs": sc.paired} if sc.paired else None,
        "warnings": sc.notes.items,
    }


def write_report(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    train_domain: str | None = None,
    datasets: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    on_failure: str = "neutral",
    baseline: str | None = None,
) -> ReportResult:
    """Score every run × dataset and write report.md, tables.tex, metrics.csv, metrics.json and
    plots/*.png (replacing those of an earlier report there). ``out`` is checked before any scoring."""
    out = ensure_writable_dir(out, "--out")
    scored = score_runs(
        run_dirs,
        train_domain=train_domain,
        datasets=datasets,
        n_boot=n_boot,
        seed=seed,
        on_failure=on_failure,
        baseline=baseline,
    )
    plot_files = _plots(out, scored.runs, scored.specs, scored.cells, scored.titles)
    summary = metrics_json(scored)
    (out / A.REPORT_MARKDOWN).write_text(render_markdown(scored, plot_files), encoding="utf-8")
    (out / A.REPORT_LATEX).write_text(render_latex(scored), encoding="utf-8")
    (out / A.REPORT_JSON).write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    rows = _csv_rows(scored.runs, scored.specs, scored.cells, scored.domains)
    with (out / A.REPORT_CSV).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    files = [out / name for name in OUTPUT_FILES]
    return ReportResult(out, files + plot_files, scored.notes.items, summary)


def _cell_json(cell: Cell) -> dict:
    if cell.status != "ok":
        return {"status": cell.status, "message": cell.message, "file": str(cell.path) if cell.path else None}
    ci = {k: list(v) for k, v in cell.ci.items()} if cell.ci else None
    return {
        "status": "ok",
        "file": str(cell.path),
        "metrics": cell.metrics,
        "ci95": ci,
        "clips": cell.predicted + len(cell.skips),
        "coverage": cell.coverage,
        "skipped": [s.as_dict() for s in cell.skips],
    }
