"""`msa-thinker paper`: the table files resolve to the right, existing commands."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path

import pytest
from msa_core import ConfigError
from typer.testing import CliRunner

from msa_thinker.cli import app
from msa_thinker.paper import plan, render

ROOT = Path(__file__).resolve().parents[2]
TABLES = sorted((ROOT / "configs" / "paper").glob("table*.yaml"))


def _commands(tables, overrides=None) -> list[str]:
    _, steps = plan(tables, overrides)
    return [c for s in steps for c in s.commands]


def test_there_is_one_file_per_paper_table():
    assert [t.name for t in TABLES] == [f"table{i}.yaml" for i in range(1, 6)]


def test_all_tables_train_each_run_once_and_every_config_file_exists():
    cmds = _commands(TABLES)
    assert sum("cot-distill generate" in c for c in cmds) == 1
    assert sum("msa-rl sft" in c for c in cmds) == 1
    assert sum(" grpo " in c for c in cmds) == 3  # Hint-GRPO and the two ablations
    assert sum("msa-eval report" in c for c in cmds) == 5
    for cmd in cmds:
        args = shlex.split(cmd)
        for flag, value in itertools.pairwise(args):
            if flag == "--config":
                assert (ROOT / value).is_file(), cmd
    # Training comes before predicting, predicting before reporting.
    kinds = [
        (
            "train"
            if " grpo " in c or "msa-rl sft" in c
            else "predict"
            if "predict" in c
            else "report"
            if "report" in c
            else "other"
        )
        for c in cmds
    ]
    order = [k for k in kinds if k != "other"]
    assert order == sorted(order, key=["train", "predict", "report"].index)


def test_a_table_needs_only_its_runs():
    cmds = _commands([ROOT / "configs/paper/table4.yaml"])
    text = "\n".join(cmds)
    assert "ablation-no-hint.yaml" in text and "ablation-no-hard.yaml" not in text
    assert "msa-rl sft" in text and "cot-distill export" in text  # what the runs need, in order
    report = next(c for c in cmds if "msa-eval report" in c)
    rows = [a for a in shlex.split(report) if "/predictions/" in a]
    assert [Path(r).name for r in rows] == ["msa-thinker", "grpo-no-hint"]
    assert "--dataset sims" in report and "mosi" not in report


def test_cross_dataset_tables_predict_every_test_set_in_one_call():
    cmds = _commands([ROOT / "configs/paper/table1.yaml", ROOT / "configs/paper/table2.yaml"])
    predict = [c for c in cmds if "msa-eval predict" in c and "models/msa-thinker" in c]
    assert len(predict) == 1
    assert all(f"--dataset {d}" in predict[0] for d in ("sims", "simsv2", "mosi", "mosei"))


def test_variables_can_be_overridden_and_unknown_ones_are_refused():
    cmds = _commands([ROOT / "configs/paper/table3.yaml"], ["sims=/data/sims", "out=/scratch/p"])
    assert any("--data /data/sims --dataset sims" in c for c in cmds)
    assert all("runs/paper" not in c for c in cmds)
    with pytest.raises(ConfigError, match="VAR=VALUE"):
        plan([ROOT / "configs/paper/table3.yaml"], ["nope=1"])


def test_a_table_naming_an_unknown_run_is_an_error(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(
        f"table: X\npipeline: {ROOT / 'configs/paper/pipeline.yaml'}\nruns: [ghost]\n"
        "datasets: [sims]\nout: o\n"
    )
    with pytest.raises(ConfigError, match="ghost"):
        plan([bad])
    bad.write_text("table: X\nruns: [a]\ndatasets: [sims]\nout: o\ncolour: red\n")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        plan([bad])


def test_cli_prints_a_script_with_the_teacher_server_first():
    result = CliRunner().invoke(app, ["paper", str(ROOT / "configs/paper/table3.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#!/usr/bin/env bash")
    assert "cot-distill serve" in result.output.split("cot-distill generate")[0]
    assert result.output == render(*plan([ROOT / "configs/paper/table3.yaml"]))


def test_student_qwen3_omni_uses_its_recipes_and_an_unknown_student_is_named():
    _, steps = plan(TABLES, student="qwen3-omni")
    cmds = [c for s in steps for c in s.commands]
    configs = [v for c in cmds for f, v in itertools.pairwise(shlex.split(c)) if f == "--config"]
    trained = [v for v in configs if "/sft/" in v or "/grpo/" in v]
    assert len(trained) == 4 and all("qwen3-omni-30b-a3b-thinker" in v for v in trained)
    assert all((ROOT / v).is_file() for v in configs)
    assert any("--set model=models/Qwen3-Omni-30B-A3B-Instruct" in c for c in cmds)
    assert _commands(TABLES) == [c for s in plan(TABLES, student="qwen2.5-omni")[1] for c in s.commands]
    result = CliRunner().invoke(app, ["paper", str(TABLES[0]), "--student", "llama"])
    assert (
        result.exit_code == ConfigError.exit_code
        and "--student 'llama'" in result.output
        and "qwen3-omni" in result.output
    )
