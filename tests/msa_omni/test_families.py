"""msa_omni.families: the one seam for the student family; no other module names a family."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest
from msa_core import ConfigError
from msa_omni import families

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "packages/msa-omni/src/msa_omni/families"
MARKERS = sorted({m for f in families.FAMILIES.values() for m in f.markers}, key=len, reverse=True)


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def family_names_in(source: str) -> list[tuple[int, str]]:
    """(line, marker) for every identifier or string (docstrings and comments aside) that names a family."""
    docs = _docstring_lines(ast.parse(source))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.NAME, tokenize.STRING) or tok.start[0] in docs:
            continue
        hit = next((m for m in MARKERS if m in tok.string), None)
        if hit:
            found.append((tok.start[0], hit))
    return found


def test_every_family_has_distinct_markers() -> None:
    assert set(families.FAMILY_NAMES) >= {"qwen2.5-omni", "qwen3-omni"}
    for family in families.FAMILIES.values():
        others = {m for f in families.FAMILIES.values() if f is not family for m in f.markers}
        assert not others & set(family.markers), family.name
        assert families.family_of_model_type(family.thinker_model_type) is family
        assert families.family_of_model_type(family.full_model_type) is family
        assert families.family_of_hub_id(family.reference_model) is family


def test_no_module_outside_the_registry_names_a_family() -> None:
    sources = [
        p
        for p in [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("src/**/*.py"), *ROOT.glob("bench/*.py")]
        if REGISTRY not in p.parents
    ]
    assert len(sources) > 30
    offenders = [
        f"{p.relative_to(ROOT)}:{line}: {marker}"
        for p in sources
        for line, marker in family_names_in(p.read_text())
    ]
    assert offenders == []


def test_the_detector_finds_a_class_a_model_type_and_a_template() -> None:
    """The scan above can fail: identifiers and strings are found, docstrings and comments are not."""
    source = (
        '"""Loads Qwen2_5OmniThinkerForConditionalGeneration."""\n'
        "from transformers import Qwen3OmniMoeThinkerForConditionalGeneration  # qwen2_omni\n"
        'TEMPLATE = "qwen3_omni"\n'
        'TYPES = ("qwen2_5_omni_thinker",)\n'
    )
    assert [line for line, _ in family_names_in(source)] == [2, 3, 4]


def test_lookups_and_errors(tmp_path: Path) -> None:
    assert families.get_family("qwen3-omni").moe and not families.get_family("qwen2.5-omni").moe
    with pytest.raises(
        ConfigError, match=r"unknown model family 'llama'; supported: qwen2\.5-omni, qwen3-omni"
    ):
        families.get_family("llama")
    with pytest.raises(ConfigError, match=r"not a Qwen2\.5-Omni thinker or a Qwen3-Omni thinker"):
        families.family_of_config({"model_type": "llama"})
    with pytest.raises(ConfigError, match=r"no config\.json"):
        families.family_of_model(tmp_path)
    assert families.family_of_model("Qwen/Qwen3-Omni-30B-A3B-Instruct").name == "qwen3-omni"


def test_vllm_config_wraps_a_thinker_config() -> None:
    for family in families.FAMILIES.values():
        thinker = {
            "model_type": family.thinker_model_type,
            "architectures": [family.thinker_class],
            "dtype": "float32",
        }
        full = family.vllm_config(thinker)
        assert full["architectures"] == [family.vllm_architecture]
        assert full["model_type"] == family.full_model_type and full["enable_audio_output"] is False
        assert full["thinker_config"] == {"model_type": family.thinker_model_type, "dtype": "float32"}
        assert full["torch_dtype"] == "float32"


# ------------------------------------------------------------------------------- the tiny Qwen3-Omni thinker
@pytest.fixture(scope="module")
def qwen3(tiny_qwen3_model_dir: Path):
    from msa_omni import load_thinker

    return load_thinker(tiny_qwen3_model_dir)


def test_tiny_qwen3_is_a_small_moe_loaded_by_transformers(qwen3, tiny_qwen3_model_dir: Path) -> None:
    from transformers import AutoConfig

    model, processor = qwen3
    family = families.family_of_model(tiny_qwen3_model_dir)
    assert family.name == "qwen3-omni" and type(model).__name__ == family.thinker_class
    assert type(processor).__name__ == family.processor_class
    text = AutoConfig.from_pretrained(tiny_qwen3_model_dir).text_config
    assert (text.num_experts, text.num_experts_per_tok) == (4, 2) and text.head_dim == 32
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    assert model.config.position_id_per_seconds == 13  # = the processor's own default (M-RoPE time scale)


def test_qwen3_clip_encodes_interleaved_and_reaches_the_loss(qwen3, synthetic_sims_dir: Path) -> None:
    """Audio and video interleaved by time in one video turn; both towers get gradients; the router's
    load-balancing loss comes with router logits."""
    import itertools

    import torch
    from msa_core import DCOutput, MediaSettings, build_prompt, get_spec, read_mmsa
    from msa_omni import io as omni

    model, processor = qwen3
    clip = read_mmsa(synthetic_sims_dir, "sims").clips[0]
    media = omni.clip_media(clip.video_path, MediaSettings())
    prompt = build_prompt(clip.text, get_spec("sims"))
    batch = omni.encode_prompt(processor, prompt, media)
    ids = batch["input_ids"][0].tolist()
    audio, video = (
        processor.tokenizer.convert_tokens_to_ids(t) for t in (processor.audio_token, processor.video_token)
    )
    runs = [
        ("A" if k == audio else "V", len(list(g))) for k, g in itertools.groupby(ids) if k in (audio, video)
    ]
    # 2 s, 4 frames at 2 fps -> 2 temporal grids (1 token each at 32x32), ~13 audio tokens a second between them
    assert [kind for kind, _ in runs] == ["V", "A", "V", "A"] and runs[1][1] == 13
    text = processor.tokenizer.decode(ids)
    assert "<|vision_start|><|audio_start|>" in text and "<|audio_end|><|vision_end|>" in text

    answer = DCOutput(polarity="positive", think="The voice sounds cheerful.", score=0.5).render()
    example = omni.encode_example(processor, prompt, media, answer)
    model.zero_grad()
    out = model(**omni.model_forward_kwargs(example), output_router_logits=True)
    out.loss.backward()
    assert model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.audio_tower.conv2d1.weight.grad.abs().sum() > 0
    assert out.aux_loss is not None and float(out.aux_loss) > 0
    with torch.no_grad():
        plain = model(**omni.model_forward_kwargs(example)).loss
    # loss = LM loss + router_aux_loss_coef x aux only when router logits are asked for
    assert float(out.loss) == pytest.approx(float(plain) + 0.001 * float(out.aux_loss), rel=1e-5)
    with torch.no_grad():
        generated = model.generate(**omni.model_forward_kwargs(batch), max_new_tokens=4, min_new_tokens=4)
    assert generated.shape[1] == len(ids) + 4
