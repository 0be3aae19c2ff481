"""`msa-thinker app`: a web page that shows a DC answer (Gradio, the ``app`` extra).

Upload a clip or pick one of the demo's, type the transcript or let it be filled (a demo clip's own transcript, or
the model's transcription), and see the polarity, the reasoning with each sentence marked by the modality whose cue
it names (text, audio, visual), and the score on its scale; the raw output is behind one click. The answers come
from ``msa_thinker.analyze.Analyst``: the same prompt, media settings and generator as ``msa-thinker analyze``.
"""

from __future__ import annotations

import html
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msa_core import ConfigError, MSAError

from msa_thinker.analyze import DEMO_MODEL, Analyst

DEMO_DATA = Path("runs/demo/data")
SCALES = ("sims", "mosi")
# A sentence ends at . ! or ? followed by a space (or the end); a quote's own full stop stays inside it.
_SENTENCE = re.compile(r".+?(?:[.!?]+[\"'”’)]*(?=\s|$)|$)", re.S)


def modality_patterns() -> dict[str, re.Pattern[str]]:
    """Word prefixes that name each modality: the distillation filter's own list (one list, two users)."""
    from cot_distill.config import DEFAULT_MODALITY_KEYWORDS

    return {
        m: re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + ")", re.I)
        for m, words in DEFAULT_MODALITY_KEYWORDS.items()
    }


def mark_cues(think: str) -> list[tuple[str, str | None]]:
    """The reasoning split into sentences, each labelled with the modalities it names ("audio", "text + visual"),
    or None when it names none (the conclusion, say)."""
    patterns = modality_patterns()
    out: list[tuple[str, str | None]] = []
    for match in _SENTENCE.finditer(think):
        sentence = match.group(0)
        if not sentence.strip():
            continue
        named = [m for m, p in patterns.items() if p.search(sentence)]
        out.append((sentence, " + ".join(named) if named else None))
    return out


@dataclass(frozen=True)
class DemoClip:
    label: str
    path: Path
    transcript: str


def demo_clips(root: Path = DEMO_DATA, per_dataset: int = 4) -> list[DemoClip]:
    """A few test clips of each dataset `msa-thinker demo` wrote, with their transcripts; none before the demo."""
    from msa_core import read_mmsa

    clips = []
    for name in ("sims", "mosi"):
        folder = root / name
        if not (folder / "label.csv").is_file():
            continue
        try:
            data = read_mmsa(folder, name, split="test")
        except MSAError:
            continue
        for clip in data.clips[:per_dataset]:
            clips.append(
                DemoClip(f"{name}: {clip.video_id}/{clip.clip_id}", clip.video_path.resolve(), clip.text)
            )
    return clips


def render_polarity(rec: dict[str, Any]) -> str:
    if rec["parse_failed"] or not rec["polarity"]:
        return (
            f'<div id="dc-polarity" class="dc-failed">no DC answer ({html.escape(rec["parse_reason"])})</div>'
        )
    return f'<div id="dc-polarity" class="dc-{rec["polarity"]}">{html.escape(rec["polarity"])}</div>'


def render_score(rec: dict[str, Any]) -> str:
    lo, hi = rec["score_range"]
    if rec["score"] is None:
        return '<div id="dc-score">no score</div>'
    share = 100 * (rec["score"] - lo) / (hi - lo)
    return (
        f'<div id="dc-score"><b>{rec["score"]:g}</b> on the {html.escape(rec["scale"])} scale ({lo:g} to {hi:g})'
        f'<div class="dc-bar"><div class="dc-mark" style="left:{share:.1f}%"></div></div></div>'
    )


CSS = """
#dc-polarity {font-size: 1.6em; font-weight: 600; text-transform: capitalize}
.dc-positive {color: #15803d} .dc-negative {color: #b91c1c} .dc-neutral {color: #475569}
.dc-bar {position: relative; height: 8px; margin-top: 6px; border-radius: 4px;
         background: linear-gradient(90deg, #b91c1c, #94a3b8, #15803d)}
.dc-mark {position: absolute; top: -4px; width: 4px; height: 16px; background: #111827}
"""
CUE_COLOURS = {"text": "#60a5fa", "audio": "#f59e0b", "visual": "#a78bfa"}


