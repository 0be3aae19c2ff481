"""`msa-thinker mini-repro`: the paper's ablations (Tables III-V, Fig. 3) at CPU scale, with several seeds.

The task (docs/mini-repro.md): synthetic clips whose transcript, voice and face each carry sentiment, a share of
them incongruent (the transcript one way, voice and face the other; the label follows voice and face), a
CH-SIMS-style training and test set (in domain) and a CMU-MOSI-style test set (out of domain). The stand-in teacher
writes DC answers for the training clips (cot-distill generate + export); then, per seed, the tiny random Omni
thinker is trained by LLaMA-Factory SFT and, from that one SFT checkpoint, by three GRPO variants (w/ Hint,
w/o Hint, w/o Hard) with the same steps, seed and clips. Five rows per seed are predicted on both test sets:

    zero-shot      the untrained tiny model with the DC prompt          Table III
    sft            DC-CoT SFT                                           Table III
    hint-grpo      SFT + Hint-GRPO (w/ Hint, w/ Hard)                   Tables III, IV, V
    grpo-no-hint   SFT + GRPO without hints                             Table IV
    grpo-no-hard   SFT + GRPO with hard groups dropped (no hints)       Table V

``report.md`` holds the three tables (mean over seeds ± 95 % t interval), the paired tests between the rows each
table compares (msa_eval.seeds), parse-failure rates, Fig. 3 (msa_rl.plot.plot_seed_bands) and the stage timings;
``results.json`` the per-seed metrics of every row and dataset. The stages, their markers and logs are the demo's
(msa_thinker.demo.run_stages): a rerun skips every finished stage, GRPO resumes from its last checkpoint, and
prediction skips the clips already written.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from msa_core import ConfigError, artifacts, polarity_of, read_mmsa
from msa_core.outdir import claim_output_dir, clear_own_folder
from msa_core.recipe import load_recipe, write_resolved
from msa_eval.tables import TABLE_COLUMNS
from pydantic import BaseModel, ConfigDict, Field

from msa_thinker.demo import (
    REPO_ROOT,
    STAGE_DIR,
    Stage,
    StageContext,
    StagesRun,
    offline_cpu_environment,
    run_stages,
    stage_distill,
    stage_export,
)

RECIPE = REPO_ROOT / "configs" / "mini-repro" / "recipe.yaml"
QUICK_RECIPE = REPO_ROOT / "configs" / "mini-repro" / "quick.yaml"
ID_DATASET, OOD_DATASET = "sims", "mosi"  # the paper trains on CH-SIMS; MOSI is its out-of-domain test
FIG3_DIR = "fig3"
REPORT_STAGE = "report"


# ------------------------------------------------------------------------------------------------------ recipe
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataRecipe(_Section):
    train_clips: int = Field(120, ge=3, description="Synthetic CH-SIMS-style training clips.")
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


class MiniReproRecipe(_Section):
    seeds: int = Field(3, ge=1, description="Training seeds 0..N-1 (model init, SFT order, GRPO sampling).")
    data: DataRecipe = Field(default_factory=DataRecipe)
    teacher_faults: str = Field(
        "", description="Noise of the stand-in teacher; the distillation recipe is the demo's (configs/demo)."
    )
    sft_recipe: str = Field("configs/mini-repro/sft.yaml", description="msa-rl sft recipe.")
    grpo_recipe: str = Field(
        "configs/mini-repro/grpo.yaml", description="msa-rl grpo recipe (every variant)."
    )
    sft_overrides: list[str] = Field(default_factory=list, description="Extra --set for the SFT recipe.")
    grpo_overrides: list[str] = Field(default_factory=list, description="Extra --set for the GRPO recipe.")
    predict: PredictRecipe = Field(default_factory=PredictRecipe)
    stats: StatsRecipe = Field(default_factory=StatsRecipe)
    threads: int = Field(1, ge=1, description="OMP_NUM_THREADS for torch (see DemoSize.threads).")


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
    return recipe


# ------------------------------------------------------------------------------------------------- rows, tables
@dataclass(frozen=True)
class Row:
    key: str
    title: str


ROWS = (
    Row("zero-shot", "Zero-shot (untrained tiny model, DC prompt)"),
    Row("sft", "DC-CoT SFT"),
    Row("hint-grpo", "SFT + Hint-GRPO (w/ Hint, w/ Hard)"),
    Row("grpo-no-hint", "SFT + GRPO w/o Hint"),
    Row("grpo-no-hard", "SFT + GRPO w/o Hard (hard groups dropped)"),
)
# GRPO variants: the row, and its `hard_group_strategy` (everything else the same recipe, SFT start, seed, clips).
GRPO_VARIANTS = {
    "hint-grpo": "hint",
    "grpo-no-hint": "none",
    "grpo-no-hard": "drop",
}


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
        "Ablation of the hint mechanism",
        (("grpo-no-hint", "w/o Hint"), ("hint-grpo", "w/ Hint")),
        (("grpo-no-hint", "hint-grpo"), ("sft", "grpo-no-hint")),
    ),
    Table(
        "V",
        "Ablation of the hard samples during training",
        (("grpo-no-hard", "w/o Hard"), ("hint-grpo", "w/ Hard")),
        (("grpo-no-hard", "hint-grpo"),),
    ),
)
# The paper's columns (msa_eval.tables): Acc2/F1 on MOSI are Non0, as papers print them.
COLUMNS = TABLE_COLUMNS
EXTRA_KEYS = ("acc3_incongruent", "acc3_congruent", "parse_failure_rate")


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

    def seed_dir(self, seed: int) -> Path:
        return self.out / f"seed-{seed}"

    def model(self, seed: int, name: str) -> Path:
        return self.seed_dir(seed) / "models" / name

    def run(self, seed: int, row: str) -> Path:
        return self.seed_dir(seed) / "runs" / row

    def row_model(self, seed: int, row: str) -> Path:
        return self.model(seed, {"zero-shot": "tiny"}.get(row, row))

    @property
    def fig3(self) -> Path:
        return self.out / FIG3_DIR

    @property
    def report(self) -> Path:
        return self.out / artifacts.REPORT_MARKDOWN

    @property
    def results(self) -> Path:
        return self.out / artifacts.MINI_REPRO_RESULTS


# ------------------------------------------------------------------------------------------------------- stages
def stage_data(ctx: StageContext) -> str:
    from msa_core.synthetic import make_dataset

    d: DataRecipe = ctx.size.data
    p: MiniPaths = ctx.paths
    n_id = d.train_clips + d.id_test_clips
    make_dataset(
        p.test_set(ID_DATASET),
        ID_DATASET,
        n=n_id,
        seed=d.seed,
        hard_fraction=d.incongruent_fraction,
        splits=(d.train_clips, 0, d.id_test_clips),
    )
    make_dataset(
        p.test_set(OOD_DATASET),
        OOD_DATASET,
        n=d.ood_test_clips,
        seed=d.seed + 1,
        hard_fraction=d.incongruent_fraction,
        splits=(0, 0, 1),
    )
    return f"{ID_DATASET}: {n_id} clips (train + test), {OOD_DATASET}: {d.ood_test_clips} test clips"


def stage_tiny(ctx: StageContext, seed: int) -> str:
    from msa_rl.tiny import build_tiny_omni

    build_tiny_omni(ctx.paths.model(seed, "tiny"), seed=seed)
    return f"tiny random thinker, seed {seed}"


def stage_sft(ctx: StageContext, seed: int) -> str:
    from msa_rl.sft import load_sft_config, prepare, run

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    overrides = [
        f"model={p.model(seed, 'tiny')}",
        f"data={p.export}",
        f"output_dir={p.model(seed, 'sft')}",
        f"seed={seed}",
        *recipe.sft_overrides,
    ]
    result = run(prepare(load_sft_config(repo_path(recipe.sft_recipe), overrides)), echo=ctx.log.write)
    losses = f", loss {result.losses[0]:.2f} → {result.losses[-1]:.2f}" if result.losses else ""
    return f"seed {seed}{losses}"


def stage_grpo(ctx: StageContext, seed: int, row: str) -> str:
    from msa_rl.grpo import run_grpo
    from msa_rl.grpo_config import load_grpo_recipe

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    overrides = [
        f"model={p.model(seed, 'sft')}",
        f"data={p.test_set(ID_DATASET)}",
        f"dataset={ID_DATASET}",
        f"output_dir={p.model(seed, row)}",
        f"seed={seed}",
        f"hard_group_strategy={GRPO_VARIANTS[row]}",
        *recipe.grpo_overrides,
    ]
    run_grpo(load_grpo_recipe(repo_path(recipe.grpo_recipe), overrides))
    rows = _metric_rows(p.model(seed, row))
    sampled = [r["reward/total_sampled"] for r in rows if _finite(r.get("reward/total_sampled"))]
    trend = f", sampled reward {sampled[0]:.2f} → {sampled[-1]:.2f}" if sampled else ""
    return f"seed {seed}, {len(rows)} steps{trend}"


def stage_predict(ctx: StageContext, seed: int) -> str:
    from msa_core import MediaSettings
    from msa_eval.predict import predict
    from msa_rl.sft import load_sft_config

    p: MiniPaths = ctx.paths
    recipe: MiniReproRecipe = ctx.size
    # Every row, the untrained one too, sees the clips as SFT and GRPO did.
    media: MediaSettings = load_sft_config(repo_path(recipe.sft_recipe), recipe.sft_overrides).media
    pairs = [(p.test_set(ID_DATASET), ID_DATASET), (p.test_set(OOD_DATASET), OOD_DATASET)]
    done = failures = 0
    for row in ROWS:
        for s in predict(
            p.row_model(seed, row.key),
            pairs,
            p.run(seed, row.key),
            batch_size=recipe.predict.batch_size,
            max_new_tokens=recipe.predict.max_new_tokens,
            **media.model_dump(),
        ):
            ctx.log.write(f"{row.key}/{s.dataset}: {s.generated} predicted, {s.skipped} already done\n")
            done += s.total
            failures += s.parse_failures
    return f"seed {seed}: {done} predictions ({len(ROWS)} rows × 2 test sets), {failures} new parse failures"


def stage_report(ctx: StageContext) -> str:
    p: MiniPaths = ctx.paths
    results = compute_results(p, ctx.size)
    results["timings"] = stage_timings(p.out)
    from msa_rl.plot import plot_seed_bands

    seeds = range(ctx.size.seeds)
    figures = plot_seed_bands(
        [
            ("w/ Hint", [p.model(s, "hint-grpo") for s in seeds]),
            ("w/o Hint", [p.model(s, "grpo-no-hint") for s in seeds]),
            ("w/o Hard", [p.model(s, "grpo-no-hard") for s in seeds]),
        ],
        p.fig3,
        post_hint="w/ Hint",
    )
    results["figures"] = [str(f.relative_to(p.out)) for f in figures]
    p.results.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    p.report.write_text(render_report(results))
    return f"{artifacts.REPORT_MARKDOWN}, {artifacts.MINI_REPRO_RESULTS}, {FIG3_DIR}/ ({len(figures)} plots)"


def stages(paths: MiniPaths, recipe: MiniReproRecipe) -> list[Stage]:
    plan = [
        Stage(
            "data", "synthetic clips (CH-SIMS-style train + test, MOSI-style test)", [paths.data], stage_data
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
    for seed in range(recipe.seeds):
        plan += [
            Stage(
                f"tiny-s{seed}",
                "tiny random thinker",
                [paths.model(seed, "tiny")],
                partial(stage_tiny, seed=seed),
            ),
            Stage(
                f"sft-s{seed}",
                "DC-CoT SFT (LLaMA-Factory)",
                [paths.model(seed, "sft")],
                partial(stage_sft, seed=seed),
            ),
        ]
        for row in GRPO_VARIANTS:
            plan.append(
                Stage(
                    f"{row}-s{seed}",
                    f"GRPO ({row}) from the seed's SFT model",
                    [paths.model(seed, row)],
                    partial(stage_grpo, seed=seed, row=row),
                    resumable=True,
                )
            )
        plan.append(
            Stage(
                f"predict-s{seed}",
                "msa-eval predict: 5 rows × 2 test sets",
                [paths.seed_dir(seed) / "runs"],
                partial(stage_predict, seed=seed),
                resumable=True,
            )
        )
    plan.append(Stage(REPORT_STAGE, "tables III-V, Fig. 3, results.json", [paths.fig3], stage_report))
    return plan


# ------------------------------------------------------------------------------------------------------ scoring
def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _metric_rows(run_dir: Path) -> list[dict]:
    from msa_core.jsonl import read_jsonl

    path = run_dir / artifacts.GRPO_METRICS
    return [r for r in read_jsonl(path) if isinstance(r.get("step"), int)] if path.is_file() else []


@dataclass
class TestSet:
    name: str
    title: str
    ids: list[str]
    incongruent: set[str]
    text_only_acc3: float
    """Polarity accuracy of a reader that gets every transcript's own polarity right (label_T): the ceiling of
    reading the text alone."""


def read_test_set(data_dir: Path, dataset: str) -> TestSet:
    data = read_mmsa(data_dir, dataset, split="test")
    spec = data.spec
    incongruent = {
        c.id
        for c in data.clips
        if c.label_T is not None and polarity_of(c.label_T, spec) != polarity_of(c.label, spec)
    }
    text_hits = [
        c.label_T is not None and polarity_of(c.label_T, spec) == polarity_of(c.label, spec)
        for c in data.clips
    ]
    return TestSet(
        spec.name, spec.title, sorted(c.id for c in data.clips), incongruent, sum(text_hits) / len(text_hits)
    )


def score_run(run_dir: Path, test: TestSet):
    """(metrics dict, PerSample in the test set's id order) of one row's predictions on one test set.
    Parse failures are scored neutral (0), as `msa-eval report` does by default, and always counted."""
    import numpy as np
    from msa_core import DataError
    from msa_eval.metrics import MetricWarning, metrics_from_samples, prepare
    from msa_eval.predictions import apply_failure_policy, read_predictions

    path = artifacts.predictions_path(run_dir, test.name)
    pred = read_predictions(path)
    resolved = apply_failure_policy(pred, "neutral")
    ids = pred.ids or []
    where = {clip_id: i for i, clip_id in enumerate(ids)}
    missing = [i for i in test.ids if i not in where]
    if missing:
        raise DataError(f"{len(missing)} test clip(s) have no prediction, e.g. {missing[0]}", file=path)
    order = np.asarray([where[i] for i in test.ids])
    ps = prepare(resolved.preds[order], resolved.labels[order], test.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        metrics: dict[str, Any] = dict(metrics_from_samples(ps, parse_failures=resolved.parse_failures))
    mask = np.asarray([i in test.incongruent for i in test.ids])
    hits = ps.hits["acc3"]
    metrics["acc3_incongruent"] = float(hits[mask].mean()) if mask.any() else math.nan
    metrics["acc3_congruent"] = float(hits[~mask].mean()) if (~mask).any() else math.nan
    metrics["parse_failure_rate"] = resolved.parse_failures / len(test.ids)
    return metrics, ps


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def compute_results(p: MiniPaths, recipe: MiniReproRecipe) -> dict[str, Any]:
    """Per-seed metrics of every row and dataset, their summaries over seeds, and every table's paired tests."""
    from msa_eval.seeds import mean_interval, paired_over_seeds

    seeds = list(range(recipe.seeds))
    tests = [
        read_test_set(p.test_set(ID_DATASET), ID_DATASET),
        read_test_set(p.test_set(OOD_DATASET), OOD_DATASET),
    ]
    scored: dict[tuple[str, int, str], tuple[dict, Any]] = {}
    for row in ROWS:
        for seed in seeds:
            for test in tests:
                scored[row.key, seed, test.name] = score_run(p.run(seed, row.key), test)
    rows_out: dict[str, Any] = {}
    for row in ROWS:
        per_seed = {str(s): {t.name: scored[row.key, s, t.name][0] for t in tests} for s in seeds}
        summary = {}
        for t in tests:
            keys = [k for k, _ in COLUMNS[t.name]] + list(EXTRA_KEYS)
            summary[t.name] = {
                k: mean_interval([scored[row.key, s, t.name][0][k] for s in seeds]).as_dict() for k in keys
            }
        rows_out[row.key] = {"title": row.title, "per_seed": per_seed, "summary": summary}
    comparisons = []
    for table in TABLES:
        for a, b in table.comparisons:
            for t in tests:
                pairs = [(scored[a, s, t.name][1], scored[b, s, t.name][1]) for s in seeds]
                test = paired_over_seeds(pairs, recipe.stats.n_boot, recipe.stats.bootstrap_seed)
                comparisons.append(
                    {
                        "table": table.number,
                        "a": a,
                        "b": b,
                        "dataset": t.name,
                        "metrics": {
                            k: {
                                "diff_mean": v["diff"],
                                "diff_half_width": v["seeds"].half_width,
                                "per_seed_diff": v["per_seed"],
                                "b_better_seeds": v["b_better"],
                                "p_clip_bootstrap": v["p_value"],
                            }
                            for k, v in test.items()
                            if k in dict(COLUMNS[t.name])
                        },
                    }
                )
    return _clean(
        {
            "seeds": seeds,
            "confidence": 0.95,
            "failure_policy": "neutral",
            "recipe": recipe.model_dump(mode="json"),
            "datasets": {
                t.name: {
                    "title": t.title,
                    "role": "ID" if t.name == ID_DATASET else "OOD",
                    "test_clips": len(t.ids),
                    "incongruent_clips": len(t.incongruent),
                    "text_only_acc3": t.text_only_acc3,
                }
                for t in tests
            },
            "rows": rows_out,
            "tables": [
                {"number": t.number, "caption": t.caption, "rows": [list(r) for r in t.rows]} for t in TABLES
            ],
            "comparisons": comparisons,
        }
    )


def stage_timings(out: Path) -> dict[str, Any]:
    """Wall and CPU seconds of every finished stage (from the markers), and their totals."""
    stages_: dict[str, dict] = {}
    for marker in sorted((out / STAGE_DIR).glob("*.json"), key=lambda m: m.stat().st_mtime_ns):
        info = json.loads(marker.read_text())
        stages_[marker.stem] = {"wall_s": info.get("seconds"), "cpu_s": info.get("cpu_seconds")}
    return {
        "stages": stages_,
        "total_wall_s": round(sum(v["wall_s"] or 0 for v in stages_.values()), 1),
        "total_cpu_s": round(sum(v["cpu_s"] or 0 for v in stages_.values()), 1),
    }


# ------------------------------------------------------------------------------------------------------- report
def _fmt(key: str, summary: dict, *, percent: bool, seeds: int = 1) -> str:
    mean, half = summary.get("mean"), summary.get("half_width")
    if mean is None:
        return "–"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{mean * scale:.{digits}f}"
    text += f" ± {half * scale:.{digits}f}" if half is not None else ""
    return text + (f" ({summary['n']}/{seeds} seeds)" if summary.get("n", seeds) < seeds else "")


def _is_percent(key: str) -> bool:
    return key not in ("mae", "corr")


def _arrow(key: str) -> str:
    return "↓" if key == "mae" else "↑"


def _table_markdown(table: dict, results: dict, dataset: str) -> list[str]:
    cols = COLUMNS[dataset]
    head = ["Model", *(f"{label} {_arrow(k)}" for k, label in cols), "Acc3 incongruent ↑", "Acc3 congruent ↑"]
    head.append("parse failures")
    lines = ["| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
    for key, label in table["rows"]:
        summary = results["rows"][key]["summary"][dataset]
        n = len(results["seeds"])
        cells = [_fmt(k, summary[k], percent=_is_percent(k), seeds=n) for k, _ in cols]
        cells += [_fmt(k, summary[k], percent=True, seeds=n) for k in ("acc3_incongruent", "acc3_congruent")]
        cells.append(_fmt("parse_failure_rate", summary["parse_failure_rate"], percent=True, seeds=n) + " %")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _diff_cell(key: str, m: dict | None, n: int) -> str:
    if m is None or m["diff_mean"] is None:
        return "–"
    scale, digits = (100.0, 1) if _is_percent(key) else (1.0, 3)
    half = f" ± {m['diff_half_width'] * scale:.{digits}f}" if m["diff_half_width"] is not None else ""
    p = "–" if m["p_clip_bootstrap"] is None else f"{m['p_clip_bootstrap']:.3f}"
    return f"{m['diff_mean'] * scale:+.{digits}f}{half} (p {p}; {m['b_better_seeds']}/{n})"


def _comparison_markdown(results: dict, number: str) -> list[str]:
    comps = [c for c in results["comparisons"] if c["table"] == number]
    if not comps:
        return []
    titles = {r.key: r.title for r in ROWS}
    n = len(results["seeds"])
    lines = [
        f"Paired tests, B − A: mean over {n} seed(s) ± 95 % t interval of the per-seed differences; p: paired clip "
        f"bootstrap ({results['recipe']['stats']['n_boot']} resamples, the same clips drawn for every seed, "
        f"statistic the mean over seeds); k/{n}: seeds where B is better (lower MAE, higher everything else).",
        "",
    ]
    for dataset, ds in results["datasets"].items():
        cols = COLUMNS[dataset]
        lines += [
            f"| A → B, {ds['title']} ({ds['role']}) | "
            + " | ".join(f"Δ {label}" for _, label in cols)
            + " |",
            "|:---|" + "---:|" * len(cols),
        ]
        for c in comps:
            if c["dataset"] == dataset:
                cells = [_diff_cell(k, c["metrics"].get(k), n) for k, _ in cols]
                lines.append(f"| {titles[c['a']]} → {titles[c['b']]} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def render_report(results: dict) -> str:
    n = len(results["seeds"])
    rec = results["recipe"]
    out = [
        "# Mini reproduction: Tables III–V and Fig. 3 at CPU scale",
        "",
        f"Tiny random Qwen2.5-Omni thinker, synthetic clips, stand-in teacher; {n} training seed(s) "
        f"({', '.join(map(str, results['seeds']))}), the same clips for every seed. Recipe: "
        f"`{artifacts.MINI_REPRO_RECIPE}` (fixed before any row was compared). Task and method: docs/mini-repro.md.",
        "",
        "Cells: mean over seeds ± half-width of the 95 % Student-t interval over seeds (no ± with one seed). "
        "Accuracies, F1 and parse failures ×100; MAE and Corr as is; metrics exactly as MMSA's `metricsTop.py` "
        "(MOSI: Acc2/F1 are Non0). Unparsable answers are scored neutral (0) and counted under parse failures. "
        "*Acc3 incongruent*: polarity accuracy on the clips whose transcript disagrees with voice and face. "
        "*(k/N seeds)*: the metric is undefined in the other seeds (Corr of constant predictions).",
        "",
        "| test set | role | clips | incongruent | text-only ceiling (Acc3) |",
        "|:---|:---|---:|---:|---:|",
    ]
    for ds in results["datasets"].values():
        out.append(
            f"| {ds['title']} | {ds['role']} | {ds['test_clips']} | {ds['incongruent_clips']} | "
            f"{100 * ds['text_only_acc3']:.1f} |"
        )
    out += [
        "",
        "*Text-only ceiling*: the Acc3 of a reader that gets every transcript's own polarity right; a model "
        "above it must use voice or face.",
        "",
    ]
    for table in results["tables"]:
        out += [f"## Table {table['number']}: {table['caption']}", ""]
        for dataset, ds in results["datasets"].items():
            out += [f"**{ds['title']} ({ds['role']})**", ""]
            out += _table_markdown(table, results, dataset)
            out.append("")
        out += _comparison_markdown(results, table["number"])
        out.append("")
    out += [
        "## Fig. 3: training reward, w/ vs w/o Hint",
        "",
        "Solid: the total reward of what the policy sampled on its own, before any hint (`reward/total_sampled`), "
        "mean over seeds, band from the lowest to the highest seed (each seed's curve EMA-smoothed first). Dashed: "
        "the w/ Hint reward after hints (`reward/total`), which contains the injected true polarity and is not "
        "comparable with the others. Second figure: hard groups and zero-std groups per step.",
        "",
    ]
    out += [f"![{Path(f).stem}]({f})" for f in results.get("figures", [])]
    out += ["", "## Time", ""]
    timings = results.get("timings", {})
    out.append(
        f"Stage wall time {timings.get('total_wall_s', 0):.0f} s, CPU time (user + system, children included) "
        f"{timings.get('total_cpu_s', 0):.0f} s, summed over stages as they ran (a resumed stage counts its last "
        "run). Per stage:"
    )
    out += ["", "| stage | wall s | CPU s |", "|:---|---:|---:|"]
    for name, t in timings.get("stages", {}).items():
        wall = "–" if t["wall_s"] is None else f"{t['wall_s']:.1f}"
        cpu = "–" if t["cpu_s"] is None else f"{t['cpu_s']:.1f}"
        out.append(f"| {name} | {wall} | {cpu} |")
    out += ["", f"Settings: {json.dumps({k: rec[k] for k in ('data', 'predict', 'stats')})}", ""]
    return "\n".join(out)


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
    before.pop("seeds", None)
    now.pop("seeds", None)
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ConfigError(
            f"{out} holds a run with another recipe (differs in: {', '.join(changed)}); "
            "use --fresh or another --out"
        )


def run_mini_repro(
    out: str | Path,
    recipe: MiniReproRecipe,
    *,
    fresh: bool = False,
    console: Any = None,
    until: str | None = None,
) -> MiniReproResult:
    from rich.console import Console

    console = console or Console(file=sys.stdout)
    paths = MiniPaths(Path(out).resolve())
    with claim_output_dir(paths.out, "--out"):  # checked before any work; one mini-repro per folder
        if fresh:
            clear_own_folder(paths.out, "mini-repro", artifacts.MINI_REPRO_RECIPE)
        _check_same_recipe(paths.out, recipe)
        write_resolved(recipe, paths.out / artifacts.MINI_REPRO_RECIPE)
        # The report covers the seeds of this call: it is always made again.
        (paths.out / STAGE_DIR / f"{REPORT_STAGE}.json").unlink(missing_ok=True)
        offline_cpu_environment(recipe.threads)
        run = run_stages(
            stages(paths, recipe),
            paths.out,
            lambda log, log_path: StageContext(paths, recipe, log, log_path),
            console=console,
            until=until,
        )
    return MiniReproResult(paths.out, paths.report, paths.results, run)
