"""msa-rl sft: recipes, checks before LLaMA-Factory starts, the command, a real CPU run and the handoff."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import lora_helpers
import pytest
import yaml
from msa_core import (
    ConfigError,
    DataError,
    MediaSettings,
    Prompt,
    artifacts,
    build_prompt,
    envs,
    get_spec,
    read_mmsa,
)
from msa_rl.cli import app
from msa_rl.sft import (
    SFTConfig,
    load_sft_config,
    parse_log_line,
    prepare,
    run,
)
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("sft_env_probe.py")


@pytest.fixture(scope="module")
def lf_export(synthetic_sims_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cot-distill LLaMA-Factory export of the synthetic clips, answers rendered from the true labels."""
    return lora_helpers.lf_export_of(synthetic_sims_dir, tmp_path_factory)


def _demo(tiny_model_dir: Path, lf_export: Path, out: Path, *sets: str) -> SFTConfig:
    overrides = [f"model={tiny_model_dir}", f"data={lf_export}", f"output_dir={out}", *sets]
    return load_sft_config(ROOT / "configs/demo/sft.yaml", overrides)


# ------------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize(
    "recipe",
    [
        "configs/sft/qwen2.5-omni-7b-sims.yaml",
        "configs/sft/qwen2.5-omni-7b-sims-lora.yaml",
        "configs/demo/sft.yaml",
    ],
)
def test_recipes_load(recipe: str) -> None:
    config = load_sft_config(ROOT / recipe)
    assert config.template == "qwen2_omni" and config.media.audio_in_video


def test_paper_recipe_is_the_papers() -> None:
    paper = load_sft_config(ROOT / "configs/sft/qwen2.5-omni-7b-sims.yaml")
    assert paper.model == "Qwen/Qwen2.5-Omni-7B" and paper.finetuning_type == "full"
    assert paper.learning_rate == 1e-5 and paper.precision == "bf16"
    zero3 = json.loads((ROOT / paper.deepspeed).read_text())
    assert zero3["zero_optimization"]["stage"] == 3
    lora = load_sft_config(ROOT / "configs/sft/qwen2.5-omni-7b-sims-lora.yaml")
    assert lora.finetuning_type == "lora" and lora.deepspeed is None and lora.model == paper.model


def test_unknown_keys_and_overrides(tmp_path: Path) -> None:
    config = load_sft_config(None, ["learning_rate=2e-5", "llamafactory.neftune_noise_alpha=5"])
    assert config.learning_rate == 2e-5 and config.llamafactory == {"neftune_noise_alpha": 5}
    with pytest.raises(ConfigError, match="learning_rat"):
        load_sft_config(None, ["learning_rat=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\nwarmup_steps: 3\n")
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_sft_config(bad)
    with pytest.raises(
        ConfigError, match="learning_rate"
    ):  # a recipe key cannot be bypassed through the hatch
        load_sft_config(None, ["llamafactory.learning_rate=1"])


# ------------------------------------------------------------------------------- checks before LLaMA-Factory
def test_bad_inputs_fail_before_llamafactory(tmp_path: Path, tiny_model_dir: Path, lf_export: Path) -> None:
    with pytest.raises(DataError, match="export directory not found"):
        prepare(_demo(tiny_model_dir, tmp_path / "none", tmp_path / "o1"))
    with pytest.raises(ConfigError, match="does not exist"):
        prepare(_demo(tmp_path / "no-model", lf_export, tmp_path / "o2"))
    not_omni = tmp_path / "llama"
    not_omni.mkdir()
    (not_omni / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ConfigError, match=r"not a Qwen2\.5-Omni thinker"):
        prepare(_demo(not_omni, lf_export, tmp_path / "o3"))
    with pytest.raises(DataError, match=r"'nope' not in dataset_info\.json"):
        prepare(_demo(tiny_model_dir, lf_export, tmp_path / "o4", "dataset=nope"))
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(lf_export), str(broken)], check=True)
    wav = json.loads((broken / "msa_cot.json").read_text())[1]["audios"][0]
    (broken / wav).unlink()
    with pytest.raises(DataError, match=re.escape(f"missing audio file {wav}")):
        prepare(_demo(tiny_model_dir, broken, tmp_path / "o5"))
    assert not (tmp_path / "o5").exists()  # nothing written when a check fails


