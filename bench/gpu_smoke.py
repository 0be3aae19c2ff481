"""GPU smoke benchmark: a random-weight Qwen2.5-Omni-7B thinker through the project's own GRPO and predict code.

Nothing is downloaded. The thinker is built from a config with the real Qwen2.5-Omni-7B (or, ``--model 3b``, -3B;
``--model qwen3-omni``, the Qwen3-Omni-30B-A3B thinker from its registry entry) shapes (``msa_omni.shapes``), directly on the GPU in bf16, with random weights. The processor and tokenizer come from the tiny-model
builder (``msa_rl.tiny``): real Qwen2.5-Omni image/video/Whisper processing, a small BPE vocabulary, and media token
ids that the config takes over. Clips are synthetic arrays (frames + 16 kHz audio) handed to the project in place
of decoded mp4s. Then, each figure on its own line as ``name value unit``:

- predict clips/s (``msa_eval.predict``, greedy) with ``--backend hf``, and with ``vllm`` when vLLM imports;
- GRPO step time (s/step, median after one warm-up step) and peak GPU memory of ``HintGRPOTrainer`` built by
  ``msa_rl.grpo.build_trainer``: HF generate, and vLLM rollouts (``use_vllm``) when vLLM imports.

Where vLLM is missing, its lines read ``... unavailable (vllm not installed)``. A failing section prints
``<name> failed (<error>)``, the others still run, and the exit status is 1.

Three stand-ins, installed by ``install_stand_ins`` and each checked to be reached:
``load_thinker`` returns the in-memory model for ``MODEL_ID``, ``clip_media`` returns synthetic arrays (no PyAV on
the GPU node), and TRL's reference model is a copy of the in-memory policy (TRL would reload it from a path).

    python bench/gpu_smoke.py              # GPU: real 7B shapes, bf16 (about 3 minutes on one H200)
    python bench/gpu_smoke.py --dry-run    # any machine: configs, shapes and parameter counts (meta device)
    python bench/gpu_smoke.py --tiny       # CPU: the whole measurement path on the tiny thinker
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path

# The real thinker shapes (the public config.json's "thinker_config"), stored as data in msa_omni/public_configs/ and
# read by msa_omni.shapes.public_shapes: 7b (8.93e9 parameters: text 7.62e9, vision 0.68e9, audio 0.64e9) or 3b
# (4.70e9: text 3.40e9, vision 0.67e9, audio 0.64e9). Token ids are not there: they come from the tokenizer in use.
MODELS = ("7b", "3b")
OMNI_MODULES = ("msa_omni.io",)
MODEL_ID = "bench/random-qwen2.5-omni-thinker"  # not a path: load_thinker hands back the in-memory model
DATASET = "sims"
VLLM_MISSING = "unavailable (vllm not installed)"
# The modules whose code paths the measurements run (checked by --dry-run).
CODE_PATHS = (
    "msa_rl.grpo",
    "msa_rl.grpo_config",
    "msa_rl.grpo_trainer",
    "msa_rl.grpo_vllm",
    "msa_rl.rewards",
    "msa_eval.predict",
    "trl.trainer.grpo_trainer",
    "datasets",
    "pydantic",
)

FAILED: list[str] = []


def say(name: str, value, unit: str = "") -> None:
    """One figure: ``name value unit``."""
    print(f"{name} {value} {unit}".rstrip(), flush=True)


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def section(name: str, fn, *args, **kwargs):
    """Run one measurement; on error print ``name failed (...)`` and go on (the exit status becomes 1)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        FAILED.append(name)
        traceback.print_exc(file=sys.stderr)
        say(name, f"failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        return None


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


# ------------------------------------------------------------------------------------------------ model + clips
QWEN3 = "qwen3-omni"  # --model: the other student family's reference thinker (ModelFamily.reference_shapes)


def model_family(model: str):
    from msa_omni.families import DEFAULT_FAMILY, get_family

    return get_family(model) if model == QWEN3 else DEFAULT_FAMILY


def real_shapes(model: str = "7b") -> dict:
    from msa_omni.shapes import public_shapes

    return model_family(model).reference_shapes if model == QWEN3 else public_shapes(model)


def build_processor_and_config(tiny: bool, layers: int | None = None, model: str = "7b"):
    """The tiny builder's processor, and a thinker config: the tiny one, or the real 7B shapes with its token ids
    (``layers``: the real widths with that many text, vision and audio layers, for a quick check)."""
    from msa_rl.tiny import build_config, build_processor, build_tokenizer

    family = model_family(model)
    tokenizer = build_tokenizer(family=family)
    processor = build_processor(tokenizer, family)
    tiny_config = build_config(tokenizer, family=family)
    if tiny:
        return processor, tiny_config
    # The token-id fields are the family's own (the registry's list): copied from the tiny config.
    ids = {k: getattr(tiny_config, k) for k in family.reference_token_id_fields}
    real = copy.deepcopy(real_shapes(model))
    if layers is not None:
        text_cfg, vision_cfg = real["text_config"], real["vision_config"]
        text_cfg["num_hidden_layers"] = layers
        if "max_window_layers" in text_cfg:
            text_cfg["max_window_layers"] = layers
        real["audio_config"]["encoder_layers"] = layers
        vision_cfg["depth"] = layers
        for key in ("fullatt_block_indexes", "deepstack_visual_indexes"):  # layer indexes inside the tower
            if key in vision_cfg:
                vision_cfg[key] = [i for i in vision_cfg[key] if i < layers] or [layers - 1]
    text = {**real["text_config"], "pad_token_id": ids["pad_token_id"], "eos_token_id": ids["eos_token_id"]}
    config = family.transformers_class("thinker_config_class")(
        text_config=text,
        vision_config=real["vision_config"],
        audio_config=real["audio_config"],
        **real["thinker"],
        **ids,
    )
    return processor, config


def check_token_ids(processor, config) -> None:
    """Every token id the config names is the tokenizer's id for that token, and inside the vocabulary."""
    tok = processor.tokenizer
    expected = {
        "video_token_id": processor.video_token,
        "audio_token_id": processor.audio_token,
        "image_token_id": processor.image_token,
        "audio_start_token_id": processor.audio_bos_token,
        "audio_end_token_id": processor.audio_eos_token,
        "vision_start_token_id": processor.vision_bos_token,
        "vision_end_token_id": processor.vision_eos_token,
        "eos_token_id": "<|im_end|>",
        "pad_token_id": "<|endoftext|>",
    }
    for field, token in expected.items():
        got, want = getattr(config, field), tok.convert_tokens_to_ids(token)
        if got != want:
            raise ValueError(f"config.{field} = {got}, but the tokenizer's {token} is {want}")
    vocab = config.text_config.vocab_size
    if len(tok) > vocab:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than the model's vocab_size {vocab}")


def build_model(config, device: str, dtype):
    """The thinker with random weights, allocated and initialised on ``device`` (``meta``: shapes only)."""
    import torch
    from msa_omni.families import family_of_config

    torch.manual_seed(0)
    with torch.device(device):
        thinker_class = family_of_config(config).transformers_class("thinker_class")
        model = thinker_class._from_config(config, dtype=dtype)
    if device != "meta":
        stray = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type != device]
        if stray:
            note(f"{len(stray)} tensors were built off {device} (e.g. {stray[0]}): moving the model")
            model.to(device)
    model.config._name_or_path = MODEL_ID  # TRL builds its reference model from this name (see stand-ins)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    return model


