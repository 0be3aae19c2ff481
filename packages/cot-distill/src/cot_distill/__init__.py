"""cot-distill: teacher-driven Discrimination-Calibration chain-of-thought distillation.

Public API (imported lazily, so ``import cot_distill`` stays cheap for the umbrella CLI):
- configuration: ``DistillConfig``, ``load_config``, ``TeacherPrompt``, ``load_teacher_prompt``;
- running: ``distill`` (= ``cot_distill.generate.generate``) → ``GenerateResult``; ``summarize`` (offline
  re-filtering); ``TeacherClient``;
- filters: ``AnswerFilter``, ``Verdict``, ``reason_group``;
- cache: ``request_key``, ``read_jsonl``;
- the stand-in teacher (Qwen3-Omni-30B stand-in): ``StandInTeacher``, ``ServerThread``, ``parse_faults``;
- publishing: ``export_dataset`` (= ``cot_distill.export.export``), ``push_dataset`` (= ``cot_distill.push.push``).

Functions whose submodule has the same name are exported under another name, so ``cot_distill.generate`` always
stays the module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {  # public name -> (module, attribute)
    "DistillConfig": ("cot_distill.config", "DistillConfig"),
    "load_config": ("cot_distill.config", "load_config"),
    "TeacherPrompt": ("cot_distill.teacher_prompt", "TeacherPrompt"),
    "load_teacher_prompt": ("cot_distill.teacher_prompt", "load_teacher_prompt"),
    "distill": ("cot_distill.generate", "generate"),
    "GenerateResult": ("cot_distill.generate", "GenerateResult"),
    "GenerateInterrupted": ("cot_distill.generate", "GenerateInterrupted"),
    "summarize": ("cot_distill.outcomes", "summarize"),
    "TeacherClient": ("cot_distill.client", "TeacherClient"),
    "TeacherRequestError": ("cot_distill.client", "TeacherRequestError"),
    "AnswerFilter": ("cot_distill.filters", "AnswerFilter"),
    "Verdict": ("cot_distill.filters", "Verdict"),
    "reason_group": ("cot_distill.filters", "reason_group"),
    "request_key": ("cot_distill.cache", "request_key"),
    "read_jsonl": ("cot_distill.cache", "read_jsonl"),
    "StandInTeacher": ("cot_distill.standin", "StandInTeacher"),
    "ServerThread": ("cot_distill.standin", "ServerThread"),
    "parse_faults": ("cot_distill.standin", "parse_faults"),
    "export_dataset": ("cot_distill.export", "export"),
    "push_dataset": ("cot_distill.push", "push"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'cot_distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
