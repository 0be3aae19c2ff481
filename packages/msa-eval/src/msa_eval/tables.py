"""The paper's tables in Markdown and LaTeX: Table I (SIMS-style) and Table II (MOSI-style) layouts.

Datasets of one metric family sit side by side, rows are runs, accuracies are printed ×100 with one
decimal and MAE/Corr with three, the best value of a column is bold and the second best underlined (ranked
on the printed value, so ties share the mark; lower is better for MAE).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from msa_eval.metrics import LOWER_IS_BETTER, PERCENT_KEYS

# (metric key, column header) in the paper's order. MOSI-style Acc2/F1 are Non0, as the papers print them.
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "sims": (
        ("acc5", "Acc5"),
        ("acc3", "Acc3"),
        ("acc2", "Acc2"),
        ("f1", "F1"),
        ("mae", "MAE"),
        ("corr", "Corr"),
    ),
    "mosi": (("acc7", "Acc7"), ("acc2_non0", "Acc2"), ("f1_non0", "F1"), ("mae", "MAE"), ("corr", "Corr")),
}
TABLE_NAMES = {"sims": "Table I", "mosi": "Table II"}
MISSING = "–"


@dataclass(frozen=True)
class DatasetColumn:
    """One dataset's group of columns: registry name and the header printed above it (with ID/OOD)."""

    name: str
    title: str


# cells[(run, dataset)] -> metrics dict, or None when the run has no usable file for the dataset
Cells = Mapping[tuple[str, str], Mapping[str, float] | None]


def format_value(key: str, value: float | None) -> str:
    """Printed form: accuracies ×100 with one decimal, other metrics with three; '–' when missing."""
    if value is None:
        return MISSING
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if key in PERCENT_KEYS:
        return f"{100.0 * value:.1f}"
    return f"{value:.3f}"


def rank_marks(key: str, values: Sequence[float | None]) -> list[str | None]:
    """'best' / 'second' / None per value, ranked on the printed value; needs two comparable values."""
    printed: list[float | None] = []
    for v in values:
        text = format_value(key, v)
        printed.append(float(text) if text not in (MISSING, "NaN") else None)
    comparable = [v for v in printed if v is not None]
    if len(comparable) < 2:
        return [None] * len(values)
    distinct = sorted(set(comparable), reverse=key not in LOWER_IS_BETTER)
    best = distinct[0]
    second = distinct[1] if len(distinct) > 1 else None
    return ["best" if v == best else "second" if v is not None and v == second else None for v in printed]


def _arrow(key: str, latex: bool) -> str:
    down = key in LOWER_IS_BETTER
    if latex:
        return r"$\downarrow$" if down else r"$\uparrow$"
    return "↓" if down else "↑"


def latex_escape(text: str) -> str:
    table = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(table.get(c, c) for c in text)


def _marked(text: str, mark: str | None, latex: bool) -> str:
    if mark == "best":
        return rf"\textbf{{{text}}}" if latex else f"**{text}**"
    if mark == "second":
        return rf"\underline{{{text}}}" if latex else f"<u>{text}</u>"
    return text


def _grid(family: str, runs: Sequence[str], datasets: Sequence[DatasetColumn], cells: Cells, latex: bool):
    """Rows of printed cells with marks applied, one row per run."""
    rows = [[] for _ in runs]
    for ds in datasets:
        for key, _ in TABLE_COLUMNS[family]:
            values = [(cells.get((run, ds.name)) or {}).get(key) for run in runs]
            marks = rank_marks(key, values)
            for i, (v, m) in enumerate(zip(values, marks, strict=True)):
                text = format_value(key, v)
                rows[i].append("--" if latex and text == MISSING else _marked(text, m, latex))
    return rows


