"""`msa-thinker demo`: the whole MSA-Thinker pipeline on a CPU in a few minutes, with stand-ins for the big parts.

Synthetic SIMS-style clips stand in for CH-SIMS, a stand-in HTTP teacher for Qwen3-Omni-30B, and a tiny random
thinker of the student family (Qwen2.5-Omni by default, ``--student qwen3-omni``) for the real student; everything else is the real code path: cot-distill generate and export,
LLaMA-Factory SFT (in its own environment), Hint-GRPO and plain GRPO on TRL, msa-eval predict and report.

Each stage writes into its own folder under ``--out`` and, when it finishes, a marker ``.stages/<stage>.json``;
a rerun skips every stage with a marker. A failing stage names itself and its log (``logs/<stage>.log``). The
driver (msa_thinker.stage_driver) is shared with `msa-thinker mini-repro`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from msa_core import ConfigError, artifacts, read_jsonl
from msa_core.outdir import claim_output_dir, clear_own_folder
from msa_omni.families import DEFAULT_FAMILY, family_of_model, get_family

from msa_thinker.stage_driver import (
    STAGE_DIR,
    Stage,
    StageContext,
    offline_cpu_environment,
    run_stages,
)

# Where the repository's configs live (an editable install: this file is src/msa_thinker/demo.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_SETS = ("sims", "simsv2", "mosi", "mosei")


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: sized to finish in a few minutes on 2 CPU cores."""

    train_clips: int = 24
    """Synthetic CH-SIMS training clips (distilled, then SFT and GRPO data)."""
    test_clips: int = 12
    """Clips in each of the four test sets."""
    teacher_faults: str = "wrong_polarity=0.1,malformed=0.05,http429=0.03"
    """Noise of the stand-in teacher, so the filters and retries have work to do."""
    sft_overrides: tuple[str, ...] = ()
    """Extra ``--set`` overrides for `msa-rl sft` (on top of configs/demo/sft.yaml)."""
    grpo_overrides: tuple[str, ...] = ("max_steps=8",)
    """Extra ``--set`` overrides for both `msa-rl grpo` runs (on top of configs/demo/grpo.yaml): enough steps (one
    pass over its 16 clips) for a reward curve."""
    max_new_tokens: int = 112
    """Longest predicted answer (the stand-in teacher's answers are ~90 tokens of the tiny tokenizer)."""
    predict_batch_size: int = 16
    """Clips per generate call; batches mix the four small test sets."""
    bootstrap: int = 200
    """Bootstrap resamples in the report (few clips: a small number is plenty)."""
    student: str = DEFAULT_FAMILY.name
    """The student family (msa_omni.families) of the tiny thinker the pipeline trains (``demo --student``)."""
    threads: int = 1
    """CPU threads per torch process (OMP_NUM_THREADS, unless already set). The tiny model's ops are too small
    to gain from a second thread, and on a busy machine OpenMP threads spin-waiting for a descheduled partner
    slow every op down: measured 64 generated tokens in 0.3 s with 1 thread, 30 s with 2 (2 loaded cores)."""


@dataclass
class DemoPaths:
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

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def report(self) -> Path:
        return self.out / "report"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def marker(self, stage: str) -> Path:
        return self.out / STAGE_DIR / f"{stage}.json"


# The comparison rows of the report, in table order: the first is the baseline of the paired bootstrap tests.
RUNS = (
    ("msa-thinker", "hint-grpo", "SFT + Hint-GRPO (the method)"),
    ("grpo-no-hint", "grpo-no-hint", "SFT + plain GRPO (w/o Hint)"),
    ("sft-only", "sft", "SFT only (cold start)"),
)


# ----------------------------------------------------------------------------------------------------- helpers
def _config(name: str) -> Path:
    path = REPO_ROOT / "configs" / "demo" / name
    if not path.is_file():
        raise ConfigError(f"{path} not found: run the demo from a checkout of the msa-thinker repository")
    return path


def _cli(name: str) -> list[str]:
    """A package's console script from this environment (next to the interpreter), whatever is on PATH."""
    script = Path(sys.executable).parent / name
    found = str(script) if script.is_file() else shutil.which(name)
    if found is None:
        raise ConfigError(
            f"the `{name}` command is not installed in this environment (run `uv sync --locked`)"
        )
    return [found]


@contextlib.contextmanager
def standin_teacher(data: Path, dataset: str, faults: str, log: TextIO) -> Iterator[str]:
    """The stand-in teacher in its own process on a free loopback port; yields its base URL."""
    argv = [
        *_cli("cot-distill"),
        "stand-in-teacher",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data",
        str(data),
        "--dataset",
        dataset,
    ]
    if faults:
        argv += ["--faults", faults]
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO_ROOT)
    url: list[str] = []

    def read_announcement() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if "listening on" in line and not url:
                url.append(line.strip().rsplit(" ", 1)[-1])
                return

    reader = threading.Thread(target=read_announcement, daemon=True)
    reader.start()
    reader.join(60)
    try:
        if not url:
            raise RuntimeError("the stand-in teacher did not announce its address within 60 s")
        yield url[0]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------------------ stages
