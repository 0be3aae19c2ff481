"""The dataset card (README.md) of an export: teacher, prompt version, yields, sizes, schema, licences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from msa_core import MSAError, get_spec

# Field descriptions of the HF schema (export.hf_features); the card prints them as the schema table.
SCHEMA: dict[str, tuple[str, str]] = {
    "id": ("string", "Clip id, `video_id$_$clip_id` (the MMSA convention)."),
    "video_id": ("string", "Source video id."),
    "clip_id": ("string", "Clip id inside the video (kept as text: SIMS ids are zero-padded)."),
    "dataset": ("string", "Source dataset (msa-core DatasetSpec name)."),
    "split": ("string", "Source split: train, valid or test."),
    "text": ("string", "Transcript of the clip."),
    "label": ("float64", "Human sentiment score on the dataset's scale."),
    "polarity": (
        "ClassLabel",
        "negative / neutral / positive, from the label by the dataset's neutral band.",
    ),
    "answer": ("string", "Training target: the teacher's DC answer with the true score in place of its own."),
    "teacher_answer": ("string", "The teacher's raw answer."),
    "prompt_version": ("string", "Version of the prompt the teacher was asked with."),
    "model": ("string", "Teacher model."),
    "sample": (
        "int32",
        "Index of the answer among the clip's samples (several answers per clip are allowed).",
    ),
    "system": ("string", "System prompt (the student's, identical at SFT, GRPO and evaluation)."),
    "messages": (
        "list of {role, content}",
        "User turn (`<video><audio>` + prompt) and assistant turn (answer).",
    ),
    "videos": ("list of string", "The clip's mp4, relative to the dataset root."),
    "audios": ("list of string", "The clip's audio track as 16 kHz mono wav, relative to the dataset root."),
}


def _size_category(n: int) -> str:
    for bound, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < bound:
            return name
    return "1M<n<10M"


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of a nested stats.json as ``a.b.c`` keys (its shape belongs to the generate step)."""
    if isinstance(obj, dict):
        out: list[tuple[str, Any]] = []
        for key, value in obj.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list):
        return [(prefix, json.dumps(obj))] if len(obj) <= 8 else [(prefix, f"[{len(obj)} items]")]
    return [(prefix, obj)]


def _licences(names: list[str]) -> list[str]:
    notes = []
    for name in names:
        try:
            spec = get_spec(name)
        except MSAError:
            notes.append(f"- **{name}**: no dataset spec registered here; check the source dataset's terms.")
            continue
        notes.append(
            f"- **{spec.title}**: {spec.license or 'no licence note in its dataset spec; check its terms.'}"
        )
    return notes


