"""`msa-thinker mini-repro`: the paper's ablations (Tables III-V, Fig. 3) at CPU scale, with several seeds.

The task (docs/mini-repro.md): synthetic clips whose transcript, voice and face each carry sentiment, a share of
them incongruent (the transcript one way, voice and face the other; the label follows voice and face), a
CH-SIMS-style training set, validation split and test set (in domain) and a CMU-MOSI-style test set (out of
domain). The stand-in teacher writes DC answers for the training clips (cot-distill generate + export); then, per
seed, the tiny random Omni thinker is trained by LLaMA-Factory SFT and, from that one SFT checkpoint, by every GRPO
arm of the recipe (w/ Hint, w/o Hint, w/o Hard, dynamic sampling) with the same steps, seed and clips:

    zero-shot      the untrained tiny model with the DC prompt          Table III
    sft            DC-CoT SFT                                           Tables III, IV
    hint-grpo      SFT + Hint-GRPO (w/ Hint, w/ Hard)                   Tables III, IV, V
    grpo-no-hint   SFT + GRPO without hints                             Table IV
    grpo-no-hard   SFT + GRPO with hard groups dropped (no hints)       Table V
    grpo-dynamic   SFT + GRPO with dynamic sampling (DAPO)              Table IV

Each seed runs in its own process (``jobs`` at a time), pinned to ``threads`` threads and deterministic
algorithms; ``rerun`` runs chosen seeds again under another thread count, which measures the tolerance of the
results (msa_thinker.mini_repro_results). ``calibrate`` runs protocol v2's calibration on the validation split and
the training rewards only. The stages, markers and logs are msa_thinker.stage_driver's: a rerun skips every finished
stage, GRPO resumes from its last checkpoint, and prediction skips the clips already written.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from msa_core import ConfigError, artifacts
from msa_core.outdir import claim_output_dir, clear_own_folder
from msa_core.recipe import load_recipe, write_resolved
from pydantic import BaseModel, ConfigDict, Field, field_validator

from msa_thinker.demo import REPO_ROOT, stage_distill, stage_export
from msa_thinker.stage_driver import (
    STAGE_DIR,
    Stage,
    StageContext,
    StageFailed,
    StagesRun,
    offline_cpu_environment,
    run_stages,
)

CONFIGS = REPO_ROOT / "configs" / "mini-repro"
RECIPE = CONFIGS / "recipe.yaml"
PROTOCOLS = {"v1": CONFIGS / "recipe.yaml", "v2": CONFIGS / "v2.yaml"}
QUICK_RECIPE = CONFIGS / "quick.yaml"
ID_DATASET, OOD_DATASET = "sims", "mosi"  # the paper trains on CH-SIMS; MOSI is its out-of-domain test
FIG3_DIR = "fig3"
REPORT_STAGE = "report"
CALIBRATION_MARKDOWN, CALIBRATION_JSON = "calibration.md", "calibration.json"


# ------------------------------------------------------------------------------------------------------ recipe
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataRecipe(_Section):
    train_clips: int = Field(120, ge=3, description="Synthetic CH-SIMS-style training clips.")
    valid_clips: int = Field(
        0, ge=0, description="CH-SIMS-style validation clips, apart from both test sets (0: none, as in v1)."
    )
    id_test_clips: int = Field(90, ge=3, description="CH-SIMS-style test clips (in domain).")
    ood_test_clips: int = Field(90, ge=3, description="CMU-MOSI-style test clips (out of domain).")
    incongruent_fraction: float = Field(
        0.25, ge=0, le=1, description="Share of clips whose transcript disagrees with voice and face."
    )
    seed: int = Field(0, description="Seed of the clips (the same data for every training seed).")


class PredictRecipe(_Section):
    max_new_tokens: int = Field(112, ge=1, description="Longest predicted answer.")
    batch_size: int = Field(16, ge=1, description="Clips per generate call.")


class StatsRecipe(_Section):
    n_boot: int = Field(2000, ge=10, description="Clip resamples of the paired bootstrap.")
    bootstrap_seed: int = Field(0, description="Seed of the resampling.")


class RerunRecipe(_Section):
    seeds: list[int] = Field(
        default_factory=list, description="Seeds run again, every stage and row, under `threads` threads."
    )
    threads: int = Field(
        2, ge=1, description="Threads per process of the reruns (the tolerance measurement)."
    )


class CalibrationRecipe(_Section):
    seeds: list[int] = Field(default_factory=list, description="Calibration seeds (never the run's seeds).")
    sft_candidates: dict[str, list[str]] = Field(
        default_factory=dict,
        description="SFT candidates in order: name -> --set overrides of the SFT recipe.",
    )
    grpo_candidates: dict[str, list[str]] = Field(
        default_factory=dict,
        description="GRPO candidates in order: name -> --set overrides of the GRPO recipe.",
    )
    plain_grpo: list[str] = Field(
        default_factory=list,
        description="--set overrides that make GRPO plain (w/o Hint): the calibrated arm.",
    )
    rise_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of seeds whose last-quarter sampled reward must exceed the first's.",
    )


# The GRPO arms a recipe may run: row key -> title. Each arm's recipe gives its --set overrides.
ARM_TITLES = {
    "hint-grpo": "SFT + Hint-GRPO (w/ Hint, w/ Hard)",
    "grpo-no-hint": "SFT + GRPO w/o Hint",
    "grpo-no-hard": "SFT + GRPO w/o Hard (hard groups dropped)",
    "grpo-dynamic": "SFT + GRPO with dynamic sampling (DAPO)",
}
V1_ARMS = {
    "hint-grpo": ["hard_group_strategy=hint"],
    "grpo-no-hint": ["hard_group_strategy=none"],
    "grpo-no-hard": ["hard_group_strategy=drop"],
}


class MiniReproRecipe(_Section):
    seeds: int = Field(3, ge=1, description="Number of training seeds: first_seed .. first_seed + seeds - 1.")
    first_seed: int = Field(
        0, ge=0, description="The first training seed (v2: fresh seeds, not calibration's)."
    )
    data: DataRecipe = Field(default_factory=DataRecipe)
    teacher_faults: str = Field(
        "", description="Noise of the stand-in teacher; the distillation recipe is the demo's (configs/demo)."
    )
    sft_recipe: str = Field("configs/mini-repro/sft.yaml", description="msa-rl sft recipe.")
    grpo_recipe: str = Field("configs/mini-repro/grpo.yaml", description="msa-rl grpo recipe (every arm).")
    sft_overrides: list[str] = Field(default_factory=list, description="Extra --set for the SFT recipe.")
    grpo_overrides: list[str] = Field(
        default_factory=list, description="Extra --set for the GRPO recipe (every arm)."
    )
    arms: dict[str, list[str]] = Field(
        default_factory=lambda: dict(V1_ARMS),
        description=f"GRPO arms, row -> the --set overrides that make it ({', '.join(ARM_TITLES)}).",
    )
    predict: PredictRecipe = Field(default_factory=PredictRecipe)
    stats: StatsRecipe = Field(default_factory=StatsRecipe)
    threads: int = Field(1, ge=1, description="Threads per seed process (OMP_NUM_THREADS, torch).")
    deterministic: bool = Field(
        False, description="torch.use_deterministic_algorithms and PYTHONHASHSEED=0 in every seed process."
    )
    jobs: int = Field(1, ge=1, description="Seed processes at a time (the cores to use).")
    rerun: RerunRecipe = Field(default_factory=RerunRecipe)
    calibration: CalibrationRecipe = Field(default_factory=CalibrationRecipe)

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(arms) - set(ARM_TITLES))
        if unknown:
            raise ValueError(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARM_TITLES)}")
        if "hint-grpo" not in arms:
            raise ValueError("the arms must include hint-grpo (the method every table compares)")
        return arms

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


def repo_path(path: str) -> Path:
    """A recipe's path: absolute, or relative to the repository root (else to the working directory)."""
    p = Path(path)
    if p.is_absolute():
        return p
    return REPO_ROOT / p if (REPO_ROOT / p).exists() else p.resolve()