def test_length_preflight_refuses_or_drops_examples_over_cutoff_len(
    tmp_path: Path, tiny_model_dir: Path, lf_export: Path, capsys
) -> None:
    """Each example's tokens (prompt + media + answer, from the clips' metadata) against cutoff_len: refused by
    name before anything is written, or with on_long_clip=drop left out of the data LLaMA-Factory reads."""
    from msa_omni.lengths import ClipPrompt, estimate_tokens, load_processor

    records = artifacts.read_lf_dataset(lf_export, "msa_cot")
    clips = [ClipPrompt(r.id, r.video, Prompt(system=r.system, user=r.user), r.answer) for r in records]
    media = _demo(tiny_model_dir, lf_export, tmp_path / "o").media
    totals = {c.clip_id: c.total for c in estimate_tokens(load_processor(tiny_model_dir), clips, media)}
    limit = min(totals.values())
    longer = {i for i, t in totals.items() if t > limit}
    assert 0 < len(longer) < len(records)

    prepare(_demo(tiny_model_dir, lf_export, tmp_path / "fits", f"cutoff_len={max(totals.values())}"))
    assert f"msa_cot: preflight: {len(records)} clips, tokens per example" in capsys.readouterr().out
    with pytest.raises(DataError) as err:
        prepare(_demo(tiny_model_dir, lf_export, tmp_path / "o1", f"cutoff_len={limit}"))
    assert f"{len(longer)} of {len(records)} clips need more than cutoff_len={limit}" in str(err.value)
    assert not (tmp_path / "o1").exists()

    out = tmp_path / "o2"
    plan = prepare(_demo(tiny_model_dir, lf_export, out, f"cutoff_len={limit}", "on_long_clip=drop"))
    assert f"dropped {len(longer)} of {len(records)} clips over cutoff_len={limit}" in capsys.readouterr().out
    lf = yaml.safe_load(plan.llamafactory_yaml.read_text())
    assert lf["dataset_dir"] == str(out.resolve() / artifacts.SFT_DATA_DIR)
    assert lf["media_dir"] == str(lf_export.resolve())  # the media stay in the export
    info = json.loads((Path(lf["dataset_dir"]) / artifacts.LF_DATASET_INFO).read_text())
    kept = json.loads((Path(lf["dataset_dir"]) / info["msa_cot"]["file_name"]).read_text())
    assert sorted(r["id"] for r in kept) == sorted(set(totals) - longer)


def test_cli_errors_are_clean(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "sft",
            "--config",
            str(ROOT / "configs/demo/sft.yaml"),
            "--set",
            f"model={tiny_model_dir}",
            "--set",
            f"data={tmp_path}/missing",
        ],
    )
    assert result.exit_code == 1
    assert "export directory not found" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["sft", "--set", "epochs=3"])
    assert result.exit_code == 1 and "unknown key 'epochs'" in result.output