def _sources(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            spec = get_spec(name)
        except MSAError:
            out.append(f"- **{name}**: no dataset spec registered here; obtain it from its authors.")
            continue
        where = spec.homepage or "its authors (no homepage in its dataset spec)"
        out.append(f"- **{spec.title}**: from {where}. {spec.license}".rstrip())
    return out


def _media_section(manifest: dict[str, Any], media_included: bool) -> list[str]:
    lines = ["## Media", ""]
    if media_included:
        lines += [
            "The clips (`video/<video_id>/<clip_id>.mp4`) and their audio tracks (`audio/*.wav`, 16 kHz mono) "
            "are included; their source datasets' terms apply (see Licence).",
            "",
        ]
        return lines
    lines += [
        "**The clips are not included** (the source datasets are licensed for research use). Obtain them from "
        "their source:",
        "",
        *_sources(manifest["datasets"]),
        "",
        "then put each record's clip where its `videos` path says, and its audio track where its `audios` path "
        "says:",
        "",
        "```bash",
        "# DATA: the source dataset in the MMSA layout (label.csv + Raw/<video_id>/<clip_id>.mp4)",
        "mkdir -p video && cp -r DATA/Raw/. video/",
        "```",
        "```python",
        "# the wav names are content hashes of the mp4s: extract_wav reproduces them exactly",
        "from pathlib import Path",
        "from msa_core.media import extract_wav  # pip/uv: the msa-core package of msa-thinker",
        'for mp4 in Path("video").rglob("*.mp4"):',
        '    extract_wav(mp4, out_dir="audio")',
        "```",
        "",
    ]
    return lines


def _config_section(manifest: dict[str, Any]) -> list[str]:
    name = manifest.get("distill_config")
    if not name:
        return []
    return [
        "## Distillation config",
        "",
        f"`{name}` is the generate run's resolved configuration: teacher model, prompt, sampling parameters, "
        "retries and filter settings (no secret: only the name of the API key's variable; local paths and "
        "endpoints are left out).",
        "",
    ]


def render_card(manifest: dict[str, Any], repo_id: str | None = None, media_included: bool = True) -> str:
    splits: dict[str, dict[str, Any]] = manifest["splits"]
    total = sum(s["records"] for s in splits.values())
    languages = []
    for name in manifest["datasets"]:
        try:
            lang = get_spec(name).language
        except MSAError:
            continue
        if lang != "other" and lang not in languages:
            languages.append(lang)
    front: dict[str, Any] = {
        "pretty_name": f"{manifest['dataset_name']}: Discrimination-Calibration CoT for multimodal sentiment",
        "license": "other",
        "tags": [
            "multimodal-sentiment-analysis",
            "chain-of-thought",
            "video",
            "audio",
            "distillation",
            "msa-thinker",
        ],
        "task_categories": ["video-text-to-text"],
        "size_categories": [_size_category(total)],
    }
    if languages:
        front["language"] = languages
    if manifest.get("hf"):
        front["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": p} for s, p in manifest["hf"].items()],
            }
        ]
    name = repo_id or manifest["dataset_name"]
    teachers = ", ".join(f"`{m}`" for m in manifest["teacher_models"]) or "(not recorded)"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {name}",
        "",
        "Discrimination-Calibration chain-of-thought answers (`<polarity>…</polarity><think>…</think>"
        "<score>…</score>`) distilled from an Omni teacher over video + audio + transcript clips, "
        "filtered for format, polarity consistency with the human label and reasoning plausibility; "
        "each accepted answer carries the clip's true score in place of the teacher's "
        "(MSA-Thinker, §III-A). Made with `cot-distill export`.",
        "",
        f"- Teacher: {teachers}",
        f"- Prompt version: {', '.join(f'`{v}`' for v in manifest['prompt_versions'])}",
        f"- Source datasets: {', '.join(manifest['datasets'])}",
        f"- Records: {total} answers over {manifest['clips']} clips",
        "",
        "## Sizes",
        "",
        "| split | answers | clips | negative | neutral | positive |",
        "|---|---|---|---|---|---|",
    ]
    for split, s in splits.items():
        pol = s["polarity"]
        lines.append(
            f"| {split} | {s['records']} | {s['clips']} | {pol.get('negative', 0)} | "
            f"{pol.get('neutral', 0)} | {pol.get('positive', 0)} |"
        )
    lines += ["", "## Filter yields", ""]
    stats = manifest.get("filter_stats")
    if stats:
        lines += ["From the generate run's `stats.json`:", "", "| statistic | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in _flatten(stats)]
    else:
        lines.append("No `stats.json` was found next to the accepted answers.")
    lines += ["", "## Schema", "", "| field | type | description |", "|---|---|---|"]
    lines += [f"| `{k}` | {t} | {d} |" for k, (t, d) in SCHEMA.items()]
    lines += ["", "## Use", ""]
    if manifest.get("hf"):
        lines += [
            "```python",
            "from datasets import load_dataset",
            f'ds = load_dataset("{repo_id}")' if repo_id else 'ds = load_dataset("parquet", data_dir="data")',
            "```",
            "",
        ]
    if manifest.get("llamafactory"):
        keys = ", ".join(f"`{v['dataset']}` ({s})" for s, v in manifest["llamafactory"].items())
        lines += [
            f"LLaMA-Factory: point `dataset_dir` at this folder and use {keys} with the student's chat "
            "template (`msa-rl sft` picks it from the model's family) and `use_audio_in_video: true` (the `system` column carries the system prompt; media paths "
            "are relative to the folder).",
            "",
        ]
    lines += _media_section(manifest, media_included)
    lines += _config_section(manifest)
    lines += [
        "## Licence",
        "",
        "The answers are model outputs; the clips, transcripts and labels come from the source datasets, "
        "whose terms apply:",
        "",
        *_licences(manifest["datasets"]),
        "",
    ]
    return "\n".join(lines)


def write_card(
    out_dir: str | Path, manifest: dict[str, Any], repo_id: str | None = None, media_included: bool = True
) -> Path:
    path = Path(out_dir) / "README.md"
    path.write_text(render_card(manifest, repo_id, media_included), encoding="utf-8")
    return path