def load_mini_recipe(
    path: str | Path | None = None, overrides: list[str] | None = None, *, seeds: int | None = None
) -> MiniReproRecipe:
    recipe = load_recipe(MiniReproRecipe, path or RECIPE, overrides, {"seeds": seeds})
    for name in ("sft_recipe", "grpo_recipe"):
        if not repo_path(getattr(recipe, name)).is_file():
            raise ConfigError(f"{path or RECIPE}: {name}: {getattr(recipe, name)} not found")
    clash = sorted(set(recipe.calibration.seeds) & set(recipe.seed_list))
    if clash:
        raise ConfigError(f"{path or RECIPE}: calibration.seeds {clash} are also run seeds; use fresh seeds")
    return recipe


# ------------------------------------------------------------------------------------------------- rows, tables
@dataclass(frozen=True)
class Row:
    key: str
    title: str


FIXED_ROWS = (
    Row("zero-shot", "Zero-shot (untrained tiny model, DC prompt)"),
    Row("sft", "DC-CoT SFT"),
)


def active_rows(recipe: MiniReproRecipe) -> list[Row]:
    """zero-shot, sft, then the recipe's GRPO arms in the order of ARM_TITLES."""
    return [*FIXED_ROWS, *(Row(k, t) for k, t in ARM_TITLES.items() if k in recipe.arms)]


