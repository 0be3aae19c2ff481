"""Append-only JSONL stores (responses.jsonl, judgements.jsonl, failures.jsonl) and the request cache key.

Each record is written with one ``os.write`` on an ``O_APPEND`` descriptor, so a finished line is in the kernel
the moment its request completes: ``kill -9`` loses nothing finished, and a crash mid-write leaves at most a torn
last line, which ``read_jsonl(..., repair=True)`` cuts off before new lines are appended (msa_core.jsonl).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# The JSONL stores live in msa-core (predictions and GRPO metrics use them too); re-exported for cot-distill.
from msa_core.jsonl import (  # noqa: F401
    JsonlAppender,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)

KEY_SCHEMA = "cot-distill-key-v1"


def request_key(
    *,
    clip_id: str,
    media_hash: str,
    prompt_version: str,
    system: str,
    user: str,
    model: str,
    sampling: dict[str, Any],
    sample: int,
    attempt: int,
) -> str:
    """Content hash naming one request: what was asked, of whom, how, and which sample/attempt it is.

    ``sampling`` holds everything else that changes the answer (sampling params, structured-output regex,
    mm_processor_kwargs). The media transport (file:// or data:) does not change the content, so it is not in it.
    """
    payload = {
        "schema": KEY_SCHEMA,
        "clip_id": clip_id,
        "media_hash": media_hash,
        "prompt_version": prompt_version,
        "system": system,
        "user": user,
        "model": model,
        "sampling": sampling,
        "sample": sample,
        "attempt": attempt,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
