"""LoRA Hint-GRPO with HF generate, in one process: the policy is the LoRA SFT run's merged model (lora_helpers),
adapters from TRL's peft_config, the reference is the policy with its adapters disabled; a run stopped after
checkpoint-1 resumes (`resume: auto`) from the adapter it saved; the output is the adapter plus a merged thinker that
`msa-eval predict` loads as it is. (The byte counts of one LoRA step are in test_plan.py, 2 processes in
test_grpo_multiprocess.py, vLLM rollouts in test_grpo_vllm.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import grpo_helpers
import lora_helpers
import pytest
import torch
from grpo_helpers import recipe, scripted_generation
from msa_rl.grpo import run_grpo
from msa_rl.grpo_trainer import read_metrics
from transformers import TrainerCallback

grpo_clips = grpo_helpers.grpo_clips
lora_sft_run = lora_helpers.lora_sft_run
# Varied answers (right and wrong polarity, several scores): groups with reward spread, so adapters get gradients.
ANSWERS = [
    "<polarity>positive</polarity><think>the voice is warm and the face smiles</think><score>0.6</score>",
    "<polarity>negative</polarity><think>the words are cold</think><score>-0.6</score>",
    "<polarity>neutral</polarity><think>nothing stands out</think><score>0.0</score>",
    "not a DC answer",
]


class AtTrainBegin(TrainerCallback):
    """What the Trainer holds when training (re)starts: the step and the adapter weights."""

    def __init__(self):
        self.seen: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        lora = {
            n.replace(".default", ""): p.detach().clone() for n, p in model.named_parameters() if "lora_" in n
        }
        self.seen.append((state.global_step, lora))


@pytest.mark.slow
def test_lora_grpo_resumes_from_its_adapter_and_the_merged_output_predicts(
    lora_sft_run, grpo_clips: Path, synthetic_sims_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from msa_eval.predict import predict
    from safetensors.torch import load_file

    scripted_generation(
        monkeypatch, lambda trainer, ids: [ANSWERS[i % len(ANSWERS)] for i in range(len(ids))]
    )
    policy = lora_sft_run[0].output_dir
    out = tmp_path / "grpo"
    sets = dict(finetuning_type="lora", save_steps=1, resume="auto", learning_rate=1e-2, limit=4)
    run_grpo(recipe(policy, grpo_clips, out, max_steps=1, **sets))
    checkpoint = out / "checkpoint-1"
    saved = load_file(checkpoint / "adapter_model.safetensors")  # the checkpoint holds the adapter only
    assert saved and all("lora_" in k for k in saved) and not (checkpoint / "model.safetensors").exists()

    watch = AtTrainBegin()
    run_grpo(recipe(policy, grpo_clips, out, max_steps=2, **sets), callbacks=[watch])
    [(step, lora)] = watch.seen
    assert step == 1  # resumed from checkpoint-1, with its adapter weights
    assert set(lora) == set(saved) and all(torch.equal(lora[k], saved[k]) for k in saved)
    assert any(not torch.equal(saved[k], torch.zeros_like(saved[k])) for k in saved if "lora_B" in k)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2] and all(r["kl"] is not None for r in rows)

    # The output: adapter + merged thinker (the SFT model's names and shapes; only the language model's
    # linear layers moved; towers as they were).
    assert json.loads((out / "lora-adapter" / "adapter_config.json").read_text())["r"] == 16
    before = load_file(policy / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(after) == set(before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.layers.") and k.endswith("_proj.weight") for k in changed)
    [summary] = predict(
        out, [(synthetic_sims_dir, "sims")], tmp_path / "pred", split="train", max_new_tokens=8, limit=2
    )
    assert len(summary.path.read_text().splitlines()) == 2