@dataclass(frozen=True)
class Table:
    number: str
    caption: str
    rows: tuple[tuple[str, str], ...]
    """(row key, label as the paper prints it)."""
    comparisons: tuple[tuple[str, str], ...]
    """(A, B) pairs: B − A is tested."""


TABLES = (
    Table(
        "III",
        "Performance of the training stages (zero-shot, SFT, SFT+RL)",
        (("zero-shot", "CoT (Zero-shot)"), ("sft", "CoT (SFT)"), ("hint-grpo", "CoT (SFT+RL)")),
        (("zero-shot", "sft"), ("sft", "hint-grpo")),
    ),
    Table(
        "IV",
        "Ablation of the hint mechanism (and dynamic sampling, the field's other answer to zero-variance groups)",
        (("grpo-no-hint", "w/o Hint"), ("grpo-dynamic", "Dynamic sampling"), ("hint-grpo", "w/ Hint")),
        (
            ("grpo-no-hint", "hint-grpo"),
            ("grpo-dynamic", "hint-grpo"),
            ("sft", "grpo-no-hint"),
            ("sft", "grpo-dynamic"),
        ),
    ),
    Table(
        "V",
        "Ablation of the hard samples during training",
        (("grpo-no-hard", "w/o Hard"), ("hint-grpo", "w/ Hard")),
        (("grpo-no-hard", "hint-grpo"),),
    ),
)
# Protocol v2's primary comparisons (ID Acc3); the rest of the tables is secondary.
PRIMARY = (
    ("sft", "hint-grpo"),
    ("grpo-no-hint", "hint-grpo"),
    ("grpo-no-hard", "hint-grpo"),
    ("grpo-dynamic", "hint-grpo"),
)
FIG3_LABELS = {
    "hint-grpo": "w/ Hint",
    "grpo-no-hint": "w/o Hint",
    "grpo-no-hard": "w/o Hard",
    "grpo-dynamic": "Dynamic sampling",
}


def active_tables(recipe: MiniReproRecipe) -> list[Table]:
    """The tables with only the rows (and comparisons) this recipe runs."""
    keys = {r.key for r in active_rows(recipe)}
    return [
        Table(
            t.number,
            t.caption,
            tuple(r for r in t.rows if r[0] in keys),
            tuple(c for c in t.comparisons if c[0] in keys and c[1] in keys),
        )
        for t in TABLES
    ]


# -------------------------------------------------------------------------------------------------------- paths
@dataclass
class MiniPaths:
    """The run's layout; ``test_set``, ``distill`` and ``export`` are what the demo's stages read."""

    out: Path

    @property
    def data(self) -> Path:
        return self.out / "data"

    def test_set(self, name: str) -> Path:
        return self.data / name

    @property
    def distill(self) -> Path:
        return self.out / "distill"

    @property
    def export(self) -> Path:
        return self.out / "export"

    def seed_dir(self, seed: int, tag: str = "") -> Path:
        return self.out / f"seed-{seed}{tag}"

    def model(self, seed: int, name: str, tag: str = "") -> Path:
        return self.seed_dir(seed, tag) / "models" / name

    def run(self, seed: int, row: str, tag: str = "") -> Path:
        return self.seed_dir(seed, tag) / "runs" / row

    def valid_run(self, seed: int, model: str, tag: str = "") -> Path:
        return self.seed_dir(seed, tag) / "runs-valid" / model

    def row_model(self, seed: int, row: str, tag: str = "") -> Path:
        return self.model(seed, {"zero-shot": "tiny"}.get(row, row), tag)

    @property
    def fig3(self) -> Path:
        return self.out / FIG3_DIR

    @property
    def report(self) -> Path:
        return self.out / artifacts.REPORT_MARKDOWN

    @property
    def results(self) -> Path:
        return self.out / artifacts.MINI_REPRO_RESULTS


def thread_tag(recipe: MiniReproRecipe, threads: int) -> str:
    """'' for the recipe's own thread count; '-t<n>' for a rerun under another (its own folders and stages)."""
    return "" if threads == recipe.threads else f"-t{threads}"


