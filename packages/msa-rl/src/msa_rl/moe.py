"""Mixture-of-experts students in SFT: the router's load-balancing loss, which LLaMA-Factory does not turn on.

LLaMA-Factory 0.9.5's ``moe_aux_loss_coef`` sets ``output_router_logits`` only for the model types its
``configure_moe`` lists, and the Qwen3-Omni thinker is not among them; transformers adds the auxiliary loss only
when the config asks for router logits. So ``msa-rl sft`` hands LLaMA-Factory a view of the base model (every file
linked, config.json rewritten with router logits on and the recipe's coefficient) and, after training, switches
router logits off again in the saved checkpoint (generation and vLLM do not want them; GRPO asks per forward).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msa_core import ConfigError

ROUTER_AUX_BASE_DIR = ".router-aux-base"


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The text model's config inside a thinker config or a full Omni config."""
    return config.get("thinker_config", config).get("text_config", {})


def check_router_aux(model: str, coef: float | None, *, moe: bool, local: bool) -> None:
    """A MoE student from a Hub id cannot get the view (it is made of local files): say what to do instead."""
    if moe and coef != 0 and not local:
        raise ConfigError(
            f"model {model}: the router's auxiliary loss needs a local checkpoint (download it first, e.g. "
            f"`hf download {model} --local-dir models/<name>`, and set model to that directory) or set "
            "router_aux_loss_coef=0 to train without it"
        )


def router_aux_view(model_dir: Path, coef: float | None, out_dir: Path) -> Path:
    """``out_dir/.router-aux-base``: ``model_dir`` with router logits on (and ``coef`` if given) in its config."""
    config = json.loads((model_dir / "config.json").read_text())
    text = _text_config(config)
    text["output_router_logits"] = True
    if coef is not None:
        text["router_aux_loss_coef"] = coef
    view = out_dir / ROUTER_AUX_BASE_DIR
    view.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        target = view / f.name
        if f.name == "config.json" or target.exists() or target.is_symlink():
            continue
        target.symlink_to(f.resolve())
    (view / "config.json").write_text(json.dumps(config, indent=2))
    return view


def router_logits_off(checkpoint: Path) -> None:
    """Switch router logits off in a trained checkpoint's config (the coefficient stays for GRPO to read)."""
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    _text_config(config)["output_router_logits"] = False
    path.write_text(json.dumps(config, indent=2))
