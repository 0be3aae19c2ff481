"""The one LoRA SFT run of the test session (LLaMA-Factory train + `llamafactory-cli export` merge on the tiny
thinker), shared by the SFT tests (merge, frozen towers, predict) and the LoRA GRPO tests (their policy).
Built once per session and cached here, like grpo_helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msa_core import DCOutput, get_spec, read_mmsa

ROOT = Path(__file__).resolve().parents[2]
_CACHE: dict[str, object] = {}
# The one-GPU recipe itself, scaled to the tiny thinker on a CPU (media as configs/demo/sft.yaml).
LORA_RECIPE = ROOT / "configs/sft/qwen2.5-omni-7b-sims-lora.yaml"
TINY_SETS = (
    "media.fps=2.0",
    "media.max_frames=16",
    "media.video_size=[56, 56]",
    "media.min_pixels=784",
    "cutoff_len=1024",
    "device=cpu",
    "precision=fp32",
    "gradient_checkpointing=false",
    "max_steps=4",
    "per_device_train_batch_size=3",
    "gradient_accumulation_steps=1",
    "learning_rate=1.0e-2",
    "lr_scheduler_type=constant",
    "warmup_ratio=0",
    "logging_steps=1",
    "save_strategy='no'",
    "preprocessing_num_workers=null",
    "dataloader_num_workers=0",
    "lora_dropout=0",
)


def write_lf_export(synthetic_sims_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cot-distill LLaMA-Factory export of the synthetic clips, answers rendered from the true labels."""
    from cot_distill.export import export

    spec = get_spec("sims")
    gen = tmp_path_factory.mktemp("distill-out")
    with (gen / "accepted.jsonl").open("w") as fh:
        for clip in read_mmsa(synthetic_sims_dir, spec).clips:
            polarity = spec.polarity_of(clip.label)
            think = f"The transcript and the voice sound {polarity}, and the face agrees."
            answer = DCOutput(polarity=polarity, think=think, score=clip.label).render()
            row = dict(
                video_id=clip.video_id,
                clip_id=clip.clip_id,
                dataset="sims",
                split=clip.mode,
                text=clip.text,
                label=clip.label,
                video_path=str(clip.video_path),
                answer=answer,
            )
            fh.write(json.dumps(row) + "\n")
    return export(gen, tmp_path_factory.mktemp("lf-export") / "export", formats=("llamafactory",)).out_dir


def lf_export_of(synthetic_sims_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "export" not in _CACHE:
        _CACHE["export"] = write_lf_export(synthetic_sims_dir, tmp_path_factory)
    return _CACHE["export"]  # type: ignore[return-value]


def lora_sft(tiny_model_dir: Path, synthetic_sims_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(SFTResult, streamed lines) of the LoRA recipe on the tiny thinker: adapter in output_dir/lora-adapter,
    merged thinker + processor + media.json in output_dir."""
    if "lora_sft" not in _CACHE:
        from msa_rl.sft import load_sft_config, prepare, run

        export = lf_export_of(synthetic_sims_dir, tmp_path_factory)
        out = tmp_path_factory.mktemp("lora-sft") / "run"
        sets = [f"model={tiny_model_dir}", f"data={export}", f"output_dir={out}", *TINY_SETS]
        lines: list[str] = []
        result = run(prepare(load_sft_config(LORA_RECIPE, sets)), echo=lines.append)
        _CACHE["lora_sft"] = (result, lines)
    return _CACHE["lora_sft"]


@pytest.fixture(scope="session")
def lora_sft_run(tiny_model_dir: Path, synthetic_sims_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return lora_sft(tiny_model_dir, synthetic_sims_dir, tmp_path_factory)
