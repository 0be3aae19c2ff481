"""bench/gpu_smoke.py on CPU: --dry-run shows the real 7B shapes and imports every code path; --tiny runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_smoke.py"


def run_script(*args: str) -> tuple[int, dict[str, str], str]:
    """(exit status, {figure name: rest of its line}, stderr) of one run of the script."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900, cwd=ROOT, env=env
    )
    figures = {}
    for line in proc.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            figures[name] = rest
    return proc.returncode, figures, proc.stderr[-4000:]


def count(figures: dict[str, str], name: str) -> int:
    return int(figures[name].split()[0])


@pytest.mark.slow
def test_dry_run_has_the_7b_shapes_and_every_code_path_imports():
    rc, fig, err = run_script("--dry-run")
    assert rc == 0, err
    assert fig["media_token_ids_match_tokenizer"] == "yes"
    assert (fig["text.hidden_size"], fig["text.num_hidden_layers"], fig["text.vocab_size"]) == (
        "3584",
        "28",
        "152064",
    )
    assert (fig["vision.depth"], fig["vision.hidden_size"]) == ("32", "1280")
    assert (fig["audio.encoder_layers"], fig["audio.d_model"]) == ("32", "1280")
    # The text model from its widths: 28 x (q, k, v with biases, o, gated MLP, 2 norms) + embeddings + head + norm.
    h, kv, inter, vocab = 3584, 4 * 128, 18944, 152064
    layer = 2 * h * h + 2 * h * kv + h + 2 * kv + 3 * h * inter + 2 * h
    assert count(fig, "params_text") == 28 * layer + 2 * vocab * h + h
    # Vision (32 ViT blocks of 1280 + merger) and audio (32 Whisper-large layers) towers: ~0.6-0.7e9 each.
    assert 0.6e9 < count(fig, "params_vision") < 0.7e9
    assert 0.6e9 < count(fig, "params_audio") < 0.7e9
    assert count(fig, "params_total") == sum(count(fig, f"params_{p}") for p in ("text", "vision", "audio"))
    # 6 s at 2 fps = 12 frames of 256 px: 6 temporal patches x 9 x 9 merged tokens; 25 audio tokens per second.
    assert (count(fig, "clip_video_tokens"), count(fig, "clip_audio_tokens")) == (6 * 9 * 9, 6 * 25)
    # The planner beside it: full GRPO's static part is the 5 bf16 copies above; LoRA needs no reference copy.
    assert float(fig["grpo_hf_plan_static_gib"].split()[0]) == pytest.approx(
        5 * count(fig, "params_total") * 2 / 2**30, abs=0.01
    )
    assert float(fig["grpo_hf_lora_plan_gib"].split()[0]) < float(fig["grpo_hf_plan_gib"].split()[0]) / 2
    imports = {k: v for k, v in fig.items() if k.startswith("import:")}
    assert len(imports) >= 8 and set(imports.values()) == {"ok"}, imports
    assert fig["stand_in_targets"].startswith("ok")


@pytest.mark.slow
def test_dry_run_3b_counts_equal_the_3b_config():
    """--model 3b: parameters counted on the meta device equal the counts the stored Qwen2.5-Omni-3B config
    (msa_omni/public_configs/qwen2.5-omni-3b.json) gives by the layer formulas."""
    from msa_omni.shapes import expected_param_counts, public_shapes

    rc, fig, err = run_script("--dry-run", "--model", "3b")
    assert rc == 0, err
    shapes = public_shapes("Qwen/Qwen2.5-Omni-3B")
    assert fig["model"] == "qwen2.5-omni-3b"
    assert (fig["text.hidden_size"], fig["text.num_hidden_layers"]) == ("2048", "36")
    expected = expected_param_counts(shapes)
    for part in ("text", "vision", "audio", "total"):
        assert count(fig, f"params_{part}") == expected[part], part
    assert 4.6e9 < expected["total"] < 4.8e9


@pytest.mark.slow
def test_tiny_runs_predict_and_grpo_through_the_project_code():
    args = ["--tiny", "--no-vllm", "--clips", "2", "--prompts", "1", "--steps", "1"]
    rc, fig, err = run_script(*args, "--completion-tokens", "8", "--predict-tokens", "8")
    assert rc == 0, err
    assert float(fig["predict_hf_clips_per_s"].split()[0]) > 0
    assert float(fig["grpo_hf_step_s"].split()[0]) > 0
    assert float(fig["grpo_hf_lora_step_s"].split()[0]) > 0  # LoRA adapters through TRL's peft_config
    for name in ("grpo_hf", "grpo_hf_lora"):  # the planner's CPU analogue beside the (n/a on CPU) peak
        assert fig[f"{name}_plan_gib"].endswith("(planner, cpu; measured peak above)")
    assert float(fig["grpo_hf_lora_plan_static_gib"].split()[0]) < float(
        fig["grpo_hf_plan_static_gib"].split()[0]
    )
    assert 0 < float(fig["grpo_hf_completion_length"].split()[0]) <= 8
    assert fig["grpo_vllm_step_s"] == fig["predict_vllm_clips_per_s"] == "unavailable (--no-vllm)"
    assert "failed_sections" not in fig


@pytest.mark.slow
def test_dry_run_counts_the_qwen3_omni_30b_a3b_thinker():
    rc, fig, err = run_script("--model", "qwen3-omni", "--dry-run")
    assert rc == 0, err
    assert (
        fig["model"] == fig["model_family"] == "qwen3-omni"
        and fig["media_token_ids_match_tokenizer"] == "yes"
    )
    assert (fig["text.num_experts"], fig["text.num_experts_per_tok"], fig["text.num_hidden_layers"]) == (
        "128",
        "8",
        "48",
    )
    # 48 layers x 128 experts x 3 x 2048 x 768 = 29.0e9 expert weights; ~3e9 active per token
    assert 29e9 < count(fig, "params_text") < 31e9 and 2.5e9 < count(fig, "params_text_active") < 3.5e9
    assert count(fig, "params_total") == sum(count(fig, f"params_{p}") for p in ("text", "vision", "audio"))
    bad = run_script("--model", "llama", "--dry-run")
    assert bad[0] == 2 and "invalid choice: 'llama'" in bad[2]