# ------------------------------------------------------------------------------------------------------- stages
def stage_data(ctx: StageContext) -> str:
    from msa_core.synthetic import make_dataset

    d: DataRecipe = ctx.size.data
    p: MiniPaths = ctx.paths
    n_id = d.train_clips + d.valid_clips + d.id_test_clips
    make_dataset(
        p.test_set(ID_DATASET),
        ID_DATASET,
        n=n_id,
        seed=d.seed,
        hard_fraction=d.incongruent_fraction,
        splits=(d.train_clips, d.valid_clips, d.id_test_clips),
    )
    make_dataset(
        p.test_set(OOD_DATASET),
        OOD_DATASET,
        n=d.ood_test_clips,
        seed=d.seed + 1,
        hard_fraction=d.incongruent_fraction,
        splits=(0, 0, 1),
    )
    return (
        f"{ID_DATASET}: {d.train_clips} train + {d.valid_clips} valid + {d.id_test_clips} test clips, "
        f"{OOD_DATASET}: {d.ood_test_clips} test clips"
    )


def stage_tiny(ctx: StageContext, seed: int, tag: str = "") -> str:
    from msa_rl.tiny import build_tiny_omni

    build_tiny_omni(ctx.paths.model(seed, "tiny", tag), seed=seed)
    return f"tiny random thinker, seed {seed}"


def stage_sft(
    ctx: StageContext, seed: int, tag: str = "", name: str = "sft", extra: tuple[str, ...] = ()
) -> str:
    from msa_rl.sft import load_sft_config, prepare, run

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    overrides = [
        f"model={p.model(seed, 'tiny', tag)}",
        f"data={p.export}",
        f"output_dir={p.model(seed, name, tag)}",
        f"seed={seed}",
        *recipe.sft_overrides,
        *extra,
    ]
    result = run(prepare(load_sft_config(repo_path(recipe.sft_recipe), overrides)), echo=ctx.log.write)
    losses = f", loss {result.losses[0]:.2f} → {result.losses[-1]:.2f}" if result.losses else ""
    return f"seed {seed}{losses}"


