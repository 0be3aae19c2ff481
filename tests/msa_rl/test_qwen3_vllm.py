"""The tiny Qwen3-Omni MoE thinker on vLLM's CPU build: Hint-GRPO with use_vllm and `msa-eval predict` agreeing
with the HF backend. One subprocess in .venvs/vllm-cpu (tests/msa_rl/vllm_qwen3_probe.py records, these judge)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpo_helpers
import pytest
from vllm_helpers import vllm_cpu_python

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("vllm_qwen3_probe.py")
# The random tiny model's own samples, engine vs trainer log-probs (float32 both): the same bound as the Qwen2.5-Omni
# test's (test_grpo_vllm.ROLLOUT_TOL); a misaligned or unpushed log-prob is off by whole nats.
ROLLOUT_TOL = 2.0

grpo_clips = grpo_helpers.grpo_clips


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3_model_dir: Path, grpo_clips: Path) -> dict:
    out = tmp_path_factory.mktemp("vllm-qwen3")
    python, env = vllm_cpu_python()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(PROBE), str(tiny_qwen3_model_dir), str(grpo_clips), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "probe.json").read_text())
    result["out"] = str(out)
    print("vLLM Qwen3-Omni probe seconds:", result["seconds"], "wall:", round(time.perf_counter() - t0, 1))
    return result


@pytest.mark.slow
def test_qwen3_grpo_rollouts_on_vllm_with_the_mismatch_check(probe: dict) -> None:
    from msa_rl.grpo_trainer import read_metrics

    assert probe["rollouts"]
    for r in probe["rollouts"]:
        assert r["vllm_prompt_ids"] == r["trainer_prompt_ids"]  # the clip expanded alike (video + audio)
        assert all(n > 40 for n in r["row_prompt_lens"])
    [row] = read_metrics(Path(probe["out"]) / "grpo")
    mean, worst = row["mismatch/logp_abs_mean"], row["mismatch/logp_abs_max"]
    assert 0 < mean <= worst < ROLLOUT_TOL, row


@pytest.mark.slow
def test_qwen3_predict_backends_agree(probe: dict) -> None:
    for backend, run in probe["cli"].items():
        assert run["exit_code"] == 0, f"msa-eval predict --backend {backend}:\n{run['output']}"
    hf, vllm = probe["prompt_ids"]["hf"], probe["prompt_ids"]["vllm"]
    audio, video = probe["media_token_ids"]["audio"], probe["media_token_ids"]["video"]
    assert len(hf) == 3 and vllm == hf and all(ids.count(audio) > 0 and ids.count(video) > 0 for ids in hf)
    stops = {probe["eos_id"], probe["pad_id"]}

    def until_eos(ids: list[int]) -> list[int]:
        return ids[: next((i for i, t in enumerate(ids) if t in stops), len(ids))]

    assert [until_eos(x) for x in probe["completion_ids"]["vllm"]] == [
        until_eos(x) for x in probe["completion_ids"]["hf"]
    ]
    # The same tokens decode alike, except that byte tokens left incomplete at the END of a random model's answer
    # (a cut UTF-8 sequence) become U+FFFD in transformers' decode and are held back by vLLM's incremental
    # detokenizer; inside the text both write U+FFFD.
    assert probe["answers"]["vllm"] == [a.rstrip("\ufffd") for a in probe["answers"]["hf"]]
