"""Runs INSIDE the SFT environment (transformers 5.6, LLaMA-Factory 0.9.5); test_sft.py starts it once.

    .venvs/sft/bin/python tests/msa_rl/sft_env_probe.py MODEL EXPORT_DIR BATCH.pt OUT.json [TEMPLATE [PATCH]]

TEMPLATE is the model family's LLaMA-Factory template (qwen2_omni by default); PATCH the family's LLaMA-Factory fix
module, applied first as ``msa-rl sft`` applies it (msa_omni.families).

Writes OUT.json with:
- ``lf``: LLaMA-Factory's own tokenization (qwen2_omni template, system column, use_audio_in_video) of the export's
  first train record: input_ids and labels;
- ``omni``: msa_omni under transformers 5.6 for the same record: input_ids, labels, audio/video token counts,
  and that forward + backward + generate ran;
- ``handoff_loss``: MODEL's loss on the batch saved by the default environment (BATCH.pt);
- ``frames``: for the record's clip, sampled at 2 fps with 16 and with 2 frames at most (thinned), the frame
  count, per-frame mean grey level and fps that LLaMA-Factory's qwen2_omni plugin passes on, and the same from
  msa_omni.clip_media: SFT and the other stages must see the same frames at the same effective rate.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def lf_tokenize(model: str, export: Path, template: str = "qwen2_omni") -> dict:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args, _, _ = get_train_args(
            dict(
                stage="sft",
                do_train=True,
                model_name_or_path=model,
                template=template,
                dataset="msa_cot",
                dataset_dir=str(export),
                media_dir=str(export),
                use_audio_in_video=True,
                video_fps=2.0,
                video_maxlen=16,
                video_max_pixels=3136,
                video_min_pixels=784,
                cutoff_len=1024,
                output_dir=out,
                overwrite_cache=True,
                use_cpu=True,
                report_to="none",
                finetuning_type="full",
            )
        )
        tokenizer_module = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
        dataset = get_dataset(template, model_args, data_args, training_args, "sft", **tokenizer_module)
        row = dataset["train_dataset"][0]
    return {"input_ids": list(row["input_ids"]), "labels": list(row["labels"])}


def omni_example(model_dir: str, export: Path) -> dict:
    import torch
    from msa_core import Prompt
    from msa_omni import io as omni

    record = json.loads((export / "msa_cot.json").read_text())[0]
    user = record["messages"][0]["content"].removeprefix("<video><audio>")
    prompt = Prompt(system=record["system"], user=user)
    model, processor = omni.load_thinker(model_dir)
    media = omni.clip_media(export / record["videos"][0])
    batch = omni.encode_example(processor, prompt, media, record["messages"][1]["content"])
    out = model(**omni.model_forward_kwargs(batch))
    out.loss.backward()
    prompt_batch = omni.encode_prompt(processor, prompt, media)
    with torch.no_grad():
        generated = model.generate(
            **omni.model_forward_kwargs(prompt_batch), max_new_tokens=4, min_new_tokens=4, do_sample=False
        )
    return {
        "input_ids": batch["input_ids"][0].tolist(),
        "labels": batch["labels"][0].tolist(),
        "audio_tokens": omni.count_tokens(processor, batch, "audio"),
        "video_tokens": omni.count_tokens(processor, batch, "video"),
        "loss": out.loss.item(),
        "generated_new_tokens": int(generated.shape[1] - prompt_batch["input_ids"].shape[1]),
        "vision_grad": float(model.visual.patch_embed.proj.weight.grad.abs().sum()),
    }


def frame_sampling(export: Path) -> dict:
    from llamafactory.data.mm_plugin import get_mm_plugin
    from msa_core import MediaSettings
    from msa_omni import io as omni

    record = json.loads((export / "msa_cot.json").read_text())[0]
    video = str(export / record["videos"][0])
    plugin = get_mm_plugin("qwen2_omni", "<|IMAGE|>", "<|VIDEO|>", "<|AUDIO|>")
    out = {}
    for max_frames in (16, 2):
        lf = plugin._regularize_videos(
            [video], video_fps=2.0, video_maxlen=max_frames, image_max_pixels=3136, image_min_pixels=784
        )
        ours = omni.clip_media(video, MediaSettings(fps=2.0, max_frames=max_frames))
        out[str(max_frames)] = {
            "lf_fps": lf["fps_per_video"][0],
            "lf_grey": [float(sum(f.convert("L").getdata()) / (f.width * f.height)) for f in lf["videos"][0]],
            "ours_fps": ours.fps,
            "ours_grey": [float(f.mean(axis=2).mean()) for f in ours.frames],
        }
    return out


def handoff_loss(model_dir: str, batch_file: Path) -> float:
    import torch
    from msa_omni import io as omni

    model, _ = omni.load_thinker(model_dir)
    model.eval()
    batch = torch.load(batch_file)
    with torch.no_grad():
        return model(**omni.model_forward_kwargs(batch)).loss.item()


def main() -> None:
    import transformers

    model, export, batch_file, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    template = sys.argv[5] if len(sys.argv) > 5 else "qwen2_omni"
    unpatched = None
    if len(sys.argv) > 6:  # LLaMA-Factory as it is, then with the family's fix (what msa-rl sft runs)
        import importlib

        unpatched = lf_tokenize(model, export, template)
        importlib.import_module(sys.argv[6]).apply()
    result = {
        "transformers": transformers.__version__,
        "lf_unpatched": unpatched,
        "lf": lf_tokenize(model, export, template),
        "omni": omni_example(model, export),
        "handoff_loss": handoff_loss(model, batch_file),
        "frames": frame_sampling(export),
    }
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
