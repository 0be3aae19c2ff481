"""`msa-thinker publish-model`: the folder and card (dry run), and the round trip through a Hub double that really
stores and serves files: publish the demo's model, then `analyze --model ORG/NAME` downloads and runs it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from clip_helpers import analyst_model
from hub_double import HubDouble
from msa_core import read_mmsa
from typer.testing import CliRunner

from msa_thinker.cli import app

TOKEN = "hf_TESTtoken_m0del_d0n0tL3ak_1a2b3c"
runner = CliRunner()
SCRIPT = str(Path(sys.executable).parent / "msa-thinker")
EXPECTED = {
    "README.md",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "media.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
    "recipes/sft_config.yaml",
    "recipes/grpo_config.yaml",
}


def _built(output: str) -> set[str]:
    line = next(x for x in output.splitlines() if x.startswith("built "))
    return set(line.split("(", 1)[1].rstrip(")").split(", "))


@pytest.mark.slow
def test_dry_run_builds_the_repository_folder_and_card(demo_run, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    args = ["publish-model", str(demo_run.model), "--repo-id", "org/msa-tiny", "--out", str(out), "--dry-run"]
    result = runner.invoke(
        app,
        [*args, "--eval", str(demo_run.out / "report"), "--dataset-repo", "org/msa-cot"],
        env={"HF_TOKEN": ""},
    )
    assert result.exit_code == 0, result.output
    files = {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")
    }
    assert files == _built(result.stdout) == EXPECTED  # no checkpoint-*/, training_args.bin, logs or metrics
    assert "nothing uploaded" in result.stdout
    for name in ("model.safetensors", "tokenizer.json", "media.json"):
        assert (out / name).read_bytes() == (demo_run.model / name).read_bytes()
    card = (out / "README.md").read_text()
    metrics = json.loads((demo_run.out / "report" / "metrics.json").read_text())
    for run in metrics["results"]:  # the report's table, every run
        assert f"| {run} |" in card
    assert "CH-SIMS (ID)<br>Acc3" in card and "CMU-MOSI (OOD)<br>Acc7" in card
    front = yaml.safe_load(card.split("---")[1])
    assert front["datasets"] == ["org/msa-cot"] and "base_model" not in front  # the demo's base is local
    assert "Qwen/Qwen3-Omni-30B-A3B-Instruct" in card and "datasets/org/msa-cot" in card
    model_part = card[card.index("## Model") : card.index("## Evaluation")]
    grpo = yaml.safe_load((demo_run.model / "grpo_config.yaml").read_text())
    strategy = next(f"{k}={grpo[k]}" for k in ("hard_group_strategy", "hint") if k in grpo)
    assert "cold-start SFT" in model_part and strategy in model_part, model_part
    assert f"learning_rate={grpo['learning_rate']}" in model_part
    assert "<polarity>" in card
    assert "msa-thinker analyze clip.mp4 --model org/msa-tiny" in card and "## Limitations" in card
    recipes = (out / "recipes" / "grpo_config.yaml").read_text() + (
        out / "recipes" / "sft_config.yaml"
    ).read_text()
    assert str(demo_run.out) not in recipes and str(Path.home()) not in recipes
    assert yaml.safe_load((out / "recipes" / "grpo_config.yaml").read_text())["model"] == "sft"

    # A rebuild into its own folder is fine; a folder of other files is refused.
    assert runner.invoke(app, args).exit_code == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = runner.invoke(app, [*args[:5], str(foreign), "--dry-run"])
    assert refused.exit_code == 2 and "did not write" in refused.stderr
    assert (foreign / "notes.txt").read_text() == "mine"


def test_refusals_before_any_work(tiny_model_dir: Path, tmp_path: Path) -> None:
    trained = analyst_model(tiny_model_dir, tmp_path / "trained")
    bare = tmp_path / "bare"
    shutil.copytree(trained, bare)
    (bare / "media.json").unlink()
    out = tmp_path / "out"
    cases = [
        (
            ["publish-model", str(bare), "--repo-id", "o/n", "--out", str(out), "--dry-run"],
            1,
            "media.json is missing",
        ),
        (["publish-model", str(trained), "--repo-id", "nope", "--dry-run"], 2, "ORG/NAME"),
        (["publish-model", str(trained), "--repo-id", "o/n", "--out", str(out)], 2, "HF_TOKEN is not set"),
        (
            ["publish-model", str(trained), "--repo-id", "o/n", "--eval", str(tmp_path), "--dry-run"],
            1,
            "metrics.json",
        ),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, args, env={"HF_TOKEN": ""})
        assert result.exit_code == code and message in result.stderr, (args, result.output)
    assert not out.exists()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch):
    """The Hub double, with huggingface_hub (in this process) pointed at it, online, with an empty cache."""
    from huggingface_hub import constants

    with HubDouble(tmp_path / "hub") as double:
        monkeypatch.setattr(constants, "ENDPOINT", double.url)
        # file downloads build their URL from this template (made from HF_ENDPOINT at import)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", double.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        yield double


@pytest.mark.slow
def test_publish_then_analyze_from_the_hub(demo_run, hub: HubDouble, tmp_path: Path, monkeypatch) -> None:
    """The round trip through a Hub double that stores what is uploaded and serves it back: a missing media.json,
    tokenizer or weight file (a wrong ignore pattern or file list) fails the download or the analysis."""
    clip = read_mmsa(demo_run.out / "data" / "sims", "sims", split="test").clips[0]
    video = shutil.copy(clip.video_path, tmp_path / "clip.mp4")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    pub = runner.invoke(
        app,
        ["publish-model", str(demo_run.model), "--repo-id", "org/msa-tiny", "--out", str(tmp_path / "repo")],
    )
    assert pub.exit_code == 0, pub.output
    assert set(hub.files("model", "org/msa-tiny")) == EXPECTED == _built(pub.stdout)
    assert f"{hub.url}/org/msa-tiny" in pub.stdout
    sent = [r for r in hub.requests if r.authorization]
    assert sent and {r.authorization for r in sent} == {f"Bearer {TOKEN}"}

    monkeypatch.delenv("HF_TOKEN")  # a public model downloads without one
    remote = runner.invoke(
        app, ["analyze", str(video), "--model", "org/msa-tiny", "--transcript", clip.text, "--json"]
    )
    assert remote.exit_code == 0, remote.output
    got = json.loads(remote.stdout.splitlines()[0])
    assert str(tmp_path / "hf-cache") in got["model"] and "models--org--msa-tiny" in got["model"]
    local = runner.invoke(
        app, ["analyze", str(video), "--model", str(demo_run.model), "--transcript", clip.text, "--json"]
    )
    assert local.exit_code == 0, local.output
    assert got["raw_output"] == json.loads(local.stdout.splitlines()[0])["raw_output"]
    assert got["media"] == json.loads((demo_run.model / "media.json").read_text())
    missing = runner.invoke(app, ["analyze", str(video), "--model", "org/not-there"])
    assert missing.exit_code == 2 and "org/not-there" in missing.stderr and "no such model" in missing.stderr
    for text in (pub.output, remote.output):
        assert TOKEN not in text
    written = [p for p in (tmp_path / "repo").rglob("*") if p.is_file()]
    assert written and not [p for p in written if TOKEN.encode() in p.read_bytes()]


def test_the_card_traces_the_stages_back_to_a_hub_base_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    sft = tmp_path / "models" / "sft"
    sft.mkdir(parents=True)
    (sft / "sft_config.yaml").write_text(
        yaml.safe_dump(
            {"model": "Qwen/Qwen2.5-Omni-7B", "data": str(tmp_path / "export"), "learning_rate": 1e-5}
        )
    )
    grpo = analyst_model(tiny_model_dir, tmp_path / "models" / "grpo")
    (grpo / "grpo_config.yaml").write_text(
        yaml.safe_dump(
            {"model": str(sft), "output_dir": str(grpo), "hint": True, "deepspeed": "configs/x.json"}
        )
    )
    (grpo / "checkpoint-3").mkdir()
    (grpo / "checkpoint-3" / "optimizer.pt").write_bytes(b"x")
    (grpo / "training_args.bin").write_bytes(b"x")
    result = runner.invoke(
        app, ["publish-model", str(grpo), "--repo-id", "o/n", "--out", str(tmp_path / "repo"), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    files = _built(result.stdout)
    assert {"recipes/sft_config.yaml", "recipes/grpo_config.yaml", "media.json", "model.safetensors"} <= files
    assert not [f for f in files if f.startswith("checkpoint") or f.endswith(".bin")]
    card = (tmp_path / "repo" / "README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["base_model"] == "Qwen/Qwen2.5-Omni-7B"
    assert card.index("cold-start SFT") < card.index("GRPO (Hint-GRPO")  # in training order
    assert "hint=True" in card
    assert "No evaluation report was given" in card and "dataset repo was not given" in card
    sft_recipe = yaml.safe_load((tmp_path / "repo" / "recipes" / "sft_config.yaml").read_text())
    grpo_recipe = yaml.safe_load((tmp_path / "repo" / "recipes" / "grpo_config.yaml").read_text())
    assert sft_recipe["model"] == "Qwen/Qwen2.5-Omni-7B" and sft_recipe["data"] == "export"
    assert (grpo_recipe["model"], grpo_recipe["output_dir"], grpo_recipe["deepspeed"]) == (
        "sft",
        "grpo",
        "configs/x.json",  # repo-relative: kept
    )