def test_print_command_writes_the_yaml(
    tmp_path: Path, tiny_model_dir: Path, lf_export: Path, monkeypatch
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(ROOT / ".venv"))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "sft",
            "--config",
            str(ROOT / "configs/demo/sft.yaml"),
            "--set",
            f"model={tiny_model_dir}",
            "--set",
            f"data={lf_export}",
            "--set",
            f"output_dir={out}",
            "--print-command",
        ],
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    sft_env = ROOT / ".venvs" / "sft"
    assert f"env -u VIRTUAL_ENV UV_PROJECT_ENVIRONMENT={sft_env}" in line
    assert "uv run --frozen --package msa-rl --extra sft llamafactory-cli train" in line
    lf = yaml.safe_load((out / artifacts.LLAMAFACTORY_YAML).read_text())
    assert lf["dataset_dir"] == str(lf_export.resolve()) == lf["media_dir"]
    assert lf["model_name_or_path"] == str(tiny_model_dir.resolve())
    assert lf["template"] == "qwen2_omni" and lf["use_audio_in_video"] is True and lf["use_cpu"] is True
    assert lf["video_max_pixels"] == 3136 and lf["video_maxlen"] == 16
    assert yaml.safe_load((out / artifacts.SFT_CONFIG).read_text())["model"] == str(tiny_model_dir)
    assert MediaSettings.read(out) == MediaSettings(fps=2.0, max_frames=16, video_size=(56, 56))
    plan = prepare(_demo(tiny_model_dir, lf_export, out))
    assert "VIRTUAL_ENV" not in plan.env and plan.env["UV_PROJECT_ENVIRONMENT"] == str(sft_env)


def test_lora_plan_merges_into_output_dir(tmp_path: Path, tiny_model_dir: Path, lf_export: Path) -> None:
    out = tmp_path / "lora"
    plan = prepare(_demo(tiny_model_dir, lf_export, out, "finetuning_type=lora", "freeze_vision_tower=true"))
    train = yaml.safe_load(plan.llamafactory_yaml.read_text())
    merge = yaml.safe_load((out / "llamafactory_merge.yaml").read_text())
    assert train["finetuning_type"] == "lora" and train["output_dir"] == str(out.resolve() / "lora-adapter")
    assert merge["adapter_name_or_path"] == train["output_dir"] and merge["export_dir"] == str(out.resolve())
    assert [c[-2] for c in plan.commands] == ["train", "export"] and plan.shell().count(
        "UV_PROJECT_ENVIRONMENT"
    ) == 2


def test_parse_log_line() -> None:
    line = "50%|#| 2/4 [00:02<00:02] {'loss': '7.029', 'grad_norm': '2.18', 'learning_rate': '0.001', 'epoch': '1'}"
    assert parse_log_line(line) == [{"loss": 7.029, "grad_norm": 2.18, "learning_rate": 0.001, "epoch": 1.0}]
    assert parse_log_line("[INFO] Saving model checkpoint") == []


# ------------------------------------------------------------------ a real LLaMA-Factory run and the handoff
@pytest.fixture(scope="module")
def sft_run(tiny_model_dir: Path, lf_export: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sft") / "run"
    # 3 steps on the same 3-example batch: the loss must fall step after step.
    config = _demo(
        tiny_model_dir,
        lf_export,
        out,
        "max_steps=3",
        "per_device_train_batch_size=3",
        "learning_rate=1e-3",
        "lr_scheduler_type=constant",
        "warmup_ratio=0",
        "logging_steps=1",
    )
    lines: list[str] = []
    result = run(prepare(config), echo=lines.append)
    return result, lines


@pytest.mark.slow
def test_llamafactory_sft_loss_falls(sft_run) -> None:
    result, lines = sft_run
    assert len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)
    assert result.losses[0] > result.losses[1] > result.losses[2]
    metrics = [json.loads(x) for x in (result.output_dir / artifacts.SFT_METRICS).read_text().splitlines()]
    assert [m["loss"] for m in metrics] == result.losses
    assert any("Running training" in x for x in lines)  # streamed, not swallowed
    assert (result.output_dir / "model.safetensors").is_file()


