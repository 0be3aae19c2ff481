"""The multi-GPU configs agree with the recipes that use them (fast: file checks, nothing launched).

DeepSpeed refuses to start when its JSON disagrees with the Trainer (batch sizes, accumulation, precision), and
only on the GPU node; a ZeRO-3 run without ``stage3_gather_16bit_weights_on_model_save`` saves shards that
`from_pretrained` cannot load. Both are checked here, on every recipe that names a DeepSpeed config.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from msa_rl.grpo_config import load_grpo_recipe

from msa_thinker.paper import plan

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE_4GPU = ROOT / "configs" / "accelerate" / "zero3-4gpu.yaml"
GRPO_RECIPES = sorted((ROOT / "configs" / "grpo").glob("*.yaml"))
SFT_RECIPES = sorted((ROOT / "configs" / "sft").glob("*.yaml"))
# Filled by the Trainer from the recipe; a literal value here would have to repeat the recipe and drift from it.
TRAINER_OWNED = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")


def ds_config(path: str | Path) -> dict:
    return json.loads((ROOT / path).read_text())


def accelerate_config() -> dict:
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(ACCELERATE_4GPU))  # accelerate's own reader: a bad key fails here
    return cfg.to_dict()


def check_against(ds: dict, *, bf16: bool, where: str) -> None:
    for key in TRAINER_OWNED:
        assert ds[key] == "auto", (where, key)
    assert ds["gradient_clipping"] == "auto", where
    # precision follows the recipe: bf16 "auto" becomes the recipe's bf16; fp16 must never be forced on
    assert ds["bf16"]["enabled"] in ("auto", bf16), where
    assert ds["fp16"]["enabled"] in ("auto", False), where


@pytest.mark.parametrize("recipe", GRPO_RECIPES, ids=lambda p: p.name)
def test_grpo_recipes_fit_their_deepspeed_config_on_four_gpus(recipe: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(accelerate_config()["num_processes"]))
    r = load_grpo_recipe(recipe)  # the global batch (4 processes) holds whole groups, or this raises
    if r.finetuning_type == "lora":  # the one-GPU recipes: adapters, no DeepSpeed
        assert r.deepspeed is None and r.dtype == "bfloat16" and "lora" in recipe.name
        return
    assert r.deepspeed, recipe
    ds = ds_config(r.deepspeed)
    check_against(ds, bf16=r.dtype == "bfloat16", where=recipe.name)
    assert r.dtype == "bfloat16"  # the paper's GPUs; fp32 under ZeRO-3 would double the memory
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert r.report_to == ["tensorboard"]  # in the lock now (the grpo extra)


@pytest.mark.parametrize("recipe", SFT_RECIPES, ids=lambda p: p.name)
def test_sft_recipes_fit_their_deepspeed_config(recipe: Path) -> None:
    data = yaml.safe_load(recipe.read_text())
    if not data.get("deepspeed"):
        assert data.get("finetuning_type", "full") == "lora" or "lora" in recipe.name
        return
    ds = ds_config(data["deepspeed"])
    check_against(ds, bf16=data["precision"] == "bf16", where=recipe.name)
    if ds["zero_optimization"]["stage"] == 3:
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_zero2_config_is_stage_two_with_trainer_owned_fields() -> None:
    ds = ds_config("configs/deepspeed/zero2.json")
    check_against(ds, bf16=True, where="zero2.json")
    assert ds["zero_optimization"]["stage"] == 2


def test_four_gpu_accelerate_config_is_zero3_with_the_recipes_deepspeed_file() -> None:
    cfg = accelerate_config()
    assert cfg["distributed_type"] == "DEEPSPEED" and cfg["num_processes"] == 4 and not cfg["use_cpu"]
    ds_file = cfg["deepspeed_config"]["deepspeed_config_file"]
    assert ds_file == load_grpo_recipe(ROOT / "configs/grpo/qwen2.5-omni-7b-sims.yaml").deepspeed
    assert ds_config(ds_file)["zero_optimization"]["stage"] == 3
    # accelerate refuses mixed_precision next to a deepspeed_config_file; precision comes from the recipe
    assert "mixed_precision" not in yaml.safe_load(ACCELERATE_4GPU.read_text())


def test_paper_grpo_commands_launch_with_the_four_gpu_config() -> None:
    _, steps = plan(sorted((ROOT / "configs" / "paper").glob("table*.yaml")))
    grpo = [c for s in steps for c in s.commands if " grpo " in c]
    assert len(grpo) == 3
    for cmd in grpo:
        args = shlex.split(cmd)
        assert args[:4] == ["uv", "run", "accelerate", "launch"], cmd
        config_file = args[args.index("--config_file") + 1]
        assert (ROOT / config_file).resolve() == ACCELERATE_4GPU.resolve(), cmd
        assert "--num_processes" not in args  # the config file says 4


def test_a_deepspeed_recipe_without_deepspeed_installed_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    """The default environment has no DeepSpeed (it is the `deepspeed` extra): a clear error before any model loads."""
    import importlib.util

    from msa_core import ConfigError
    from msa_rl.grpo import build_trainer

    monkeypatch.chdir(ROOT)
    r = load_grpo_recipe(None, ["model=m", "data=d", "deepspeed=configs/deepspeed/missing.json"])
    with pytest.raises(ConfigError, match=r"configs/deepspeed/missing.json not found"):
        build_trainer(r, rows=[])
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a),
    )
    r = r.model_copy(update={"deepspeed": "configs/deepspeed/zero3.json"})
    with pytest.raises(ConfigError, match=r"uv sync --locked --extra deepspeed"):
        build_trainer(r, rows=[])


PAPER_GRPO = "qwen2.5-omni-7b-sims.yaml"  # the paper's recipe; the ablations extend it


@pytest.mark.parametrize(
    "recipe",
    [
        r
        for r in GRPO_RECIPES
        if r.name == PAPER_GRPO or yaml.safe_load(r.read_text()).get("extends") == PAPER_GRPO
    ],
    ids=lambda p: p.name,
)
def test_paper_grpo_recipes_give_the_length_preflight_sfts_budget(recipe: Path, monkeypatch) -> None:
    """Clips too long for SFT's cutoff_len are refused before GRPO starts, not only printed."""
    from msa_rl.sft_recipe import load_sft_config

    monkeypatch.setenv("WORLD_SIZE", str(accelerate_config()["num_processes"]))
    r = load_grpo_recipe(recipe)
    sft = load_sft_config(ROOT / "configs" / "sft" / "qwen2.5-omni-7b-sims.yaml")
    assert r.max_prompt_length == sft.cutoff_len - r.max_completion_length
    assert r.on_long_clip == "error" and r.media == sft.media