def grpo_overrides(
    paths: MiniPaths,
    recipe: MiniReproRecipe,
    seed: int,
    row: str,
    *,
    tag: str = "",
    start: str = "sft",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The --set list of one GRPO run: every arm the same start, data, seed and recipe; only its own overrides
    differ."""
    arm = list(recipe.arms.get(row, ()))
    return [
        f"model={paths.model(seed, start, tag)}",
        f"data={paths.test_set(ID_DATASET)}",
        f"dataset={ID_DATASET}",
        "split=train",
        f"output_dir={paths.model(seed, row, tag)}",
        f"seed={seed}",
        *recipe.grpo_overrides,
        *arm,
        *extra,
    ]


def stage_grpo(
    ctx: StageContext, seed: int, row: str, tag: str = "", start: str = "sft", extra: tuple[str, ...] = ()
) -> str:
    from msa_rl.grpo import run_grpo
    from msa_rl.grpo_config import load_grpo_recipe

    from msa_thinker.mini_repro_results import reward_quarters

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    overrides = grpo_overrides(p, recipe, seed, row, tag=tag, start=start, extra=extra)
    run_grpo(load_grpo_recipe(repo_path(recipe.grpo_recipe), overrides))
    q = reward_quarters(p.model(seed, row, tag))
    trend = f", sampled reward first quarter {q[0]:.2f} → last quarter {q[1]:.2f}" if q else ""
    return f"seed {seed}{trend}"


def _media(recipe: MiniReproRecipe):
    from msa_rl.sft import load_sft_config

    # Every row, the untrained one too, sees the clips as SFT and GRPO did.
    return load_sft_config(repo_path(recipe.sft_recipe), recipe.sft_overrides).media


def stage_predict(ctx: StageContext, seed: int, tag: str = "") -> str:
    from msa_eval.predict import predict

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    media = _media(recipe)
    pairs = [(p.test_set(ID_DATASET), ID_DATASET), (p.test_set(OOD_DATASET), OOD_DATASET)]
    done = failures = 0
    rows = active_rows(recipe)
    for row in rows:
        for s in predict(
            p.row_model(seed, row.key, tag),
            pairs,
            p.run(seed, row.key, tag),
            batch_size=recipe.predict.batch_size,
            max_new_tokens=recipe.predict.max_new_tokens,
            **media.model_dump(),
        ):
            ctx.log.write(f"{row.key}/{s.dataset}: {s.generated} predicted, {s.skipped} already done\n")
            done += s.total
            failures += s.parse_failures
    return f"seed {seed}: {done} predictions ({len(rows)} rows × 2 test sets), {failures} new parse failures"


def stage_predict_valid(ctx: StageContext, seed: int, model: str = "sft", tag: str = "") -> str:
    """One model on the validation split (calibration; in the run a check of the SFT criterion on fresh seeds)."""
    from msa_eval.predict import predict

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    (s,) = predict(
        p.model(seed, model, tag),
        [(p.test_set(ID_DATASET), ID_DATASET)],
        p.valid_run(seed, model, tag),
        split="valid",
        batch_size=recipe.predict.batch_size,
        max_new_tokens=recipe.predict.max_new_tokens,
        **_media(recipe).model_dump(),
    )
    return f"seed {seed}, {model} on the validation split: {s.total} clips, {s.parse_failures} new parse failures"


def stage_report(ctx: StageContext) -> str:
    from msa_thinker.mini_repro_results import write_report

    figures = write_report(ctx.paths, ctx.size)
    return f"{artifacts.REPORT_MARKDOWN}, {artifacts.MINI_REPRO_RESULTS}, {FIG3_DIR}/ ({figures} plots)"


def shared_stages(paths: MiniPaths) -> list[Stage]:
    return [
        Stage(
            "data",
            "synthetic clips (CH-SIMS-style train + valid + test, MOSI-style test)",
            [paths.data],
            stage_data,
        ),
        Stage(
            "distill",
            "stand-in teacher + cot-distill generate",
            [paths.distill],
            stage_distill,
            resumable=True,
        ),
        Stage("export", "cot-distill export (LLaMA-Factory)", [paths.export], stage_export),
    ]


def seed_stages(
    paths: MiniPaths, recipe: MiniReproRecipe, seed: int, threads: int | None = None
) -> list[Stage]:
    """One seed's stages: the tiny model, SFT, every GRPO arm from that one SFT model, and prediction."""
    tag = thread_tag(recipe, threads or recipe.threads)
    s = f"s{seed}{tag}"
    plan = [
        Stage(
            f"tiny-{s}",
            "tiny random thinker",
            [paths.model(seed, "tiny", tag)],
            partial(stage_tiny, seed=seed, tag=tag),
        ),
        Stage(
            f"sft-{s}",
            "DC-CoT SFT (LLaMA-Factory)",
            [paths.model(seed, "sft", tag)],
            partial(stage_sft, seed=seed, tag=tag),
        ),
    ]
    for row in (r.key for r in active_rows(recipe)[len(FIXED_ROWS) :]):
        plan.append(
            Stage(
                f"{row}-{s}",
                f"GRPO ({row}) from the seed's SFT model",
                [paths.model(seed, row, tag)],
                partial(stage_grpo, seed=seed, row=row, tag=tag),
                resumable=True,
            )
        )
    plan.append(
        Stage(
            f"predict-{s}",
            f"msa-eval predict: {len(active_rows(recipe))} rows × 2 test sets",
            [paths.seed_dir(seed, tag) / "runs"],
            partial(stage_predict, seed=seed, tag=tag),
            resumable=True,
        )
    )
    if recipe.data.valid_clips:
        plan.append(
            Stage(
                f"predict-valid-{s}",
                "msa-eval predict: SFT on the validation split",
                [paths.valid_run(seed, "sft", tag)],
                partial(stage_predict_valid, seed=seed, tag=tag),
                resumable=True,
            )
        )
    return plan


def report_stage(paths: MiniPaths) -> Stage:
    return Stage(REPORT_STAGE, "tables III-V, Fig. 3, tolerance, results.json", [paths.fig3], stage_report)


def stages(paths: MiniPaths, recipe: MiniReproRecipe) -> list[Stage]:
    """Every stage of a run in order (the shared ones, each seed's, the reruns', the report)."""
    plan = shared_stages(paths)
    for seed in recipe.seed_list:
        plan += seed_stages(paths, recipe, seed)
    for seed in recipe.rerun.seeds:
        plan += seed_stages(paths, recipe, seed, recipe.rerun.threads)
    return [*plan, report_stage(paths)]


# ---------------------------------------------------------------------------------------------- calibration
def sft_calibration_stages(
    paths: MiniPaths, recipe: MiniReproRecipe, seed: int, candidate: str
) -> list[Stage]:
    extra = tuple(recipe.calibration.sft_candidates[candidate])
    name = f"sft-{candidate}"
    return [
        Stage(
            f"tiny-s{seed}",
            "tiny random thinker",
            [paths.model(seed, "tiny")],
            partial(stage_tiny, seed=seed),
        ),
        Stage(
            f"{name}-s{seed}",
            f"SFT candidate {candidate}",
            [paths.model(seed, name)],
            partial(stage_sft, seed=seed, name=name, extra=extra),
        ),
        Stage(
            f"predict-valid-{name}-s{seed}",
            f"SFT candidate {candidate} on the validation split",
            [paths.valid_run(seed, name)],
            partial(stage_predict_valid, seed=seed, model=name),
            resumable=True,
        ),
    ]


def grpo_calibration_stages(
    paths: MiniPaths, recipe: MiniReproRecipe, seed: int, sft_candidate: str, candidate: str
) -> list[Stage]:
    extra = (*recipe.calibration.plain_grpo, *recipe.calibration.grpo_candidates[candidate])
    row = f"grpo-{candidate}"
    return [
        Stage(
            f"{row}-s{seed}",
            f"plain GRPO candidate {candidate}",
            [paths.model(seed, row)],
            partial(stage_grpo, seed=seed, row=row, start=f"sft-{sft_candidate}", extra=extra),
            resumable=True,
        )
    ]


# ------------------------------------------------------------------------------------------------- processes
def job_plan(paths: MiniPaths, recipe: MiniReproRecipe, spec: dict[str, Any]) -> list[Stage]:
    """The stages of one seed process, from its spec (what the parent passes on the command line)."""
    kind = spec["kind"]
    if kind == "seed":
        return seed_stages(paths, recipe, spec["seed"], spec["threads"])
    if kind == "sft-calibration":
        return sft_calibration_stages(paths, recipe, spec["seed"], spec["candidate"])
    if kind == "grpo-calibration":
        return grpo_calibration_stages(paths, recipe, spec["seed"], spec["sft"], spec["candidate"])
    raise ValueError(f"unknown job kind {kind!r}")


def job_environment(threads: int, deterministic: bool) -> dict[str, str]:
    """A seed process's environment: its thread count pinned before torch loads (the SFT child inherits it)."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    # Idle OpenMP threads sleep instead of spinning: spinning threads on a shared machine slow every op down.
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    if deterministic:
        env["PYTHONHASHSEED"] = "0"
    return env


@dataclass
class Job:
    name: str
    spec: dict[str, Any]
    stages: list[str]


def _stop(proc: subprocess.Popen) -> None:
    """End a job process and its children (the SFT run): they share the job's process group."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_jobs(
    paths: MiniPaths,
    recipe: MiniReproRecipe,
    jobs: list[Job],
    console: Any,
    enough: Callable[[Job], bool] | None = None,
) -> None:
    """Run each job's stages in its own process, ``recipe.jobs`` at a time; jobs whose stages are all finished
    start no process. ``enough(job)``, asked as each job finishes, may end the rest early (calibration: a candidate
    that failed in one seed cannot pass in all). Raises StageFailed (naming the job's failed stage and log) once
    the running jobs end."""
    todo = [j for j in jobs if not all((paths.out / STAGE_DIR / f"{s}.json").is_file() for s in j.stages)]
    for j in jobs:
        if j not in todo:
            console.print(f"[green]✓[/] {j.name}: done earlier", highlight=False)
            if enough is not None and enough(j):
                return
    running: list[tuple[Job, subprocess.Popen, float]] = []
    failed: list[tuple[Job, int]] = []
    (paths.out / "logs").mkdir(parents=True, exist_ok=True)
    try:
        while todo or running:
            while todo and len(running) < recipe.jobs and not failed:
                job = todo.pop(0)
                threads = job.spec.get("threads", recipe.threads)
                log = (paths.out / "logs" / f"job-{job.name}.log").open("a", encoding="utf-8")
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "msa_thinker.mini_repro_job",
                        str(paths.out),
                        json.dumps(job.spec),
                    ],
                    env=job_environment(threads, recipe.deterministic),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO_ROOT,
                    start_new_session=True,  # its own process group, so that _stop reaches the SFT child too
                )
                log.close()
                running.append((job, proc, time.perf_counter()))
                console.print(f"  started {job.name} (pid {proc.pid}, {threads} thread(s))", highlight=False)
            time.sleep(0.5)
            for entry in list(running):
                job, proc, t0 = entry
                if proc.poll() is None:
                    continue
                running.remove(entry)
                if proc.returncode == 0:
                    console.print(
                        f"[green]✓[/] {job.name} ({time.perf_counter() - t0:.0f} s)", highlight=False
                    )
                    if enough is not None and enough(job):
                        for other, other_proc, _ in running:
                            console.print(f"  stopped {other.name}: not needed", highlight=False)
                            _stop(other_proc)
                        return
                else:
                    failed.append((job, proc.returncode))
            if failed:
                todo.clear()
    except BaseException:
        for _, proc, _ in running:  # their own sessions: an interrupt does not reach them
            _stop(proc)
        raise
    if failed:
        job, code = failed[0]
        log = paths.out / "logs" / f"job-{job.name}.log"
        stage = next(
            (s for s in job.stages if not (paths.out / STAGE_DIR / f"{s}.json").is_file()), job.stages[-1]
        )
        stage_log = paths.out / "logs" / f"{stage}.log"
        raise StageFailed(
            stage,
            stage_log if stage_log.is_file() else log,
            f"{job.name} exited with {code} ({len(failed)} job(s) failed); process log {log}",
        )