@pytest.mark.slow
def test_handoff_same_loss_in_both_envs_and_same_tokens_as_llamafactory(
    sft_run, lf_export: Path, tiny_model_dir: Path, synthetic_sims_dir: Path, tmp_path: Path
) -> None:
    """The SFT checkpoint loads in the default env with the same processor, and gives the same loss as under
    transformers 5.6; LLaMA-Factory's qwen2_omni rendering (system column) is token for token our chat template's."""
    import torch
    from msa_omni import io as omni
    from transformers import AutoProcessor

    result, _ = sft_run
    model, processor = omni.load_thinker(result.output_dir)
    model.eval()
    base_processor = AutoProcessor.from_pretrained(tiny_model_dir)
    probe_text = "Visually the face is calm. <polarity>neutral</polarity>"
    assert processor.tokenizer(probe_text).input_ids == base_processor.tokenizer(probe_text).input_ids
    assert processor.chat_template == base_processor.chat_template

    record = json.loads((lf_export / "msa_cot.json").read_text())[0]
    prompt = Prompt(
        system=record["system"], user=record["messages"][0]["content"].removeprefix("<video><audio>")
    )
    clip = read_mmsa(synthetic_sims_dir, "sims").by_id()[record["id"]]
    assert prompt == build_prompt(clip.text, get_spec("sims"))  # the export carries msa-core's one prompt
    batch = omni.encode_example(
        processor, prompt, omni.clip_media(lf_export / record["videos"][0]), record["messages"][1]["content"]
    )
    with torch.no_grad():
        loss_default = model(**omni.model_forward_kwargs(batch)).loss.item()
    torch.save(dict(batch), tmp_path / "batch.pt")

    env_path = envs.ensure_sft_env(quiet=True)
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [
            str(envs.sft_python(env_path)),
            str(PROBE),
            str(result.output_dir),
            str(lf_export),
            str(tmp_path / "batch.pt"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=envs.sft_child_env(env_path),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = json.loads(out.read_text())
    assert probe["transformers"].startswith("5.6")
    assert abs(probe["handoff_loss"] - loss_default) < 1e-5
    # LLaMA-Factory's own tokenization of the record == our encode_example (prompt, media tokens, answer, labels).
    assert probe["lf"]["input_ids"] == batch["input_ids"][0].tolist()
    assert probe["lf"]["labels"] == batch["labels"][0].tolist()
    # msa_omni under transformers 5.6: same tokens, audio-in-video effective, forward/backward/generate work.
    assert probe["omni"]["input_ids"] == batch["input_ids"][0].tolist()
    assert probe["omni"]["audio_tokens"] > 0 and probe["omni"]["video_tokens"] > 0
    assert probe["omni"]["generated_new_tokens"] == 4 and probe["omni"]["vision_grad"] > 0
    # The same clip, as LLaMA-Factory samples it for SFT and as msa_omni does for GRPO and predict: the same
    # frames, and the same effective rate told to the processor, also when max_frames thins the clip (2 s at
    # 2 fps is 4 frames; capped at 2 they are 1 s apart, and the rate passed on is 1 fps, not the asked-for 2).
    for cap, expected_fps in (("16", 2.0), ("2", 1.0)):
        frames = probe["frames"][cap]
        assert frames["lf_fps"] == pytest.approx(frames["ours_fps"]) == pytest.approx(expected_fps)
        assert len(frames["lf_grey"]) == len(frames["ours_grey"])
        assert frames["lf_grey"] == pytest.approx(frames["ours_grey"], abs=3.0)  # resampling differs slightly


@pytest.mark.slow
def test_llamafactory_sft_in_two_processes(
    tiny_model_dir: Path, lf_export: Path, tmp_path: Path, monkeypatch
) -> None:
    """LLaMA-Factory's own launcher across 2 processes on CPU (FORCE_TORCHRUN=1: torchrun, gloo), what a multi-GPU
    node does with NPROC_PER_NODE = its GPUs: both ranks train, each logged step is recorded once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {
        "FORCE_TORCHRUN": "1",
        "NNODES": "1",
        "NPROC_PER_NODE": "2",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(key, value)
    config = _demo(tiny_model_dir, lf_export, tmp_path / "run", "max_steps=2", "logging_steps=1")
    lines: list[str] = []
    result = run(prepare(config), echo=lines.append)
    ranks = [x for x in lines if "world size: 2" in x and "distributed training: True" in x]
    assert len(ranks) == 2, lines[-40:]  # one line per rank
    metrics = [json.loads(x) for x in (result.output_dir / artifacts.SFT_METRICS).read_text().splitlines()]
    assert [m["log"] for m in metrics] == [1, 2] and [m["loss"] for m in metrics] == result.losses
    assert all(math.isfinite(x) for x in result.losses)
    assert (result.output_dir / "model.safetensors").is_file()


# ------------------------------------------------------------------ LoRA: train, merge, predict (one real run)
lora_sft_run = lora_helpers.lora_sft_run


@pytest.mark.slow
def test_lora_recipe_trains_merges_and_the_merged_model_predicts(
    lora_sft_run, tiny_model_dir: Path, synthetic_sims_dir: Path, tmp_path: Path
) -> None:
    """configs/sft/qwen2.5-omni-7b-sims-lora.yaml on the tiny thinker through LLaMA-Factory: the adapter trains,
    `llamafactory-cli export` merges it into output_dir with the processor and media.json, only the language
    model's linear layers changed (towers, projectors, embeddings, lm_head and norms as they were), and
    `msa-eval predict` loads the merged model as it is."""
    import torch
    from msa_eval.predict import predict
    from safetensors.torch import load_file

    result, lines = lora_sft_run
    out = result.output_dir
    assert len(result.losses) == 4 and all(math.isfinite(x) for x in result.losses)
    assert result.losses[-1] < result.losses[0]
    assert any("llamafactory-cli" in x or "Running training" in x for x in lines)
    adapter = json.loads((out / "lora-adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 16 and adapter["lora_alpha"] == 32
    assert MediaSettings.read(out) == MediaSettings(
        fps=2.0, max_frames=16, video_size=(56, 56), min_pixels=784
    )
    assert (out / "preprocessor_config.json").is_file() or (out / "processor_config.json").is_file()

    base = load_file(str(tiny_model_dir / "model.safetensors"))
    merged = {}
    for shard in sorted(out.glob("*.safetensors")):
        merged.update(load_file(str(shard)))
    assert set(merged) == set(base)  # a plain thinker checkpoint: no lora_A/B, no base_layer names
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    linear = re.compile(r"model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight")
    assert changed and all(linear.fullmatch(k) for k in changed), sorted(changed)[:5]
    kinds = {re.sub(r"layers\.\d+\.", "", k) for k in changed}
    assert {"model.self_attn.q_proj.weight", "model.mlp.down_proj.weight"} <= kinds  # attention and MLP
    assert not any(
        k.startswith(("visual.", "audio_tower.", "lm_head", "model.embed_tokens")) for k in changed
    )

    [summary] = predict(
        out, [(synthetic_sims_dir, "sims")], tmp_path / "pred", split="train", max_new_tokens=8, limit=2
    )
    rows = [json.loads(x) for x in summary.path.read_text().splitlines()]
    assert len(rows) == 2 and all(r["raw_output"] is not None for r in rows)
    used = json.loads((tmp_path / "pred" / "predict.json").read_text())["datasets"]["sims"]
    assert (used["max_frames"], used["video_size"]) == (16, [56, 56])  # from the merged model's media.json


def test_template_of_another_family_and_a_moe_hub_id_are_refused(
    tmp_path: Path, tiny_qwen3_model_dir: Path, lf_export: Path
) -> None:
    from msa_rl.sft_recipe import validate

    wrong = _demo(tiny_qwen3_model_dir, lf_export, tmp_path / "a")  # the demo recipe names qwen2_omni
    with pytest.raises(
        ConfigError, match=r"'qwen2_omni' is the Qwen2\.5-Omni template, but model .* Qwen3-Omni"
    ):
        validate(wrong)
    hub = load_sft_config(None, ["model=Qwen/Qwen3-Omni-30B-A3B-Instruct", f"data={lf_export}"])
    from msa_rl.moe import check_router_aux

    with pytest.raises(ConfigError, match="needs a local checkpoint"):
        check_router_aux(hub.model, hub.router_aux_loss_coef, moe=True, local=False)
    check_router_aux(hub.model, 0.0, moe=True, local=False)  # router loss off: a Hub id is fine


# ------------------------------------------------------ the Qwen3-Omni (MoE) student: one run, its handoff
@pytest.fixture(scope="module")
def qwen3_sft_run(tiny_qwen3_model_dir: Path, lf_export: Path, tmp_path_factory: pytest.TempPathFactory):
    """LLaMA-Factory SFT of the tiny Qwen3-Omni thinker, 2 steps, template and router loss from its family."""
    out = tmp_path_factory.mktemp("sft-qwen3") / "run"
    config = _demo(
        tiny_qwen3_model_dir,
        lf_export,
        out,
        "template=",
        "max_steps=2",
        "per_device_train_batch_size=3",
        "learning_rate=1e-3",
        "logging_steps=1",
    )
    plan = prepare(config)
    lines: list[str] = []
    return plan, run(plan, echo=lines.append)


@pytest.mark.slow
def test_qwen3_sft_with_its_template_router_loss_and_llamafactory_fix(
    qwen3_sft_run, lf_export: Path, tmp_path: Path
) -> None:
    """The family picks LLaMA-Factory's qwen3_omni template; the router's load-balancing loss is on while training
    (the base model view) and off in the saved checkpoint; LLaMA-Factory's tokens of a record, with the family's fix
    applied as msa-rl sft applies it, equal msa_omni's, and without it they do not (its audio-in-video layout)."""
    import torch
    from msa_omni import io as omni
    from msa_omni.families import get_family

    plan, result = qwen3_sft_run
    family = get_family("qwen3-omni")
    lf = yaml.safe_load(plan.llamafactory_yaml.read_text())
    assert lf["template"] == "qwen3_omni"
    view = json.loads((Path(lf["model_name_or_path"]) / "config.json").read_text())
    assert view["text_config"]["output_router_logits"] is True
    assert plan.env["MSA_THINKER_LF_PATCH"] == family.lf_patch
    assert len(result.losses) == 2 and all(math.isfinite(x) for x in result.losses)
    saved = json.loads((result.output_dir / "config.json").read_text())
    assert saved["model_type"] == family.thinker_model_type
    assert saved["text_config"]["output_router_logits"] is False

    model, processor = omni.load_thinker(result.output_dir)
    record = json.loads((lf_export / "msa_cot.json").read_text())[0]
    prompt = Prompt(
        system=record["system"], user=record["messages"][0]["content"].removeprefix("<video><audio>")
    )
    batch = omni.encode_example(
        processor, prompt, omni.clip_media(lf_export / record["videos"][0]), record["messages"][1]["content"]
    )
    with torch.no_grad():
        loss_default = model(**omni.model_forward_kwargs(batch)).loss.item()
    torch.save(dict(batch), tmp_path / "batch.pt")
    env_path = envs.ensure_sft_env(quiet=True)
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [
            str(envs.sft_python(env_path)),
            str(PROBE),
            str(result.output_dir),
            str(lf_export),
            str(tmp_path / "batch.pt"),
            str(out),
            family.lf_template,
            family.lf_patch,
        ],
        capture_output=True,
        text=True,
        env=envs.sft_child_env(env_path),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = json.loads(out.read_text())
    ours = batch["input_ids"][0].tolist()
    assert probe["lf"]["input_ids"] == ours and probe["lf"]["labels"] == batch["labels"][0].tolist()
    assert probe["lf_unpatched"]["input_ids"] != ours  # the fix is what makes them equal
    assert sorted(probe["lf_unpatched"]["input_ids"]) == sorted(ours)  # same tokens, another order
    assert probe["omni"]["input_ids"] == ours and probe["omni"]["audio_tokens"] > 0
    assert abs(probe["handoff_loss"] - loss_default) < 1e-5
