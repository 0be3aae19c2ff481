"""A tiny, randomly initialised Omni thinker of any registered family and its full processor, built offline.

The model of the tests and the demo (the default family's: ~0.46M parameters), loads with ``from_pretrained``
under both environments' transformers (5.6 in the SFT env, the default env's newer one). The family's entry
(``msa_omni.families``) supplies its special tokens, chat template, processor and config; this module the rest. The byte-level BPE is trained on the spot on a
corpus made of msa-core's own prompt text and DC answers, so prompts and answers stay a few dozen tokens long.
Heavy imports stay inside functions: the CLI imports this module.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from msa_omni.families import DEFAULT_FAMILY, ModelFamily, get_family

# The default family's tiny tokens and template (each family's entry holds its own: msa_omni.families).
SPECIAL_TOKENS = list(DEFAULT_FAMILY.tiny.special_tokens)
# The DC tags as whole (ordinary, not special) tokens. The Qwen2 pre-tokenizer would split "</think><score>0"
# into "</", "think", "><", "score", ">", "0", and "score", ">" then opens AND closes the score: a model this small
# keeps confusing the two and ends its answer at "<score>". Decoding is unchanged (they decode to their text).
DC_TAG_TOKENS = ["<polarity>", "</polarity>", "<think>", "</think>", "<score>", "</score>"]
MODEL_SPECIFIC_TOKENS = dict(DEFAULT_FAMILY.tiny.model_specific_tokens)
# Qwen2 pre-tokenizer regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX).
QWEN2_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
CHAT_TEMPLATE = DEFAULT_FAMILY.tiny.chat_template
DEFAULT_VOCAB_SIZE = 2048
# 4 text layers, not 2: measured on the demo's SFT, 2 layers still looped inside <think> after 300 examples
# (13/36 prompts parsed), 4 layers answered in strict DC format on 36/36 after the same 300.
TINY_HIDDEN, TINY_LAYERS = 64, 4
# vLLM's CPU attention has no kernel for head_dim 16 (hidden 64): its tests build the thinker at hidden 128.
VLLM_TINY_HIDDEN = 128

# Words of the synthetic transcripts and the demo's reasoning (English; unseen words fall back to bytes).
_VOCABULARY_TEXT = (
    "i you he she we they it this that the a an of to and in on with for at by from is was are were be "
    "been am not no very really quite so too just about what how why because but or if then than there "
    "here movie film story plot actor acting scene music ending character characters script director "
    "camera great good fine nice wonderful amazing excellent brilliant fun funny enjoyable lovely best "
    "love loved like liked enjoyed bad terrible awful boring poor worst hate hated dislike disliked dull "
    "weak waste mess okay average ordinary normal fair mixed decent plain simple nothing special some "
    "parts happy sad angry calm excited upset disappointed pleased surprised bored neutral flat warm "
    "cold smile smiles smiling frown frowns laugh laughs nod nods shrug shrugs sigh sighs looks look "
    "sounds sound voice tone pitch loud soft steady rising falling fast slow energetic monotone cheerful "
    "tense relaxed face facial expression eyes mouth gaze gesture gestures head body posture visual "
    "acoustic textual transcript words speaker says said speaking clip video audio text cue cues "
    "evidence overall positive negative polarity sentiment score strongly slightly mildly moderately "
    "somewhat clearly agrees supports suggests indicates shows therefore so hence while although however "
    "also both all first then finally reason reasoning judge decide answer think displeased tense low "
    "frowning downturned matter-of-fact level even without marked pleased lively raised cheeks prosody "
    "visually agree "
)
_WORDS = _VOCABULARY_TEXT.split()
# Reasoning shaped like the demo's stand-in teacher (cot_distill.standin): its answers tokenise compactly too.
_THINK_TEMPLATE = (
    'The words of the transcript, "{text}", sound {word}. In the audio the voice is {voice}, and its pitch and '
    "prosody agree. Visually the face is {face}. Overall the sentiment is {polarity}."
)
_CUES = {
    "negative": ("displeased", "tense and low", "frowning, with a downturned mouth"),
    "neutral": ("matter-of-fact", "level and even", "calm, without a marked expression"),
    "positive": ("pleased", "warm and lively", "smiling, with raised cheeks"),
}


def _dc_answers(rng: random.Random, n: int, transcripts: list[str]) -> list[str]:
    """Rendered DC answers with varied reasoning and scores on both scales."""
    from msa_core import DCOutput

    out = []
    for i in range(n):
        polarity = rng.choice(["negative", "neutral", "positive"])
        if i % 2:
            word, voice, face = _CUES[polarity]
            think = _THINK_TEMPLATE.format(
                text=rng.choice(transcripts), word=word, voice=voice, face=face, polarity=polarity
            )
        else:
            think = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 24))).capitalize() + "."
        scale = rng.choice([1.0, 3.0])
        score = round(rng.uniform(-scale, scale), rng.choice([1, 2, 3]))
        out.append(DCOutput(polarity=polarity, think=think, score=score).render())
    return out


def _synthetic_transcripts(rng: random.Random, n: int) -> list[str]:
    """Sentences shaped like msa_core.synthetic's transcripts (read from its word lists when it has them)."""
    from msa_core import synthetic

    templates = getattr(synthetic, "TEMPLATES", ("The {topic} was {word}.",))
    topics = getattr(synthetic, "TOPICS", ("movie",))
    words = [w for pool in getattr(synthetic, "WORDS", {}).values() for w in pool] or ["great"]
    adverbs = ("", "fairly ", "really ", "absolutely ")
    return [
        rng.choice(templates).format(topic=rng.choice(topics), word=rng.choice(adverbs) + rng.choice(words))
        for _ in range(n)
    ]


