"""`msa-thinker publish-model`: a trained checkpoint as a Hugging Face model repository, with its card.

The folder that is uploaded is built first (``--out``; with ``--dry-run`` nothing else happens): the weights and
config, the processor (tokenizer, chat template, processor configs), ``media.json``, the recipe of every training
stage back to the base model (``recipes/``; local paths reduced to their last part), and a model card
(``README.md``): base model, data and the dataset repo it was distilled into, the stages, the evaluation table
from ``msa-eval report``'s ``metrics.json``, the DC format, how to run ``msa-thinker analyze``, the limitations.
Optimizer checkpoints, logs and the trainer's own files stay local. The upload itself is ``cot_distill.push``'s:
the token comes from ``HF_TOKEN`` only and is scrubbed from every error.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from msa_core import ConfigError, DataError, OutputPathError, artifacts
from msa_core.media_settings import MediaSettings
from msa_omni.families import DEFAULT_FAMILY, ModelFamily, family_of_model

WEIGHT_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json")
PROCESSOR_PATTERNS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
)
# Each stage's resolved recipe, by the file it leaves next to its checkpoint.
STAGE_RECIPES = {
    artifacts.GRPO_CONFIG: "GRPO (Hint-GRPO when hard_group_strategy is hint)",
    artifacts.SFT_CONFIG: "cold-start SFT (LLaMA-Factory)",
}
STAGE_KEYS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "finetuning_type",
    "num_generations",
    "hard_group_strategy",
    "reward_coupling",
    "hint",  # recipes written before hard_group_strategy
    "drop_hard",
    "beta",
    "reward_weights",
    "use_vllm",
)
MARKER = ".msa-thinker-publish"
"""Left in --out so that a rebuild may replace what it wrote there, and nothing else."""


@dataclass(frozen=True)
class Stage:
    recipe_file: str
    title: str
    recipe: dict[str, Any]
    model_from: str


def _scrub_paths(value: Any) -> Any:
    """Recipe values with local paths reduced to their last part (a hub id such as Qwen/X is kept)."""
    if isinstance(value, dict):
        return {k: _scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_paths(v) for v in value]
    if isinstance(value, str) and ("/" in value or os.sep in value):
        path = Path(value).expanduser()
        if path.is_absolute() or path.exists() or value.startswith("."):
            return path.name
    return value


def _is_local(value: str) -> bool:
    return Path(value).expanduser().exists() or Path(value).is_absolute()


def training_stages(checkpoint: Path) -> tuple[list[Stage], str]:
    """The stages that made ``checkpoint``, last first, and the base model they started from."""
    stages: list[Stage] = []
    current, seen = checkpoint, set()
    while current.is_dir() and current.resolve() not in seen:
        seen.add(current.resolve())
        found = next((name for name in STAGE_RECIPES if (current / name).is_file()), None)
        if found is None:
            break
        try:
            recipe = yaml.safe_load((current / found).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DataError(f"unreadable recipe: {exc}", file=current / found) from None
        model_from = str(recipe.get("model", ""))
        stages.append(Stage(found, STAGE_RECIPES[found], recipe, model_from))
        if not model_from or not Path(model_from).expanduser().is_dir():
            break
        current = Path(model_from).expanduser()
    base = stages[-1].model_from if stages else ""
    return stages, base


def _files(checkpoint: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(
        p
        for p in checkpoint.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)
    )


def check_checkpoint(checkpoint: Path) -> tuple[list[Path], list[Path], MediaSettings]:
    """The weight and processor files of a checkpoint and its media settings; a DataError for what is missing."""
    from msa_omni import check_thinker_dir

    if not checkpoint.is_dir():
        raise DataError("not a checkpoint folder", file=checkpoint)
    check_thinker_dir(checkpoint)
    weights = _files(checkpoint, WEIGHT_PATTERNS)
    if not any(p.suffix == ".safetensors" for p in weights):
        raise DataError("no *.safetensors weights: not a saved checkpoint", file=checkpoint)
    media = MediaSettings.read(checkpoint)
    if media is None:
        raise DataError(
            f"{artifacts.MEDIA_SETTINGS} is missing: analyze and predict need how the model was trained to see "
            "clips; publish the output folder of `msa-rl sft` or `msa-rl grpo`",
            file=checkpoint,
        )
    return weights, _files(checkpoint, PROCESSOR_PATTERNS), media


def prepare_out(out: Path) -> Path:
    """``out`` empty or made by an earlier publish-model (then emptied); anything else is refused."""
    from msa_core.outdir import ensure_writable_dir

    if out.exists() and out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise OutputPathError(
            "--out holds files publish-model did not write; choose an empty or new folder", file=out
        )
    out = ensure_writable_dir(out, "--out")
    for child in out.iterdir():
        if child.name != MARKER:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (out / MARKER).write_text("built by msa-thinker publish-model\n")
    return out


def _place(src: Path, dst: Path) -> None:
    """A hard link where possible (weights can be large), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_folder(
    checkpoint: str | Path,
    out: str | Path,
    *,
    repo_id: str,
    eval_report: str | Path | None = None,
    dataset_repo: str | None = None,
) -> tuple[Path, list[str]]:
    """Write the repository folder; return it and the files it holds (what the upload sends)."""
    checkpoint = Path(checkpoint)
    weights, processor, media = check_checkpoint(checkpoint)
    metrics = read_metrics(Path(eval_report)) if eval_report is not None else None
    stages, base = training_stages(checkpoint)
    folder = prepare_out(Path(out))
    for src in (*weights, *processor):
        _place(src, folder / src.name)
    media.write(folder)
    for stage in stages:
        text = yaml.safe_dump(_scrub_paths(stage.recipe), sort_keys=False, allow_unicode=True)
        (folder / "recipes").mkdir(exist_ok=True)
        (folder / "recipes" / stage.recipe_file).write_text(text, encoding="utf-8")
    card = model_card(
        repo_id=repo_id,
        base=base,
        stages=stages,
        media=media,
        metrics=metrics,
        dataset_repo=dataset_repo,
        data_manifest=_export_manifest(stages),
        family=family_of_model(checkpoint),
    )
    (folder / "README.md").write_text(card, encoding="utf-8")
    files = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER
    )
    return folder, files


