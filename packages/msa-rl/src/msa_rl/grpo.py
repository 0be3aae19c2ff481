"""`msa-rl grpo` as a function: read the training clips, encode them with their media, build and run the trainer.

Training clips come from an MMSA directory (``label.csv`` + ``Raw/``, prompt built by msa-core) or from a cot-distill
export (the prompt the SFT stage saw, with the true score). Each clip is decoded and encoded by ``msa_omni``
(frames + audio-in-video), the same path prediction uses, so RL, SFT and evaluation see the same tokens.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from msa_core import (
    ConfigError,
    DataError,
    DCOutput,
    DCParseError,
    MediaSettings,
    Prompt,
    artifacts,
    build_prompt,
    get_spec,
    read_mmsa,
)
from msa_core.outdir import check_writable_dir, claim_output_dir

from msa_rl.grpo_config import GRPORecipe, is_main_process, resolve_dtype, to_trl_args, write_resolved

LORA_ADAPTER_DIR = "lora-adapter"  # the trained adapter, next to the merged model (as msa-rl sft writes it)


# ------------------------------------------------------------------------------------------------------------ data
def training_row(
    clip_id: str, video: str | Path, prompt: Prompt, label: float, dataset: str
) -> dict[str, Any]:
    """One dataset row: TRL's conversational ``prompt`` (text only; media are attached per row by the trainer)."""
    return {
        "id": clip_id,
        "prompt": [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
        "video": str(video),
        "label": float(label),
        "dataset": dataset,
    }


def read_training_rows(recipe: GRPORecipe) -> list[dict[str, Any]]:
    """The clips of ``recipe.data`` (MMSA directory or cot-distill export) as training rows."""
    root = Path(recipe.data)
    if not root.is_dir():
        raise DataError("training data directory not found", file=root)
    fmt = recipe.data_format
    if fmt == "auto":
        fmt = "export" if artifacts.is_export(root) else "mmsa"
    if fmt == "export":
        rows = read_export(root, recipe.split, recipe.dataset, audio_in_video=recipe.media.audio_in_video)
    else:
        rows = read_mmsa_rows(recipe)
    if recipe.limit is not None:
        rows = rows[: recipe.limit]
    if not rows:
        raise DataError(f"no {recipe.split} clips found", file=root)
    return rows


def check_prompt_lengths(
    recipe: GRPORecipe, rows: list[dict[str, Any]], *, processor=None
) -> list[dict[str, Any]]:
    """Preflight: each clip's prompt tokens from its metadata; prints the distribution, then refuses clips over
    ``max_prompt_length`` (a DataError naming the longest) or, with ``on_long_clip=drop``, leaves them out."""
    from msa_omni.lengths import ClipPrompt, load_processor, preflight

    processor = processor or load_processor(recipe.model)
    clips = [
        ClipPrompt(
            r["id"], r["video"], Prompt(system=r["prompt"][0]["content"], user=r["prompt"][-1]["content"])
        )
        for r in rows
    ]
    dropped = preflight(
        processor,
        clips,
        recipe.media,
        limit=recipe.max_prompt_length,
        field="max_prompt_length",
        on_long_clip=recipe.on_long_clip,
        echo=lambda line: print(line, flush=True) if is_main_process() else None,
        vllm=recipe.use_vllm,
    )
    gone = {c.clip_id for c in dropped}
    return [r for r in rows if r["id"] not in gone]


def read_mmsa_rows(recipe: GRPORecipe) -> list[dict[str, Any]]:
    data = read_mmsa(recipe.data, recipe.dataset, split=recipe.split)
    spec = data.spec
    return [
        training_row(c.id, c.video_path, build_prompt(c.text, spec), c.label, spec.name) for c in data.clips
    ]


def read_export(root: Path, split: str, dataset: str, *, audio_in_video: bool = True) -> list[dict[str, Any]]:
    """Rows of a cot-distill export's LLaMA-Factory split, read as SFT reads it (``artifacts.read_lf_dataset``).

    The label is the score of the accepted answer, which export set to the true score.
    """
    manifest = artifacts.read_export_manifest(root)
    info = artifacts.read_dataset_info(root)
    names = manifest.get("datasets") or []
    spec = get_spec(names[0] if len(names) == 1 else dataset)
    entry = (manifest.get("llamafactory") or {}).get(split)
    if entry is not None:
        key = next((k for k, v in info.items() if v.get("file_name") == entry["file"]), None)
    elif len(info) == 1:
        key = next(iter(info))
    else:
        key = None
    if key is None:
        raise DataError(
            f"cannot tell which {artifacts.LF_DATASET_INFO} entry is the {split} split",
            file=root / artifacts.LF_DATASET_INFO,
        )
    file = root / info[key]["file_name"]
    rows = []
    for n, rec in enumerate(artifacts.read_lf_dataset(root, key, audio_in_video=audio_in_video), start=1):
        try:
            label = DCOutput.parse_strict(rec.answer, spec).score
        except DCParseError as exc:
            raise DataError(
                f"assistant answer is not a strict DC answer ({exc})", file=file, line=n
            ) from None
        prompt = Prompt(system=rec.system, user=rec.user)
        rows.append(training_row(rec.id, rec.video, prompt, label, spec.name))
    return rows


# ---------------------------------------------------------------------------------------------------------- media
class ClipEncoder:
    """Row -> EncodedPrompt (prompt ids + per-row processor outputs), through ``msa_omni``; LRU-cached per clip
    and prompt, since a clip's G rows and later epochs ask again."""

    def __init__(self, processor, media: MediaSettings | None = None, *, cache_size: int = 64):
        self.processor = processor
        self.media = media or MediaSettings()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, row: dict[str, Any]):
        import torch
        from msa_omni import clip_media, encode_prompt, render_prompt

        from msa_rl.grpo_trainer import EncodedPrompt

        messages = row["prompt"]
        prompt = Prompt(system=messages[0]["content"], user=messages[-1]["content"])
        key = json.dumps([row["video"], prompt.system, prompt.user])
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        media = clip_media(row["video"], self.media)
        batch = encode_prompt(self.processor, prompt, media, settings=self.media)
        mm = {}
        for name, value in batch.items():
            if name in ("input_ids", "attention_mask"):
                continue
            mm[name] = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        enc = EncodedPrompt(
            prompt_ids=batch["input_ids"][0].tolist(),
            mm=mm,
            text=render_prompt(self.processor, prompt, with_video=True),
            media=media,
            prompt=prompt,
            clip_id=str(row.get("id", "")),
        )
        self._cache[key] = enc
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return enc