def seed_jobs(paths: MiniPaths, recipe: MiniReproRecipe) -> list[Job]:
    """The seed processes in protocol v2's order: the rerun seeds, their reruns under the other thread count, then
    the other seeds (so that even a partial run has its tolerance)."""

    def job(seed: int, threads: int) -> Job:
        spec = {"kind": "seed", "seed": seed, "threads": threads}
        return Job(
            f"seed-{seed}{thread_tag(recipe, threads)}", spec, [s.name for s in job_plan(paths, recipe, spec)]
        )

    first = [s for s in recipe.seed_list if s in recipe.rerun.seeds]
    return [
        *(job(s, recipe.threads) for s in first),
        *(job(s, recipe.rerun.threads) for s in recipe.rerun.seeds),
        *(job(s, recipe.threads) for s in recipe.seed_list if s not in first),
    ]


# ------------------------------------------------------------------------------------------------------- driver
@dataclass
class MiniReproResult:
    out: Path
    report: Path
    results: Path
    run: StagesRun


def _check_same_recipe(out: Path, recipe: MiniReproRecipe) -> None:
    """A rerun into the same folder must use the recipe it started with (the seed count may change)."""
    path = out / artifacts.MINI_REPRO_RECIPE
    if not path.is_file():
        return
    before = yaml.safe_load(path.read_text()) or {}
    now = recipe.model_dump(mode="json")
    for k in ("seeds", "jobs"):  # more seeds, or another number of processes, give the same rows
        before.pop(k, None)
        now.pop(k, None)
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ConfigError(
            f"{out} holds a run with another recipe (differs in: {', '.join(changed)}); "
            "use --fresh or another --out"
        )


