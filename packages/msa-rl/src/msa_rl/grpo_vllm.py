"""vLLM rollouts for HintGRPOTrainer (GPU only, the workspace's ``vllm`` extra; colocate mode).

NOT RUN: written from vLLM 0.31 / TRL 1.16 sources and docs/architecture.md ("vLLM rollouts for GRPO"); no GPU was
available while it was written, and no test covers it. Everything vLLM is imported inside functions.

Why not TRL's own vLLM path: it sends token ids and images only, so video and audio would be dropped, like TRL's HF
path. What differs here:
- vLLM registers Qwen2.5-Omni only as the full ``Qwen2_5OmniModel``: the engine starts from a directory holding a full
  Omni config wrapping our thinker config (+ the processor), with dummy weights, and the trained weights are pushed
  as ``"thinker." + name`` (TRL's colocate sync pushes bare names, which vLLM's Omni loader rejects);
- each prompt goes in as text with only the video placeholder, ``multi_modal_data`` {video frames, (audio, 16 kHz)}
  and ``mm_processor_kwargs`` {use_audio_in_video: true}; the hint (if any) is appended to the text;
- the loss keeps the HF processor's prompt ids; a vLLM prompt of a different length is reported once (it would mean
  the two processors expanded the media differently).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msa_core import ConfigError
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
            "(uv sync --extra vllm), or set use_vllm=false (HF generate)"
        ) from None
    return lambda trainer: OmniVLLMRollout(trainer, recipe)


class OmniVLLMRollout:
    """A colocated vLLM engine per process, generating one completion per (prompt ids, encoded row)."""

    def __init__(self, trainer, recipe):
        import torch
        from trl.trainer.utils import ensure_master_addr_port
        from vllm import LLM

        self.trainer = trainer
        acc = trainer.accelerator
        unwrapped = acc.unwrap_model(trainer.model)
        from msa_omni import write_engine_dir

        engine_dir = write_engine_dir(
            unwrapped, trainer.processing_class, Path(recipe.output_dir) / ENGINE_DIR
        )
        os.environ.setdefault("RANK", str(acc.process_index))
        os.environ.setdefault("LOCAL_RANK", str(acc.local_process_index))
        os.environ.setdefault("WORLD_SIZE", str(acc.num_processes))
        ensure_master_addr_port()
        self.llm = LLM(
            model=str(engine_dir),
            load_format="dummy",  # the real weights are pushed by sync_weights before the first rollout
            dtype="bfloat16" if unwrapped.dtype == torch.bfloat16 else "float32",
            tensor_parallel_size=recipe.vllm_tensor_parallel_size,
            gpu_memory_utilization=recipe.vllm_gpu_memory_utilization,
            max_model_len=recipe.vllm_max_model_length,
            distributed_executor_backend="external_launcher",
            seed=acc.process_index // recipe.vllm_tensor_parallel_size,
            limit_mm_per_prompt={"image": 0, "video": 1, "audio": 1},
            max_num_batched_tokens=8192,
        )
        self.recipe = recipe
        self._warned_length = False
        acc.wait_for_everyone()

    def sync_weights(self) -> None:
        """Push the training weights under vLLM's Omni names (gathered one at a time under ZeRO-3)."""
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        runner_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        for name, param in model.named_parameters():
            with self.trainer._dist.gather_params([param]):
                runner_model.load_weights([(THINKER_PREFIX + name, param.data)])
        self.llm.reset_prefix_cache()

    def generate(self, prompt_ids: list[list[int]], rows: list[Any]) -> tuple[list[list[int]], None]:
        from msa_omni import AUDIO_SAMPLE_RATE
        from vllm import SamplingParams

        tok = self.trainer._tokenizer
        params = SamplingParams(
            n=1,
            temperature=self.trainer.temperature,
            top_p=self.trainer.top_p,
            max_tokens=self.trainer.max_completion_length,
            stop_token_ids=list(self.trainer.eos_token_ids),
            logit_bias={t: -100.0 for t in self.trainer.suppressed_token_ids},
        )
        requests = []
        for ids, row in zip(prompt_ids, rows, strict=True):
            # the hint, if any: whatever follows the row's own prompt ids
            suffix = tok.decode(ids[len(row.prompt_ids) :]) if len(ids) > len(row.prompt_ids) else ""
            mm: dict[str, Any] = {"video": row.media.frames}
            if row.media.audio is not None:
                mm["audio"] = (row.media.audio, AUDIO_SAMPLE_RATE)
            # the effective rate of the sampled frames (vLLM's Omni processor would assume 2 fps)
            kwargs: dict[str, Any] = {"use_audio_in_video": row.media.audio is not None, "fps": row.media.fps}
            requests.append(
                {"prompt": row.text + suffix, "multi_modal_data": mm, "mm_processor_kwargs": kwargs}
            )
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        for ids, out in zip(prompt_ids, outputs, strict=True):
            if len(out.prompt_token_ids) != len(ids) and not self._warned_length:
                logger.warning(
                    "vLLM prompt has %d tokens, the HF processor's %d: media expanded differently",
                    len(out.prompt_token_ids),
                    len(ids),
                )
                self._warned_length = True
        return [list(o.outputs[0].token_ids) for o in outputs], None
