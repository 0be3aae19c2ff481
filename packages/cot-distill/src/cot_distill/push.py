"""Publish an export directory as a Hugging Face dataset repository.

The token is read from the ``HF_TOKEN`` environment variable only, handed to ``HfApi`` in memory, and never
printed, logged or written (not even into error messages: Hub errors are scrubbed before they are shown).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from msa_core import ConfigError, DataError, MSAError
from msa_core.outdir import ensure_writable_dir

from cot_distill.card import write_card
from cot_distill.export import MANIFEST_FILE

TOKEN_ENV = "HF_TOKEN"
MEDIA_PATTERNS = ["video/**", "audio/**"]
"""The clips and their wavs: licensed for research use, so uploaded only with ``include_media``."""
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class PushError(MSAError):
    """The Hub refused or could not be reached."""


def hub_token(env: str = TOKEN_ENV) -> str:
    token = os.environ.get(env, "").strip()
    if not token:
        raise ConfigError(
            f"{env} is not set: export a Hugging Face write token as {env} (it is read from the "
            "environment only and never stored)"
        )
    return token


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def push(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    include_media: bool = False,
    token_env: str = TOKEN_ENV,
) -> str:
    """Rewrite the card for ``repo_id``, create the repo if absent, upload ``folder``; return its URL.

    The clips (``video/``, ``audio/``) stay local unless ``include_media``: the source datasets are licensed for
    research use, and the card says where to obtain them and how to put them in place."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DataError(
            f"{MANIFEST_FILE} not found: not an export directory (run `cot-distill export` first)",
            file=manifest_path,
        )
    if not _REPO_ID.match(repo_id):
        raise ConfigError(f"--repo-id {repo_id!r} must look like ORG/NAME")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=manifest_path, line=exc.lineno) from None
    token = hub_token(token_env)
    ensure_writable_dir(folder, "FOLDER")  # the card is rewritten there for this repo id
    write_card(folder, manifest, repo_id=repo_id, media_included=include_media)

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    records = sum(s["records"] for s in manifest["splits"].values())
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            commit_message=f"cot-distill export: {records} answers over {manifest['clips']} clips",
            # temp files of an interrupted export; the media unless asked for
            ignore_patterns=[".*", "**/.*", *([] if include_media else MEDIA_PATTERNS)],
        )
    except Exception as exc:  # any Hub/HTTP failure: show it, without the token
        raise PushError(_scrub(f"upload to {repo_id} failed: {type(exc).__name__}: {exc}", token)) from None
    return str(url)