def _prepare(out: str | Path, recipe: MiniReproRecipe, fresh: bool) -> MiniPaths:
    paths = MiniPaths(Path(out).resolve())
    if fresh:
        clear_own_folder(paths.out, "mini-repro", artifacts.MINI_REPRO_RECIPE)
    paths.out.mkdir(parents=True, exist_ok=True)
    _check_same_recipe(paths.out, recipe)
    write_resolved(recipe, paths.out / artifacts.MINI_REPRO_RECIPE)
    offline_cpu_environment(recipe.threads)
    return paths


def _context(paths: MiniPaths, recipe: MiniReproRecipe):
    return lambda log, log_path: StageContext(paths, recipe, log, log_path)


def run_mini_repro(
    out: str | Path,
    recipe: MiniReproRecipe,
    *,
    fresh: bool = False,
    console: Any = None,
    until: str | None = None,
) -> MiniReproResult:
    """The shared stages here, each seed (and rerun) in its own process, then the report from every finished
    seed. ``until`` (a shared stage's name) stops early."""
    from rich.console import Console

    console = console or Console(file=sys.stdout)
    with claim_output_dir(Path(out).resolve(), "--out"):  # checked before any work; one mini-repro per folder
        paths = _prepare(out, recipe, fresh)
        # The report covers the seeds of this call: it is always made again.
        (paths.out / STAGE_DIR / f"{REPORT_STAGE}.json").unlink(missing_ok=True)
        started = time.perf_counter()
        shared = run_stages(
            shared_stages(paths), paths.out, _context(paths, recipe), console=console, until=until
        )
        if until is not None:
            return MiniReproResult(paths.out, paths.report, paths.results, shared)
        run_jobs(paths, recipe, seed_jobs(paths, recipe), console)
        report = run_stages([report_stage(paths)], paths.out, _context(paths, recipe), console=console)
    done = [s.name for s in stages(paths, recipe)[len(shared_stages(paths)) : -1]]
    run = StagesRun(
        {**shared.timings, **report.timings},
        {**shared.cpu, **report.cpu},
        shared.skipped + [n for n in done if (paths.out / STAGE_DIR / f"{n}.json").is_file()],
        time.perf_counter() - started,
    )
    return MiniReproResult(paths.out, paths.report, paths.results, run)


