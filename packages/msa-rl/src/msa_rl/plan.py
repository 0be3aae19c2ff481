"""Peak memory per GPU of an SFT or GRPO recipe, estimated before anything loads (``msa-thinker plan``).

The parts, each a line of the plan:
- **weights, gradients, optimizer states**: parameters counted on the meta device (``msa_omni.shapes``; accelerate's
  ``calculate_maximum_sizes`` gives the total and the largest layer), split into trainable and frozen the way the
  trainer splits them (towers frozen per the SFT recipe, LoRA adapters only under LoRA). Without ZeRO: trainable
  parameters, their gradients and AdamW's two moments in the trainable dtype (LLaMA-Factory and peft keep trainable
  parameters in float32 unless ZeRO-3 or a float32 model; the GRPO policy trains in its load dtype). With ZeRO-2/3
  DeepSpeed's own estimators (``estimate_zero{2,3}_model_states_mem_needs``), offload read from the JSON;
- **reference model** (GRPO, beta > 0): a second copy of the weights (partitioned under ZeRO-3); none under LoRA,
  where the reference is the policy with its adapters disabled;
- **activations** of one micro-batch: the longest prompt (the length preflight's, else the media budget) plus
  ``max_completion_length`` (GRPO) or the answer (SFT) x ``per_device_train_batch_size``; per token and layer the
  tensors a decoder layer keeps for backward (inputs of its norms and projections, the MLP's three branches; no
  attention matrix, SDPA/flash), only each layer's input with gradient checkpointing (plus one layer recomputed);
  the completion logits in float32; trainable towers add their own layers over their patches/frames;
- **generation**: HF generate's KV cache for a generation batch (``per_device_train_batch_size x
  gradient_accumulation_steps`` rows; generation and backward do not overlap, the larger counts), or the colocated
  vLLM engine's reserved share (``vllm_gpu_memory_utilization`` x GPU memory);
- a fixed CUDA context allowance (GPU only).

The CPU analogue (``device="cpu"``: float32, no CUDA context, no vLLM) is what tests compare with a real tiny step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from msa_core import ConfigError, MediaSettings

GIB = 2**30
CUDA_CONTEXT_BYTES = int(
    1.0 * GIB
)  # CUDA context, kernels and allocator slack: seen at 0.5-1 GiB on A100/H100
Stage = Literal["sft", "grpo"]
# LLaMA-Factory's qwen2_5_omni_thinker composite model (llamafactory/model/model_utils/visual.py).
TOWER_PREFIXES = ("visual.patch_embed", "visual.blocks", "audio_tower")
PROJECTOR_PREFIXES = ("visual.merger", "audio_tower.proj")
LANGUAGE_PREFIXES = ("model.", "lm_head")
# The GRPO recipe's `lora_target: language_model`: every linear layer of the decoder (towers, lm_head untouched).
LANGUAGE_MODEL_LORA = r"model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


# -------------------------------------------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class Setup:
    """What the estimate reads from a recipe (SFT or GRPO), in one shape."""

    stage: Stage
    model: str
    finetuning_type: str  # full | lora | freeze
    lora_rank: int
    lora_target: str
    freeze_towers: bool
    freeze_projectors: bool
    batch: int
    accumulation: int
    completion_tokens: int  # GRPO: max_completion_length; SFT: 0 (the answer is in the example)
    gradient_checkpointing: bool
    deepspeed: str | None
    beta: float
    use_vllm: bool
    vllm_share: float
    media: MediaSettings
    length_limit: int | None  # SFT cutoff_len / GRPO max_prompt_length

    @classmethod
    def of(cls, recipe: Any, stage: Stage) -> Setup:
        if stage == "sft":
            return cls(
                stage="sft",
                model=recipe.model,
                finetuning_type=recipe.finetuning_type,
                lora_rank=recipe.lora_rank,
                lora_target=recipe.lora_target,
                freeze_towers=recipe.freeze_vision_tower,
                freeze_projectors=recipe.freeze_multi_modal_projector,
                batch=recipe.per_device_train_batch_size,
                accumulation=recipe.gradient_accumulation_steps,
                completion_tokens=0,
                gradient_checkpointing=recipe.gradient_checkpointing,
                deepspeed=recipe.deepspeed,
                beta=0.0,
                use_vllm=False,
                vllm_share=0.0,
                media=recipe.media,
                length_limit=recipe.cutoff_len,
            )
        return cls(
            stage="grpo",
            model=recipe.model,
            finetuning_type=recipe.finetuning_type,
            lora_rank=recipe.lora_rank,
            lora_target=recipe.lora_target,
            freeze_towers=False,  # the GRPO policy trains every parameter (or only its adapters)
            freeze_projectors=False,
            batch=recipe.per_device_train_batch_size,
            accumulation=recipe.gradient_accumulation_steps,
            completion_tokens=recipe.max_completion_length,
            gradient_checkpointing=recipe.gradient_checkpointing,
            deepspeed=recipe.deepspeed,
            beta=recipe.beta,
            use_vllm=recipe.use_vllm,
            vllm_share=recipe.vllm_gpu_memory_utilization,
            media=recipe.media,
            length_limit=recipe.max_prompt_length,
        )


def zero_settings(deepspeed: str | None) -> tuple[int, bool, bool]:
    """(ZeRO stage, optimizer offloaded to CPU, parameters offloaded to CPU) of a DeepSpeed JSON (0: none)."""
    if not deepspeed:
        return 0, False, False
    from msa_core import envs

    path = Path(deepspeed)
    if not path.is_file():
        path = envs.workspace_root() / deepspeed
    if not path.is_file():
        raise ConfigError(
            f"deepspeed: {deepspeed} not found (relative paths: current directory or workspace root)"
        )
    zero = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {})

    def on_cpu(key: str) -> bool:
        return (zero.get(key) or {}).get("device", "none") == "cpu"

    return int(zero.get("stage", 0)), on_cpu("offload_optimizer"), on_cpu("offload_param")


# ---------------------------------------------------------------------------------------------- parameter counts
@dataclass(frozen=True)
class ParamCounts:
    total: int  # the thinker's own parameters
    trainable: int  # what the optimizer steps (LoRA: the adapters)
    frozen: int  # base parameters that only run forward
    lora: int  # adapter parameters (0 without LoRA)
    largest_layer: int  # accelerate's largest no-split layer, in parameters (ZeRO-3 gathers one at a time)
    towers_trainable: bool


def lora_targets(model, setup: Setup) -> list[str]:
    """Names of the Linear modules that get adapters, matched by peft's own rule (``check_target_module_exists``)."""
    import torch
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    if setup.stage == "sft":
        # LLaMA-Factory's `all`: every Linear outside lm_head, the projectors and (when frozen) the towers.
        forbidden = ("lm_head", *PROJECTOR_PREFIXES, *(TOWER_PREFIXES if setup.freeze_towers else ()))
        if setup.lora_target == "all":
            wanted = {
                n.split(".")[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and not n.startswith(forbidden)
            }
        else:
            wanted = {t.strip() for t in setup.lora_target.split(",") if t.strip()}
        return [
            n
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in wanted and not n.startswith(forbidden)
        ]
    config = LoraConfig(r=setup.lora_rank, target_modules=grpo_lora_target_modules(setup.lora_target))
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and check_target_module_exists(config, n)
    ]


