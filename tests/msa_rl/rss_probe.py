"""Peak RSS of one GRPO optimiser step of a wider tiny thinker, in a fresh process, for test_plan.py to judge.

    python tests/msa_rl/rss_probe.py MODEL CLIPS OUT_DIR

The process first imports everything and reads the clips, then records its RSS (the baseline: interpreter,
torch, transformers, TRL), builds the trainer (policy + reference), runs one step with scripted completions, and
writes OUT_DIR/rss.json: the baseline, the peak (``ru_maxrss``) and the planner's CPU analogue of the same recipe.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

ANSWER = "<polarity>positive</polarity><think>the voice is warm</think><score>0.5</score>"


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def main() -> None:
    model, clips, out = (Path(a) for a in sys.argv[1:4])
    import torch
    import trl  # noqa: F401
    from msa_rl.grpo import build_trainer, read_training_rows
    from msa_rl.grpo_config import GRPORecipe
    from msa_rl.plan import Setup, estimate
    from trl import GRPOTrainer

    torch.set_num_threads(1)

    def scripted(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        eos = self._tokenizer.eos_token_id
        return [
            self._tokenizer(ANSWER, add_special_tokens=False)["input_ids"] + [eos] for _ in prompt_ids
        ], None

    GRPOTrainer._generate_single_turn = scripted
    recipe = GRPORecipe(
        model=str(model),
        data=str(clips),
        dataset="sims",
        output_dir=str(out / "grpo"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=32,
        max_steps=1,
        save_steps=1000,
        dtype="float32",
        resume="never",
        seed=0,
        limit=2,
    )
    rows = read_training_rows(recipe)
    plan = estimate(Setup.of(recipe, "grpo"), gpus=1, gpu_mem_gib=1024.0, device="cpu")
    baseline = rss_bytes()
    trainer = build_trainer(recipe, rows=rows, save_strategy="no")
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {
        "baseline": baseline,
        "peak": peak,
        "plan_total": plan.total,
        "plan_lines": {x.name: x.bytes for x in plan.lines},
    }
    (out / "rss.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