def run_calibration(
    out: str | Path, recipe: MiniReproRecipe, *, fresh: bool = False, console: Any = None
) -> Path:
    """Protocol v2's calibration: the first SFT candidate that passes on the validation split in every
    calibration seed, then the first plain-GRPO candidate whose sampled reward rises in enough seeds. Reads no
    test set. Writes calibration.json and calibration.md; returns the latter."""
    from rich.console import Console

    cal = recipe.calibration
    if not (cal.seeds and cal.sft_candidates and cal.grpo_candidates and recipe.data.valid_clips):
        raise ConfigError(
            "calibration needs calibration.seeds, sft_candidates, grpo_candidates and data.valid_clips"
        )
    console = console or Console(file=sys.stdout)
    with claim_output_dir(Path(out).resolve(), "--out"):  # checked before any work; one job per folder
        return _calibrate(_prepare(out, recipe, fresh), recipe, console)


def _calibrate(paths: MiniPaths, recipe: MiniReproRecipe, console: Any) -> Path:
    from msa_thinker.mini_repro_results import (
        grpo_calibration_result,
        render_calibration,
        sft_calibration_result,
        sft_seed_passes,
    )

    cal = recipe.calibration
    run_stages(shared_stages(paths), paths.out, _context(paths, recipe), console=console)
    result: dict[str, Any] = {
        "seeds": cal.seeds,
        "sft": [],
        "grpo": [],
        "sft_chosen": None,
        "grpo_chosen": None,
    }

    def jobs_for(kind: str, plan: Any, **spec: Any) -> list[Job]:
        return [
            Job(
                f"{kind}-{spec['candidate']}-s{seed}",
                {"kind": kind, "seed": seed, "threads": recipe.threads, **spec},
                [s.name for s in plan(seed)],
            )
            for seed in cal.seeds
        ]

    def sft_jobs(name: str) -> list[Job]:
        plan = partial(sft_calibration_stages, paths, recipe, candidate=name)
        return jobs_for("sft-calibration", plan, candidate=name)

    def sft_failed(name: str) -> Callable[[Job], bool]:
        return lambda job: not sft_seed_passes(paths, recipe, name, job.spec["seed"])

    # A candidate that fails in one seed cannot pass in all: its other seeds run only if no candidate passes
    # (the fallback counts passing seeds).
    for name in cal.sft_candidates:
        run_jobs(paths, recipe, sft_jobs(name), console, enough=sft_failed(name))
        verdict = sft_calibration_result(paths, recipe, name)
        console.print(f"SFT {name}: passed in {verdict['passed']}/{len(cal.seeds)} seeds", highlight=False)
        result["sft"].append(verdict)
        if verdict["passed"] == len(cal.seeds):
            break
    else:
        for name in cal.sft_candidates:
            run_jobs(paths, recipe, sft_jobs(name), console)
        result["sft"] = [sft_calibration_result(paths, recipe, name) for name in cal.sft_candidates]
    best_sft = max(result["sft"], key=lambda v: v["passed"])  # max keeps the first of ties
    result["sft_chosen"] = best_sft["candidate"]
    for name in cal.grpo_candidates:
        run_jobs(
            paths,
            recipe,
            jobs_for(
                "grpo-calibration",
                partial(
                    grpo_calibration_stages,
                    paths,
                    recipe,
                    sft_candidate=best_sft["candidate"],
                    candidate=name,
                ),
                candidate=name,
                sft=best_sft["candidate"],
            ),
            console,
        )
        verdict = grpo_calibration_result(paths, recipe, name)
        result["grpo"].append(verdict)
        console.print(
            f"GRPO {name}: reward rose in {verdict['rose']}/{len(cal.seeds)} seeds", highlight=False
        )
        if verdict["passes"]:
            break
    result["grpo_chosen"] = max(result["grpo"], key=lambda v: v["rose"])["candidate"]
    result["recipe"] = recipe.model_dump(mode="json")
    (paths.out / CALIBRATION_JSON).write_text(json.dumps(result, indent=1) + "\n")
    md = paths.out / CALIBRATION_MARKDOWN
    md.write_text(render_calibration(result))
    return md
