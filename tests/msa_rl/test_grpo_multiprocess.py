"""Hint-GRPO across two processes on CPU: `accelerate launch --multi_gpu --num_processes 2` of the real `msa-rl grpo`
command (torchrun workers, gloo backend; `--cpu` would start one process only, accelerate's multi-CPU path needs MPI).

The format-SFT'd tiny model always answers "positive" (grpo_helpers), so a negative clip's group is always hard and a
positive clip's group is easy. Clips in file order (``shuffle_dataset: false``), G = 4, 6 rows per process: each step
takes 3 clips = 12 rows, rows 0-5 on rank 0 and 6-11 on rank 1, so the second group straddles the ranks.
Order [neg, pos, pos, pos, neg, pos]: step 1 (and 3) has its one hard group on rank 0 only (rank 1 has no hard rows
and must still join the hint generation), step 2 has the straddling group hard (hinted rows on both ranks).
``rollout_log`` writes each process's rows per step; the test recomputes rewards from those completions.
The same construction runs ``hard_group_strategy: dynamic_sampling`` with the format weight at 0 (the format model's
answers are sometimes malformed, which would give a group spread): a negative clip's group then earns nothing in every
row (wrong polarity, and no score without it), so it is sampled again on rank 0 only in step 1 (rank 1 joins each
round's generation and reward gather) and on both ranks in step 2, and dropped after K rounds.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpo_helpers
import pytest
import torch
from msa_core import get_spec
from msa_rl.grpo_trainer import METRICS_FILE, ROLLOUTS_DIR, read_metrics, zero_std_groups
from msa_rl.rewards import reward_components, weighted_totals

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo" / "grpo.yaml"
ACCELERATE = Path(sys.executable).with_name("accelerate")
G, PER_DEVICE, PROCS = 4, 6, 2
TIMEOUT_S = 600  # a rank waiting on a collective that the other never joins would hang: fail instead

grpo_clips = grpo_helpers.grpo_clips
format_model = grpo_helpers.format_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ordered_clips(clips: Path, dest: Path, pattern: str = "npppnp") -> Path:
    """An MMSA directory holding the clips in the order of ``pattern`` (n: negative, p: positive), Raw/ linked."""
    spec = get_spec("sims")
    with (clips / "label.csv").open() as src:
        rows = list(csv.DictReader(src))
    pools = {
        "n": [r for r in rows if spec.polarity_of(float(r["label"])) == "negative"],
        "p": [r for r in rows if spec.polarity_of(float(r["label"])) == "positive"],
    }
    dest.mkdir(parents=True)
    (dest / "Raw").symlink_to(clips / "Raw")
    with (dest / "label.csv").open("w", newline="") as dst:
        writer = csv.DictWriter(dst, fieldnames=list(rows[0]))
        writer.writeheader()
        for kind in pattern:
            writer.writerow(pools[kind].pop(0))
    return dest


@pytest.fixture(scope="session")
def deepspeed_accelerate() -> Path:
    """`accelerate` of the DeepSpeed environment (``.venvs/deepspeed``: the default env + the deepspeed extra),
    synced from the lock on first use. A separate env because ``uv sync`` of the default env removes extras."""
    env_path = ROOT / ".venvs" / "deepspeed"
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["UV_PROJECT_ENVIRONMENT"] = str(env_path)  # never the default .venv
    proc = subprocess.run(
        ["uv", "sync", "--locked", "--extra", "deepspeed"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env_path / "bin" / "accelerate"


def grpo_command(model: Path, data: Path, out: Path, *sets: str, accelerate: Path = ACCELERATE) -> list[str]:
    overrides = [
        f"model={model}",
        f"data={data}",
        f"output_dir={out}",
        "limit=null",
        f"num_generations={G}",
        f"per_device_train_batch_size={PER_DEVICE}",
        "shuffle_dataset=false",
        "learning_rate=1e-5",  # the paper's rate: the format model stays format-true over the few steps
        "max_completion_length=40",
        "max_steps=3",
        "save_steps=1000",
        "rollout_log=true",
        *sets,
    ]
    launch = [str(accelerate), "launch", "--multi_gpu", "--num_processes", str(PROCS), "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    cmd = [*launch, "-m", "msa_rl.cli", "grpo", "--config", str(DEMO)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def run_launch(cmd: list[str], log: Path) -> tuple[int, float]:
    """Run to the end within TIMEOUT_S (the whole process group is killed on timeout); (exit code, seconds)."""
    start = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"2-process GRPO hung (> {TIMEOUT_S} s); log tail:\n{log.read_text()[-3000:]}")
    return code, time.monotonic() - start


def read_rollouts(out: Path) -> dict[int, list[dict]]:
    """step -> the gathered batch (both ranks' rows, by global index); a redone step keeps its last record."""
    by_step: dict[int, dict[int, dict]] = {}
    for rank in range(PROCS):
        for line in (out / ROLLOUTS_DIR / f"rank{rank}.jsonl").read_text().splitlines():
            row = json.loads(line)
            by_step.setdefault(row["step"], {})[row["index"]] = row
    return {step: [rows[i] for i in sorted(rows)] for step, rows in sorted(by_step.items())}


def check_step(rows: list[dict], metrics: dict, spec) -> list[bool]:
    """Hints exactly on the hard groups, and the logged reward means equal those of the gathered completions.
    Returns the per-group hard flags."""
    n = PROCS * PER_DEVICE
    assert [r["index"] for r in rows] == list(range(n))
    assert [r["rank"] for r in rows] == [i // PER_DEVICE for i in range(n)]
    labels, datasets = [r["label"] for r in rows], [r["dataset"] for r in rows]
    first = reward_components([r["first_completion"] for r in rows], labels, datasets)
    groups = [first[g * G : (g + 1) * G] for g in range(n // G)]
    hard = [not any(row[1] == 1.0 for row in group) for group in groups]
    for i, r in enumerate(rows):
        assert r["id"] == rows[i // G * G]["id"], "a group is G consecutive rows of one clip"
        assert r["hard"] == hard[i // G] and r["hinted"] == hard[i // G], (i, r)
        truth = spec.polarity_of(r["label"])
        if r["hinted"]:
            assert r["completion"].startswith(f"<polarity>{truth}"), r["completion"]
        else:
            assert r["completion"] == r["first_completion"]
    final = reward_components([r["completion"] for r in rows], labels, datasets)
    for col, name in enumerate(("format", "polarity", "score")):
        assert metrics[f"reward/{name}"] == pytest.approx(sum(c[col] for c in final) / n, abs=1e-6), name
    weights = torch.ones(3)
    assert metrics["reward/total"] == pytest.approx(
        weighted_totals(torch.tensor(final), weights).mean().item(), abs=1e-5
    )
    assert metrics["reward/total_sampled"] == pytest.approx(
        weighted_totals(torch.tensor(first), weights).mean().item(), abs=1e-5
    )
    assert metrics["hard_fraction"] == pytest.approx(sum(hard) / len(hard))
    return hard


def check_dynamic_step(
    rows: list[dict], metrics: dict, max_resamples: int, weights: torch.Tensor
) -> list[bool]:
    """Dynamic sampling: exactly the groups without spread in the first pass were sampled again (no hint), each
    until it had spread or K rounds were done, and dropped only then; the logged counts and reward means agree
    with the gathered completions. Returns the per-group resampled flags."""
    n = PROCS * PER_DEVICE
    assert [r["index"] for r in rows] == list(range(n))
    labels, datasets = [r["label"] for r in rows], [r["dataset"] for r in rows]
    first = torch.tensor(reward_components([r["first_completion"] for r in rows], labels, datasets))
    final = torch.tensor(reward_components([r["completion"] for r in rows], labels, datasets))
    flat_first = zero_std_groups(weighted_totals(first, weights), G).tolist()
    flat_final = zero_std_groups(weighted_totals(final, weights), G).tolist()
    times = [rows[g * G]["resampled"] for g in range(n // G)]
    dropped = []
    for i, r in enumerate(rows):
        g = i // G
        assert not r["hinted"] and r["resampled"] == times[g], (i, r)
        if not times[g]:
            assert r["completion"] == r["first_completion"]
    for g, t in enumerate(times):
        assert (t > 0) == flat_first[g], g
        assert t <= max_resamples
        if 0 < t < max_resamples:
            assert not flat_final[g], g  # it stopped because it had spread
        dropped.append(t == max_resamples and flat_final[g])
    assert metrics["groups/resampled"] == sum(t > 0 for t in times)
    assert metrics["groups/dropped"] == sum(dropped)
    assert metrics["resample_rounds"] == max(times)
    assert metrics["hard_group_strategy"] == "dynamic_sampling"
    kept = torch.tensor([not d for d in dropped]).repeat_interleave(G)
    assert metrics["reward/total"] == pytest.approx(
        weighted_totals(final, weights)[kept].mean().item(), abs=1e-5
    )
    assert metrics["reward/total_sampled"] == pytest.approx(
        weighted_totals(first, weights).mean().item(), abs=1e-5
    )
    return [t > 0 for t in times]


def test_batch_check_counts_every_process(monkeypatch) -> None:
    """G completions of a prompt may straddle processes: the recipe checks the global batch, not one device's."""
    from msa_core import ConfigError
    from msa_rl.grpo_config import load_grpo_recipe

    monkeypatch.setenv("WORLD_SIZE", str(PROCS))
    recipe = load_grpo_recipe(DEMO, [f"per_device_train_batch_size={PER_DEVICE}"])
    assert recipe.per_device_train_batch_size * PROCS % recipe.num_generations == 0
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ConfigError, match=r"processes \(1\) = 6 must be a multiple of num_generations \(4\)"):
        load_grpo_recipe(DEMO, [f"per_device_train_batch_size={PER_DEVICE}"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("zero", "strategy"),
    [(None, "hint"), ("zero2", "hint"), ("zero3", "hint"), (None, "dynamic_sampling"), ("lora", "hint")],
    ids=["ddp", "deepspeed-zero2", "deepspeed-zero3", "ddp-dynamic-sampling", "ddp-lora"],
)
def test_two_process_hint_grpo(
    zero: str | None, strategy: str, format_model: Path, grpo_clips: Path, tmp_path: Path, request
) -> None:
    """Plain DDP, DeepSpeed ZeRO-2 and ZeRO-3 (configs/deepspeed/, DeepSpeed's CPU accelerator over gloo); under
    ZeRO-3 generation gathers the sharded parameters collectively: the rank without hard rows must join the hint pass.
    Every process ends cleanly (exit 0: no SIGABRT at interpreter exit, see msa_rl.grpo.end_processes).
    Dynamic sampling under DDP, two steps (the rank-0-only and the straddling group), K = 2."""
    data = ordered_clips(grpo_clips, tmp_path / "clips")
    out = tmp_path / "run"
    sets, accelerate = (f"hard_group_strategy={strategy}",), ACCELERATE
    steps = [1, 2, 3]
    if strategy == "dynamic_sampling":
        steps = [1, 2]
        sets += ("max_resamples=2", "max_steps=2", "rewards.format=0.0")
    if zero == "lora":  # LoRA adapters through TRL's peft_config, DDP over the adapters; steps 1-2 suffice
        sets += ("finetuning_type=lora", "lora_dropout=0", "max_steps=2")
        steps = [1, 2]
    elif zero is not None:
        sets += (f"deepspeed=configs/deepspeed/{zero}.json",)
        accelerate = request.getfixturevalue("deepspeed_accelerate")
    cmd = grpo_command(format_model, data, out, *sets, accelerate=accelerate)
    code, seconds = run_launch(cmd, tmp_path / "launch.log")
    log = (tmp_path / "launch.log").read_text()
    assert code == 0 and "terminate called" not in log, log[-5000:]
    print(f"2-process GRPO ({zero or 'ddp'}, {strategy}), {len(steps)} steps: {seconds:.0f} s")

    lines = read_metrics(out / METRICS_FILE)
    assert [line["step"] for line in lines] == steps  # one line per step: one writer
    assert log.count("GRPO done") == PROCS  # both ranks ran to the end
    rollouts = read_rollouts(out)
    assert sorted(rollouts) == steps
    if strategy == "dynamic_sampling":
        weights = torch.tensor([0.0, 1.0, 1.0])
        resampled = {
            step: check_dynamic_step(rows, lines[step - 1], 2, weights) for step, rows in rollouts.items()
        }
        # the construction: step 1 resampled only on rank 0, step 2 the group that straddles the ranks
        assert resampled[1] == [True, False, False] and resampled[2] == [False, True, False]
        ranks = {step: {r["rank"] for r in rows if r["resampled"]} for step, rows in rollouts.items()}
        assert ranks[1] == {0} and ranks[2] == {0, 1}
        # the model always answers 'positive': a negative clip's group never gets spread and leaves the batch
        assert [line["groups/dropped"] for line in lines] == [1, 1]
        assert [line["resample_rounds"] for line in lines] == [2, 2]
        return
    spec = get_spec("sims")
    hard = {step: check_step(rows, lines[step - 1], spec) for step, rows in rollouts.items()}
    # the construction: step 1 hard only on rank 0 (rank 1 had no hard row and still joined the hint pass),
    # step 2 hard on the group that straddles the ranks
    assert hard[1] == [True, False, False] and hard[2] == [False, True, False]
    hinted_ranks = {step: {r["rank"] for r in rows if r["hinted"]} for step, rows in rollouts.items()}
    assert hinted_ranks[1] == {0} and hinted_ranks[2] == {0, 1}
    assert all(math.isfinite(line["kl"]) and math.isfinite(line["loss"]) for line in lines)
    assert (out / "config.json").is_file()
    if zero == "lora":  # the adapter and the merged model, written once: a plain thinker checkpoint
        from msa_omni import load_thinker

        assert json.loads((out / "lora-adapter" / "adapter_config.json").read_text())["r"] == 16
        model, _ = load_thinker(out)
        assert set(final_weights(out)) == {n for n, _ in model.named_parameters()}
    elif (
        zero is not None
    ):  # ZeRO-3: stage3_gather_16bit_weights_on_model_save; a whole, loadable model, not shards
        from msa_omni import load_thinker

        model, _ = load_thinker(out)
        assert sum(p.numel() for p in model.parameters()) == sum(
            t.numel() for t in final_weights(out).values()
        )


def launch_and_kill_after(cmd: list[str], log: Path, checkpoint: Path) -> None:
    """Start the run and SIGKILL its whole process group (launcher and workers, as a lost node) as soon as
    ``checkpoint`` is complete: trainer state from rank 0 and RNG state from every rank. Training is then in the
    step after it."""
    needed = [checkpoint / "trainer_state.json"] + [checkpoint / f"rng_state_{r}.pth" for r in range(PROCS)]
    deadline = time.monotonic() + TIMEOUT_S
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            while not all(p.is_file() for p in needed):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"run ended or hung before {checkpoint.name}:\n{log.read_text()[-3000:]}")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def final_weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")


@pytest.mark.slow
def test_two_process_drop_resumes_after_kill(format_model: Path, grpo_clips: Path, tmp_path: Path) -> None:
    """The w/o-Hard ablation across processes (rank 0 drops its rows while rank 1 keeps all of its), killed with
    SIGKILL in step 3 after checkpoint-2, relaunched with `resume: auto`: metrics.jsonl ends with one line per step
    and the final weights equal those of an uninterrupted run with the same seed."""
    data = ordered_clips(grpo_clips, tmp_path / "clips")
    sets = ("hard_group_strategy=drop", "max_steps=4", "save_steps=2", "resume=auto")
    ref, out = tmp_path / "ref", tmp_path / "run"
    code, seconds = run_launch(grpo_command(format_model, data, ref, *sets), tmp_path / "ref.log")
    assert code == 0, (tmp_path / "ref.log").read_text()[-5000:]
    print(f"2-process drop GRPO, 4 steps: {seconds:.0f} s")
    ref_lines = read_metrics(ref)
    assert [line["step"] for line in ref_lines] == [1, 2, 3, 4]
    rollouts = read_rollouts(ref)
    for step, rows in rollouts.items():
        dropped = {r["rank"] for r in rows if r["hard"]}
        assert not any(r["hinted"] for r in rows)
        groups = len(rows) // G
        hard_groups = sum(r["hard"] for r in rows) // G
        line = ref_lines[step - 1]
        assert line["hard_fraction"] == pytest.approx(hard_groups / groups)
        assert line["zero_std_fraction_after"] >= hard_groups / groups  # a dropped group gives no signal
        if step in (1, 3):
            assert dropped == {0}  # only rank 0 drops rows: the num_items gather must not depend on it

    start = time.monotonic()
    launch_and_kill_after(
        grpo_command(format_model, data, out, *sets), tmp_path / "killed.log", out / "checkpoint-2"
    )
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint-4").exists()
    code, _ = run_launch(grpo_command(format_model, data, out, *sets), tmp_path / "resumed.log")
    assert code == 0, (tmp_path / "resumed.log").read_text()[-5000:]
    print(f"killed + resumed: {time.monotonic() - start:.0f} s")
    steps_generated = [
        json.loads(x)["step"] for x in (out / ROLLOUTS_DIR / "rank0.jsonl").read_text().splitlines()
    ]
    assert steps_generated.count(1) == steps_generated.count(2) == PER_DEVICE  # 1 and 2 not redone
    assert steps_generated.count(4) == PER_DEVICE

    lines = read_metrics(out)
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    for got, want in zip(lines, ref_lines, strict=True):
        for key in ("reward/total", "hard_fraction", "loss", "kl"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), (got["step"], key)
    a, b = final_weights(out), final_weights(ref)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), name
