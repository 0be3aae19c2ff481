"""A tiny, randomly initialised Qwen2.5-Omni thinker and its full processor, built offline.

The model of the tests and the demo: ~0.46M parameters, loads with ``from_pretrained`` under both environments'
transformers (5.6 in the SFT env, the default env's newer one). The byte-level BPE is trained on the spot on a
corpus made of msa-core's own prompt text and DC answers, so prompts and answers stay a few dozen tokens long.
Heavy imports stay inside functions: the CLI imports this module.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# The 14 added tokens of the real Qwen2.5-Omni tokenizer; here their ids follow the BPE vocabulary.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
]
# The DC tags as whole (ordinary, not special) tokens. The Qwen2 pre-tokenizer would split "</think><score>0"
# into "</", "think", "><", "score", ">", "0", and "score", ">" then opens AND closes the score: a model this small
# keeps confusing the two and ends its answer at "<score>". Decoding is unchanged (they decode to their text).
DC_TAG_TOKENS = ["<polarity>", "</polarity>", "<think>", "</think>", "<score>", "</score>"]
# Qwen2_5OmniProcessor.__init__ reads tokenizer.image_token, .audio_bos_token, ...: declared on the tokenizer.
MODEL_SPECIFIC_TOKENS = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
# Qwen2 pre-tokenizer regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX).
QWEN2_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# The Qwen2.5-Omni chat template, verbatim (default system prompt, media placeholders, str or list content).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Frames are kept at 56x56: 4x4 patches of 14 px, merged 2x2 -> 4 LLM tokens per temporal grid.
TINY_FRAME_SIZE = (56, 56)
TINY_PIXELS = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
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


def build_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE):
    """A Qwen2Tokenizer around a BPE trained on ``tokenizer_corpus``, with the Omni special tokens."""
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
        extra_special_tokens=dict(MODEL_SPECIFIC_TOKENS),
    )
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS}, replace_extra_special_tokens=False)
    tok.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in DC_TAG_TOKENS])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_processor(tokenizer):
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    image_processor = Qwen2VLImageProcessor(
        size=TINY_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    video_processor = Qwen2VLVideoProcessor(
        size=TINY_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2, do_sample_frames=False
    )
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        return_attention_mask=True,
    )
    return Qwen2_5OmniProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer, hidden: int = TINY_HIDDEN, layers: int = TINY_LAYERS):
    from transformers import Qwen2_5OmniThinkerConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = (len(tokenizer) + 63) // 64 * 64  # padded like the real model (vocab_size > len(tokenizer))
    head_dim = hidden // 4
    if head_dim % 16:
        raise ValueError(
            f"hidden must be a multiple of 64 (4 heads, head_dim a multiple of 16), got {hidden}"
        )
    unit = head_dim // 16
    mrope_section = [2 * unit, 3 * unit, 3 * unit]
    text_config = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        use_cache=True,
        tie_word_embeddings=False,
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=layers,
        attention_dropout=0.0,
        # mrope_section must sum to head_dim // 2, split 2:3:3 like the real model ([16, 24, 24] for head_dim 128)
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope_section},
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        bos_token_id=None,
    )
    vision_config = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        in_channels=3,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        out_hidden_size=hidden,
        fullatt_block_indexes=[1],
        hidden_act="silu",
    )
    audio_config = dict(
        num_mel_bins=128,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        d_model=32,
        max_source_positions=1500,
        n_window=100,
        output_dim=hidden,
    )
    return Qwen2_5OmniThinkerConfig(
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        # Not declared fields of the thinker config, but get_rope_index reads them: pass them explicitly.
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        user_token_id=tokenizer.convert_tokens_to_ids(tokenizer.tokenize("user"))[0],
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        tie_word_embeddings=False,
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )


def build_tiny_omni(out_dir: str | Path, seed: int = 0, hidden: int = TINY_HIDDEN) -> Path:
    """Write a tiny random thinker + processor to ``out_dir``; same seed and hidden, same weights.

    ``hidden`` (a multiple of 64; 4 heads): 64 by default, 128 for vLLM (head_dim 32).
    """
    import torch
    from msa_core.media_settings import MediaSettings
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    config = build_config(tokenizer, hidden=hidden)
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    # the frames its processor is built for (TINY_FRAME_SIZE): what predict reads for a model it did not train
    MediaSettings(video_size=TINY_FRAME_SIZE).write(out)
    return out