def markdown_table(family: str, runs: Sequence[str], datasets: Sequence[DatasetColumn], cells: Cells) -> str:
    """A GitHub-Markdown table: one header cell per dataset × metric, best **bold**, second
    <u>underlined</u>."""
    header = ["Model"] + [
        f"{ds.title}<br>{label} {_arrow(key, False)}"
        for ds in datasets
        for key, label in TABLE_COLUMNS[family]
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for run, row in zip(runs, _grid(family, runs, datasets, cells, latex=False), strict=True):
        lines.append("| " + " | ".join([run.replace("|", "\\|"), *row]) + " |")
    return "\n".join(lines)


def markdown_interval_table(
    family: str, runs: Sequence[str], datasets: Sequence[DatasetColumn], intervals: Cells
) -> str:
    """Bootstrap intervals in the same layout; ``intervals[(run, ds)][key] = (lo, hi)``."""
    header = ["Model"] + [f"{ds.title}<br>{label}" for ds in datasets for _, label in TABLE_COLUMNS[family]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for run in runs:
        row = [run.replace("|", "\\|")]
        for ds in datasets:
            ci = intervals.get((run, ds.name)) or {}
            for key, _ in TABLE_COLUMNS[family]:
                lo_hi = ci.get(key)
                row.append(
                    MISSING
                    if lo_hi is None
                    else f"[{format_value(key, lo_hi[0])}, {format_value(key, lo_hi[1])}]"
                )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _latex_tabular(family: str, runs: Sequence[str], datasets: Sequence[DatasetColumn], rows) -> list[str]:
    width = len(TABLE_COLUMNS[family])
    spec = "l" + " ".join("c" * width for _ in datasets)
    out = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    groups = [rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(ds.title)}}}" for ds in datasets]
    out.append("Model & " + " & ".join(groups) + r" \\")
    out.append(
        "".join(rf"\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(datasets)))
    )
    heads = [f"{label} {_arrow(key, True)}" for _ in datasets for key, label in TABLE_COLUMNS[family]]
    out += [" & " + " & ".join(heads) + r" \\", r"\midrule"]
    for run, row in zip(runs, rows, strict=True):
        out.append(" & ".join([latex_escape(run), *row]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return out


def latex_table(
    family: str,
    runs: Sequence[str],
    datasets: Sequence[DatasetColumn],
    cells: Cells,
    caption: str,
    label: str,
) -> str:
    """A booktabs ``table*`` (needs ``\\usepackage{booktabs}``), best \\textbf, second \\underline."""
    rows = _grid(family, runs, datasets, cells, latex=True)
    body = _latex_tabular(family, runs, datasets, rows)
    head = [
        r"\begin{table*}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
    ]
    return "\n".join([*head, *body, r"\end{table*}"])


def latex_interval_table(
    family: str,
    runs: Sequence[str],
    datasets: Sequence[DatasetColumn],
    intervals: Cells,
    caption: str,
    label: str,
) -> str:
    rows = []
    for run in runs:
        row = []
        for ds in datasets:
            ci = intervals.get((run, ds.name)) or {}
            for key, _ in TABLE_COLUMNS[family]:
                lo_hi = ci.get(key)
                row.append(
                    "--"
                    if lo_hi is None
                    else f"[{format_value(key, lo_hi[0])}, {format_value(key, lo_hi[1])}]"
                )
        rows.append(row)
    body = _latex_tabular(family, runs, datasets, rows)
    head = [r"\begin{table*}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}"]
    return "\n".join([*head, rf"\label{{{label}}}", *body, r"\end{table*}"])


# ---------------------------------------------------------------------------------------- rows over seeds
# summaries[key] = {"mean", "half_width", "n"} (msa_eval.seeds.SeedSummary.as_dict); None values print as '–'.
def format_interval(key: str, summary: Mapping | None, n_seeds: int, *, percent: bool | None = None) -> str:
    """'mean ± half-width' as the tables print the metric (×100 for accuracies); '(k/N seeds)' when the metric is
    undefined in some seeds."""
    mean = (summary or {}).get("mean")
    if mean is None:
        return MISSING
    pct = key in PERCENT_KEYS if percent is None else percent
    scale, digits = (100.0, 1) if pct else (1.0, 3)
    half = summary.get("half_width")
    text = f"{mean * scale:.{digits}f}" + (f" ± {half * scale:.{digits}f}" if half is not None else "")
    n = summary.get("n", n_seeds)
    return text + (f" ({n}/{n_seeds} seeds)" if n < n_seeds else "")


def markdown_seed_table(
    family: str,
    rows: Sequence[tuple[str, Mapping[str, Mapping]]],
    n_seeds: int,
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """One test set's rows over seeds: the family's columns, then ``extra`` (key, header) columns printed ×100;
    each cell the mean over seeds ± the 95 % half-width."""
    cols = TABLE_COLUMNS[family]
    head = ["Model", *(f"{label} {_arrow(k, False)}" for k, label in cols), *(label for _, label in extra)]
    lines = ["| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
    for label, summaries in rows:
        cells = [format_interval(k, summaries.get(k), n_seeds) for k, _ in cols]
        cells += [format_interval(k, summaries.get(k), n_seeds, percent=True) for k, _ in extra]
        lines.append(f"| {label.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# paired[key] = {"diff_mean", "diff_half_width", "p_clip_bootstrap", "b_better_seeds"} (B − A over seeds)
def format_paired(key: str, paired: Mapping | None, n_seeds: int) -> str:
    """'Δ ± half-width (p …; k/N)' of a paired comparison over seeds."""
    if paired is None or paired.get("diff_mean") is None:
        return MISSING
    scale, digits = (100.0, 1) if key in PERCENT_KEYS else (1.0, 3)
    half = paired.get("diff_half_width")
    half_text = f" ± {half * scale:.{digits}f}" if half is not None else ""
    p = paired.get("p_clip_bootstrap")
    p_text = MISSING if p is None else f"{p:.3f}"
    return f"{paired['diff_mean'] * scale:+.{digits}f}{half_text} (p {p_text}; {paired['b_better_seeds']}/{n_seeds})"


def markdown_paired_table(
    family: str, title: str, rows: Sequence[tuple[str, Mapping[str, Mapping | None]]], n_seeds: int
) -> str:
    """Paired comparisons over seeds on one test set: one row per 'A → B', one Δ column per metric."""
    cols = TABLE_COLUMNS[family]
    lines = [
        f"| {title} | " + " | ".join(f"Δ {label}" for _, label in cols) + " |",
        "|:---|" + "---:|" * len(cols),
    ]
    for label, paired in rows:
        lines.append(
            f"| {label} | " + " | ".join(format_paired(k, paired.get(k), n_seeds) for k, _ in cols) + " |"
        )
    return "\n".join(lines)