def stage_data(ctx: StageContext) -> str:
    from msa_core.synthetic import make_dataset

    size, p = ctx.size, ctx.paths
    # CH-SIMS-style: a training split to distil and train on, plus its own test split.
    n_sims = size.train_clips + size.test_clips
    make_dataset(p.test_set("sims"), "sims", n=n_sims, seed=0, splits=(size.train_clips, 0, size.test_clips))
    for seed, name in enumerate(TEST_SETS[1:], start=1):
        make_dataset(p.test_set(name), name, n=size.test_clips, seed=seed, splits=(0, 0, 1))
    return f"sims: {size.train_clips} train + {size.test_clips} test clips; simsv2, mosi, mosei: {size.test_clips} each"


def stage_distill(ctx: StageContext) -> str:
    from cot_distill.config import config_dir, load_config
    from cot_distill.generate import generate

    p = ctx.paths
    recipe = _config("distill.yaml")
    with standin_teacher(p.test_set("sims"), "sims", ctx.size.teacher_faults, ctx.log) as url:
        # Only the training split: the sims test clips are evaluated later and must stay unseen.
        cfg = load_config(
            recipe,
            overrides={
                "data": str(p.test_set("sims")),
                "dataset": "sims",
                "split": "train",
                "out": str(p.distill),
                "base_urls": [url],
                "progress": False,
            },
        )
        result = generate(cfg, config_dir=config_dir(recipe), show_progress=False)
    stats = result.stats
    ctx.log.write(json.dumps(stats, indent=1, default=str) + "\n")
    accepted = _count_lines(p.distill / artifacts.ACCEPTED)
    if accepted == 0:
        raise RuntimeError(f"the teacher's answers were all rejected (see {p.distill / artifacts.REJECTED})")
    return f"{accepted} accepted answers, {result.requests} requests to the stand-in teacher"


def stage_export(ctx: StageContext) -> str:
    from cot_distill.export import export

    result = export(ctx.paths.distill, ctx.paths.export, formats=("llamafactory",))
    return f"LLaMA-Factory dataset: {sum(result.records.values())} records, {result.clips} clips"


def stage_tiny(ctx: StageContext) -> str:
    from msa_rl.tiny import build_tiny_omni

    family = get_family(ctx.size.student)
    build_tiny_omni(ctx.paths.models / "tiny", seed=0, family=family)
    return f"{family.tiny.about} + processor"


def stage_sft(ctx: StageContext) -> str:
    from msa_rl.sft import load_sft_config, prepare, run

    p = ctx.paths
    out = p.models / "sft"
    overrides = [
        f"model={p.models / 'tiny'}",
        f"data={p.export}",
        f"output_dir={out}",
        *ctx.size.sft_overrides,
    ]
    if ctx.size.student != DEFAULT_FAMILY.name:  # configs/demo/sft.yaml names the default's template
        overrides.append("template=")  # empty: the model family's own
    # LLaMA-Factory runs in its own environment (.venvs/sft, created on first use); its output goes to the log.
    result = run(prepare(load_sft_config(_config("sft.yaml"), overrides)), echo=ctx.log.write)
    losses = f", loss {result.losses[0]:.2f} → {result.losses[-1]:.2f}" if result.losses else ""
    return f"checkpoint models/sft{losses}"


def _grpo(ctx: StageContext, name: str, strategy: str) -> str:
    from msa_rl.grpo import run_grpo
    from msa_rl.grpo_config import load_grpo_recipe

    p = ctx.paths
    out = p.models / name
    overrides = [
        f"model={p.models / 'sft'}",
        f"data={p.export}",
        "dataset=sims",
        f"output_dir={out}",
        f"hard_group_strategy={strategy}",
        *ctx.size.grpo_overrides,
    ]
    run_grpo(load_grpo_recipe(_config("grpo.yaml"), overrides))
    return f"checkpoint models/{name}{_last_reward(out)}"


def _last_reward(out: Path) -> str:
    metrics = out / artifacts.GRPO_METRICS
    if not metrics.is_file():
        return ""
    rows = list(read_jsonl(metrics))
    # The policy's own reward, before hints (Fig. 3's curve): the post-hint total contains the true polarity.
    key = "reward/total_sampled"
    rewards = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return (
        f", sampled reward {rewards[0]:.2f} → {rewards[-1]:.2f} over {len(rewards)} steps" if rewards else ""
    )


def stage_grpo_hint(ctx: StageContext) -> str:
    return _grpo(ctx, "hint-grpo", "hint")


def stage_grpo_plain(ctx: StageContext) -> str:
    return _grpo(ctx, "grpo-no-hint", "none")


