"""`msa-rl train`: both stages from one file, cold-start SFT (LLaMA-Factory) then Hint-GRPO from its checkpoint.

The train recipe names a stage recipe for each (``sft_recipe``, ``grpo_recipe``) and overrides on top of them
(``sft:`` and ``grpo:`` sections, so ``--set grpo.beta=0.04`` works). ``model``, ``data`` and ``output_dir`` are
set once: SFT writes ``OUTPUT_DIR/sft`` and GRPO, starting from it, ``OUTPUT_DIR/grpo``. A rerun continues: SFT is
skipped when its output already holds a model, GRPO resumes from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msa_core import ConfigError, artifacts
from msa_core.outdir import claim_output_dir
from msa_core.recipe import (
    deep_merge,
    load_recipe,
    read_recipe_yaml,
    unchosen_defaults,
    validate,
    write_resolved,
)
from pydantic import BaseModel, ConfigDict, Field

from msa_rl.grpo_config import GRPORecipe

MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class TrainRecipe(BaseModel):
    """Both stages: the shared inputs, the stage recipes and per-stage overrides."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("", description="Base model of the SFT stage (a Qwen2.5-Omni thinker or a Hub id).")
    data: str = Field(
        "", description="A cot-distill export: LLaMA-Factory data for SFT, training clips for GRPO."
    )
    dataset: str = Field(
        "sims", description="DatasetSpec name of the clips (score range, polarity rule) for GRPO."
    )
    output_dir: str = Field("runs/train", description="SFT goes to OUTPUT_DIR/sft, GRPO to OUTPUT_DIR/grpo.")
    sft_recipe: str = Field("configs/sft/qwen2.5-omni-7b-sims.yaml", description="The SFT stage's recipe.")
    grpo_recipe: str = Field("configs/grpo/qwen2.5-omni-7b-sims.yaml", description="The GRPO stage's recipe.")
    sft: dict[str, Any] = Field(default_factory=dict, description="Overrides of the SFT recipe (its keys).")
    grpo: dict[str, Any] = Field(default_factory=dict, description="Overrides of the GRPO recipe (its keys).")
    skip_sft: bool = Field(False, description="Do not run SFT; GRPO starts from `model` itself.")
    reuse_sft: bool = Field(True, description="Skip SFT when OUTPUT_DIR/sft already holds a trained model.")


def load_train_recipe(path: str | Path | None, overrides: list[str] | None = None) -> TrainRecipe:
    return load_recipe(TrainRecipe, path, overrides)


def _recipe_path(value: str, base: Path | None, key: str, source: str) -> Path:
    """A stage recipe path: as given, else relative to the train recipe's folder, else to the workspace root.
    Not found: a ConfigError naming the train recipe and the key that points there, and where it looked."""
    p = Path(value)
    if p.is_file():
        return p
    candidates = [p]
    if not p.is_absolute():
        candidates += [base / p] if base is not None else []
        try:
            from msa_core.envs import workspace_root

            candidates.append(workspace_root() / p)
        except Exception:  # not inside the workspace: only the paths above count
            pass
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
    raise ConfigError(f"{source}, key `{key}`: stage recipe {value} not found (looked at {looked})")


def stage_configs(recipe: TrainRecipe, base: Path | None = None, source: str | None = None):
    """(SFTConfig, GRPORecipe) with the shared inputs and the overrides applied; both validated up front.

    ``source`` names the train recipe in messages (its file, when there is one)."""
    from msa_rl.sft import SFTConfig

    source = source or "the train recipe"
    out = Path(recipe.output_dir)
    sft_dir, grpo_dir = out / "sft", out / "grpo"
    sft_path = _recipe_path(recipe.sft_recipe, base, "sft_recipe", source)
    shared_sft = {"output_dir": str(sft_dir)}
    if recipe.model:
        shared_sft["model"] = recipe.model
    if recipe.data:
        shared_sft["data"] = recipe.data
    sft = validate(
        SFTConfig,
        deep_merge(deep_merge(read_recipe_yaml(sft_path), shared_sft), recipe.sft),
        f"{sft_path} (+ train recipe)",
    )
    grpo_path = _recipe_path(recipe.grpo_recipe, base, "grpo_recipe", source)
    start = recipe.model if recipe.skip_sft else str(sft_dir)
    shared_grpo = {
        "model": start,
        "data": recipe.data or sft.data,
        "dataset": recipe.dataset,
        "output_dir": str(grpo_dir),
        # GRPO samples clips exactly as SFT did (a grpo.media override still wins)
        "media": sft.media.model_dump(mode="json"),
    }
    grpo = validate(
        GRPORecipe,
        deep_merge(deep_merge(read_recipe_yaml(grpo_path), shared_grpo), recipe.grpo),
        f"{grpo_path} (+ train recipe)",
    )
    return sft, grpo


def sft_done(sft_dir: Path) -> bool:
    return (sft_dir / "config.json").is_file() and any((sft_dir / f).is_file() for f in MODEL_FILES)


def run_train(
    recipe: TrainRecipe, *, base: Path | None = None, echo=None, note=None, source: str | None = None
) -> Path:
    """SFT (unless skipped or already done), then Hint-GRPO from its output; returns the GRPO output directory.

    ``data`` must be given (the stage recipes' own data would silently train on something else); ``note(line)``
    hears every default the user did not choose, before any work."""
    from msa_rl.grpo import run_grpo
    from msa_rl.sft import run_sft

    if not recipe.data.strip():
        raise ConfigError(
            "data is not set: add `--set data=DIR` (a cot-distill export) or `data:` in the train recipe; the "
            "stage recipes' own data is never used in its place"
        )
    sft, grpo = stage_configs(recipe, base, source)
    grpo.require_inputs()
    lines = unchosen_defaults(recipe, ("output_dir",))
    if not recipe.model:
        lines.append(f"model is not set in the train recipe: using the SFT stage recipe's {sft.model!r}")
    for line in lines:
        (note or print)(line)
    with claim_output_dir(recipe.output_dir, "output_dir"):  # checked before any work; one job per folder
        write_resolved(recipe, Path(recipe.output_dir) / artifacts.TRAIN_CONFIG)
        sft_dir = Path(sft.output_dir)
        if not recipe.skip_sft and not (recipe.reuse_sft and sft_done(sft_dir)):
            run_sft(sft, echo=echo)
            if not sft_done(sft_dir):
                raise ConfigError(f"SFT finished but {sft_dir} holds no model to start GRPO from")
        return run_grpo(grpo)
