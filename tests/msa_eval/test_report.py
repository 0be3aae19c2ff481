"""`msa-eval report`: two runs × four datasets write every file, with the paper's marks in the right cells."""

from __future__ import annotations

import csv
import json

import pytest
from msa_eval.cli import app
from msa_eval.report import ReportWarning, write_report
from msa_eval.score import score_file
from typer.testing import CliRunner

DATASETS = ("sims", "simsv2", "mosi", "mosei")


def _perfect(rows):
    return [{**r, "score": r["label"]} for r in rows]


@pytest.fixture
def two_runs(make_run, synthetic_rows):
    """alpha is perfect on sims and mosei, beta on simsv2 and mosi; beta has parse failures on mosei."""
    base = {
        d: synthetic_rows(d, 48, seed=i, noise=0.4 if d.startswith("sims") else 1.0)
        for i, d in enumerate(DATASETS)
    }
    noisy = {
        d: synthetic_rows(d, 48, seed=i, noise=0.5 if d.startswith("sims") else 1.2, fail_every=8)
        for i, d in enumerate(DATASETS)
    }
    alpha = make_run(
        "alpha",
        {
            "sims": _perfect(base["sims"]),
            "simsv2": base["simsv2"],
            "mosi": base["mosi"],
            "mosei": _perfect(base["mosei"]),
        },
    )
    beta = make_run(
        "beta",
        {
            "sims": noisy["sims"],
            "simsv2": _perfect(noisy["simsv2"]),
            "mosi": _perfect(noisy["mosi"]),
            "mosei": noisy["mosei"],
        },
    )
    return alpha, beta


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _row(section: str, run: str) -> list[str]:
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {run} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_report_two_runs_four_datasets_writes_everything(tmp_path, two_runs):
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "report",
            *map(str, two_runs),
            "--out",
            str(out),
            "--train-domain",
            "sims",
            "--bootstrap",
            "40",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("report.md", "tables.tex", "metrics.csv", "metrics.json", "plots/summary.png"):
        assert (out / name).stat().st_size > 0, name
    for d in DATASETS:
        for kind in ("confusion", "scatter"):
            png = out / "plots" / f"{d}_{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    md = (out / "report.md").read_text()
    table1, table2 = _section(md, "Table I "), _section(md, "Table II ")
    assert "CH-SIMS (ID)<br>Acc5 ↑" in table1 and "CH-SIMS v2 (ID)" in table1
    assert "CMU-MOSI (OOD)<br>Acc7 ↑" in table2 and "CMU-MOSEI (OOD)" in table2 and "MAE ↓" in table2
    alpha, beta = _row(table1, "alpha"), _row(table1, "beta")
    # Table I: 6 columns per dataset; alpha perfect on CH-SIMS, beta on CH-SIMS v2
    assert alpha[:6] == ["**100.0**"] * 4 + ["**0.000**", "**1.000**"]
    assert all(c.startswith("<u>") for c in beta[:6])
    assert beta[6:] == ["**100.0**"] * 4 + ["**0.000**", "**1.000**"]
    assert all(c.startswith("<u>") for c in alpha[6:])
    alpha2, beta2 = _row(table2, "alpha"), _row(table2, "beta")
    # Table II: Acc7 Acc2 F1 MAE Corr; beta perfect on MOSI, alpha on MOSEI
    assert beta2[:5] == ["**100.0**"] * 3 + ["**0.000**", "**1.000**"]
    assert alpha2[5:] == ["**100.0**"] * 3 + ["**0.000**", "**1.000**"]
    assert all(c.startswith("<u>") for c in alpha2[:5] + beta2[5:])
    assert "Paired bootstrap test" in md and "95% intervals" in md and "plots/mosi_scatter.png" in md

    tex = (out / "tables.tex").read_text()
    assert (
        r"alpha & \textbf{100.0} & \textbf{100.0} & \textbf{100.0} & \textbf{100.0} & \textbf{0.000}" in tex
    )
    assert r"\underline{" in tex and r"\begin{tabular}" in tex and "CMU-MOSEI (OOD)" in tex

    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["train_domain"] == "sims" and data["settings"]["bootstrap"] == 40
    assert data["datasets"]["simsv2"]["domain"] == "ID" and data["datasets"]["mosei"]["domain"] == "OOD"
    beta_mosei = data["results"]["beta"]["mosei"]
    assert beta_mosei["metrics"] == pytest.approx(score_file(two_runs[1] / "mosei.jsonl", "mosei"))
    assert beta_mosei["metrics"]["parse_failures"] == 6
    lo, hi = beta_mosei["ci95"]["mae"]
    assert lo <= beta_mosei["metrics"]["mae"] <= hi
    paired = data["paired_test"]
    assert paired["baseline"] == "alpha" and set(paired["runs"]) == {"beta"}
    assert set(paired["runs"]["beta"]) == set(DATASETS)
    mosi = paired["runs"]["beta"]["mosi"]
    assert mosi["matched_on"] == "id" and mosi["n_common"] == 48
    assert 0 < mosi["metrics"]["mae"]["p_value"] <= 1 and mosi["metrics"]["mae"]["diff"] < 0

    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    mosei_row = next(r for r in rows if r["run"] == "alpha" and r["dataset"] == "mosei")
    assert float(mosei_row["acc2_has0"]) == 1.0 and mosei_row["acc2"] == "" and mosei_row["domain"] == "OOD"


