"""The thinker -> vLLM checkpoint conversion.

vLLM registers the Omni families only as their full models (it reads ``hf_config.thinker_config``; the
architecture is the family's ``vllm_architecture``) and expects weights named ``thinker.*``; our checkpoints are
thinker-only. ``vllm_model_dir`` rewrites a trained thinker
for prediction; ``write_engine_dir`` writes the config-only directory a colocated GRPO engine starts from (its
weights are pushed from the trainer, under ``THINKER_PREFIX``).
"""

from __future__ import annotations

import json
from pathlib import Path

from msa_core import DataError

from msa_omni.families import family_of_config

THINKER_PREFIX = "thinker."


def full_omni_config(thinker_config: dict) -> dict:
    """The full Omni config.json vLLM loads around a thinker config (its family's), speech talker switched off."""
    return family_of_config(thinker_config).vllm_config(thinker_config)


def vllm_model_dir(thinker_dir: Path, out_dir: Path) -> Path:
    """A directory vLLM can load for a thinker-only checkpoint (a full Omni checkpoint is returned unchanged).

    Writes the wrapping config, re-saves the weights under the ``thinker.`` prefix and links the processor files.
    """
    if not thinker_dir.exists():  # a hub id: the full Omni model, which vLLM loads as it is
        return thinker_dir
    config = json.loads((thinker_dir / "config.json").read_text())
    if "thinker_config" in config:
        return thinker_dir
    from safetensors.torch import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(full_omni_config(config), indent=2))
    shards = sorted(thinker_dir.glob("*.safetensors"))
    if not shards:
        raise DataError("no *.safetensors weights found", file=thinker_dir)
    for shard in shards:
        tensors = load_file(str(shard))
        save_file(
            {THINKER_PREFIX + k: v for k, v in tensors.items()},
            str(out_dir / shard.name),
            metadata={"format": "pt"},
        )
    index = thinker_dir / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {THINKER_PREFIX + k: v for k, v in data["weight_map"].items()}
        (out_dir / index.name).write_text(json.dumps(data))
    for f in thinker_dir.iterdir():
        if f.suffix in (".json", ".jinja", ".txt", ".model") and f.name not in ("config.json", index.name):
            target = out_dir / f.name
            if not target.exists():
                target.symlink_to(f.resolve())
    return out_dir


def write_engine_dir(thinker, processor, out_dir: str | Path) -> Path:
    """A model directory a colocated vLLM engine starts from: the full Omni config around the live thinker's
    config, plus the processor files (weights: ``load_format="dummy"``, then pushed from the trainer)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(full_omni_config(thinker.config.to_dict()), indent=2))
    processor.save_pretrained(out)
    return out
