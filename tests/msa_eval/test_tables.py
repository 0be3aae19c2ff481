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
