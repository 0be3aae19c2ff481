"""Greedy answers of a Qwen2.5-Omni thinker for (prompt, clip) pairs: transformers ``generate`` or vLLM.

Both backends see the same prompt (``msa_omni.io.render_prompt``) and the same media (``ClipMedia``: frames at the
effective rate + the clip's 16 kHz audio, interleaved into the video turn). vLLM is imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msa_core import ConfigError, Prompt
from msa_core.media_settings import MediaSettings

from msa_omni.io import AUDIO_SAMPLE_RATE, ClipMedia

Backend = Literal["hf", "vllm"]
BACKENDS: tuple[Backend, ...] = ("hf", "vllm")


@dataclass(frozen=True)
class GenerationSettings:
    """What a generator loads and how it decodes."""

    model: str
    max_new_tokens: int = 256
    dtype: str = "auto"
    """auto: bfloat16 on a GPU, float32 on a CPU (bf16 there is slow and inexact)."""
    device: str = "auto"
    media: MediaSettings = field(default_factory=MediaSettings)


class Generator:
    """Turns (prompt, clip media) pairs into raw answers. Subclasses: HFGenerator, VLLMGenerator."""

    def generate(self, prompts: Sequence[Prompt], media: Sequence[ClipMedia | None]) -> list[str]:
        raise NotImplementedError


# -------------------------------------------------------------------------------------------------------- HF
def left_pad_collate(rows: list[Any], pad_id: int) -> dict[str, Any]:
    """Merge per-row processor outputs into one left-padded batch.

    Text tensors are left-padded (generation continues at the right edge). Media tensors are concatenated in
    row order: ``pixel_values_videos`` are flattened patches indexed through ``video_grid_thw`` (one entry per
    video); Whisper features are right-padded to the longest row with their mask.
    """
    import torch
    import torch.nn.functional as F

    out: dict[str, Any] = {}
    width = max(int(r["input_ids"].shape[-1]) for r in rows)
    ids, mask = [], []
    for r in rows:
        n = int(r["input_ids"].shape[-1])
        ids.append(F.pad(r["input_ids"].reshape(1, n), (width - n, 0), value=pad_id))
        am = r.get("attention_mask")
        am = torch.ones(1, n, dtype=torch.long) if am is None else am.reshape(1, n)
        mask.append(F.pad(am, (width - n, 0), value=0))
    out["input_ids"], out["attention_mask"] = torch.cat(ids), torch.cat(mask)
    for key in rows[0]:
        if key in ("input_ids", "attention_mask"):
            continue
        vals = [r[key] for r in rows]
        if not isinstance(vals[0], torch.Tensor):
            out[key] = [v for val in vals for v in (val if isinstance(val, list | tuple) else [val])]
            continue
        if key in ("input_features", "feature_attention_mask"):
            n = max(v.shape[-1] for v in vals)
            vals = [F.pad(v, (0, n - v.shape[-1])) for v in vals]
        out[key] = torch.cat(vals)
    return out


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":  # bf16 on a GPU as in training; fp32 on a CPU (bf16 there is slow and inexact)
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


class HFGenerator(Generator):
    """transformers ``generate``: greedy, left-padded batches, multimodal special tokens suppressed."""

    def __init__(self, settings: GenerationSettings):
        import torch

        from msa_omni.io import load_thinker, media_token_ids

        self.settings = settings
        device, dtype = resolve_device_dtype(settings.device, settings.dtype)
        self.device = torch.device(device)
        self.model, self.processor = load_thinker(settings.model, dtype=dtype)
        self.model.to(self.device).eval()
        tok = self.processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.suppress = media_token_ids(self.model.config)

    def generate(self, prompts: Sequence[Prompt], media: Sequence[ClipMedia | None]) -> list[str]:
        import torch

        from msa_omni.io import encode_prompt, model_forward_kwargs

        rows = [
            encode_prompt(self.processor, p, m, settings=self.settings.media)
            for p, m in zip(prompts, media, strict=True)
        ]
        batch = left_pad_collate([dict(r) for r in rows], self.pad_id)
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for key in ("pixel_values_videos", "input_features"):
            if batch.get(key) is not None and batch[key].is_floating_point():
                batch[key] = batch[key].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model.generate(
                **model_forward_kwargs(batch),
                max_new_tokens=self.settings.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                suppress_tokens=self.suppress or None,
                pad_token_id=self.pad_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        return self.processor.batch_decode(new, skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------------ vLLM
def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:  # not part of the default environment
        raise ConfigError(
            "the vllm backend needs vLLM: on a GPU machine run `uv sync --locked --extra vllm`, "
            "or use `--backend hf`"
        ) from exc
    return vllm


class VLLMGenerator(Generator):
    """vLLM offline engine: the thinker, video frames + the clip's audio track, audio-in-video."""

    def __init__(self, settings: GenerationSettings, work_dir: Path):
        vllm = import_vllm()
        from transformers import AutoProcessor

        from msa_omni.vllm_checkpoint import vllm_model_dir

        self.settings = settings
        model_dir = vllm_model_dir(Path(settings.model), work_dir / ".vllm-model")
        self.processor = AutoProcessor.from_pretrained(settings.model)
        _, dtype = resolve_device_dtype(settings.device, settings.dtype)
        self.llm = vllm.LLM(
            model=str(model_dir),
            dtype=dtype,
            limit_mm_per_prompt={"image": 0, "video": 1, "audio": 1},
            max_model_len=8192,
        )
        self.params = vllm.SamplingParams(temperature=0.0, max_tokens=settings.max_new_tokens)

    def generate(self, prompts: Sequence[Prompt], media: Sequence[ClipMedia | None]) -> list[str]:
        from msa_omni.io import render_prompt

        requests = []
        for prompt, m in zip(prompts, media, strict=True):
            # Audio in the video: only the video placeholder goes into the prompt; vLLM interleaves the audio.
            text = render_prompt(self.processor, prompt, with_video=m is not None)
            request: dict[str, Any] = {"prompt": text}
            if m is not None:
                mm: dict[str, Any] = {"video": m.frames}
                if m.audio is not None:
                    mm["audio"] = (m.audio, AUDIO_SAMPLE_RATE)
                request["multi_modal_data"] = mm
                request["mm_processor_kwargs"] = {"use_audio_in_video": m.audio is not None, "fps": m.fps}
            requests.append(request)
        outputs = self.llm.generate(requests, self.params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


def make_generator(backend: Backend, settings: GenerationSettings, work_dir: Path) -> Generator:
    if backend == "hf":
        return HFGenerator(settings)
    if backend == "vllm":
        return VLLMGenerator(settings, work_dir)
    raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
