"""The tiny offline Omni thinker: loads with from_pretrained, deterministic by seed, a compact vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

from msa_core import DCOutput, build_prompt, get_spec
from msa_rl.cli import app
from msa_rl.tiny import DC_TAG_TOKENS, SPECIAL_TOKENS, build_tokenizer
from typer.testing import CliRunner


def test_loads_with_from_pretrained(tiny_model_dir: Path) -> None:
    from transformers import AutoProcessor, Qwen2_5OmniThinkerForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2_5OmniProcessor"
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    first = len(tok) - len(SPECIAL_TOKENS) - len(DC_TAG_TOKENS)
    assert sorted(ids) == list(range(first, first + len(SPECIAL_TOKENS)))  # right after the BPE vocabulary
    assert model.config.text_config.vocab_size >= len(tok)
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|VIDEO|>")
    assert model.config.audio_token_id == tok.convert_tokens_to_ids("<|AUDIO|>")
    assert tok.eos_token == "<|im_end|>" == tok.decode([model.generation_config.eos_token_id])
    # The saved video processor keeps frames small (56x56 max), which LLaMA-Factory's loading uses as is.
    assert (
        json.loads((tiny_model_dir / "processor_config.json").read_text())["video_processor"]["size"][
            "longest_edge"
        ]
        == 56 * 56
    )


def test_vocabulary_covers_prompt_and_dc_answers() -> None:
    tok = build_tokenizer()
    spec = get_spec("sims")
    prompt = build_prompt("Honestly, the concert felt absolutely delightful.", spec)
    answer = DCOutput(
        polarity="positive", think="The voice sounds cheerful and the face smiles.", score=0.62
    ).render()
    for text in (prompt.system, prompt.user, answer):
        assert tok.decode(tok(text).input_ids) == text  # byte-level: lossless
    # Word-level pieces (digits and punctuation are split by the Qwen2 pre-tokenizer, not by the vocabulary).
    assert len(tok(prompt.user).input_ids) < 1.6 * len(prompt.user.split())
    assert len(tok(answer).input_ids) <= 20
    # Each DC tag is one ordinary token: the score's opening and closing tags cannot be confused.
    pieces = tok.convert_ids_to_tokens(tok(answer).input_ids)
    assert all(pieces.count(tag) == 1 for tag in DC_TAG_TOKENS)
    assert not any(tok.convert_tokens_to_ids(tag) in tok.all_special_ids for tag in DC_TAG_TOKENS)
    assert len(tok(prompt.system).input_ids) <= len(prompt.system.split()) + 10


def test_cli_is_deterministic_by_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    runner = CliRunner()
    for name, seed in (("a", 0), ("b", 1)):
        result = runner.invoke(app, ["tiny-model", str(tmp_path / name), "--seed", str(seed)])
        assert result.exit_code == 0, result.output
    same = (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tiny_model_dir / "model.safetensors"
    ).read_bytes()
    assert same, "seed 0 built twice gave different weights"
    assert (tmp_path / "b" / "model.safetensors").read_bytes() != (
        tmp_path / "a" / "model.safetensors"
    ).read_bytes()
    # The tokenizer does not depend on the seed: every tiny model shares one processor.
    assert (tmp_path / "b" / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()


def test_cli_hidden_128_gives_head_dim_32_for_vllm(tmp_path: Path) -> None:
    """vLLM's CPU attention has no head_dim-16 kernel: --hidden 128 builds 4 heads of 32."""
    runner = CliRunner()
    result = runner.invoke(app, ["tiny-model", str(tmp_path / "m"), "--hidden", "128"])
    assert result.exit_code == 0, result.output
    text = json.loads((tmp_path / "m" / "config.json").read_text())["text_config"]
    assert (text["hidden_size"], text["head_dim"], text["num_attention_heads"]) == (128, 32, 4)
    assert sum(text["rope_parameters"]["mrope_section"]) == 16
    bad = runner.invoke(app, ["tiny-model", str(tmp_path / "bad"), "--hidden", "96"])
    assert bad.exit_code == 2 and "multiple of 64" in bad.output


def test_cli_family_option(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["tiny-model", str(tmp_path / "x"), "--family", "llama"])
    assert (
        bad.exit_code == 2 and "unknown model family 'llama'" in bad.output and not (tmp_path / "x").exists()
    )
    good = runner.invoke(app, ["tiny-model", str(tmp_path / "q3"), "--family", "qwen3-omni"])
    assert good.exit_code == 0 and "Qwen3-Omni MoE thinker (4 experts, top-2)" in good.output
    config = json.loads((tmp_path / "q3" / "config.json").read_text())
    assert (
        config["model_type"] == "qwen3_omni_moe_thinker" and config["text_config"]["num_experts_per_tok"] == 2
    )