def param_counts(model) -> dict[str, int]:
    parts = {"audio": "audio_tower", "vision": "visual", "text": "model", "lm_head": "lm_head"}
    counts = {k: sum(p.numel() for p in getattr(model, attr).parameters()) for k, attr in parts.items()}
    counts["text"] += counts.pop("lm_head")
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def synthetic_media(path: Path, *, seconds: float, fps: float, max_frames: int, size: tuple[int, int]):
    """A clip's frames (T, H, W, 3) uint8 with an even T, and its 16 kHz mono audio: noise seeded by the file name."""
    import numpy as np

    omni = omni_module()

    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    n = max(2, min(max_frames, round(seconds * fps)) // 2 * 2)
    width, height = size
    frames = rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(int(seconds * omni.AUDIO_SAMPLE_RATE))).astype(np.float32)
    return omni.ClipMedia(frames=frames, audio=audio, fps=float(fps))


def write_clips(root: Path, n: int) -> Path:
    """An MMSA-layout directory (label.csv + Raw/<video>/<clip>.mp4) whose mp4s are empty placeholders: the
    ``clip_media`` stand-in gives their frames and audio. Labels are spread over the CH-SIMS scale."""
    import csv

    from msa_core.synthetic import TEMPLATES, TOPICS, WORDS

    root.mkdir(parents=True, exist_ok=True)
    words = [w for pool in WORDS.values() for w in pool]
    with (root / "label.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["video_id", "clip_id", "text", "label", "mode"])
        for i in range(n):
            video, clip = f"v{i // 4:03d}", f"{i % 4:04d}"
            text = TEMPLATES[i % len(TEMPLATES)].format(
                topic=TOPICS[i % len(TOPICS)], word=words[i % len(words)]
            )
            label = round(-1.0 + 2.0 * i / max(1, n - 1), 1)
            out.writerow([video, clip, text, label, "train"])
            mp4 = root / "Raw" / video / f"{clip}.mp4"
            mp4.parent.mkdir(parents=True, exist_ok=True)
            mp4.touch()
    return root


# ------------------------------------------------------------------------------------------------- stand-ins
def _patch_everywhere(name: str, original, replacement) -> int:
    """Replace ``original`` by ``replacement`` in every loaded project/TRL module that holds it under ``name``."""
    n = 0
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not mod_name.startswith(("msa_", "trl")):
            continue
        if getattr(mod, name, None) is original:
            setattr(mod, name, replacement)
            n += 1
    return n


def omni_module():
    """The project's Omni I/O module (``msa_omni.io``)."""
    for name in OMNI_MODULES:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(mod, "load_thinker") and hasattr(mod, "clip_media"):
                return mod
    raise ImportError(f"none of {OMNI_MODULES} provides load_thinker and clip_media")


def install_stand_ins(model, processor, media_for) -> Counter:
    """Redirect model loading (``MODEL_ID``) and clip decoding to the in-memory model and synthetic media."""
    omni = omni_module()
    real_load = omni.load_thinker
    calls: Counter = Counter()

    def load_thinker(path, dtype="float32"):
        if str(path) != MODEL_ID:
            return real_load(path, dtype=dtype)
        calls["load_thinker"] += 1
        return model, processor

    def clip_media(video_path, settings=None):
        calls["clip_media"] += 1
        return media_for(Path(video_path))

    real_check_hub = omni.check_hub_model

    def check_hub_model(model_id, **kwargs):  # MODEL_ID is in memory, not on the Hub: nothing to look up
        if str(model_id) != MODEL_ID:
            real_check_hub(model_id, **kwargs)

    stand_ins = (
        ("load_thinker", load_thinker),
        ("clip_media", clip_media),
        ("check_hub_model", check_hub_model),
    )
    for name, new in stand_ins:
        if _patch_everywhere(name, getattr(omni, name), new) == 0:
            raise RuntimeError(f"stand-in {name}: no loaded module holds the original (the code moved?)")
    return calls


def install_reference_stand_in(model, calls: Counter) -> None:
    """TRL builds its reference model with ``create_model_from_path(config._name_or_path)``: for ``MODEL_ID``
    return a frozen copy of the in-memory policy instead (what reloading the starting checkpoint would give)."""
    import trl.trainer.grpo_trainer as trl_grpo

    real_create = trl_grpo.create_model_from_path
    if getattr(real_create, "gpu_smoke_stand_in", False):
        return

    def create_model_from_path(model_id, *args, **kwargs):
        if model_id != MODEL_ID:
            return real_create(model_id, *args, **kwargs)
        calls["reference_model"] += 1
        return copy.deepcopy(model).eval()

    create_model_from_path.gpu_smoke_stand_in = True
    if _patch_everywhere("create_model_from_path", real_create, create_model_from_path) == 0:
        raise RuntimeError("stand-in create_model_from_path: TRL no longer holds it (the code moved?)")


def require_calls(calls: Counter, before: Counter, *names: str) -> None:
    for name in names:
        if calls[name] <= before[name]:
            raise RuntimeError(f"stand-in {name} was not reached: the measured code path no longer calls it")


# ---------------------------------------------------------------------------------------------- measurements
class Device:
    def __init__(self, kind: str):
        import torch

        self.torch, self.kind = torch, kind

    def sync(self) -> None:
        if self.kind == "cuda":
            self.torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.kind == "cuda":
            gc.collect()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak(self, name: str) -> None:
        if self.kind == "cuda":
            say(name, f"{self.torch.cuda.max_memory_allocated() / 2**30:.2f}", "GiB")
        else:
            say(name, "n/a (cpu)")

    def free(self) -> None:
        gc.collect()
        if self.kind == "cuda":
            self.torch.cuda.empty_cache()


def measure_predict(backend: str, model_arg: str, data: Path, work: Path, args, dev: Device, calls: Counter):
    """clips/s of ``msa_eval.predict.predict`` over every clip (after a one-clip warm-up run)."""
    from msa_core import read_jsonl
    from msa_eval.predict import predict

    kwargs = dict(
        backend=backend,
        split="train",
        batch_size=args.batch_size,
        max_new_tokens=args.predict_tokens,
        fps=args.fps,
        max_frames=args.max_frames,
        video_size=(args.video_size, args.video_size),
        dtype=args.dtype,
        overwrite=True,
    )
    if backend == "hf":
        kwargs["device"] = dev.kind
    before = Counter(calls)
    predict(model_arg, [(data, DATASET)], work / f"predict-{backend}-warmup", limit=1, **kwargs)
    dev.reset_peak()
    dev.sync()
    start = time.perf_counter()
    out = work / f"predict-{backend}"
    predict(model_arg, [(data, DATASET)], out, **kwargs)
    dev.sync()
    elapsed = time.perf_counter() - start
    records = list(read_jsonl(out / f"{DATASET}.jsonl"))
    if len(records) != args.clips:
        raise RuntimeError(f"predict wrote {len(records)} records for {args.clips} clips")
    require_calls(calls, before, "clip_media", *(["load_thinker"] if model_arg == MODEL_ID else []))
    say(f"predict_{backend}_clips_per_s", f"{args.clips / elapsed:.3f}", "clips/s")
    say(f"predict_{backend}_wall_s", f"{elapsed:.2f}", "s")
    dev.peak(f"predict_{backend}_peak_gib")


def grpo_recipe(args, data: Path, out: Path, *, use_vllm: bool, lora: bool):
    """The GRPO recipe every GRPO section runs (and --dry-run plans)."""
    from msa_rl.grpo_config import GRPORecipe

    return GRPORecipe(
        model=MODEL_ID,
        data=str(data),
        dataset=DATASET,
        output_dir=str(out),
        media=media_settings(args),
        num_generations=args.G,
        per_device_train_batch_size=args.G * args.prompts,
        max_completion_length=args.completion_tokens,
        max_steps=1 + args.steps,
        beta=args.beta,
        dtype=args.dtype,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        use_vllm=use_vllm,
        vllm_gpu_memory_utilization=args.vllm_memory,
        report_to=["none"],
        resume="never",
        finetuning_type="lora" if lora else "full",
    )


def measure_grpo(
    use_vllm: bool, model, data: Path, work: Path, args, dev: Device, calls: Counter, lora: bool = False
):
    """Median wall time of full Hint-GRPO optimiser steps (generation, rewards, hint re-sampling, reference and
    policy log-probs, backward, AdamW) after one warm-up step, and the peak memory of the whole run, with the memory
    planner's estimate for the same recipe beside it. ``lora``: LoRA adapters (the GRPO recipe's defaults; the
    reference is the policy with its adapters disabled), removed from the in-memory model afterwards."""
    from msa_rl.grpo import build_trainer, read_training_rows
    from msa_rl.grpo_trainer import read_metrics
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    name = ("grpo_vllm" if use_vllm else "grpo_hf") + ("_lora" if lora else "")
    out = work / name
    recipe = grpo_recipe(args, data, out, use_vllm=use_vllm, lora=lora)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, *_a, **_k):
            dev.sync()
            self.start = time.perf_counter()

        def on_step_end(self, _args, state, control, *_a, **_k):
            dev.sync()
            self.times.append(time.perf_counter() - self.start)
            note(f"{name} step {state.global_step}: {self.times[-1]:.2f} s")
            if len(self.times) >= 2 and time.perf_counter() > args.deadline:
                note(f"{name}: --budget-s reached, stopping after {len(self.times)} steps")
                control.should_training_stop = True
            return control

    if not lora:
        install_reference_stand_in(model, calls)
    before = Counter(calls)
    timer = StepTimer()
    dev.reset_peak()
    rows = read_training_rows(recipe)
    trainer = build_trainer(recipe, rows=rows, callbacks=[timer], save_strategy="no", disable_tqdm=True)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    steps = len(timer.times)
    if steps < 2:
        raise RuntimeError(f"{steps} steps ran: no timed step after the warm-up")
    require_calls(calls, before, "load_thinker", "clip_media")
    if args.beta > 0 and not lora:
        require_calls(calls, before, "reference_model")
    if lora and getattr(trainer, "ref_model", None) is not None:
        raise RuntimeError("LoRA run built a reference copy: expected the adapter-disabled policy")
    metrics = read_metrics(out)
    say(f"{name}_step_s", f"{statistics.median(timer.times[1:]):.3f}", "s/step")
    say(f"{name}_warmup_step_s", f"{timer.times[0]:.3f}", "s")
    say(f"{name}_timed_steps", steps - 1, "steps")
    dev.peak(f"{name}_peak_gib")
    say_plan(name, recipe, args, dev)
    hard = [m["hard_fraction"] for m in metrics if m.get("hard_fraction") is not None]
    if hard:
        say(f"{name}_hard_fraction", f"{statistics.mean(hard):.2f}", "(hard groups are sampled twice)")
    length = [m["completion_length"] for m in metrics if m.get("completion_length") is not None]
    if length:
        say(f"{name}_completion_length", f"{statistics.mean(length):.1f}", "tokens")
    if lora:  # give the later sections the plain model back (get_peft_model injected the adapters in place)
        trainer.accelerator.unwrap_model(trainer.model).unload()
    del trainer
    dev.free()


