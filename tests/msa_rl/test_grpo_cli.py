"""`msa-rl grpo` / `msa-rl train`: recipes, overrides, clean errors, and short real runs on the tiny model."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import grpo_helpers
import pytest
import yaml
from msa_core import ConfigError
from msa_core.recipe import parse_overrides
from msa_rl.cli import app
from msa_rl.grpo_config import GRPORecipe, load_grpo_recipe, to_trl_args
from msa_rl.grpo_trainer import METRIC_KEYS, read_metrics
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo" / "grpo.yaml"
runner = CliRunner()

# session fixtures shared by the GRPO test modules (built once, see grpo_helpers)
grpo_clips = grpo_helpers.grpo_clips


def test_overrides_are_nested_yaml_values() -> None:
    got = parse_overrides(
        ["rewards.score=0.5", "hint=false", "report_to=[wandb, tensorboard]", "limit=null", "model=/a/b=c"]
    )
    assert got == {
        "rewards": {"score": 0.5},
        "hint": False,
        "report_to": ["wandb", "tensorboard"],
        "limit": None,
        "model": "/a/b=c",
    }
    for bad in ("noequals", "=1", "a..b=1"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_overrides([bad])


def test_unknown_keys_and_bad_values_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'rewards\.lambda'"):
        load_grpo_recipe(DEMO, ["rewards.lambda=2"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("beta: 0.1\nnum_generation: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'num_generation'"):
        load_grpo_recipe(bad)
    with pytest.raises(ConfigError, match="num_generations"):
        load_grpo_recipe(None, ["num_generations=1"])
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        load_grpo_recipe(None, ["per_device_train_batch_size=6"])
    with pytest.raises(ConfigError, match=r"rewards\.score"):
        load_grpo_recipe(None, ["rewards.score=.nan"])
    with pytest.raises(ConfigError, match=r"unknown key 'reward_coupling\.format'"):
        load_grpo_recipe(DEMO, ["reward_coupling.format=true"])


def test_every_field_has_a_default_and_help() -> None:
    for name, field in GRPORecipe.model_fields.items():
        assert field.description, name
        assert not field.is_required(), name


def test_paper_recipe_and_ablations() -> None:
    paper = load_grpo_recipe(ROOT / "configs/grpo/qwen2.5-omni-7b-sims.yaml")
    assert (paper.num_generations, paper.beta, paper.learning_rate, paper.lr_scheduler_type) == (
        4,
        0.1,
        1e-5,
        "cosine",
    )
    assert paper.rewards.as_list() == [1.0, 1.0, 1.0] and paper.hard_group_strategy == "hint"
    # the paper's reward coupling, written out in the recipe and equal to the defaults
    assert paper.reward_coupling == GRPORecipe().reward_coupling
    assert paper.reward_coupling.model_dump() == {"require_format": False, "score_requires_polarity": True}
    assert paper.use_vllm and paper.deepspeed == "configs/deepspeed/zero3.json"
    assert (ROOT / paper.deepspeed).is_file()
    no_hint = load_grpo_recipe(ROOT / "configs/grpo/ablation-no-hint.yaml")
    no_hard = load_grpo_recipe(ROOT / "configs/grpo/ablation-no-hard.yaml")
    dynamic = load_grpo_recipe(ROOT / "configs/grpo/ablation-dynamic-sampling.yaml")
    assert no_hint.hard_group_strategy == "none" and no_hard.hard_group_strategy == "drop"
    assert (dynamic.hard_group_strategy, dynamic.max_resamples) == ("dynamic_sampling", 2)
    # `extends`: everything else comes from the paper recipe
    for ablation in (no_hint, no_hard, dynamic):
        assert ablation.model_dump(exclude={"hard_group_strategy", "output_dir"}) == paper.model_dump(
            exclude={"hard_group_strategy", "output_dir"}
        )


@pytest.mark.parametrize(
    ("old", "strategy"),
    [
        (["hint=true"], "hint"),
        (["hint=false"], "none"),
        (["hint=false", "drop_hard=true"], "drop"),
        (["drop_hard=false"], "hint"),
    ],
)
def test_old_hint_switches_map_onto_the_strategy(old: list[str], strategy: str, tmp_path: Path) -> None:
    assert load_grpo_recipe(None, old).hard_group_strategy == strategy
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text("".join(item.replace("=", ": ") + "\n" for item in old))
    recipe = load_grpo_recipe(legacy)
    assert recipe.hard_group_strategy == strategy
    assert "hint" not in recipe.model_dump() and "drop_hard" not in recipe.model_dump()


def test_old_hint_switches_that_do_not_map_are_refused() -> None:
    with pytest.raises(ConfigError, match="hard_group_strategy: drop"):
        load_grpo_recipe(None, ["drop_hard=true"])  # with the old default hint=true: was an error, still is
    with pytest.raises(
        ConfigError, match=r"both set: keep hard_group_strategy only .*hard_group_strategy: none"
    ):
        load_grpo_recipe(DEMO, ["hint=false"])  # the demo recipe states hard_group_strategy
    with pytest.raises(ConfigError, match="hard_group_strategy"):
        load_grpo_recipe(None, ["hard_group_strategy=dapo"])
    with pytest.raises(ConfigError, match="max_resamples"):
        load_grpo_recipe(None, ["max_resamples=0"])


def test_trl_args_follow_the_recipe(tmp_path: Path) -> None:
    recipe = load_grpo_recipe(DEMO, [f"output_dir={tmp_path}", "rewards.polarity=2", "beta=0.2"])
    args = to_trl_args(recipe)
    assert args.reward_weights == [1.0, 2.0, 1.0] and args.beta == 0.2 and args.num_generations == 4
    assert args.bf16 is False and args.use_vllm is False  # fp32 on CPU; vLLM is ours, not TRL's
    assert args.remove_unused_columns is False and args.lr_scheduler_type == "cosine"


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    result = runner.invoke(app, ["grpo", "--config", str(DEMO), "--set", "bogus=1"])
    assert result.exit_code == 1 and "unknown key 'bogus'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["grpo", "--config", str(DEMO), "--set", "model="])
    assert result.exit_code == 1 and "model is not set" in result.output
    result = runner.invoke(app, ["grpo", "--set", f"model={tmp_path}", "--set", f"data={tmp_path}"])
    assert result.exit_code == 1 and f"model path {tmp_path} has no config.json" in result.output
    assert "not a Hugging Face checkpoint" in result.output  # the same check as SFT's, before any model loads
    model = tmp_path / "model"  # passes the checkpoint check: the data check comes next
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2_5_omni_thinker"}')
    (model / "tokenizer_config.json").write_text("{}")
    result = runner.invoke(
        app,
        [
            "grpo",
            "--set",
            f"model={model}",
            "--set",
            f"data={tmp_path / 'none'}",
            "--set",
            f"output_dir={tmp_path / 'out'}",
        ],
    )
    assert result.exit_code == 1 and "not found" in result.output and not (tmp_path / "out").exists()
    result = runner.invoke(app, ["grpo", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1 and "config file not found" in result.output


@pytest.mark.slow
def test_demo_recipe_runs_two_steps(tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path) -> None:
    """The random tiny model (zero rewards: every group is hard and hinted), through the real command."""
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "grpo",
            "--config",
            str(DEMO),
            "--set",
            f"model={tiny_model_dir}",
            "--set",
            f"data={grpo_clips}",
            "--set",
            f"output_dir={out}",
            "--set",
            "max_completion_length=16",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = read_metrics(out)
    assert [line["step"] for line in lines] == [1, 2]
    for line in lines:
        assert all(line[k] is not None and math.isfinite(line[k]) for k in METRIC_KEYS), line
    assert (out / "checkpoint-2").is_dir() and (out / "config.json").is_file()
    # every checkpoint records its media settings, as the final model does: msa-eval predict reads them
    from msa_core import MediaSettings

    assert MediaSettings.read(out / "checkpoint-2") == MediaSettings.read(out) is not None
    resolved = yaml.safe_load((out / "grpo_config.yaml").read_text())
    assert resolved["model"] == str(tiny_model_dir) and resolved["max_steps"] == 2

    # a second call finds checkpoint-2 of a finished run: it resumes and does no new step
    result = runner.invoke(
        app,
        [
            "grpo",
            "--config",
            str(DEMO),
            "--set",
            f"model={tiny_model_dir}",
            "--set",
            f"data={grpo_clips}",
            "--set",
            f"output_dir={out}",
            "--resume",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [line["step"] for line in read_metrics(out)] == [1, 2]


@pytest.mark.slow
def test_train_runs_sft_then_grpo_from_its_output(
    tiny_model_dir: Path, grpo_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    """`msa-rl train` orchestration. SFT is a stand-in here (LLaMA-Factory's own run is the SFT tests' job): it
    copies the model to the SFT output directory; GRPO must then start from that directory."""
    import msa_rl.sft

    sft_calls = []

    def fake_run_sft(config, **kwargs):
        sft_calls.append(config)
        shutil.copytree(config.model, config.output_dir, dirs_exist_ok=True)

    monkeypatch.setattr(msa_rl.sft, "run_sft", fake_run_sft)
    sft_recipe = tmp_path / "sft.yaml"
    sft_recipe.write_text("device: cpu\nprecision: fp32\nmax_steps: 2\n")
    out = tmp_path / "train"
    args = [
        "train",
        "--config",
        str(ROOT / "configs/demo/train.yaml"),
        "--set",
        f"model={tiny_model_dir}",
        "--set",
        f"data={grpo_clips}",
        "--set",
        f"output_dir={out}",
        "--set",
        f"sft_recipe={sft_recipe}",
        "--set",
        "grpo.max_completion_length=16",
        "--set",
        "grpo.max_steps=1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(sft_calls) == 1
    sft = sft_calls[0]
    assert (sft.model, sft.data, sft.output_dir) == (str(tiny_model_dir), str(grpo_clips), str(out / "sft"))
    grpo = yaml.safe_load((out / "grpo" / "grpo_config.yaml").read_text())
    assert grpo["model"] == str(out / "sft") and grpo["max_steps"] == 1 and grpo["data"] == str(grpo_clips)
    assert [line["step"] for line in read_metrics(out / "grpo")] == [1]

    # rerun: the finished SFT is reused, GRPO resumes (already at max_steps)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(sft_calls) == 1
    assert [line["step"] for line in read_metrics(out / "grpo")] == [1]


def test_train_recipe_rejects_unknown_stage_keys(tmp_path: Path) -> None:
    sft_recipe = tmp_path / "sft.yaml"
    sft_recipe.write_text("device: cpu\n")
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(ROOT / "configs/demo/train.yaml"),
            "--set",
            f"sft_recipe={sft_recipe}",
            "--set",
            "grpo.betta=1",
            "--set",
            "model=m",
            "--set",
            "data=d",
        ],
    )
    assert result.exit_code == 1 and "unknown key 'betta'" in result.output
