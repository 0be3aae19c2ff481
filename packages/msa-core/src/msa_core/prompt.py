"""The one prompt: system + user turn, parameterised by the dataset's range and polarity rule.

The teacher request, the LLaMA-Factory export, the GRPO prompt and ``msa-eval predict`` all build from
``build_prompt``; each places the media parts the way its runtime needs (OpenAI content parts, ``<video><audio>``
placeholders, HF chat-template parts), so the text around the media is identical everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msa_core.spec import DatasetSpec

PROMPT_VERSION = "dc-v1"

SYSTEM_PROMPT = (
    "You are MSA-Thinker, an expert in multimodal sentiment analysis. You watch a video clip, listen to its audio "
    "and read its transcript, then judge the speaker's sentiment: first the polarity, then your reasoning, then a "
    "calibrated score."
)

USER_TEMPLATE = (
    "Analyse the sentiment of the speaker in this clip.\n"
    'Transcript: "{text}"\n'
    "First decide the polarity ({rule}). Then reason about the textual, acoustic and visual cues in turn. "
    "Finally give a sentiment score from {lo:g} (strongly negative) to {hi:g} (strongly positive) that agrees "
    "with the polarity.\n"
    "Answer exactly in this format: "
    "<polarity>negative, neutral or positive</polarity><think>your reasoning</think><score>a number</score>"
)


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    version: str = PROMPT_VERSION


def build_prompt(text: str, spec: DatasetSpec, *, extra_instruction: str = "") -> Prompt:
    """System and user text for one clip. ``extra_instruction`` (e.g. the teacher's) is appended to the user turn."""
    user = USER_TEMPLATE.format(
        text=" ".join(str(text).split()), rule=spec.polarity_rule_text(), lo=spec.score_min, hi=spec.score_max
    )
    if extra_instruction:
        user = f"{user}\n{extra_instruction.strip()}"
    return Prompt(system=SYSTEM_PROMPT, user=user)


def chat_messages(prompt: Prompt, *, video: Any = None, audio: Any = None) -> list[dict[str, Any]]:
    """HF chat-template messages (Qwen2.5-Omni): media parts first, then the text.

    With audio-in-video (the Omni default) pass only ``video``; the processor takes the audio from it.
    """
    parts: list[dict[str, Any]] = []
    if video is not None:
        parts.append({"type": "video", "video": video})
    if audio is not None:
        parts.append({"type": "audio", "audio": audio})
    parts.append({"type": "text", "text": prompt.user})
    return [
        {"role": "system", "content": [{"type": "text", "text": prompt.system}]},
        {"role": "user", "content": parts},
    ]
