"""The one recipe loader: YAML file (with ``extends``) -> ``--set a.b=value`` overrides -> pydantic validation.

Every stage's recipe (distillation, SFT, GRPO, train, the paper pipeline) is a pydantic model with
``extra="forbid"``; errors name the key at fault and where it came from (the file or the ``--set``).
Precedence: field defaults < the file (and what it extends) < ``--set`` < explicit options given in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from msa_core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
EXTENDS_KEY = "extends"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict; values are YAML scalars (``true``, ``1e-5``, ``[1, 2]``, ``null``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE (KEY may be dotted, e.g. rewards.score=0.5)"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # not YAML (e.g. a bare string with a colon): keep the text as it is
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is already set to a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file; ConfigError naming the file if it is missing, unreadable or not a mapping."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read config: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a YAML mapping")
    return data


def read_recipe_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe file; ``extends: other.yaml`` (relative to the file) loads that recipe first and overlays this one,
    so an ablation states only what it changes."""
    p = Path(path).resolve()
    if p in _seen:
        raise ConfigError(f"{path}: `extends` loops back to itself")
    data = read_yaml(p)
    base = data.pop(EXTENDS_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: `extends` must be a path to another recipe")
    target = p.parent / base
    if not target.is_file():  # name the file and key that point there, not only the missing file
        raise ConfigError(f"{path}, key `extends`: {target} not found (the path is relative to this file)")
    return deep_merge(read_recipe_yaml(target, (*_seen, p)), data)


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted key, message) for each pydantic error; unknown keys say so."""
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        problems.append((key, "unknown key" if err["type"] == "extra_forbidden" else err["msg"]))
    return problems


def validate(cls: type[M], data: dict[str, Any], source: str, overrides: list[str] | None = None) -> M:
    """``cls(**data)`` with pydantic errors turned into one ConfigError naming each key at fault, and the
    ``--set`` that set it when the bad value came from the command line."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        set_keys = {item.partition("=")[0].strip(): item for item in overrides or []}
        parts = []
        for key, msg in validation_problems(exc):
            origin = next(
                (f"--set {s}" for k, s in set_keys.items() if key == k or key.startswith(k + ".")), None
            )
            text = f"unknown key {key!r}" if msg == "unknown key" else f"{key}: {msg}"
            parts.append(f"{text} (from {origin})" if origin else text)
        raise ConfigError(f"{source}: {'; '.join(parts)}") from None


def load_recipe(
    cls: type[M],
    path: str | Path | None,
    overrides: list[str] | None = None,
    explicit: dict[str, Any] | None = None,
) -> M:
    """A recipe from a YAML file (or the defaults), ``--set`` overrides, then explicit non-None values."""
    data = read_recipe_yaml(path) if path is not None else {}
    data = deep_merge(data, parse_overrides(overrides))
    data.update({k: v for k, v in (explicit or {}).items() if v is not None})
    return validate(cls, data, str(path) if path is not None else "defaults", overrides)


def unchosen_defaults(recipe: BaseModel, fields: tuple[str, ...]) -> list[str]:
    """One line per field in ``fields`` that neither the recipe file (nor what it extends) nor a ``--set`` gave:
    the run prints them at its start, so that a default the user did not choose (the 7B model, an output folder
    relative to the working directory) is never used silently."""
    return [
        f"{name} is not set (recipe file or --set): using the default {getattr(recipe, name)!r}"
        for name in fields
        if name not in recipe.model_fields_set
    ]


def write_resolved(recipe: BaseModel, path: str | Path) -> Path:
    """Write the resolved recipe (atomically) so a run records exactly what it ran with."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    tmp.replace(out)
    return out