def read_metrics(path: Path) -> dict[str, Any]:
    """``msa-eval report``'s ``metrics.json`` (or the report folder holding it)."""
    if path.is_dir():
        path = path / artifacts.REPORT_JSON
    if not path.is_file():
        raise DataError(f"not found: give msa-eval report's folder or its {artifacts.REPORT_JSON}", file=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=path, line=exc.lineno) from None
    if not isinstance(data, dict) or "results" not in data or "datasets" not in data:
        raise DataError("not an msa-eval report metrics.json (no results/datasets)", file=path)
    return data


def _export_manifest(stages: list[Stage]) -> dict[str, Any] | None:
    """The export manifest of the data the earliest stage trained on, if it is still on disk."""
    for stage in reversed(stages):
        data = stage.recipe.get("data")
        if data and (Path(data) / artifacts.EXPORT_MANIFEST).is_file():
            try:
                return json.loads((Path(data) / artifacts.EXPORT_MANIFEST).read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                return None
    return None


# ------------------------------------------------------------------------------------------------------ card
def eval_tables(metrics: dict[str, Any]) -> str:
    """The report's tables (msa_eval.tables' layout), one per metric family, over every run it scored."""
    from msa_eval.tables import DatasetColumn, markdown_table

    runs = list(metrics["results"])
    families: dict[str, list[DatasetColumn]] = {}
    for name, info in metrics["datasets"].items():
        title = info.get("title", name)  # the report's title already says ID or OOD
        families.setdefault(info.get("family", "sims"), []).append(DatasetColumn(name, title))
    cells = {
        (run, ds): cell["metrics"]
        for run, by_ds in metrics["results"].items()
        for ds, cell in by_ds.items()
        if cell.get("status") == "ok"
    }
    blocks = [markdown_table(family, runs, columns, cells) for family, columns in families.items()]
    clips = {
        ds: cell.get("clips")
        for by_ds in metrics["results"].values()
        for ds, cell in by_ds.items()
        if cell.get("status") == "ok"
    }
    note = ", ".join(f"{ds}: {n} clips" for ds, n in clips.items() if n is not None)
    return "\n\n".join(blocks) + (f"\n\nTest sets: {note}." if note else "")


def _stage_line(stage: Stage) -> str:
    keys = ", ".join(f"{k}={stage.recipe[k]}" for k in STAGE_KEYS if stage.recipe.get(k) is not None)
    return f"  - **{stage.title}**: `recipes/{stage.recipe_file}`" + (f" ({keys})" if keys else "")


def model_card(
    *,
    repo_id: str,
    base: str,
    stages: list[Stage],
    media: MediaSettings,
    metrics: dict[str, Any] | None,
    dataset_repo: str | None,
    data_manifest: dict[str, Any] | None,
    family: ModelFamily = DEFAULT_FAMILY,
) -> str:
    base_on_hub = bool(base) and not _is_local(base)
    front: dict[str, Any] = {
        "library_name": "transformers",
        "tags": ["multimodal-sentiment-analysis", family.name, "msa-thinker", "video", "audio"],
    }
    if base_on_hub:
        front["base_model"] = base
    if dataset_repo:
        front["datasets"] = [dataset_repo]
    base_text = (
        f"[{base}](https://huggingface.co/{base})"
        if base_on_hub
        else f"`{Path(base).name}`, a local model (not on the Hub)"
        if base
        else "unknown (no training recipe next to the checkpoint)"
    )
    teachers = ", ".join((data_manifest or {}).get("teacher_models", [])) or "unknown"
    sources = ", ".join((data_manifest or {}).get("datasets", [])) or "unknown"
    data_text = (
        f"DC answers written by the teacher {teachers} for the training clips of {sources}, filtered, with the true "
        "score swapped in"
        + (
            f"; published as the dataset [{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})"
            if dataset_repo
            else "; the dataset repo was not given (`--dataset-repo`)"
        )
        + "."
    )
    stage_lines = "\n".join(_stage_line(s) for s in reversed(stages)) or "  - no training recipe was found"
    evaluation = (
        eval_tables(metrics)
        + "\n\nAccuracies ×100 (Acc2/F1 of MOSI-style sets are Non0); MAE and Corr as MMSA's "
        "`metricsTop.py` computes them; rows are the runs of the report, as it named them."
        if metrics
        else "No evaluation report was given (`--eval runs/report`)."
    )
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {repo_id}

A {family.display} thinker trained with msa-thinker to analyse the sentiment of a speaker in a
video clip: it watches the frames, hears the audio track (interleaved with the video, audio-in-video) and reads the
transcript, then answers in the **Discrimination-Calibration (DC)** format: the polarity first, then its reasoning
over the text, the voice and the face, then a score on the dataset's scale.

```text
<polarity>positive</polarity><think>The words … the voice … the face … Overall the sentiment is positive.</think><score>0.8</score>
```

## Model

- **Base model:** {base_text}.
- **Data:** {data_text}
- **Training stages** (resolved recipes in `recipes/`, local paths reduced to their last part):
{stage_lines}
- **How clips are sampled** (`media.json`, read by `msa-thinker analyze` and `msa-eval predict`): {media.fps:g} frames
  per second, at most {media.max_frames} frames (longer clips thinned evenly), frames within {media.video_size[0]}×{media.video_size[1]} pixels,
  audio-in-video {"on" if media.audio_in_video else "off"}.

## Evaluation

{evaluation}

## How to use

With the msa-thinker toolkit (the weights, processor and `media.json` are downloaded):

```bash
uv run msa-thinker analyze clip.mp4 --model {repo_id}                # polarity, reasoning, score
uv run msa-thinker analyze clips/ --model {repo_id} --transcribe --json
```

The transcript comes from `--transcript`, a `clip.txt`/`clip.srt` next to the clip, or `--transcribe` (this model
transcribes the speech itself). In Python, the checkpoint loads as
`transformers.{family.thinker_class}` with its `AutoProcessor`; build the prompt with
`msa_core.build_prompt` and the clip with `msa_omni.clip_media` so that it sees clips as in training.

## Limitations

- Trained on the data above only; the score scale and polarity rule are those of the training dataset
  (`--scale` changes the prompt, not what the model learnt). Out-of-domain clips (other languages, settings,
  recording conditions) are less reliable.
- The reasoning is generated text: it can name a cue that is not there. It explains the answer; it is not a
  measurement of the clip.
- Clips longer than the frame budget are thinned, and audio beyond the processor's window is not heard.
- Sentiment is not a fact about a person. Do not use the output to judge, rank or profile people.
"""


# ---------------------------------------------------------------------------------------------------- upload
def check_repo_id(repo_id: str) -> None:
    from cot_distill.push import _REPO_ID

    if not _REPO_ID.match(repo_id):
        raise ConfigError(f"--repo-id {repo_id!r} must look like ORG/NAME")


def upload(folder: Path, repo_id: str, *, private: bool, token: str) -> str:
    """Create the model repo (if absent) and upload ``folder``; errors come without the token."""
    from cot_distill.push import PushError, _scrub
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message="msa-thinker publish-model",
            ignore_patterns=[".*", "**/.*"],  # the folder's marker
        )
    except Exception as exc:  # any Hub/HTTP failure: show it, without the token
        raise PushError(_scrub(f"upload to {repo_id} failed: {type(exc).__name__}: {exc}", token)) from None
    return str(url)
