"""Runs in the vLLM CPU env (.venvs/vllm-cpu): the tiny Qwen3-Omni MoE thinker through both vLLM paths.

    .venvs/vllm-cpu/bin/python tests/msa_rl/vllm_qwen3_probe.py MODEL DATA OUT_DIR

1. `msa-rl grpo` with use_vllm (colocated engine, 1 optimiser step): the rollouts' prompt ids and the trainer's, and
   the metrics (the rollout mismatch of the engine's log-probs against the trainer's);
2. `msa-eval predict` with --backend hf and --backend vllm on the same clips: prompt ids and greedy answers.
One process, two engines one after the other (vLLM import and torch start once). Writes OUT_DIR/probe.json for
tests/msa_rl/test_qwen3_vllm.py to judge; asserts nothing itself.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

N_CLIPS = 3
MAX_NEW_TOKENS = 16


def grpo(model: Path, data: Path, out: Path, result: dict[str, Any]) -> None:
    from msa_rl import grpo_vllm
    from msa_rl.grpo import run_grpo
    from msa_rl.grpo_config import GRPORecipe

    rollouts = result["rollouts"] = []
    generate = grpo_vllm.OmniVLLMRollout.generate

    def recorded(self, prompt_ids, rows):
        completions, logprobs = generate(self, prompt_ids, rows)
        rollouts.append(
            {
                "trainer_prompt_ids": [list(p) for p in prompt_ids],
                "vllm_prompt_ids": self.last_prompt_token_ids,
                "row_prompt_lens": [len(r.prompt_ids) for r in rows],
            }
        )
        return completions, logprobs

    grpo_vllm.OmniVLLMRollout.generate = recorded
    recipe = GRPORecipe(
        model=str(model),
        data=str(data),
        dataset="sims",
        output_dir=str(out / "grpo"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=16,
        max_steps=1,
        limit=2,
        save_steps=1000,
        dtype="float32",
        resume="never",
        seed=0,
        use_vllm=True,
    )
    run_grpo(recipe)
    grpo_vllm.OmniVLLMRollout.generate = generate


def predict(model: Path, data: Path, out: Path, result: dict[str, Any]) -> None:
    from msa_core import build_prompt, get_spec, read_mmsa
    from msa_eval import predict as P
    from msa_eval.cli import app
    from msa_omni import encode_prompt
    from typer.testing import CliRunner

    generators: dict[str, Any] = {}
    make = P.make_generator

    def capture(settings, run_dir):
        generators[settings.backend] = gen = make(settings, run_dir)
        return gen

    P.make_generator = capture
    result["cli"] = {}
    for backend in ("hf", "vllm"):
        r = CliRunner().invoke(
            app,
            [
                "predict", "--model", str(model), "--data", str(data), "--dataset", "sims",
                "--out", str(out / backend), "--backend", backend, "--dtype", "float32", "--split", "train",
                "--limit", str(N_CLIPS), "--batch-size", str(N_CLIPS), "--max-new-tokens", str(MAX_NEW_TOKENS),
            ],
        )  # fmt: skip
        result["cli"][backend] = {"exit_code": r.exit_code, "output": r.output[-3000:]}
        if r.exit_code != 0:
            return
    hf, vl = generators["hf"], generators["vllm"]
    spec = get_spec("sims")
    clips = read_mmsa(data, "sims", split="train").clips[:N_CLIPS]
    result["prompt_ids"] = {
        "hf": [
            encode_prompt(
                hf.processor,
                build_prompt(c.text, spec),
                P.load_media(c, vl.settings),
                settings=vl.settings.media,
            )["input_ids"][0].tolist()
            for c in clips
        ],
        "vllm": vl.last_prompt_token_ids,
    }
    result["completion_ids"] = {"hf": hf.last_completion_token_ids, "vllm": vl.last_completion_token_ids}
    result["answers"] = {
        b: [json.loads(x)["raw_output"] for x in (out / b / "sims.jsonl").read_text().splitlines()]
        for b in ("hf", "vllm")
    }
    tok = hf.processor.tokenizer
    result["eos_id"], result["pad_id"] = tok.convert_tokens_to_ids("<|im_end|>"), hf.pad_id
    result["media_token_ids"] = {
        k: tok.convert_tokens_to_ids(getattr(hf.processor, f"{k}_token")) for k in ("audio", "video")
    }


def main() -> None:
    import torch

    model, data, out = (Path(a) for a in sys.argv[1:4])
    torch.set_num_threads(1)
    result: dict[str, Any] = {"seconds": {}}
    for name, stage in (("grpo", grpo), ("predict", predict)):
        t0 = time.perf_counter()
        stage(model, data, out, result)
        result["seconds"][name] = time.perf_counter() - t0
        gc.collect()
    (out / "probe.json").write_text(json.dumps(result))


if __name__ == "__main__":  # vLLM may spawn processes: the guard keeps them from rerunning this
    main()
