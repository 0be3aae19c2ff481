"""msa_rl.plan: the memory plan's byte counts against a real tiny step, its refusal and its command line."""

from __future__ import annotations

import json
from pathlib import Path

import grpo_helpers
import pytest
from grpo_helpers import recipe, scripted_generation
from msa_core import ConfigError
from msa_rl.cli import app
from msa_rl.grpo import build_trainer
from msa_rl.plan import GIB, Setup, check_fits, detect_stage, estimate, plan_recipe
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
grpo_clips = grpo_helpers.grpo_clips

ANSWER = "<polarity>positive</polarity><think>the voice is warm</think><score>0.5</score>"


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_plan_bytes_equal_the_tiny_models_tensors_after_one_step(
    method: str, tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """One real optimiser step of the tiny thinker (full, or LoRA through TRL's peft_config): the plan's frozen and
    trainable weights, AdamW states and reference model equal the bytes of the trainer's own tensors."""
    scripted_generation(monkeypatch, lambda trainer, ids: [ANSWER] * len(ids))
    r = recipe(tiny_model_dir, grpo_clips, tmp_path / method, max_steps=1, limit=2, finetuning_type=method)
    trainer = build_trainer(r)
    trainer.train()
    model = trainer.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    states = [
        t for s in trainer.optimizer.state.values() for k, t in s.items() if k in ("exp_avg", "exp_avg_sq")
    ]
    assert states, "the optimizer took no step"

    plan = estimate(Setup.of(r, "grpo"), gpus=1, gpu_mem_gib=1.0, device="cpu")
    assert plan.line("trainable weights") == _tensor_bytes(trainable)
    assert plan.line("gradients") == _tensor_bytes(trainable)
    # AdamW keeps two moments per parameter that had a gradient; the plan counts every trainable parameter. The
    # only difference is a parameter the forward never uses (the audio tower's bos/eos embedding).
    stateless = [
        n for n, p in model.named_parameters() if p.requires_grad and p not in trainer.optimizer.state
    ]
    unused = [p for n, p in model.named_parameters() if n in stateless]
    assert plan.line("optimizer states") == _tensor_bytes(states) + 2 * _tensor_bytes(unused)
    assert all(n.endswith("audio_bos_eos_token.weight") for n in stateless)
    if method == "lora":
        assert plan.line("frozen weights") == _tensor_bytes(frozen) > 0
        assert trainer.ref_model is None and plan.line("reference model") == 0  # adapters disabled, no copy
        assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
        assert not any(n.startswith(("visual", "audio_tower")) for n in plan_lora_names(r))
    else:
        assert not frozen and not any(x.name == "frozen weights" for x in plan.lines)
        assert plan.line("reference model") == _tensor_bytes(trainer.ref_model.parameters())


def plan_lora_names(r) -> list[str]:
    from msa_omni.shapes import meta_thinker, thinker_config_for
    from msa_rl.plan import lora_targets

    return lora_targets(meta_thinker(thinker_config_for(r.model)), Setup.of(r, "grpo"))


def test_seven_b_full_grpo_refused_on_one_gpu_with_the_fixes(grpo_clips: Path, tmp_path: Path) -> None:
    """The paper's GRPO recipe without ZeRO on one 80 GiB GPU does not fit; LoRA is named as the fix, and it fits."""
    r = recipe(
        Path("Qwen/Qwen2.5-Omni-7B"),
        grpo_clips,
        tmp_path,
        dtype="bfloat16",
        gradient_checkpointing=True,
        max_completion_length=512,
        per_device_train_batch_size=4,
    )
    lines: list[str] = []
    with pytest.raises(ConfigError) as err:
        check_fits(r, "grpo", echo=lines.append, gpus_and_mem=(1, 80.0))
    assert "--set finetuning_type=lora" in str(err.value) and "--force" in str(err.value)
    assert "does NOT fit in 80 GiB" in lines[0]
    # 7B weights + grads + AdamW + reference in bf16: 5 x 8.93e9 x 2 B (bench/gpu_smoke.md: about 83 GiB)
    plan = check_fits(r, "grpo", force=True, echo=lines.append, gpus_and_mem=(1, 80.0))
    static = sum(
        plan.line(k) for k in ("trainable weights", "gradients", "optimizer states", "reference model")
    )
    assert static == 5 * plan.params.total * 2 and 83 < static / GIB < 84
    lora = plan_recipe(r.model_copy(update={"finetuning_type": "lora"}), "grpo", gpus=1, gpu_mem_gib=80.0)
    assert lora.fits and lora.line("reference model") == 0


def test_check_fits_does_nothing_on_a_cpu(tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path) -> None:
    assert check_fits(recipe(tiny_model_dir, grpo_clips, tmp_path), "grpo") is None


def test_check_fits_does_not_block_a_model_it_cannot_plan(grpo_clips: Path, tmp_path: Path) -> None:
    """A Hub checkpoint without stored shapes: the plan says why it is skipped, and the run is not refused."""
    lines: list[str] = []
    r = recipe(Path("someone/omni-sft"), grpo_clips, tmp_path)
    assert check_fits(r, "grpo", echo=lines.append, gpus_and_mem=(1, 24.0)) is None
    assert (
        lines
        and lines[0].startswith("memory plan skipped:")
        and "--set model=Qwen/Qwen2.5-Omni-7B" in lines[0]
    )


def test_stage_detection_and_cli(tmp_path: Path) -> None:
    assert detect_stage(ROOT / "configs/sft/qwen2.5-omni-7b-sims-lora.yaml") == "sft"
    assert detect_stage(ROOT / "configs/grpo/qwen2.5-omni-7b-sims.yaml") == "grpo"
    runner = CliRunner()
    ok = runner.invoke(
        app, ["plan", str(ROOT / "configs/sft/qwen2.5-omni-7b-sims-lora.yaml"), "--gpu-mem", "80"]
    )
    assert ok.exit_code == 0, ok.output
    assert "fits in 80 GiB" in ok.output and "adapters" in ok.output
    over = runner.invoke(
        app, ["plan", str(ROOT / "configs/sft/qwen2.5-omni-7b-sims-lora.yaml"), "--gpu-mem", "8"]
    )
    assert over.exit_code == 1 and "does NOT fit in 8 GiB" in over.output and "to fit:" in over.output
    missing = runner.invoke(app, ["plan", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "not found" in missing.output
    not_yet = runner.invoke(
        app, ["plan", str(ROOT / "configs/grpo/qwen2.5-omni-7b-sims.yaml"), "--set", "deepspeed=null"]
    )
    assert not_yet.exit_code == 1 and "--set model=Qwen/Qwen2.5-Omni-7B" in not_yet.output


def test_grpo_cli_prints_the_plan_and_refuses_on_a_small_gpu(tmp_path: Path, monkeypatch) -> None:
    """`msa-rl grpo` on a (simulated) 24 GiB GPU: the plan is printed before anything loads, the refusal names the
    fixes; with --force the run goes on (here to the next check: the Hub model is not on this offline machine)."""
    import msa_rl.plan as plan_module

    monkeypatch.setattr(plan_module, "visible_gpus", lambda: (1, 24.0))
    args = [
        "grpo",
        "--config",
        str(ROOT / "configs/grpo/qwen2.5-omni-7b-sims.yaml"),
        "--set",
        "model=Qwen/Qwen2.5-Omni-7B",
        "--set",
        f"data={tmp_path / 'clips'}",
        "--set",
        "deepspeed=null",
        "--set",
        f"output_dir={tmp_path / 'out'}",
    ]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert "does NOT fit in 24 GiB" in refused.output and "to fit:" in refused.output
    assert "error: the estimate" in refused.output and "--force" in refused.output
    assert not (tmp_path / "out").exists()  # refused before anything was written
    forced = CliRunner().invoke(app, [*args, "--force"])
    assert forced.exit_code != 0 and "does NOT fit in 24 GiB" in forced.output
    assert "error: the estimate" not in forced.output and "Qwen/Qwen2.5-Omni-7B" in forced.output


def test_three_b_lora_fits_24_gib_and_zero3_splits_over_gpus(tmp_path: Path) -> None:
    from msa_rl.sft_recipe import load_sft_config

    three = load_sft_config(ROOT / "configs/sft/qwen2.5-omni-3b-sims-lora.yaml")
    plan = plan_recipe(three, "sft", gpus=1, gpu_mem_gib=24.0)
    assert plan.fits, plan.render()
    assert (
        json.loads((ROOT / "configs/deepspeed/zero3-offload.json").read_text())["zero_optimization"][
            "offload_optimizer"
        ]["device"]
        == "cpu"
    )


@pytest.mark.slow
def test_cpu_peak_rss_of_a_step_is_near_the_plans_cpu_analogue(grpo_clips: Path, tmp_path: Path) -> None:
    """A wider tiny thinker (hidden 1024: ~0.15 GB of float32 weights, so the planned parts, not the interpreter,
    make the step's memory), one GRPO step in a fresh process: peak RSS above the baseline (imports, clips) against
    the plan's CPU analogue (policy, gradients, AdamW, reference, activations, logits). Allocator caching, the
    checkpoint loading and Python objects make RSS a rough meter: within a factor of 1.5 either way (measured:
    1256 MiB against a plan of 1785 MiB, whose activations overestimate)."""
    import subprocess
    import sys

    from msa_rl.tiny import build_tiny_omni

    model = build_tiny_omni(tmp_path / "wide", seed=0, hidden=1024)
    out = tmp_path / "probe"
    out.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("rss_probe.py")),
            str(model),
            str(grpo_clips),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "rss.json").read_text())
    measured = r["peak"] - r["baseline"]
    print(f"peak RSS above baseline {measured / 2**20:.0f} MiB, plan {r['plan_total'] / 2**20:.0f} MiB", r)
    assert r["plan_lines"]["reference model"] > 0.1 * 2**30  # model states dominate
    assert 1 / 1.5 < measured / r["plan_total"] < 1.5