def say_plan(name: str, recipe, args, dev: Device) -> None:
    """The memory planner's (msa_rl.plan) estimate of this GRPO recipe, beside the measured peak: its total, and
    its static part (weights, gradients, optimizer, reference). On a CPU its float32 analogue."""
    import torch
    from msa_rl.plan import GIB, Setup, estimate

    kind = "gpu" if dev.kind in ("cuda", "plan-only") else "cpu"
    if dev.kind == "cuda":
        mem = torch.cuda.get_device_properties(0).total_memory / GIB
    else:
        mem = getattr(dev, "assumed_gib", 1024.0)
    plan = estimate(
        Setup.of(recipe, "grpo"),
        gpus=1,
        gpu_mem_gib=mem,
        prompt=getattr(args, "clip_tokens", None),
        prompt_source="the synthetic clip",
        device=kind,
        config=args.config,
    )
    static = sum(
        x.bytes
        for x in plan.lines
        if x.name
        in ("frozen weights", "trainable weights", "gradients", "optimizer states", "reference model")
    )
    where = "assumed 80 GiB GPU" if dev.kind == "plan-only" else f"{kind}; measured peak above"
    say(f"{name}_plan_gib", f"{plan.total / GIB:.2f}", f"GiB (planner, {where})")
    say(f"{name}_plan_static_gib", f"{static / GIB:.2f}", "GiB (weights, gradients, optimizer, reference)")


