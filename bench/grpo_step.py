"""Step time of plain GRPO vs Hint-GRPO on the tiny Omni thinker (CPU), same batch and seed.

Builds the tiny model, a few synthetic clips and a briefly format-SFT'd copy of the model (it always answers
"positive", so the groups of non-positive clips are hard: about half the batch), then times full training steps
(generation, rewards, reference log-probs, loss, backward; no optimiser step, so every repeat samples from the same
weights) of both trainers, alternating them to share the machine's noise. Prints the medians, the hard fraction seen,
the share of a plain step spent generating and, last, ``hint_overhead X`` = Hint step / plain step - 1.
Expected X ~ hard fraction x generation share, since only the hard groups' rows are sampled again.

    uv run python bench/grpo_step.py [--repeats 7] [--prompts 4] [--completion-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "msa_rl"))  # the tests' format-SFT helper (grpo_helpers.format_sft)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--repeats", type=int, default=7, help="Timed steps per trainer (after one warm-up step)."
    )
    ap.add_argument(
        "--prompts", type=int, default=4, help="Prompts per step (half positive clips, half not)."
    )
    ap.add_argument("--completion-tokens", type=int, default=32, help="max_completion_length.")
    ap.add_argument("--sft-steps", type=int, default=100, help="Format-SFT steps of the tiny model.")
    ap.add_argument(
        "--seed", type=int, default=0, help="Sampling seed of each repeat (same for both trainers)."
    )
    args = ap.parse_args()

    import torch
    from grpo_helpers import format_sft
    from msa_core import get_spec
    from msa_core.synthetic import make_dataset
    from msa_rl.grpo import build_trainer, read_training_rows
    from msa_rl.grpo_config import GRPORecipe
    from msa_rl.grpo_trainer import HintGRPOTrainer
    from msa_rl.tiny import build_tiny_omni

    work = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    t0 = time.perf_counter()
    tiny = build_tiny_omni(work / "tiny")
    clips = make_dataset(work / "clips", "sims", n=12, seed=0, splits=(1.0, 0.0, 0.0))
    model = format_sft(tiny, clips, work / "sft", steps=args.sft_steps)
    print(f"setup (tiny model, clips, format SFT): {time.perf_counter() - t0:.1f}s", flush=True)

    G = 4
    spec = get_spec("sims")

    def recipe(hint: bool) -> GRPORecipe:
        return GRPORecipe(
            model=str(model),
            data=str(clips),
            output_dir=str(work / f"run-{hint}"),
            hard_group_strategy="hint" if hint else "none",
            num_generations=G,
            per_device_train_batch_size=G * args.prompts,
            max_completion_length=args.completion_tokens,
            dtype="float32",
            seed=args.seed,
            report_to=["none"],
            max_steps=1000,
        )

    rows = read_training_rows(recipe(True))
    positive = [r for r in rows if spec.polarity_of(r["label"]) == "positive"]
    other = [r for r in rows if spec.polarity_of(r["label"]) != "positive"]
    half = args.prompts // 2
    chosen = positive[:half] + other[: args.prompts - half]
    batch = [dict(r) for r in chosen for _ in range(G)]

    gen_time = {"t": 0.0}
    original = HintGRPOTrainer._generate_single_turn

    def timed(self, *a, **k):
        start = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            gen_time["t"] += time.perf_counter() - start

    HintGRPOTrainer._generate_single_turn = timed
    trainers = {name: build_trainer(recipe(name == "hint")) for name in ("plain", "hint")}
    for tr in trainers.values():
        tr.current_gradient_accumulation_steps = 1
        tr.model.train()

    def step(tr) -> tuple[float, float]:
        gen_time["t"] = 0.0
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        tr.training_step(tr.model, batch, None)
        tr.model.zero_grad(set_to_none=True)
        return time.perf_counter() - start, gen_time["t"]

    for tr in trainers.values():
        step(tr)  # warm-up
    times = {name: [] for name in trainers}
    gens = {name: [] for name in trainers}
    for _ in range(args.repeats):
        for name, tr in trainers.items():
            t, g = step(tr)
            times[name].append(t)
            gens[name].append(g)

    hard = trainers["hint"]._metrics["train"]["hard_fraction"]
    hard_fraction = statistics.mean(hard[1:]) if len(hard) > 1 else hard[0]
    success = trainers["hint"]._metrics["train"].get("hint_success") or [float("nan")]
    plain, hinted = statistics.median(times["plain"]), statistics.median(times["hint"])
    share = statistics.median(g / t for g, t in zip(gens["plain"], times["plain"], strict=True))
    overhead = hinted / plain - 1
    print(
        f"batch: {args.prompts} prompts x G={G}, {args.completion_tokens} completion tokens, "
        f"{args.repeats} repeats, torch threads {torch.get_num_threads()}"
    )
    print(f"plain GRPO step   median {plain:.3f}s  (generation {statistics.median(gens['plain']):.3f}s)")
    print(f"Hint-GRPO step    median {hinted:.3f}s  (generation {statistics.median(gens['hint']):.3f}s)")
    print(f"hard fraction     {hard_fraction:.2f}  (hint success {statistics.mean(success):.2f})")
    print(f"generation share  {share:.2f} of a plain step")
    print(f"expected overhead {hard_fraction * share:.3f} (hard fraction x generation share)")
    print(f"hint_overhead {overhead:.3f}")


if __name__ == "__main__":
    main()
