"""Thinker shapes without weights: the public Qwen2.5-Omni configs as data, and a model built on the meta device.

The classes come from the family registry (``msa_omni.families``): each stored shape file names its family.

``public_configs/*.json`` hold the shapes of the public checkpoints' ``thinker_config`` (written from their
``config.json``; nothing is downloaded here). The memory planner and ``bench/gpu_smoke.py`` read them to count
parameters of a Hub model that is not on disk; a local checkpoint is read from its own ``config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msa_core import ConfigError

PUBLIC_DIR = Path(__file__).with_name("public_configs")
# Hub id -> its shapes file; the short names are what bench/gpu_smoke.py --model takes.
PUBLIC_MODELS = {
    "Qwen/Qwen2.5-Omni-7B": "qwen2.5-omni-7b.json",
    "Qwen/Qwen2.5-Omni-3B": "qwen2.5-omni-3b.json",
}
SHORT_NAMES = {"7b": "Qwen/Qwen2.5-Omni-7B", "3b": "Qwen/Qwen2.5-Omni-3B"}
TOWER_PARTS = ("text_config", "vision_config", "audio_config")


def public_shapes(model_id: str) -> dict[str, Any]:
    """The shapes of a public thinker (``Qwen/Qwen2.5-Omni-7B`` or ``-3B``, or the short ``7b``/``3b``)."""
    model_id = SHORT_NAMES.get(model_id, model_id)
    if model_id not in PUBLIC_MODELS:
        known = ", ".join(PUBLIC_MODELS)
        raise ConfigError(f"no stored shapes for {model_id!r}: give a local checkpoint or one of {known}")
    return json.loads((PUBLIC_DIR / PUBLIC_MODELS[model_id]).read_text(encoding="utf-8"))


def config_from_shapes(shapes: dict[str, Any], token_ids: dict[str, int] | None = None):
    """The thinker config of the shapes' family (``msa_omni.families``) with these shapes (``token_ids``: the
    tokenizer's media/pad/eos ids)."""
    from msa_omni.families import get_family

    config_class = get_family(shapes["family"]).transformers_class("thinker_config_class")
    ids = dict(token_ids or {})
    text = dict(shapes["text_config"])
    for key in ("pad_token_id", "eos_token_id"):
        if key in ids:
            text[key] = ids[key]
    return config_class(
        text_config=text,
        vision_config=dict(shapes["vision_config"]),
        audio_config=dict(shapes["audio_config"]),
        **shapes.get("thinker", {}),
        **ids,
    )


def thinker_config_for(model: str | Path):
    """The thinker config of a local checkpoint (its config.json, thinker-only or full Omni) or of a public
    model from the stored shapes; a ConfigError names a model that is neither."""
    from msa_omni.families import family_of_config

    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
        family = family_of_config(data)
        data = data.get("thinker_config", data)
        data = {k: v for k, v in data.items() if k not in ("architectures", "model_type")}
        return family.transformers_class("thinker_config_class")(**data)
    if path.exists():
        raise ConfigError(f"{path}: no config.json (not a model checkpoint)")
    if str(model) not in PUBLIC_MODELS and str(model) not in SHORT_NAMES:
        raise ConfigError(
            f"model {model}: no such checkpoint and no stored shapes; a checkpoint that does not exist yet has its "
            f"base model's shapes: --set model={next(iter(PUBLIC_MODELS))} (or {', '.join(list(PUBLIC_MODELS)[1:])})"
        )
    return config_from_shapes(public_shapes(str(model)))


def meta_thinker(config):
    """The thinker with these shapes on the meta device: every parameter's shape and dtype, no memory."""
    import torch

    from msa_omni.families import family_of_config

    thinker_class = family_of_config(config).transformers_class("thinker_class")
    with torch.device("meta"):
        return thinker_class._from_config(config, dtype=torch.bfloat16)


def expected_param_counts(shapes: dict[str, Any]) -> dict[str, int]:
    """Parameter counts by part, from the config's numbers alone (the layer formulas of transformers'
    Qwen2.5-Omni thinker: biases where its Linear layers have them). Tests hold the meta model to these."""
    t, v, a = shapes["text_config"], shapes["vision_config"], shapes["audio_config"]
    h, i, layers = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    head = h // t["num_attention_heads"]
    kv = t["num_key_value_heads"] * head
    attn = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with bias; o without
    text_layer = attn + 3 * h * i + 2 * h  # gate, up, down; two RMSNorms
    tied = shapes.get("thinker", {}).get("tie_word_embeddings", t.get("tie_word_embeddings", False))
    vocab = t["vocab_size"] * h
    text = vocab + layers * text_layer + h + (0 if tied else vocab)
    vh, vi, vout = v["hidden_size"], v["intermediate_size"], v["out_hidden_size"]
    patch = v["in_channels"] * v["temporal_patch_size"] * v["patch_size"] ** 2 * vh  # conv3d, no bias
    # q, k, v and proj with bias; gate, up (bias) and down (bias) MLP; two RMSNorms
    vblock = 4 * (vh * vh + vh) + 3 * vh * vi + 2 * vi + vh + 2 * vh
    merged = vh * v["spatial_merge_size"] ** 2
    merger = vh + (merged * merged + merged) + (merged * vout + vout)  # ln_q, 2-layer MLP
    vision = patch + v["depth"] * vblock + merger
    ad, af = a["d_model"], a["encoder_ffn_dim"]
    alayer = (
        4 * ad * ad + 3 * ad + 2 * (ad * af) + af + ad + 4 * ad
    )  # q(b), k, v(b), out(b); fc1, fc2; 2 LayerNorms
    conv = (a["num_mel_bins"] * ad * 3 + ad) + (ad * ad * 3 + ad)
    out = a["output_dim"]
    audio = (
        conv + a["encoder_layers"] * alayer + 2 * ad + (ad * out + out) + 2 * out
    )  # ln_post, proj, bos/eos
    return {"text": text, "vision": vision, "audio": audio, "total": text + vision + audio}