def media_settings(args):
    """The media settings every stage gets (one model: msa_core.MediaSettings)."""
    from msa_core import MediaSettings

    return MediaSettings(
        fps=args.fps, max_frames=args.max_frames, video_size=(args.video_size, args.video_size)
    )


def clip_token_counts(processor, media, args) -> None:
    """Prompt length of one clip as the project encodes it (system + user + video with audio-in-video)."""
    from msa_core import build_prompt, get_spec

    omni = omni_module()
    prompt = build_prompt("The movie was great.", get_spec(DATASET))
    batch = omni.encode_prompt(processor, prompt, media, settings=media_settings(args))
    say("clip_frames", len(media.frames), "frames")
    say("clip_prompt_tokens", batch["input_ids"].shape[1], "tokens")
    say("clip_video_tokens", omni.count_tokens(processor, batch, "video"), "tokens")
    say("clip_audio_tokens", omni.count_tokens(processor, batch, "audio"), "tokens")
    from msa_core.prompt_length import ClipTokens

    video = omni.count_tokens(processor, batch, "video")
    audio = omni.count_tokens(processor, batch, "audio")
    text = batch["input_ids"].shape[1] - video - audio
    args.clip_tokens = ClipTokens("clip", video=video, audio=audio, text=text)  # what the planner is given


