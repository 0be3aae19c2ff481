"""The mini reproduction's results: every row scored per seed (msa_eval.score.score_aligned), summaries and paired
tests over seeds (msa_eval.seeds), the thread-count tolerance and protocol v2's verdicts, Fig. 3 (msa_rl.plot), and
report.md rendered with msa_eval.tables. Also the calibration's criteria and its report."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msa_core import DataError, artifacts, polarity_of, read_mmsa
from msa_eval.score import json_safe
from msa_eval.tables import TABLE_COLUMNS, markdown_paired_table, markdown_seed_table

from msa_thinker.mini_repro import (
    FIG3_LABELS,
    ID_DATASET,
    OOD_DATASET,
    PRIMARY,
    MiniPaths,
    MiniReproRecipe,
    active_rows,
    active_tables,
    thread_tag,
)
from msa_thinker.stage_driver import STAGE_DIR

COLUMNS = TABLE_COLUMNS
EXTRA_KEYS = ("acc3_incongruent", "acc3_congruent", "parse_failure_rate")
PRIMARY_METRIC = "acc3"


# ------------------------------------------------------------------------------------------- test sets, scores
@dataclass
class TestSet:
    name: str
    title: str
    split: str
    ids: list[str]
    incongruent: set[str]
    text_only_acc3: float
    """Polarity accuracy of a reader that gets every transcript's own polarity right (label_T): the ceiling of
    reading the text alone."""


def read_test_set(data_dir: Path, dataset: str, split: str = "test") -> TestSet:
    data = read_mmsa(data_dir, dataset, split=split)
    spec = data.spec
    if not data.clips:
        raise DataError(f"no clips in split {split!r}", file=data_dir)
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
        spec.name,
        spec.title,
        split,
        sorted(c.id for c in data.clips),
        incongruent,
        sum(text_hits) / len(text_hits),
    )


def score_run(run_dir: Path, test: TestSet):
    """(metrics dict, PerSample in the test set's id order) of one row's predictions on one test set. Parse
    failures are scored neutral (0), as `msa-eval report` does by default, and always counted."""
    import numpy as np
    from msa_eval.score import score_aligned

    scored = score_aligned(artifacts.predictions_path(run_dir, test.name), test.name, test.ids, "neutral")
    metrics: dict[str, Any] = dict(scored.metrics)
    mask = np.asarray([i in test.incongruent for i in test.ids])
    hits = scored.per_sample.hits["acc3"]
    metrics["acc3_incongruent"] = float(hits[mask].mean()) if mask.any() else math.nan
    metrics["acc3_congruent"] = float(hits[~mask].mean()) if (~mask).any() else math.nan
    metrics["parse_failure_rate"] = scored.parse_failures / len(test.ids)
    return metrics, scored.per_sample


# ----------------------------------------------------------------------------------------------- reward curves
def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def sampled_rewards(run_dir: Path) -> list[float]:
    """The pre-hint sampled total reward of every logged step, in step order."""
    from msa_core.jsonl import read_jsonl

    path = run_dir / artifacts.GRPO_METRICS
    rows = [r for r in read_jsonl(path) if isinstance(r.get("step"), int)] if path.is_file() else []
    rows.sort(key=lambda r: r["step"])
    return [float(r["reward/total_sampled"]) for r in rows if _finite(r.get("reward/total_sampled"))]


def quarter_means(rewards: list[float]) -> tuple[float, float] | None:
    """(mean of the first quarter of steps, mean of the last quarter); None with fewer than 2 steps."""
    if len(rewards) < 2:
        return None
    q = max(1, len(rewards) // 4)
    return sum(rewards[:q]) / q, sum(rewards[-q:]) / q


def reward_quarters(run_dir: Path) -> tuple[float, float] | None:
    return quarter_means(sampled_rewards(run_dir))


def reward_rose(run_dir: Path) -> bool | None:
    """Protocol v2's learning criterion for one run: last quarter's sampled reward above the first quarter's."""
    q = reward_quarters(run_dir)
    return None if q is None else q[1] > q[0]


# ---------------------------------------------------------------------------------------------------- results
def finished_seeds(p: MiniPaths, recipe: MiniReproRecipe, threads: int | None = None) -> list[int]:
    """The seeds whose prediction stage finished (a partial run is reported on these)."""
    seeds = recipe.seed_list if threads is None else recipe.rerun.seeds
    tag = thread_tag(recipe, threads or recipe.threads)
    return [s for s in seeds if (p.out / STAGE_DIR / f"predict-s{s}{tag}.json").is_file()]


def _score_all(p: MiniPaths, recipe: MiniReproRecipe, seeds: list[int], tests: list[TestSet], tag: str = ""):
    return {
        (row.key, seed, t.name): score_run(p.run(seed, row.key, tag), t)
        for row in active_rows(recipe)
        for seed in seeds
        for t in tests
    }


def _validation(p: MiniPaths, recipe: MiniReproRecipe, seeds: list[int]) -> dict[str, Any] | None:
    """The SFT row on the validation split in each run seed: did the calibration's SFT criterion hold?"""
    if not recipe.data.valid_clips:
        return None
    valid = read_test_set(p.test_set(ID_DATASET), ID_DATASET, "valid")
    per_seed = {}
    for s in seeds:
        m, _ = score_run(p.valid_run(s, "sft"), valid)
        per_seed[str(s)] = sft_criterion(m, valid)
    return {
        "text_only_acc3": valid.text_only_acc3,
        "clips": len(valid.ids),
        "per_seed": per_seed,
        "passed": sum(v["passed"] for v in per_seed.values()),
    }


def sft_criterion(metrics: dict[str, Any], valid: TestSet) -> dict[str, Any]:
    """Protocol v2's SFT criterion on the validation split: 0 parse failures and Acc3 above the text-only
    ceiling."""
    return {
        "acc3": metrics["acc3"],
        "parse_failures": metrics["parse_failures"],
        "passed": bool(metrics["parse_failures"] == 0 and metrics["acc3"] > valid.text_only_acc3),
    }


def verdict(diff: float | None, half: float | None, tolerance: float | None) -> str:
    """Protocol v2's rule: 'held' when the 95 % interval excludes 0 even when shifted by the tolerance,
    'direction only' when it excludes 0 but a shift could reach 0, 'not decided' when it includes 0 (and
    'not decided' without an interval)."""
    if diff is None or half is None:
        return "not decided"
    if abs(diff) <= half:
        return "not decided"
    if tolerance is None or abs(diff) <= half + tolerance:
        return "direction only"
    return "held"


def compute_results(p: MiniPaths, recipe: MiniReproRecipe) -> dict[str, Any]:
    """Per-seed metrics of every row and dataset, their summaries over seeds, every table's paired tests, the
    thread-count tolerance of each comparison and the primary comparisons' verdicts."""
    from msa_eval.seeds import mean_interval, paired_over_seeds

    seeds = finished_seeds(p, recipe)
    if not seeds:
        raise DataError("no seed has finished its predictions yet; nothing to report", file=p.out)
    tests = [
        read_test_set(p.test_set(ID_DATASET), ID_DATASET),
        read_test_set(p.test_set(OOD_DATASET), OOD_DATASET),
    ]
    rows, tables = active_rows(recipe), active_tables(recipe)
    scored = _score_all(p, recipe, seeds, tests)
    rerun_seeds = [s for s in finished_seeds(p, recipe, recipe.rerun.threads) if s in seeds]
    rerun = _score_all(p, recipe, rerun_seeds, tests, thread_tag(recipe, recipe.rerun.threads))
    rows_out: dict[str, Any] = {}
    for row in rows:
        per_seed = {str(s): {t.name: scored[row.key, s, t.name][0] for t in tests} for s in seeds}
        summary = {}
        for t in tests:
            keys = [k for k, _ in COLUMNS[t.name]] + list(EXTRA_KEYS)
            summary[t.name] = {
                k: mean_interval([scored[row.key, s, t.name][0][k] for s in seeds]).as_dict() for k in keys
            }
        rows_out[row.key] = {"title": row.title, "per_seed": per_seed, "summary": summary}
        if rerun_seeds:
            rows_out[row.key]["rerun_per_seed"] = {
                str(s): {t.name: rerun[row.key, s, t.name][0] for t in tests} for s in rerun_seeds
            }
    comparisons = []
    for table in tables:
        for a, b in table.comparisons:
            for t in tests:
                pairs = [(scored[a, s, t.name][1], scored[b, s, t.name][1]) for s in seeds]
                test = paired_over_seeds(pairs, recipe.stats.n_boot, recipe.stats.bootstrap_seed)
                metrics = {}
                for k, v in test.items():
                    if k not in dict(COLUMNS[t.name]):
                        continue
                    tol = None
                    if rerun_seeds:
                        changes = [
                            abs(
                                (rerun[b, s, t.name][0][k] - rerun[a, s, t.name][0][k])
                                - (scored[b, s, t.name][0][k] - scored[a, s, t.name][0][k])
                            )
                            for s in rerun_seeds
                        ]
                        finite = [c for c in changes if math.isfinite(c)]
                        tol = max(finite) if finite else None
                    half = v["seeds"].half_width
                    metrics[k] = {
                        "diff_mean": v["diff"],
                        "diff_half_width": half,
                        "per_seed_diff": v["per_seed"],
                        "b_better_seeds": v["b_better"],
                        "p_clip_bootstrap": v["p_value"],
                        "tolerance": tol,
                        "verdict": verdict(
                            v["diff"] if math.isfinite(v["diff"]) else None,
                            half if math.isfinite(half) else None,
                            tol,
                        ),
                    }
                comparisons.append(
                    {
                        "table": table.number,
                        "a": a,
                        "b": b,
                        "primary": (a, b) in PRIMARY and t.name == ID_DATASET,  # protocol v2: ID Acc3
                        "dataset": t.name,
                        "metrics": metrics,
                    }
                )
    primary_tol = [
        c["metrics"][PRIMARY_METRIC]["tolerance"]
        for c in comparisons
        if c["primary"] and c["metrics"][PRIMARY_METRIC]["tolerance"] is not None
    ]
    reward = {}
    for row in rows[2:]:
        quarters = {str(s): reward_quarters(p.model(s, row.key)) for s in seeds}
        reward[row.key] = {
            "first_last_quarter": quarters,
            "rose": sum(1 for q in quarters.values() if q and q[1] > q[0]),
            "seeds": len(seeds),
        }
    return json_safe(
        {
            "seeds": seeds,
            "planned_seeds": recipe.seed_list,
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
            "validation": _validation(p, recipe, seeds),
            "rows": rows_out,
            "tables": [
                {"number": t.number, "caption": t.caption, "rows": [list(r) for r in t.rows]} for t in tables
            ],
            "comparisons": comparisons,
            "tolerance": {
                "threads": [recipe.threads, recipe.rerun.threads] if recipe.rerun.seeds else None,
                "seeds": rerun_seeds,
                "planned_seeds": recipe.rerun.seeds,
                "primary_acc3": max(primary_tol) if primary_tol else None,
            },
            "reward_rise": reward,
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


def write_report(p: MiniPaths, recipe: MiniReproRecipe) -> int:
    """results.json, report.md and Fig. 3 from every finished seed; returns the number of plots."""
    from msa_rl.plot import plot_seed_bands

    results = compute_results(p, recipe)
    results["timings"] = stage_timings(p.out)
    figures = plot_seed_bands(
        [
            (FIG3_LABELS[r.key], [p.model(s, r.key) for s in results["seeds"]])
            for r in active_rows(recipe)[2:]
        ],
        p.fig3,
        post_hint=FIG3_LABELS["hint-grpo"],
    )
    results["figures"] = [str(f.relative_to(p.out)) for f in figures]
    p.results.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    p.report.write_text(render_report(results))
    return len(figures)


# ------------------------------------------------------------------------------------------------------ report
def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _table_lines(table: dict, results: dict, dataset: str) -> list[str]:
    n = len(results["seeds"])
    rows = [(label, results["rows"][key]["summary"][dataset]) for key, label in table["rows"]]
    extra = (
        ("acc3_incongruent", "Acc3 incongruent ↑"),
        ("acc3_congruent", "Acc3 congruent ↑"),
        ("parse_failure_rate", "parse failures (%)"),
    )
    return markdown_seed_table(dataset, rows, n, extra).splitlines()


def _comparison_lines(results: dict, number: str) -> list[str]:
    comps = [c for c in results["comparisons"] if c["table"] == number]
    if not comps:
        return []
    titles = {k: v["title"] for k, v in results["rows"].items()}
    n = len(results["seeds"])
    lines = [
        f"Paired tests, B − A: mean over {n} seed(s) ± 95 % t interval of the per-seed differences; p: paired clip "
        f"bootstrap ({results['recipe']['stats']['n_boot']} resamples, the same clips drawn for every seed, "
        f"statistic the mean over seeds); k/{n}: seeds where B is better (lower MAE, higher everything else). "
        "**Primary** comparisons (protocol v2) in bold.",
        "",
    ]
    for dataset, ds in results["datasets"].items():
        rows = []
        for c in comps:
            if c["dataset"] == dataset:
                label = f"{titles[c['a']]} → {titles[c['b']]}"
                rows.append((f"**{label}**" if c["primary"] else label, c["metrics"]))
        lines += markdown_paired_table(dataset, f"A → B, {ds['title']} ({ds['role']})", rows, n).splitlines()
        lines.append("")
    return lines


def _verdict_lines(results: dict) -> list[str]:
    tol = results["tolerance"]
    titles = {k: v["title"] for k, v in results["rows"].items()}
    lines = ["## Primary comparisons and their tolerance", ""]
    if tol["threads"] is None:
        lines += [
            "No thread-count reruns in this recipe: the tolerance is not measured and no comparison is "
            "called “held”.",
            "",
        ]
    else:
        lines += [
            f"Tolerance T: seeds {tol['seeds'] or '(none finished)'} of {tol['planned_seeds']} were run again with "
            f"{tol['threads'][1]} thread(s) per process instead of {tol['threads'][0]}. T of a comparison is the "
            "largest change of its per-seed difference between the two thread counts. Largest T over the primary "
            f"ID Acc3 comparisons: {_pct(tol['primary_acc3'])} points.",
            "",
        ]
    lines += [
        "Rule (fixed before the run): **held** when |Δ| > half-width + T; **direction only** when the interval "
        "excludes 0 but not by T; **not decided** when it includes 0.",
        "",
        "| A → B | test set | Δ Acc3 | half-width | T | k/N | verdict |",
        "|:---|:---|---:|---:|---:|---:|:---|",
    ]
    n = len(results["seeds"])
    for c in results["comparisons"]:
        if not c["primary"]:
            continue
        m = c["metrics"][PRIMARY_METRIC]
        ds = results["datasets"][c["dataset"]]
        diff = "–" if m["diff_mean"] is None else f"{100 * m['diff_mean']:+.1f}"
        lines.append(
            f"| {titles[c['a']]} → {titles[c['b']]} | {ds['title']} ({ds['role']}) | {diff} | "
            f"{_pct(m['diff_half_width'])} | {_pct(m['tolerance'])} | {m['b_better_seeds']}/{n} | {m['verdict']} |"
        )
    return [*lines, ""]


def render_report(results: dict) -> str:
    n = len(results["seeds"])
    rec = results["recipe"]
    missing = [s for s in results["planned_seeds"] if s not in results["seeds"]]
    out = [
        "# Mini reproduction: Tables III–V and Fig. 3 at CPU scale",
        "",
        f"Tiny random Qwen2.5-Omni thinker, synthetic clips, stand-in teacher; {n} training seed(s) "
        f"({', '.join(map(str, results['seeds']))}), the same clips for every seed. Recipe: "
        f"`{artifacts.MINI_REPRO_RECIPE}`. Task, protocols and method: docs/mini-repro.md.",
        "",
    ]
    if missing:
        out += [
            f"**Partial run**: seeds {missing} had not finished; every number below is over the others.",
            "",
        ]
    out += [
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
    val = results.get("validation")
    if val:
        out += [
            f"SFT on the validation split ({val['clips']} clips, text-only ceiling "
            f"{100 * val['text_only_acc3']:.1f}): 0 parse failures and Acc3 above the ceiling in "
            f"{val['passed']}/{n} seeds (the calibration's SFT criterion, re-checked on these seeds).",
            "",
        ]
    for table in results["tables"]:
        out += [f"## Table {table['number']}: {table['caption']}", ""]
        for dataset, ds in results["datasets"].items():
            out += [f"**{ds['title']} ({ds['role']})**", ""]
            out += _table_lines(table, results, dataset)
            out.append("")
        out += _comparison_lines(results, table["number"])
        out.append("")
    out += _verdict_lines(results)
    rise = results.get("reward_rise", {})
    out += [
        "## Fig. 3: training reward of every RL arm",
        "",
        "Solid: the total reward of what the policy sampled on its own, before any hint (`reward/total_sampled`), "
        "mean over seeds, band from the lowest to the highest seed (each seed's curve EMA-smoothed first). Dashed: "
        "the w/ Hint reward after hints (`reward/total`), which contains the injected true polarity and is not "
        "comparable with the others. Second figure: hard groups and zero-std groups per step.",
        "",
        "Seeds whose sampled reward over the last quarter of steps exceeds the first quarter's: "
        + ", ".join(f"{results['rows'][k]['title']} {v['rose']}/{v['seeds']}" for k, v in rise.items())
        + ".",
        "",
    ]
    out += [f"![{Path(f).stem}]({f})" for f in results.get("figures", [])]
    out += ["", "## Time", ""]
    timings = results.get("timings", {})
    out.append(
        f"Stage wall time {timings.get('total_wall_s', 0):.0f} s, CPU time (user + system, children included) "
        f"{timings.get('total_cpu_s', 0):.0f} s, summed over stages as they ran (a resumed stage counts its last "
        f"run; {rec['jobs']} seed process(es) ran at a time, so the run's wall time is shorter). Per stage:"
    )
    out += ["", "| stage | wall s | CPU s |", "|:---|---:|---:|"]
    for name, t in timings.get("stages", {}).items():
        wall = "–" if t["wall_s"] is None else f"{t['wall_s']:.1f}"
        cpu = "–" if t["cpu_s"] is None else f"{t['cpu_s']:.1f}"
        out.append(f"| {name} | {wall} | {cpu} |")
    out += ["", f"Settings: {json.dumps({k: rec[k] for k in ('data', 'predict', 'stats')})}", ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ calibration
def sft_seed_passes(p: MiniPaths, recipe: MiniReproRecipe, candidate: str, seed: int) -> bool:
    valid = read_test_set(p.test_set(ID_DATASET), ID_DATASET, "valid")
    return sft_criterion(score_run(p.valid_run(seed, f"sft-{candidate}"), valid)[0], valid)["passed"]


def sft_calibration_result(p: MiniPaths, recipe: MiniReproRecipe, candidate: str) -> dict[str, Any]:
    """Every calibration seed's validation result of one SFT candidate (a seed not run: None, not passed)."""
    valid = read_test_set(p.test_set(ID_DATASET), ID_DATASET, "valid")
    per_seed = {}
    for s in recipe.calibration.seeds:
        run = p.valid_run(s, f"sft-{candidate}")
        done = (p.out / STAGE_DIR / f"predict-valid-sft-{candidate}-s{s}.json").is_file()
        per_seed[str(s)] = sft_criterion(score_run(run, valid)[0], valid) if done else None
    return {
        "candidate": candidate,
        "overrides": recipe.calibration.sft_candidates[candidate],
        "text_only_acc3": valid.text_only_acc3,
        "per_seed": per_seed,
        "passed": sum(bool(v and v["passed"]) for v in per_seed.values()),
    }


def grpo_calibration_result(p: MiniPaths, recipe: MiniReproRecipe, candidate: str) -> dict[str, Any]:
    cal = recipe.calibration
    quarters = {str(s): reward_quarters(p.model(s, f"grpo-{candidate}")) for s in cal.seeds}
    rose = sum(1 for q in quarters.values() if q and q[1] > q[0])
    return {
        "candidate": candidate,
        "overrides": cal.grpo_candidates[candidate],
        "first_last_quarter": quarters,
        "rose": rose,
        "passes": rose >= math.ceil(cal.rise_share * len(cal.seeds) - 1e-9),
    }


def render_calibration(result: dict[str, Any]) -> str:
    out = [
        "# Mini reproduction, protocol v2: calibration (validation split and training rewards only)",
        "",
        f"Calibration seeds {result['seeds']}.",
        "",
        "## SFT: 0 parse failures and Acc3 above the text-only ceiling on the validation split, every seed",
        "",
        "| candidate | overrides | ceiling | per seed: Acc3 (parse failures) | passed |",
        "|:---|:---|---:|:---|---:|",
    ]
    for v in result["sft"]:
        cells = ", ".join(
            f"s{s} {_pct(r['acc3'])} ({r['parse_failures']})" if r else f"s{s} not run (failed earlier)"
            for s, r in v["per_seed"].items()
        )
        out.append(
            f"| {v['candidate']} | `{' '.join(v['overrides']) or '(v1)'}` | {_pct(v['text_only_acc3'])} | "
            f"{cells} | {v['passed']}/{len(v['per_seed'])} |"
        )
    out += [
        "",
        f"Frozen: **{result['sft_chosen']}**.",
        "",
        "## Plain GRPO: sampled reward, last quarter of steps over the first",
        "",
        "| candidate | overrides | per seed: first → last quarter | rose | passes |",
        "|:---|:---|:---|---:|:---|",
    ]
    for v in result["grpo"]:
        cells = ", ".join(
            f"s{s} {q[0]:.2f} → {q[1]:.2f}" if q else f"s{s} –" for s, q in v["first_last_quarter"].items()
        )
        out.append(
            f"| {v['candidate']} | `{' '.join(v['overrides'])}` | {cells} | {v['rose']}/{len(v['first_last_quarter'])} "
            f"| {'yes' if v['passes'] else 'no'} |"
        )
    out += ["", f"Frozen: **{result['grpo_chosen']}**.", ""]
    return "\n".join(out)
