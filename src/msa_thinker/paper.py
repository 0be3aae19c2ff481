"""`msa-thinker paper TABLE.yaml...`: the commands that reproduce the paper's tables on real data and GPUs.

``configs/paper/pipeline.yaml`` says how each run is trained (distillation, SFT, GRPO and its ablations) and which
checkpoint it evaluates; ``configs/paper/tableN.yaml`` says which runs and test sets a table has. This module
turns one or more tables into the ordered command list: every stage the runs need (once), one ``msa-eval predict``
per run over the union of the tables' test sets, one ``msa-eval report`` per table. It prints them as a shell
script, or runs them one by one (every command resumes, so a rerun continues where it stopped).
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from msa_core import ConfigError, get_spec
from msa_core.recipe import read_yaml, validate
from pydantic import BaseModel, ConfigDict, Field


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    about: str = Field("", description="What the stage produces (printed as a comment).")
    needs: list[str] = Field(default_factory=list, description="Stages or runs that must come first.")
    commands: list[str] = Field(
        default_factory=list, description="Shell commands, in order; {var} substituted."
    )


class RunSpec(StageSpec):
    model: str = Field(description="Checkpoint (or hub id) that `msa-eval predict` evaluates for this row.")
    predict_args: str = Field(
        "", description="Extra `msa-eval predict` options for this run (e.g. media size)."
    )


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vars: dict[str, str] = Field(default_factory=dict, description="Values for {name} in every string.")
    server: str = Field(
        "", description="The teacher server command (long-running: printed, not started by --run)."
    )
    stages: dict[str, StageSpec] = Field(default_factory=dict, description="Shared stages (e.g. distill).")
    runs: dict[str, RunSpec] = Field(
        default_factory=dict, description="Table rows: how to train, what to test."
    )
    students: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per student family (msa_omni.families), the vars that `--student` replaces.",
    )


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(description="The paper's table number (I..V).")
    caption: str = Field("", description="What the table shows.")
    pipeline: str = Field("pipeline.yaml", description="The pipeline file, relative to this file.")
    runs: list[str] = Field(
        min_length=1, description="Rows, in order; the first is the paired tests' baseline."
    )
    datasets: list[str] = Field(min_length=1, description="Test sets (dataset spec names).")
    train_domain: str = Field("sims", description="Dataset the runs were trained on (ID / OOD marks).")
    out: str = Field(description="Report folder.")


def _load(cls: type[BaseModel], path: Path) -> BaseModel:
    return validate(cls, read_yaml(path), str(path))


@dataclass
class Step:
    title: str
    commands: list[str]


def _fmt(text: str, variables: dict[str, str], where: str) -> str:
    try:
        return " ".join(text.format(**variables).split())
    except KeyError as exc:
        raise ConfigError(f"{where}: unknown variable {{{exc.args[0]}}} (define it under vars)") from None


def plan(
    tables: list[str | Path], overrides: list[str] | None = None, student: str | None = None
) -> tuple[str, list[Step]]:
    """(server command, ordered steps) for the given table files; ``student`` picks a student family's vars
    (the pipeline's ``students``), then ``overrides`` (``var=value`` strings) apply."""
    if not tables:
        raise ConfigError("give at least one table file, e.g. configs/paper/table1.yaml")
    loaded = [(Path(t), _load(Table, Path(t))) for t in tables]
    pipe_paths = {(path.parent / t.pipeline).resolve() for path, t in loaded}
    if len(pipe_paths) != 1:
        raise ConfigError(f"the tables use different pipeline files: {sorted(map(str, pipe_paths))}")
    pipe_path = pipe_paths.pop()
    if not pipe_path.is_file():  # name the table and key that point there
        path = next(path for path, t in loaded if (path.parent / t.pipeline).resolve() == pipe_path)
        raise ConfigError(
            f"{path}, key `pipeline`: {pipe_path} not found (the path is relative to this file)"
        )
    pipe: Pipeline = _load(Pipeline, pipe_path)
    variables = dict(pipe.vars)
    if student is not None:
        if student not in pipe.students:
            raise ConfigError(
                f"--student {student!r}: {pipe_path} has vars for {', '.join(sorted(pipe.students)) or 'no student'}"
            )
        unknown = sorted(set(pipe.students[student]) - set(variables))
        if unknown:
            raise ConfigError(f"{pipe_path}, students.{student}: unknown vars {', '.join(unknown)}")
        variables.update(pipe.students[student])
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or key not in variables:
            raise ConfigError(
                f"--set {item!r}: expected VAR=VALUE with VAR one of {', '.join(sorted(variables))}"
            )
        variables[key] = value

    steps: list[Step] = []
    done: set[str] = set()

    def need(name: str, chain: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in chain:
            raise ConfigError(f"{pipe_path}: circular needs: {' -> '.join((*chain, name))}")
        spec = pipe.runs.get(name) or pipe.stages.get(name)
        if spec is None:
            raise ConfigError(f"{pipe_path}: no stage or run named {name!r}")
        for dep in spec.needs:
            need(dep, (*chain, name))
        if spec.commands:
            where = f"{pipe_path}: {name}"
            steps.append(Step(f"{name}: {spec.about}", [_fmt(c, variables, where) for c in spec.commands]))
        done.add(name)

    run_datasets: dict[str, list[str]] = {}
    for path, table in loaded:
        for name in table.runs:
            if name not in pipe.runs:
                raise ConfigError(f"{path}: run {name!r} is not defined in {pipe_path}")
            need(name)
            for d in table.datasets:
                get_spec(d)  # unknown names fail here, not on the GPU node
                if d not in variables:
                    raise ConfigError(f"{pipe_path}: vars has no data root for dataset {d!r}")
                run_datasets.setdefault(name, [])
                if d not in run_datasets[name]:
                    run_datasets[name].append(d)

    predict = variables.get("predict", "uv run msa-eval predict")
    preds = f"{variables.get('out', 'runs/paper')}/predictions"
    for name, datasets in run_datasets.items():
        run = pipe.runs[name]
        where = f"{pipe_path}: {name}"
        pairs = " ".join(f"--data {variables[d]} --dataset {d}" for d in datasets)
        extra = f" {_fmt(run.predict_args, variables, where)}" if run.predict_args else ""
        cmd = f"{predict} --model {_fmt(run.model, variables, where)} {pairs} --out {preds}/{name}{extra}"
        steps.append(Step(f"predict {name} on {', '.join(datasets)}", [cmd]))
    for path, table in loaded:
        rows = " ".join(f"{preds}/{r}" for r in table.runs)
        sets = " ".join(f"--dataset {d}" for d in table.datasets)
        out = _fmt(table.out, variables, str(path))
        cmd = f"uv run msa-eval report {rows} --out {out} --train-domain {table.train_domain} {sets}"
        steps.append(Step(f"Table {table.table}: {table.caption}", [cmd]))
    server = _fmt(pipe.server, variables, str(pipe_path)) if pipe.server else ""
    return server, steps


def render(server: str, steps: list[Step]) -> str:
    lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
    if server:
        lines += ["# On the teacher's GPU node, first (keeps running while distilling):", f"#   {server}"]
    for step in steps:
        lines += ["", f"# {step.title}", *step.commands]
    return "\n".join(lines) + "\n"


def execute(steps: list[Step], echo=print) -> None:
    """Run every command in order; stop at the first failure (ConfigError naming it)."""
    for step in steps:
        echo(f"# {step.title}")
        for cmd in step.commands:
            echo(f"$ {cmd}")
            code = subprocess.run(shlex.split(cmd), check=False).returncode
            if code != 0:
                raise ConfigError(f"command failed with status {code}: {cmd}")
