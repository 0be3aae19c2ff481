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