def tokenizer_corpus() -> list[str]:
    """The BPE training text: the project's prompts for every dataset spec, DC answers, plain English."""
    from msa_core import SYSTEM_PROMPT, build_prompt, list_specs

    rng = random.Random(
        0
    )  # the tokenizer does not depend on the model seed: one vocabulary for every tiny model
    sentences = [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14))).capitalize() + rng.choice(".!?,")
        for _ in range(3000)
    ]
    transcripts = _synthetic_transcripts(rng, 600)
    lines = sentences + transcripts
    for spec in list_specs():
        for text in transcripts[:60]:
            prompt = build_prompt(text, spec)
            lines += [prompt.system, prompt.user]
    lines += [SYSTEM_PROMPT] * 50
    lines += _dc_answers(rng, 1500, transcripts)
    lines += [
        "system",
        "user",
        "assistant",
        "You are a helpful assistant.",
        "0123456789",
        "-1 -0.5 0 0.5 1",
    ] * 20
    return lines


def _family(family: ModelFamily | str) -> ModelFamily:
    return get_family(family) if isinstance(family, str) else family


def build_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE, family: ModelFamily | str = DEFAULT_FAMILY):
    """A Qwen2Tokenizer around a BPE trained on ``tokenizer_corpus``, with the family's special tokens."""
    tiny = _family(family).tiny
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(tokenizer_corpus(), trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    # Qwen2Tokenizer rebuilds the exact Qwen2 pipeline (NFC + Split(regex) + ByteLevel) around vocab/merges.
    tok = Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        extra_special_tokens=dict(tiny.model_specific_tokens),
    )
    tok.add_special_tokens(
        {"additional_special_tokens": list(tiny.special_tokens)}, replace_extra_special_tokens=False
    )
    tok.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in DC_TAG_TOKENS])
    tok.chat_template = tiny.chat_template
    return tok


def build_processor(tokenizer, family: ModelFamily | str = DEFAULT_FAMILY):
    """The family's full processor (image, video, audio, tokenizer) around ``tokenizer``."""
    return _family(family).tiny.build_processor(tokenizer)


def build_config(
    tokenizer,
    hidden: int = TINY_HIDDEN,
    layers: int = TINY_LAYERS,
    family: ModelFamily | str = DEFAULT_FAMILY,
):
    """The family's tiny thinker config for ``tokenizer``'s vocabulary."""
    return _family(family).tiny.build_config(tokenizer, hidden, layers)


def build_tiny_omni(
    out_dir: str | Path, seed: int = 0, hidden: int = TINY_HIDDEN, family: ModelFamily | str = DEFAULT_FAMILY
) -> Path:
    """Write a tiny random thinker + processor of ``family`` to ``out_dir``; same seed and hidden, same weights.

    ``hidden`` (a multiple of 64; 4 heads): 64 by default, 128 for vLLM where the family ties head_dim to it.
    """
    import torch
    from msa_core.media_settings import MediaSettings

    entry = _family(family)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(family=entry)
    processor = build_processor(tokenizer, entry)
    config = build_config(tokenizer, hidden=hidden, family=entry)
    torch.manual_seed(seed)
    model = entry.transformers_class("thinker_class")(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    # MediaSettings' defaults (56x56 frames, the tiny processors' own bound): how the tests and the demo show it
    # clips; predict refuses a model without media.json
    MediaSettings().write(out)
    return out