def test_missing_and_broken_files_show_a_dash_and_warn(tmp_path, make_run, synthetic_rows):
    full = make_run("full", {d: synthetic_rows(d, 20, seed=1, noise=0.3) for d in ("sims", "mosi")})
    partial = make_run("partial", {"sims": synthetic_rows("sims", 20, seed=2, noise=0.3)})
    (partial / "mosi.jsonl").write_text('{"label": 1.0, "score": oops}\n')
    (partial / "notes.jsonl").write_text("{}\n")  # not a dataset: ignored with a warning
    with pytest.warns(ReportWarning) as caught:
        result = write_report([full, partial], tmp_path / "out", n_boot=0)
    messages = " ".join(str(w.message) for w in caught)
    assert "mosi.jsonl" in messages and "line 1" in messages and "notes" in messages
    md = (tmp_path / "out" / "report.md").read_text()
    assert _row(_section(md, "Table II "), "partial") == ["–"] * 5
    assert "## Warnings" in md and "Paired bootstrap" not in md  # --bootstrap 0: no intervals, no test
    assert result.metrics["results"]["partial"]["mosi"]["status"] == "error"
    assert (
        tmp_path / "out" / "plots" / "mosi_scatter.png"
    ).exists()  # the run that has MOSI is still plotted

    absent = make_run("absent", {"sims": synthetic_rows("sims", 20, seed=1, noise=0.6)})
    with pytest.warns(ReportWarning, match="has no mosi.jsonl"):
        res = write_report([full, absent], tmp_path / "out2", n_boot=20)
    assert res.metrics["results"]["absent"]["mosi"]["status"] == "missing"
    assert set(res.metrics["paired_test"]["runs"]["absent"]) == {"sims"}


def test_report_errors_on_a_missing_run_directory(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "run directory not found" in result.stderr


def test_runs_on_different_clips_are_compared_on_the_clips_they_share(tmp_path, make_run, synthetic_rows):
    """`half` predicted 6 of the 12 clips (perfectly); `full` all 12, perfect on those 6 and wrong elsewhere. Ranked
    on their own clips `half` would win; on the shared 6 they tie, and the table says n per run."""
    rows = synthetic_rows("sims", 12, seed=5, noise=0.0)
    full_rows = [{**r, "score": r["label"] if i < 6 else -r["label"] or 0.8} for i, r in enumerate(rows)]
    full = make_run("full", {"sims": full_rows})
    half = make_run("half", {"sims": _perfect(rows[:6])})
    with pytest.warns(ReportWarning, match="runs cover different clips"):
        result = write_report([full, half], tmp_path / "out", n_boot=20)
    cells = result.metrics["results"]
    assert cells["full"]["sims"]["metrics"]["n"] == 6 and cells["half"]["sims"]["metrics"]["n"] == 6
    assert cells["full"]["sims"]["metrics"] == pytest.approx(cells["half"]["sims"]["metrics"])
    assert cells["full"]["sims"]["coverage"].startswith("n = 6 of 12")
    assert result.metrics["shared_clips"] == {"sims": {"n": 6, "predicted": {"full": 12, "half": 6}}}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "n per run: CH-SIMS: `full` 6, `half` 6 (**compared on the 6 clips every run has**" in md
    assert "clips predicted: `full` 12, `half` 6" in md


def test_every_run_is_tested_against_the_chosen_baseline(tmp_path, make_run, synthetic_rows):
    runs = [
        make_run(name, {"sims": synthetic_rows("sims", 20, seed=1, noise=noise)})
        for name, noise in (("a", 0.1), ("b", 0.3), ("c", 0.6))
    ]
    first = write_report(runs, tmp_path / "o1", n_boot=20)
    assert first.metrics["paired_test"]["baseline"] == "a"
    assert set(first.metrics["paired_test"]["runs"]) == {"b", "c"}  # not only the first two runs
    chosen = CliRunner().invoke(
        app,
        ["report", *map(str, runs), "--out", str(tmp_path / "o2"), "--bootstrap", "20", "--baseline", "c"],
    )
    assert chosen.exit_code == 0, chosen.output
    data = json.loads((tmp_path / "o2" / "metrics.json").read_text())
    assert data["paired_test"]["baseline"] == "c" and set(data["paired_test"]["runs"]) == {"a", "b"}
    md = (tmp_path / "o2" / "report.md").read_text()
    assert "### `a` vs `c`" in md and "### `b` vs `c`" in md
    bad = CliRunner().invoke(
        app, ["report", *map(str, runs), "--out", str(tmp_path / "o3"), "--baseline", "z"]
    )
    assert bad.exit_code == 2 and "--baseline 'z' is not one of the runs (a, b, c)" in bad.stderr
