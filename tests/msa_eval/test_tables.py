"""Table formatting and the best/second marks of the paper's tables."""

from __future__ import annotations

from msa_eval.tables import DatasetColumn, format_value, latex_table, markdown_table, rank_marks


def test_format_value_scales_accuracies_only():
    assert format_value("acc2", 0.8754) == "87.5"
    assert format_value("mae", 0.23456) == "0.235"
    assert format_value("corr", float("nan")) == "NaN"
    assert format_value("acc7", None) == "–"


def test_rank_marks_higher_and_lower_is_better_with_ties():
    assert rank_marks("acc2", [0.80, 0.90, 0.85]) == [None, "best", "second"]
    assert rank_marks("mae", [0.30, 0.20, 0.25]) == [None, "best", "second"]
    # ranked on the printed value: 87.51 and 87.54 both print 87.5 and share bold; ties for second share too
    assert rank_marks("acc2", [0.8751, 0.8754, 0.80, 0.80]) == ["best", "best", "second", "second"]
    assert rank_marks("corr", [0.5, None, float("nan"), 0.4]) == ["best", None, None, "second"]
    assert rank_marks("acc2", [0.5, None]) == [None, None]


def test_markdown_and_latex_place_marks_on_the_right_cells():
    runs = ["base", "ours", "third"]
    cols = [DatasetColumn("mosi", "CMU-MOSI (OOD)")]
    cells = {
        ("base", "mosi"): {"acc7": 0.40, "acc2_non0": 0.86, "f1_non0": 0.85, "mae": 0.857, "corr": 0.795},
        ("ours", "mosi"): {"acc7": 0.43, "acc2_non0": 0.85, "f1_non0": 0.86, "mae": 0.723, "corr": 0.819},
        ("third", "mosi"): None,
    }
    md = markdown_table("mosi", runs, cols, cells).splitlines()
    assert "CMU-MOSI (OOD)<br>Acc7 ↑" in md[0] and "MAE ↓" in md[0]
    assert md[2] == "| base | <u>40.0</u> | **86.0** | <u>85.0</u> | <u>0.857</u> | <u>0.795</u> |"
    assert md[3] == "| ours | **43.0** | <u>85.0</u> | **86.0** | **0.723** | **0.819** |"
    assert md[4] == "| third | – | – | – | – | – |"
    tex = latex_table("mosi", runs, cols, cells, caption="A_B & C", label="tab:x")
    assert (
        r"ours & \textbf{43.0} & \underline{85.0} & \textbf{86.0} & \textbf{0.723} & \textbf{0.819} \\" in tex
    )
    assert r"third & -- & -- & -- & -- & -- \\" in tex
    assert r"\caption{A\_B \& C}" in tex and r"\multicolumn{5}{c}{CMU-MOSI (OOD)}" in tex


def test_seed_tables_print_mean_and_half_width_and_undefined_seeds():
    from msa_eval.tables import format_interval, format_paired, markdown_paired_table, markdown_seed_table

    acc3 = {"mean": 0.6123, "half_width": 0.0456, "n": 10}
    corr = {"mean": 0.25, "half_width": None, "n": 1}
    assert format_interval("acc3", acc3, 10) == "61.2 ± 4.6"
    assert format_interval("corr", corr, 10) == "0.250 (1/10 seeds)"
    assert format_interval("acc3", None, 10) == "–"
    assert format_interval(
        "parse_failure_rate", {"mean": 0.5, "half_width": 0.1, "n": 3}, 3, percent=True
    ) == ("50.0 ± 10.0")
    table = markdown_seed_table(
        "sims",
        [("A|B", {"acc3": acc3, "corr": corr, "extra": {"mean": 0.1, "half_width": 0.0, "n": 10}})],
        10,
        extra=(("extra", "Extra ↑"),),
    )
    head, rule, row = table.splitlines()
    assert head.startswith("| Model | Acc5 ↑ | Acc3 ↑") and head.endswith("| Extra ↑ |")
    assert rule.count("---:") == 7
    assert row.startswith("| A\\|B | – | 61.2 ± 4.6 |") and row.endswith("| 10.0 ± 0.0 |")

    paired = {"diff_mean": -0.031, "diff_half_width": 0.02, "p_clip_bootstrap": 0.0123, "b_better_seeds": 2}
    assert format_paired("acc3", paired, 10) == "-3.1 ± 2.0 (p 0.012; 2/10)"
    assert format_paired("mae", {**paired, "diff_half_width": None, "p_clip_bootstrap": None}, 10) == (
        "-0.031 (p –; 2/10)"
    )
    lines = markdown_paired_table("mosi", "A → B, MOSI", [("x → y", {"acc7": paired})], 10).splitlines()
    assert lines[0] == "| A → B, MOSI | Δ Acc7 | Δ Acc2 | Δ F1 | Δ MAE | Δ Corr |"
    assert lines[2] == "| x → y | -3.1 ± 2.0 (p 0.012; 2/10) | – | – | – | – |"