def build_app(analyst: Analyst, clips: list[DemoClip]):
    """The page: inputs left, the DC answer right."""
    import gradio as gr

    lock = threading.Lock()  # one generate at a time on one model
    by_label = {c.label: c for c in clips}

    def pick(label: str | None):
        clip = by_label.get(label or "")
        return (str(clip.path), clip.transcript) if clip else (None, "")

    def fill(video: str | None):
        if not video:
            raise gr.Error("upload or pick a clip first")
        with lock:
            try:
                return analyst.transcribe(video).text
            except MSAError as exc:
                raise gr.Error(str(exc)) from None

    def run(video: str | None, transcript: str, scale: str):
        if not video:
            raise gr.Error("upload or pick a clip first")
        with lock:
            try:
                rec = analyst.analyze(video, scale=scale, transcript=transcript)
            except MSAError as exc:
                raise gr.Error(str(exc)) from None
        colours = {**CUE_COLOURS}
        cues = mark_cues(rec["think"] or "")
        for _, label in cues:
            if label and label not in colours:
                colours[label] = "#d1d5db"
        note = rec["clip"]["note"]
        source = {"option": "typed or filled in on this page"}.get(
            rec["transcript_source"], rec["transcript_source"]
        )
        source += f" ({rec['transcript_detail']})" if rec["transcript_detail"] else ""
        return (
            render_polarity(rec),
            gr.HighlightedText(value=cues, color_map=colours),
            render_score(rec),
            rec["raw_output"],
            f"Transcript source: {source}" + (f"  \nNote: {note}" if note else ""),
        )

    with gr.Blocks(title="MSA-Thinker", analytics_enabled=False) as page:
        gr.Markdown(
            "# MSA-Thinker\nThe model watches the clip, listens to it and reads its transcript, then answers in the "
            "Discrimination-Calibration format: **polarity**, **reasoning** over text, audio and visual cues, "
            f"**score**. Model: `{analyst.settings.model}`"
        )
        with gr.Row():
            with gr.Column():
                demo = gr.Dropdown(
                    choices=[c.label for c in clips],
                    value=None,
                    label="A demo clip"
                    if clips
                    else "A demo clip (run `uv run msa-thinker demo` to have some)",
                    elem_id="demo-clip",
                )
                video = gr.Video(label="Clip (mp4, mkv, webm, mov)", sources=["upload"], elem_id="clip")
                transcript = gr.Textbox(label="Transcript", lines=2, elem_id="transcript")
                with gr.Row():
                    auto = gr.Button("Auto-fill the transcript (the model transcribes)", elem_id="autofill")
                    scale = gr.Radio(list(SCALES), value="sims", label="Scale", elem_id="scale")
                go = gr.Button("Analyse", variant="primary", elem_id="analyse")
            with gr.Column():
                polarity = gr.HTML(label="Polarity", elem_id="polarity-box")
                reasoning = gr.HighlightedText(
                    label="Reasoning (each sentence marked by the modality it names)",
                    color_map=CUE_COLOURS,
                    combine_adjacent=False,
                    elem_id="reasoning",
                )
                score = gr.HTML(label="Score", elem_id="score-box")
                info = gr.Markdown(elem_id="info")
                with gr.Accordion("Raw output", open=False, elem_id="raw-accordion"):
                    raw = gr.Textbox(label="What the model wrote", lines=4, elem_id="raw")
        demo.change(pick, inputs=demo, outputs=[video, transcript])
        auto.click(fill, inputs=video, outputs=transcript)
        go.click(run, inputs=[video, transcript, scale], outputs=[polarity, reasoning, score, raw, info])
    return page


def serve(
    model: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    demo_data: Path = DEMO_DATA,
    max_new_tokens: int = 256,
) -> None:
    """Build the page and serve it until interrupted."""
    analyst = Analyst(model, max_new_tokens=max_new_tokens)  # a missing model is said before Gradio loads
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the app needs Gradio, in the `app` extra: uv run --extra app msa-thinker app"
        ) from None
    clips = demo_clips(demo_data)
    page = build_app(analyst, clips)
    allowed = sorted({str(c.path.parent.parent) for c in clips})
    print(
        f"msa-thinker app: model {analyst.settings.model} ({DEMO_MODEL} by default), {len(clips)} demo clip(s)"
    )
    page.launch(
        server_name=host, server_port=port, allowed_paths=allowed, css=CSS, show_error=True, quiet=False
    )