# ------------------------------------------------------------------------------------------------------- main
# Per-mode defaults: the real run fits ~3 min on one H200, the tiny one < 60 s on 2 CPU cores.
REAL_DEFAULTS = dict(
    clips=8, seconds=6.0, video_size=256, G=4, prompts=2, completion_tokens=128, steps=3, predict_tokens=128
)
TINY_DEFAULTS = dict(
    clips=4, seconds=2.0, video_size=56, G=2, prompts=2, completion_tokens=16, steps=2, predict_tokens=16
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one (None: per mode, see the epilog)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=_HelpFormatter,
        epilog="Per-mode defaults (real / --tiny): "
        + ", ".join(f"{k}={REAL_DEFAULTS[k]}/{TINY_DEFAULTS[k]}" for k in REAL_DEFAULTS)
        + "; --batch-size defaults to --clips.",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="Configs, shapes, params, imports; no weights.")
    mode.add_argument("--tiny", action="store_true", help="The tiny thinker and small clips (CPU, < 60 s).")
    ap.add_argument(
        "--model",
        choices=["7b", "3b", "qwen3-omni"],
        default="7b",
        help="Which public thinker's shapes: Qwen2.5-Omni 7b or 3b, or qwen3-omni (the 30B-A3B MoE thinker).",
    )
    ap.add_argument(
        "--layers",
        type=int,
        help="Real widths with this many text/vision/audio layers (quick check; CPU ok).",
    )
    ap.add_argument(
        "--dtype",
        choices=["auto", "bfloat16", "float32"],
        default="auto",
        help="auto: bf16 on GPU, fp32 on CPU.",
    )
    ap.add_argument("--clips", type=int, help="Synthetic clips (predict runs all; GRPO draws from them).")
    ap.add_argument("--seconds", type=float, help="Clip length (frames at --fps, audio at 16 kHz).")
    ap.add_argument("--fps", type=float, default=2.0, help="Frames per second (the paper recipes: 2).")
    ap.add_argument("--max-frames", type=int, default=128, help="Frame cap (the paper recipes: 128).")
    ap.add_argument("--video-size", type=int, help="Frame side in pixels (the paper recipes: 256).")
    ap.add_argument("--G", type=int, help="GRPO completions per prompt (the paper: 4).")
    ap.add_argument("--prompts", type=int, help="Prompts per GRPO step (batch = G x prompts).")
    ap.add_argument("--completion-tokens", type=int, help="GRPO max_completion_length.")
    ap.add_argument("--steps", type=int, help="Timed GRPO steps (after one warm-up step).")
    ap.add_argument("--beta", type=float, default=0.1, help="KL coefficient (> 0 keeps a reference model).")
    ap.add_argument("--no-gradient-checkpointing", action="store_true", help="Off (the 7B recipe has it on).")
    ap.add_argument("--predict-tokens", type=int, help="Greedy max_new_tokens of predict.")
    ap.add_argument("--batch-size", type=int, help="Predict batch size.")
    ap.add_argument("--vllm-memory", type=float, default=0.25, help="GPU share of the colocated vLLM engine.")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=270,
        help="After this many seconds from the start, GRPO stops once it has one timed step.",
    )
    ap.add_argument("--no-vllm", action="store_true", help="Leave vLLM out even where it imports.")
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["predict", "grpo", "grpo-lora"],
        help="Sections to leave out.",
    )
    ap.add_argument("--work", type=Path, help="Scratch directory (default: a new temporary one).")
    args = ap.parse_args(argv)
    for key, value in (TINY_DEFAULTS if args.tiny else REAL_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.batch_size is None:
        args.batch_size = args.clips
    if args.layers is not None and (args.tiny or args.layers < 1):
        ap.error("--layers takes a positive count and applies to the real shapes (not with --tiny)")
    for key in (
        "clips",
        "G",
        "prompts",
        "completion_tokens",
        "steps",
        "predict_tokens",
        "batch_size",
        "video_size",
    ):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.G < 2:
        ap.error("--G must be >= 2 (GRPO compares completions within a group)")
    return args


def print_environment(device: str) -> None:
    import torch
    import transformers

    say("python", platform.python_version(), "version")
    say("torch", torch.__version__, "version")
    say("transformers", transformers.__version__, "version")
    for dist in ("trl", "datasets", "pydantic", "vllm"):
        spec = importlib.util.find_spec(dist)
        if spec is None:
            say(dist, "missing")
            continue
        try:
            from importlib.metadata import version

            say(dist, version(dist), "version")
        except Exception:
            say(dist, "present", "(no metadata)")
    if device == "cuda":
        name = torch.cuda.get_device_name(0).replace(" ", "_")
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        say("gpu", name, "device")
        say("gpu_memory", f"{total:.1f}", "GiB")
    else:
        say("device", device)


def dry_run(args) -> int:
    """Build the configs, count parameters on the meta device, check the processor and every import."""
    import torch

    print_environment("meta")
    processor, config = build_processor_and_config(tiny=args.tiny, layers=args.layers, model=args.model)
    check_token_ids(processor, config)
    say("model", "tiny" if args.tiny else args.model if args.model == QWEN3 else f"qwen2.5-omni-{args.model}")
    say("model_family", model_family(args.model).name)
    say("media_token_ids_match_tokenizer", "yes")
    for part in ("text_config", "vision_config", "audio_config"):
        cfg = getattr(config, part)
        for key in real_shapes(args.model)[part]:
            if key != "rope_parameters":
                say(f"{part.split('_')[0]}.{key}", str(getattr(cfg, key)).replace(" ", ""))
    text_cfg = config.text_config
    say(
        "text.head_dim",
        getattr(text_cfg, "head_dim", None) or text_cfg.hidden_size // text_cfg.num_attention_heads,
    )
    model = build_model(config, "meta", torch.bfloat16)
    counts = param_counts(model)
    for part, n in counts.items():
        say(f"params_{part}", n, "params")
    if model_family(args.model).moe:  # per token only num_experts_per_tok of num_experts expert MLPs run
        idle = text_cfg.num_experts - text_cfg.num_experts_per_tok
        expert = 3 * text_cfg.hidden_size * text_cfg.moe_intermediate_size
        say("params_text_active", counts["text"] - text_cfg.num_hidden_layers * idle * expert, "params")
    weights = param_counts(model)["total"] * 2 / 2**30
    say("weights_bf16_gib", f"{weights:.2f}", "GiB")
    # Full fine-tuning in bf16: policy + gradients + AdamW's two moments + TRL's reference copy (beta > 0).
    say("grpo_static_memory_estimate_gib", f"{weights * (5 if args.beta > 0 else 4):.1f}", "GiB")
    args.config = config
    media = synthetic_media(
        Path("v000/0000.mp4"),
        seconds=args.seconds,
        fps=args.fps,
        max_frames=args.max_frames,
        size=(args.video_size, args.video_size),
    )
    clip_token_counts(processor, media, args)
    # The planner's estimate of the GRPO sections' recipes on an 80 GiB GPU (what the GPU run prints beside its
    # measured peaks).
    dev = Device("cuda")
    dev.kind, dev.assumed_gib = "plan-only", 80.0
    for lora in (False, True):
        recipe = grpo_recipe(args, Path("clips"), Path("out"), use_vllm=False, lora=lora)
        say_plan("grpo_hf" + ("_lora" if lora else ""), recipe, args, dev)
    broken = 0
    for mod in CODE_PATHS:
        try:
            importlib.import_module(mod)
            say(f"import:{mod}", "ok")
        except Exception as exc:
            broken += 1
            say(f"import:{mod}", f"failed ({type(exc).__name__}: {exc})")
    try:
        omni = omni_module()
        import trl.trainer.grpo_trainer as trl_grpo

        targets = (("load_thinker", omni), ("clip_media", omni), ("create_model_from_path", trl_grpo))
        missing = [name for name, mod in targets if not callable(getattr(mod, name, None))]
        if missing:
            raise AttributeError(f"missing {', '.join(missing)}")
        say("stand_in_targets", "ok", f"({omni.__name__}, trl.trainer.grpo_trainer)")
    except Exception as exc:
        broken += 1
        say("stand_in_targets", f"failed ({type(exc).__name__}: {exc})")
    say("vllm", "available" if vllm_available() else VLLM_MISSING)
    return 1 if broken else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t_start = time.perf_counter()
    args.deadline = t_start + args.budget_s
    if args.dry_run:
        return dry_run(args)

    import torch

    kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu" and not (args.tiny or args.layers):
        print("gpu_smoke: no CUDA device; use --tiny or --layers N (CPU), or --dry-run", file=sys.stderr)
        return 2
    if args.dtype == "auto":
        args.dtype = "bfloat16" if kind == "cuda" else "float32"
    dtype = getattr(torch, args.dtype)
    dev = Device(kind)
    print_environment(kind)
    note(
        f"clips={args.clips} seconds={args.seconds} fps={args.fps} video={args.video_size}px G={args.G} "
        f"prompts={args.prompts} completion_tokens={args.completion_tokens} steps=1+{args.steps} beta={args.beta} "
        f"predict_tokens={args.predict_tokens} batch={args.batch_size} dtype={args.dtype} layers={args.layers or 'all'}"
    )

    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    processor, config = build_processor_and_config(tiny=args.tiny, layers=args.layers, model=args.model)
    check_token_ids(processor, config)
    args.config = config
    say("setup_s", f"{time.perf_counter() - t_start:.1f}", "s")
    start = time.perf_counter()
    model = build_model(config, kind, dtype)
    dev.sync()
    say("model_build_s", f"{time.perf_counter() - start:.1f}", "s")
    for part, n in param_counts(model).items():
        say(f"params_{part}", n, "params")

    def media_for(path: Path):
        size = (args.video_size, args.video_size)
        return synthetic_media(
            path, seconds=args.seconds, fps=args.fps, max_frames=args.max_frames, size=size
        )

    data = write_clips(work / "clips", args.clips)
    section("clip_prompt_tokens", clip_token_counts, processor, media_for(Path("v000/0000.mp4")), args)
    calls = install_stand_ins(model, processor, media_for)
    has_vllm = vllm_available() and not args.no_vllm
    missing = "unavailable (--no-vllm)" if args.no_vllm else VLLM_MISSING

    if "predict" not in args.skip:
        section("predict_hf_clips_per_s", measure_predict, "hf", MODEL_ID, data, work, args, dev, calls)
    if "grpo" not in args.skip:
        section("grpo_hf_step_s", measure_grpo, False, model, data, work, args, dev, calls)
    if "grpo-lora" not in args.skip:
        section("grpo_hf_lora_step_s", measure_grpo, False, model, data, work, args, dev, calls, lora=True)
    # vLLM last: an in-process engine does not hand all of its memory back.
    if "grpo" not in args.skip:
        if has_vllm:
            section("grpo_vllm_step_s", measure_grpo, True, model, data, work, args, dev, calls)
        else:
            say("grpo_vllm_step_s", missing)
    if "predict" not in args.skip:
        if has_vllm:

            def predict_vllm():
                # vLLM loads weights from disk: write the (trained) thinker and its processor once.
                model_dir = work / "model"
                model.save_pretrained(model_dir)
                processor.save_pretrained(model_dir)
                measure_predict("vllm", str(model_dir), data, work, args, dev, calls)

            section("predict_vllm_clips_per_s", predict_vllm)
        else:
            say("predict_vllm_clips_per_s", missing)
    say("total_wall_s", f"{time.perf_counter() - t_start:.1f}", "s")
    if FAILED:
        say("failed_sections", ",".join(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":  # vLLM's engine may spawn processes: keep the guard
    sys.exit(main())