def stage_predict(ctx: StageContext) -> str:
    from msa_eval.predict import predict

    p, size = ctx.paths, ctx.size
    pairs = [(p.test_set(name), name) for name in TEST_SETS]
    done = failures = 0
    for run, model, _ in RUNS:
        summaries = predict(
            p.models / model,
            pairs,
            p.runs / run,
            batch_size=size.predict_batch_size,
            max_new_tokens=size.max_new_tokens,
        )
        for s in summaries:
            ctx.log.write(f"{run}/{s.dataset}: {s.generated} predicted, {s.skipped} already done\n")
            done += s.total
            failures += s.parse_failures
    return f"{done} predictions ({len(RUNS)} models × {len(TEST_SETS)} test sets)"


def stage_report(ctx: StageContext) -> str:
    from msa_eval.report import write_report

    p = ctx.paths
    result = write_report(
        [p.runs / run for run, _, _ in RUNS], p.report, train_domain="sims", n_boot=ctx.size.bootstrap
    )
    for w in result.warnings:
        ctx.log.write(f"warning: {w}\n")
    return f"report/{artifacts.REPORT_MARKDOWN}, report/plots/"


def stage_plot(ctx: StageContext) -> str:
    p = ctx.paths
    out = p.report / "training"
    from msa_rl.plot import plot_runs

    paths = plot_runs(
        [p.models / "hint-grpo", p.models / "grpo-no-hint"],
        out,
        labels=["w/ Hint (Hint-GRPO)", "w/o Hint (plain GRPO)"],
    )
    return f"{len(paths)} reward plot(s) in report/training/"


def stages(paths: DemoPaths) -> list[Stage]:
    m = paths.models
    return [
        Stage("data", "synthetic clips (CH-SIMS-style train + 4 test sets)", [paths.data], stage_data),
        Stage(
            "distill",
            "stand-in teacher + cot-distill generate",
            [paths.distill],
            stage_distill,
            resumable=True,
        ),
        Stage("export", "cot-distill export (LLaMA-Factory)", [paths.export], stage_export),
        Stage("tiny-model", "tiny Omni thinker of the student family", [m / "tiny"], stage_tiny),
        Stage("sft", "cold-start SFT (LLaMA-Factory)", [m / "sft"], stage_sft),
        Stage(
            "hint-grpo", "Hint-GRPO from the SFT model", [m / "hint-grpo"], stage_grpo_hint, resumable=True
        ),
        Stage(
            "grpo-no-hint",
            "plain GRPO (w/o Hint) from the SFT model",
            [m / "grpo-no-hint"],
            stage_grpo_plain,
            resumable=True,
        ),
        Stage(
            "predict", "msa-eval predict: 3 models × 4 test sets", [paths.runs], stage_predict, resumable=True
        ),
        Stage("report", "msa-eval report (train domain: sims)", [paths.report], stage_report),
        Stage("reward-plot", "msa-rl plot: reward curves", [paths.report / "training"], stage_plot),
    ]


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.open() if line.strip()) if path.is_file() else 0


@dataclass
class DemoResult:
    out: Path
    report: Path
    timings: dict[str, float]
    skipped: list[str]
    wall_s: float


def run_demo(
    out: str | Path = "runs/demo",
    *,
    fresh: bool = False,
    size: DemoSize | None = None,
    console: Any = None,
    until: str | None = None,
) -> DemoResult:
    """Run every stage not yet finished; raise StageFailed naming the stage and its log on a failure.

    ``until`` stops after the named stage (for debugging a stage without running the rest).
    """
    from rich.console import Console

    console = console or Console(file=sys.stdout)
    size = size or DemoSize()
    paths = DemoPaths(Path(out).resolve())
    student = get_family(size.student)
    with claim_output_dir(paths.out, "--out"):  # checked before any work; one demo per folder
        if fresh:
            clear_own_folder(paths.out, "the demo", STAGE_DIR)
        tiny = paths.models / "tiny"
        if (tiny / "config.json").is_file() and family_of_model(tiny) is not student:
            raise ConfigError(
                f"--out {paths.out} holds a demo of the {family_of_model(tiny).name} student, not {student.name}: "
                "use --fresh or another --out"
            )
        offline_cpu_environment(size.threads)
        run = run_stages(
            stages(paths),
            paths.out,
            lambda log, log_path: StageContext(paths, size, log, log_path),
            console=console,
            until=until,
        )
        (paths.out / "demo.json").write_text(
            json.dumps(
                {
                    "wall_s": round(run.wall_s, 2),
                    "timings_s": run.timings,
                    "cpu_s": run.cpu,
                    "skipped": run.skipped,
                    "size": asdict(size),
                },
                indent=1,
            )
            + "\n"
        )
    return DemoResult(
        paths.out, paths.report / artifacts.REPORT_MARKDOWN, run.timings, run.skipped, run.wall_s
    )