# -------------------------------------------------------------------------------------------------------- trainer
def resolve_resume(recipe: GRPORecipe) -> str | None:
    """The checkpoint to continue from (``resume``: auto, always, never, or a path), or None for a fresh run."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(recipe.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if recipe.resume == "never":
        return None
    if recipe.resume == "auto":
        return last
    if recipe.resume == "always":
        if last is None:
            raise ConfigError(f"--resume: no checkpoint-* directory in {out}")
        return last
    path = Path(recipe.resume)
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"resume: {path} is not a checkpoint directory (no trainer_state.json)")
    return str(path)


def check_deepspeed(config: str) -> None:
    """The recipe's DeepSpeed JSON exists and DeepSpeed is installed (the `deepspeed` extra), before any model loads."""
    import importlib.util

    if not Path(config).is_file():
        raise ConfigError(f"deepspeed: {config} not found (paths are relative to the directory you run from)")
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            f"deepspeed: {config} needs DeepSpeed, which is not installed here: `uv sync --locked --extra deepspeed` "
            "(or --set deepspeed=null for one GPU / CPU)"
        )


def _join_deepspeed_comm() -> None:
    """DeepSpeed without GPUs (CPU tests under ``accelerate launch --multi_gpu``): accelerate's CPU path opens a
    plain torch.distributed (gloo) group that ``deepspeed.comm`` does not know, so ZeRO would count one process and
    refuse the batch sizes. Hand it that group. With GPUs accelerate has already initialised deepspeed.comm."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return
    import deepspeed
    import deepspeed.comm as ds_comm

    if not ds_comm.is_initialized():
        deepspeed.init_distributed(dist_backend=tdist.get_backend())


def media_json_callback(media: MediaSettings):
    """A TrainerCallback writing the run's ``media.json`` into every ``checkpoint-N``: msa-eval predict refuses a
    model directory without one (it would not know which frames the model was trained on)."""
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class MediaJsonCallback(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                media.write(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")

    return MediaJsonCallback()


def lora_config(recipe: GRPORecipe):
    """peft's LoraConfig for ``finetuning_type: lora`` (None for full fine-tuning); TRL wraps the policy with it
    and takes the adapter-disabled policy as the reference model."""
    if recipe.finetuning_type != "lora":
        return None
    from peft import LoraConfig

    from msa_rl.plan import grpo_lora_target_modules

    return LoraConfig(
        r=recipe.lora_rank,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=grpo_lora_target_modules(recipe.lora_target),
        task_type="CAUSAL_LM",
    )


def build_trainer(
    recipe: GRPORecipe,
    *,
    rows: list[dict[str, Any]] | None = None,
    trainer_cls: type | None = None,
    callbacks: list | None = None,
    **trl_overrides: Any,
):
    """The HintGRPOTrainer of a recipe (model loaded after the TRL args, so DeepSpeed ZeRO-3 init applies)."""
    from datasets import Dataset
    from msa_omni import load_thinker

    from msa_rl.grpo_trainer import ROLLOUTS_DIR, HintGRPOTrainer, HintSettings
    from msa_rl.rewards import reward_funcs
    from msa_rl.rollout_correction import RolloutCorrection

    recipe.require_inputs()
    rows = rows if rows is not None else read_training_rows(recipe)
    if recipe.deepspeed:
        check_deepspeed(recipe.deepspeed)
    args = to_trl_args(recipe, **trl_overrides)
    if args.deepspeed:
        _join_deepspeed_comm()
    model, processor = load_thinker(recipe.model, dtype=resolve_dtype(recipe))
    peft_config = lora_config(recipe)
    if peft_config is not None:
        from trl.trainer.utils import disable_dropout_in_model

        # TRL's disable_dropout would also silence the adapters' dropout: switch off the thinker's own dropout
        # here (as disable_dropout does for full fine-tuning) and leave lora_dropout to act.
        disable_dropout_in_model(model)
        args.disable_dropout = False
    encoder = ClipEncoder(processor, recipe.media)
    factory = None
    if recipe.use_vllm:
        from msa_rl.grpo_vllm import vllm_rollout_factory

        factory = vllm_rollout_factory(recipe)
    cls = trainer_cls or HintGRPOTrainer
    return cls(
        model=model,
        reward_funcs=list(reward_funcs(recipe.reward_coupling.as_coupling())),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        row_encoder=encoder,
        hint_settings=HintSettings(
            strategy=recipe.hard_group_strategy,
            max_resamples=recipe.max_resamples,
            hard_rule=recipe.hard_rule,
            hard_threshold=recipe.hard_threshold,
        ),
        vllm_rollout_factory=factory,
        peft_config=peft_config,
        rollout_correction=RolloutCorrection(recipe.rollout_correction, recipe.rollout_correction_cap),
        rollout_log=Path(recipe.output_dir) / ROLLOUTS_DIR if recipe.rollout_log else None,
        callbacks=[*(callbacks or []), media_json_callback(recipe.media)],
    )


def run_grpo(
    recipe: GRPORecipe, *, callbacks: list | None = None, force: bool = False, **trl_overrides: Any
) -> Path:
    """Train, resuming when asked or when checkpoints exist; the final model + processor land in output_dir.

    On a GPU the memory plan (``msa_rl.plan``) is printed first, and a recipe that does not fit is refused with
    the changes that would make it fit, unless ``force``."""
    from msa_omni import check_thinker_dir

    from msa_rl.plan import check_fits

    recipe.require_inputs()
    check_writable_dir(recipe.output_dir, "output_dir")  # before any work (no folder is left behind)
    # Every rank decides (all refuse together); the main one prints.
    check_fits(recipe, "grpo", force=force, echo=print if is_main_process() else lambda _line: None)
    check_thinker_dir(recipe.model)  # the same "not a Hugging Face checkpoint" check as SFT's
    rows = read_training_rows(recipe)  # bad data fails here, before anything is written
    with claim_output_dir(recipe.output_dir, "output_dir"):  # one job per folder
        return _run_grpo(recipe, rows, callbacks, trl_overrides)


def _run_grpo(
    recipe: GRPORecipe, rows: list[dict[str, Any]], callbacks: list | None, trl_overrides: dict[str, Any]
) -> Path:
    from msa_rl.grpo_trainer import METRICS_FILE, truncate_metrics

    rows = check_prompt_lengths(recipe, rows)
    out = Path(recipe.output_dir)
    checkpoint = resolve_resume(recipe)
    if is_main_process():  # one writer per run
        write_resolved(recipe, out)
    trainer = build_trainer(recipe, rows=rows, callbacks=callbacks, **trl_overrides)
    if checkpoint is None and trainer.accelerator.is_main_process:
        truncate_metrics(out / METRICS_FILE, 0)  # a fresh run starts its curve afresh
    trainer.train(resume_from_checkpoint=checkpoint)
    if recipe.finetuning_type == "lora":
        save_lora(trainer, out)
    else:
        trainer.save_model(str(out))
    end_processes(trainer)
    return out


def save_lora(trainer, out: Path) -> None:
    """LoRA output: the adapter in ``out/lora-adapter`` and the merged thinker (+ processor) in ``out``, which
    ``msa-eval predict`` and a later stage load as any full checkpoint."""
    adapter_dir = out / LORA_ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    if not trainer.accelerator.is_main_process:
        return
    peft_model = trainer.accelerator.unwrap_model(trainer.model)
    merged = peft_model.merge_and_unload()  # the run is over: merging in place costs no copy
    merged.save_pretrained(str(out))
    trainer.processing_class.save_pretrained(str(out))


def end_processes(trainer) -> None:
    """Under ``accelerate launch``: wait for every process, then destroy the process groups, while the interpreter is
    whole. Left to interpreter exit, gloo's worker threads (and, under ZeRO-3, the asynchronous all-gathers they
    still hold) are torn down unjoined, and a process can abort after its work is done: "terminate called without
    an active exception" (SIGABRT; pytorch/pytorch#65513, #190489). A no-op in a single process, whose only group
    (if any) is the one vLLM's in-process engine made for itself."""
    import torch.distributed as dist

    if trainer.accelerator.num_processes < 2 or not dist.is_initialized():
        return
    trainer.accelerator.wait_for_everyone()  # no process tears down a group another still uses (save, gather)
    if getattr(trainer, "is_deepspeed_enabled", False):
        import deepspeed.comm as ds_comm

        if ds_comm.is_initialized():  # also drops DeepSpeed's own references to the groups
            ds_comm.destroy_process_group()
    trainer.accelerator.end_training()  # trackers, then torch.distributed.destroy_process_group()