def grpo_lora_target_modules(target: str) -> str | list[str]:
    """peft's ``target_modules`` for the GRPO recipe's ``lora_target`` (a regex string, or a list of names)."""
    if target == "language_model":
        return LANGUAGE_MODEL_LORA
    if target == "all-linear" or any(c in target for c in "\\()[]*+?|"):
        return target
    return [t.strip() for t in target.split(",") if t.strip()]


def count_params(model, setup: Setup) -> ParamCounts:
    """Trainable / frozen / adapter parameters of the meta model under the recipe's fine-tuning method."""
    from accelerate.utils import calculate_maximum_sizes

    _with_buffers, (largest_bytes, _names) = calculate_maximum_sizes(model)  # accelerate's count adds buffers
    itemsize = next(model.parameters()).element_size()
    total = sum(p.numel() for p in model.parameters())
    if setup.finetuning_type == "lora":
        modules = dict(model.named_modules())
        names = lora_targets(model, setup)
        if not names:
            raise ConfigError(f"lora_target {setup.lora_target!r} matches no linear layer of the thinker")
        lora = sum(setup.lora_rank * (modules[n].in_features + modules[n].out_features) for n in names)
        towers = any(n.startswith(TOWER_PREFIXES) for n in names)
        return ParamCounts(total, lora, total, lora, largest_bytes // itemsize, towers)
    frozen_prefixes: tuple[str, ...] = ()
    if setup.freeze_towers:
        frozen_prefixes += TOWER_PREFIXES
    if setup.freeze_projectors:
        frozen_prefixes += PROJECTOR_PREFIXES
    if (
        setup.finetuning_type == "freeze"
    ):  # LLaMA-Factory's freeze: the last layers of the language model only
        frozen_prefixes = ("",)
    frozen = sum(p.numel() for n, p in model.named_parameters() if n.startswith(frozen_prefixes))
    towers = not setup.freeze_towers and setup.finetuning_type == "full"
    return ParamCounts(total, total - frozen, frozen, 0, largest_bytes // itemsize, towers)


# -------------------------------------------------------------------------------------------------- the plan
@dataclass
class Line:
    name: str
    bytes: int
    note: str


@dataclass
class MemoryPlan:
    """One estimate: its lines, the sum, and whether it fits ``gpu_mem`` (GiB)."""

    setup: Setup
    gpus: int
    gpu_mem_gib: float
    device: str
    params: ParamCounts
    prompt_tokens: int
    prompt_source: str
    lines: list[Line] = field(default_factory=list)
    suggestions: list[tuple[list[str], float, bool]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.bytes for line in self.lines)

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu_mem_gib * GIB

    def line(self, name: str) -> int:
        return next(x.bytes for x in self.lines if x.name == name)

    def render(self) -> str:
        s = self.setup
        zero, off_opt, off_par = zero_settings(s.deepspeed)
        method = {"lora": f"LoRA r={s.lora_rank}", "full": "full", "freeze": "freeze"}[s.finetuning_type]
        p = self.params
        out = [
            f"plan: {s.stage.upper()} of {s.model} ({method}"
            + (
                f", ZeRO-{zero}"
                + (" offload optimizer" if off_opt else "")
                + (" offload params" if off_par else "")
                if zero
                else ", no ZeRO"
            )
            + f") on {self.gpus} x {self.gpu_mem_gib:g} GiB ({self.device})",
            f"parameters: {p.total / 1e9:.2f}e9 total, {p.trainable / 1e9:.3f}e9 trainable"
            + (f" (adapters {p.lora / 1e6:.1f}e6)" if p.lora else "")
            + f", largest layer {p.largest_layer / 1e6:.0f}e6",
            f"sequence: {self.prompt_tokens} prompt tokens ({self.prompt_source})"
            + (f" + {s.completion_tokens} completion" if s.completion_tokens else "")
            + f", micro-batch {s.batch}, gradient checkpointing {'on' if s.gradient_checkpointing else 'off'}",
        ]
        width = max(len(x.name) for x in self.lines)
        for x in self.lines:
            out.append(f"  {x.name:<{width}}  {x.bytes / GIB:8.2f} GiB  {x.note}")
        verdict = "fits" if self.fits else "does NOT fit"
        out.append(
            f"  {'total':<{width}}  {self.total / GIB:8.2f} GiB  per GPU: {verdict} in {self.gpu_mem_gib:g} GiB"
        )
        for sets, gib, ok in self.suggestions:
            flags = " ".join(f"--set {x}" for x in sets)
            out.append(f"  to fit: {flags}  ->  {gib:.2f} GiB{'' if ok else ' (still over)'}")
        return "\n".join(out)


def _layer_activation_bytes(hidden: int, inner: int, kv: int, itemsize: int) -> int:
    """Bytes one decoder layer keeps per token for backward: the inputs of its two norms, q/k/v outputs, attention
    output, o_proj input, the MLP's gate, up, activation and down input (SDPA/flash: no attention matrix)."""
    return itemsize * (6 * hidden + 2 * kv + 4 * inner)


def _activation_bytes(
    config, setup: Setup, params: ParamCounts, prompt, itemsize: int
) -> tuple[int, int, str]:
    """(activations of one micro-batch, logits, note)."""
    t = config.text_config
    kv = t.num_key_value_heads * (getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads)
    tokens = setup.batch * (prompt.total + setup.completion_tokens)
    per_layer = _layer_activation_bytes(t.hidden_size, t.intermediate_size, kv, itemsize)
    if setup.gradient_checkpointing:
        text = t.num_hidden_layers * tokens * t.hidden_size * itemsize + tokens * per_layer
    else:
        text = t.num_hidden_layers * tokens * per_layer
    towers = 0
    if params.towers_trainable:
        v, a = config.vision_config, config.audio_config
        patches = setup.batch * prompt.video * v.spatial_merge_size**2
        frames = setup.batch * prompt.audio * 2  # the audio encoder runs at twice its output rate
        for n_tok, layers, h, i in (
            (patches, v.depth, v.hidden_size, v.intermediate_size),
            (frames, a.encoder_layers, a.d_model, a.encoder_ffn_dim),
        ):
            layer = _layer_activation_bytes(h, i, h, itemsize)
            towers += (
                (layers * n_tok * h * itemsize + n_tok * layer)
                if setup.gradient_checkpointing
                else layers * n_tok * layer
            )
    # Logits: GRPO projects only the completion (msa_rl.grpo_trainer.completion_logits_only), SFT every position;
    # the model's output, its float32 copy and the temperature-scaled (GRPO) or softmax-gradient (SFT) copy.
    positions = setup.completion_tokens if setup.stage == "grpo" else prompt.total
    logits = setup.batch * positions * t.vocab_size * (itemsize + 4 + 4)
    note = f"{tokens} tokens x {t.num_hidden_layers} layers" + (
        " (checkpointed)" if setup.gradient_checkpointing else ""
    )
    if towers:
        note += f"; trainable towers {towers / GIB:.2f} GiB"
    return text + towers, logits, note


def _zero_estimate(
    stage: int, params: ParamCounts, gpus: int, off_opt: bool, off_par: bool
) -> tuple[int, str]:
    """GPU bytes of the trainable model states under ZeRO, from DeepSpeed's own estimators."""
    try:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    except ImportError:
        raise ConfigError(
            "the recipe uses DeepSpeed ZeRO, whose memory estimators come with DeepSpeed: install it "
            "(uv sync --locked --extra deepspeed) or plan with --set deepspeed=null"
        ) from None
    if stage == 3:
        _cpu, gpu, _largest = estimate_zero3_model_states_mem_needs(
            params.trainable, params.largest_layer, gpus, 1, off_opt, off_par, True, 1.5
        )
        return gpu, "DeepSpeed estimate_zero3_model_states_mem_needs (params, grads, optimizer; partitioned)"
    _cpu, gpu = estimate_zero2_model_states_mem_needs(params.trainable, gpus, 1, off_opt, 1.5)
    return (
        gpu,
        f"DeepSpeed estimate_zero2_model_states_mem_needs (ZeRO-{stage}: grads and optimizer partitioned)",
    )


def estimate(
    setup: Setup,
    *,
    gpus: int,
    gpu_mem_gib: float,
    prompt=None,
    prompt_source: str = "",
    device: Literal["gpu", "cpu"] = "gpu",
    model=None,
    config=None,
) -> MemoryPlan:
    """The plan of one setup. ``prompt`` is the longest clip's ``ClipTokens`` (``longest_prompt``); ``config``
    and ``model`` (its meta-device thinker) default to those of ``setup.model``."""
    from msa_omni.shapes import meta_thinker, thinker_config_for

    config = config if config is not None else thinker_config_for(setup.model)
    model = model if model is not None else meta_thinker(config)
    params = count_params(model, setup)
    if prompt is None:
        prompt, prompt_source = media_budget_prompt(setup.media)
    compute = (
        2 if device == "gpu" else 4
    )  # bf16 on a GPU, float32 on a CPU (msa_rl.grpo_config.resolve_dtype)
    zero, off_opt, off_par = zero_settings(setup.deepspeed) if device == "gpu" else (0, False, False)
    # Trainable dtype: LLaMA-Factory upcasts trainable parameters to float32 (not under ZeRO-3); peft upcasts
    # adapters to float32 (autocast_adapter_dtype); the full GRPO policy trains in its load dtype.
    upcast = setup.finetuning_type == "lora" or (setup.stage == "sft" and zero != 3)
    trainable_size = 4 if upcast else compute
    plan = MemoryPlan(setup, gpus, gpu_mem_gib, device, params, prompt.total, prompt_source)
    add = plan.lines.append
    base = params.frozen if setup.finetuning_type == "lora" else params.total - params.trainable
    if zero:
        states, note = _zero_estimate(zero, params, gpus, off_opt, off_par)
        frozen = base * compute // (gpus if zero == 3 else 1)
        if base:
            add(
                Line(
                    "frozen weights",
                    frozen,
                    f"{base / 1e9:.2f}e9 x {compute} B" + (f" / {gpus} GPUs" if zero == 3 else ""),
                )
            )
        add(Line("trainable model states", states, note))
    else:
        n = params.trainable
        if base:
            add(Line("frozen weights", base * compute, f"{base / 1e9:.2f}e9 x {compute} B"))
        add(Line("trainable weights", n * trainable_size, f"{n / 1e9:.3f}e9 x {trainable_size} B"))
        add(Line("gradients", n * trainable_size, f"{n / 1e9:.3f}e9 x {trainable_size} B"))
        add(
            Line(
                "optimizer states",
                2 * n * trainable_size,
                f"AdamW exp_avg + exp_avg_sq, {n / 1e9:.3f}e9 x 2 x {trainable_size} B",
            )
        )
    if setup.beta > 0 and setup.finetuning_type != "lora":
        ref = params.total * compute // (gpus if zero == 3 else 1)
        add(
            Line(
                "reference model",
                ref,
                "a copy of the policy (beta > 0)" + (" partitioned" if zero == 3 else ""),
            )
        )
    elif setup.beta > 0:
        add(Line("reference model", 0, "the policy with its adapters disabled (no copy)"))
    acts, logits, note = _activation_bytes(config, setup, params, prompt, compute)
    add(Line("activations", acts, note))
    add(Line("logits", logits, "completion positions only" if setup.stage == "grpo" else "every position"))
    if setup.stage == "grpo":
        if setup.use_vllm and device == "gpu":
            add(
                Line(
                    "vLLM engine",
                    int(setup.vllm_share * gpu_mem_gib * GIB),
                    f"vllm_gpu_memory_utilization {setup.vllm_share:g} x {gpu_mem_gib:g} GiB",
                )
            )
        else:
            t = config.text_config
            head = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
            rows = setup.batch * setup.accumulation
            kv = (
                rows
                * (prompt.total + setup.completion_tokens)
                * t.num_hidden_layers
                * 2
                * t.num_key_value_heads
                * head
                * compute
            )
            # Generation and backward do not overlap: only the part of the KV cache above the activations counts.
            add(
                Line(
                    "generation KV cache",
                    max(0, kv - acts - logits),
                    f"HF generate, {rows} rows; counted above activations",
                )
            )
    if device == "gpu":
        add(Line("CUDA context", CUDA_CONTEXT_BYTES, "context, kernels, allocator slack"))
    return plan


# --------------------------------------------------------------------------------------------------- prompts
def media_budget_prompt(media: MediaSettings, text_tokens: int = 256):
    """The longest prompt the media settings allow (``max_frames`` frames at ``video_size``, their duration of
    audio), when no clips are at hand; ``text_tokens`` stands for the prompt text."""
    from msa_core.prompt_length import ClipTokens, audio_tokens, video_tokens

    w, h = media.video_size if media.video_size else (448, 448)
    seconds = media.max_frames / media.fps
    video = video_tokens(media.max_frames, w, h, media)
    audio = audio_tokens(int(seconds * 16000)) + 2 if media.audio_in_video else 0
    source = f"media budget: {media.max_frames} frames at {w}x{h}, {seconds:g} s of audio, {text_tokens} text"
    return ClipTokens("budget", video=video, audio=audio, text=text_tokens), source


def longest_prompt(recipe: Any, stage: Stage):
    """The longest clip of the recipe's data, as the length preflight counts it; None when the data or the
    model's processor is not at hand (the caller falls back to the media budget)."""
    from msa_omni.lengths import ClipPrompt, estimate_tokens, load_processor

    if (
        not recipe.data
        or not Path(recipe.data).is_dir()
        or not (Path(recipe.model) / "config.json").is_file()
    ):
        return None
    processor = load_processor(recipe.model)
    if stage == "grpo":
        from msa_core import Prompt

        from msa_rl.grpo import read_training_rows

        rows = read_training_rows(recipe)
        clips = [
            ClipPrompt(r["id"], r["video"], Prompt(r["prompt"][0]["content"], r["prompt"][-1]["content"]))
            for r in rows
        ]
    else:
        from msa_core import Prompt

        from msa_rl.sft_recipe import check_export

        names = [n.strip() for n in recipe.dataset.split(",") if n.strip()]
        summary = check_export(recipe.data, names, use_audio_in_video=recipe.media.audio_in_video)
        clips = [
            ClipPrompt(r.id, r.video, Prompt(system=r.system, user=r.user), r.answer)
            for records in summary.examples.values()
            for r in records
        ]
    counts = estimate_tokens(processor, clips, recipe.media)
    longest = max(counts, key=lambda c: c.total)
    return longest, f"longest of {len(counts)} clips by the length preflight ({longest.clip_id})"


# ----------------------------------------------------------------------------------------------- suggestions
def _knobs(recipe: Any, stage: Stage, gpus: int) -> list[list[str]]:
    """Recipe changes to try, one knob each, in the order a user would reach for them."""
    knobs: list[list[str]] = []
    if recipe.finetuning_type == "full":
        knobs.append(["finetuning_type=lora"])
    if not recipe.gradient_checkpointing:
        knobs.append(["gradient_checkpointing=true"])
    stage_now = zero_settings(recipe.deepspeed)[0]
    if gpus > 1 and stage_now != 3:
        knobs.append(["deepspeed=configs/deepspeed/zero3.json"])
    knobs.append(["deepspeed=configs/deepspeed/zero3-offload.json"])
    if recipe.per_device_train_batch_size > 1:
        half = recipe.per_device_train_batch_size // 2
        if (
            stage == "sft"
            or (half * gpus * recipe.gradient_accumulation_steps * 2) % recipe.num_generations == 0
        ):
            knobs.append(
                [
                    f"per_device_train_batch_size={half}",
                    f"gradient_accumulation_steps={recipe.gradient_accumulation_steps * 2}",
                ]
            )
    if recipe.media.max_frames > 16:
        knobs.append([f"media.max_frames={recipe.media.max_frames // 2}"])
    if stage == "grpo":
        if recipe.use_vllm:
            knobs.append(
                [f"vllm_gpu_memory_utilization={max(0.1, round(recipe.vllm_gpu_memory_utilization / 2, 2))}"]
            )
        if recipe.max_completion_length > 128:
            knobs.append([f"max_completion_length={recipe.max_completion_length // 2}"])
    return [
        k for k in knobs if not (k[0].startswith("deepspeed=") and k[0].split("=", 1)[1] == recipe.deepspeed)
    ]


def _scaled_prompt(prompt, old: MediaSettings, new: MediaSettings):
    """The longest clip's tokens with fewer frames (video tokens scale with the frame count)."""
    if prompt is None or new.max_frames >= old.max_frames:
        return prompt
    return replace(prompt, video=math.ceil(prompt.video * new.max_frames / old.max_frames))


def plan_recipe(
    recipe: Any,
    stage: Stage,
    *,
    gpus: int,
    gpu_mem_gib: float,
    prompt_tokens: int | None = None,
    suggest: bool = True,
) -> MemoryPlan:
    """The plan of a recipe, and, when it does not fit, the recipe changes that would make it fit (one knob at a
    time, then the knobs together in order until it fits)."""
    from msa_omni.shapes import meta_thinker, thinker_config_for

    model = meta_thinker(thinker_config_for(recipe.model))
    if prompt_tokens is not None:
        from msa_core.prompt_length import ClipTokens

        found = (ClipTokens("given", video=0, audio=0, text=prompt_tokens), "--prompt-tokens")
    else:
        found = longest_prompt(recipe, stage)
    prompt, source = found if found else (None, "")

    def run(r) -> MemoryPlan:
        p = _scaled_prompt(prompt, recipe.media, r.media)
        return estimate(
            Setup.of(r, stage),
            gpus=gpus,
            gpu_mem_gib=gpu_mem_gib,
            prompt=p,
            prompt_source=source,
            model=model,
        )

    plan = run(recipe)
    if plan.fits or not suggest:
        return plan
    combined: list[str] = []
    current = recipe
    for knob in _knobs(recipe, stage, gpus):
        try:
            variant = _with(recipe, knob)
            alone = run(variant)
        except (ConfigError, ValueError):
            continue
        plan.suggestions.append((knob, alone.total / GIB, alone.fits))
        if alone.fits:
            continue
        try:
            current = _with(current, knob)
        except (ConfigError, ValueError):
            continue
        combined += knob
        together = run(current)
        if together.fits:
            plan.suggestions.append((combined, together.total / GIB, True))
            break
    return plan


def _with(recipe: Any, sets: list[str]):
    """The recipe with ``--set`` style changes, validated again."""
    from msa_core.recipe import deep_merge, parse_overrides, validate

    data = deep_merge(recipe.model_dump(mode="json"), parse_overrides(sets))
    return validate(type(recipe), data, "plan", sets)


# ------------------------------------------------------------------------------------------- stage detection
def detect_stage(path: Path) -> Stage:
    """``sft`` or ``grpo`` from a recipe's keys (keys only one of the two recipes has)."""
    import yaml

    from msa_rl.grpo_config import GRPORecipe
    from msa_rl.sft_recipe import SFTConfig

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a recipe (a YAML mapping)")
    keys = set(data)
    sft_only = keys & (set(SFTConfig.model_fields) - set(GRPORecipe.model_fields))
    grpo_only = keys & (set(GRPORecipe.model_fields) - set(SFTConfig.model_fields))
    if sft_only and not grpo_only:
        return "sft"
    if grpo_only and not sft_only:
        return "grpo"
    raise ConfigError(f"{path}: cannot tell an SFT from a GRPO recipe by its keys; pass --stage sft|grpo")


def load_stage_recipe(path: Path, stage: Stage, overrides: list[str]):
    if stage == "sft":
        from msa_rl.sft_recipe import load_sft_config

        return load_sft_config(path, overrides)
    from msa_rl.grpo_config import load_grpo_recipe

    return load_grpo_recipe(path, overrides)


# ---------------------------------------------------------------------------------- before a run, on a GPU
def visible_gpus() -> tuple[int, float] | None:
    """(GPUs this run uses, GiB each) when CUDA is there; None on a CPU."""
    import os

    import torch

    if not torch.cuda.is_available():
        return None
    world = int(os.environ.get("WORLD_SIZE", "0") or 0) or torch.cuda.device_count()
    return world, torch.cuda.get_device_properties(0).total_memory / GIB


def sft_gpus() -> tuple[int, float] | None:
    """(GPUs LLaMA-Factory's launcher uses, GiB each): ``NPROC_PER_NODE`` or every visible GPU; None on a CPU."""
    import os

    found = visible_gpus()
    if found is None:
        return None
    return int(os.environ.get("NPROC_PER_NODE", "0") or 0) or found[0], found[1]


def check_fits(
    recipe: Any, stage: Stage, *, force: bool = False, echo=print, gpus_and_mem=None
) -> MemoryPlan | None:
    """Before loading on a GPU: print the plan; refuse with its fixes (ConfigError) when it does not fit, unless
    ``force``. On a CPU nothing is checked (returns None)."""
    found = gpus_and_mem if gpus_and_mem is not None else visible_gpus()
    if found is None:
        return None
    gpus, mem = found
    try:
        plan = plan_recipe(recipe, stage, gpus=gpus, gpu_mem_gib=mem)
    except ConfigError as exc:
        # No shapes for this model (a Hub checkpoint other than the stored public ones): the run is not blocked
        # by a plan that cannot be made; `msa-thinker plan --set model=...` plans it with its base model's shapes.
        echo(f"memory plan skipped: {exc}")
        return None
    echo(plan.render())
    if not plan.fits and not force:
        fixes = "; ".join(
            " ".join(f"--set {s}" for s in sets) + f" ({gib:.1f} GiB)"
            for sets, gib, ok in plan.suggestions
            if ok
        )
        raise ConfigError(
            f"the estimate ({plan.total / GIB:.1f} GiB per GPU) does not fit {mem:.0f} GiB"
            + (f"; to fit: {fixes}" if fixes else "; no single recipe change found that fits")
            + " (--force runs anyway)"
        )
    return plan


__all__ = [
    "GIB",
    "Line",
    "MemoryPlan",
    "ParamCounts",
    "Setup",
    "check_fits",
    "count_params",
    "detect_stage",
    "estimate",
    "load_stage_recipe",
    "longest_prompt",
    "media_budget_prompt",
    "plan_recipe",
    "sft_gpus",
    "zero_settings",
]
