from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cot_distill.config import DistillConfig, dump_config, load_config
from msa_core import ConfigError
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[2]


def _models(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _models(field.annotation)


def test_every_field_has_a_default_and_a_description():
    DistillConfig()  # all defaults
    for model in _models(DistillConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert not field.is_required(), f"{model.__name__}.{name} has no default"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus: 1\n", "bogus"),
        ("filters:\n  min_think: 3\n", "filters.min_think"),
        ("sampling:\n  temprature: 0.1\n", "sampling.temprature"),
    ],
)
def test_unknown_keys_name_the_key(tmp_path: Path, text: str, key: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"unknown key '{key}'") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_an_api_key_field_is_refused_with_a_hint(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("api_key: sk-123\n")
    with pytest.raises(ConfigError, match="api_key_env"):
        load_config(path)


def test_precedence_yaml_then_set_then_options(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("concurrency: 3\nsampling:\n  temperature: 0.1\n  top_p: 0.5\nmodel: a\n")
    cfg = load_config(
        path,
        sets=["sampling.temperature=0.2", "filters.reask_on=[format]", "model=b"],
        overrides={"model": "c", "limit": None},
    )
    assert cfg.concurrency == 3
    assert cfg.sampling.temperature == 0.2 and cfg.sampling.top_p == 0.5
    assert cfg.filters.reask_on == ["format"]
    assert cfg.model == "c"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(sets=["sampling.temperature"])
    with pytest.raises(ConfigError, match="concurrency"):
        load_config(overrides={"concurrency": 0})
    with pytest.raises(ConfigError, match="not an http"):
        load_config(overrides={"base_urls": ["ftp://x"]})


def test_dumped_config_round_trips_without_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written-123")
    cfg = load_config(overrides={"data": "/d", "base_urls": ["http://h:1/v1/", "http://h:2/v1"]})
    assert cfg.base_urls == ["http://h:1/v1", "http://h:2/v1"]
    dump_config(cfg, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "sk-never-written-123" not in text
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("name", ["configs/distill/generate.yaml", "configs/demo/distill.yaml"])
def test_shipped_configs_load(name: str):
    cfg = load_config(REPO / name)
    assert cfg.teacher_prompt.endswith("teacher-v1.yaml")
    assert yaml.safe_load((REPO / name).read_text())  # not empty
