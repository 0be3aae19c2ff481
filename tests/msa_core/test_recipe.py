"""msa_core.recipe: the one loader of every recipe (file, extends, --set, validation, write-resolved)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from msa_core import ConfigError, MediaSettings
from msa_core.recipe import load_recipe, parse_overrides, write_resolved
from pydantic import BaseModel, ConfigDict, Field


class Toy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-5, gt=0, description="learning rate")
    name: str = Field("a", description="a name")
    media: MediaSettings = Field(default_factory=MediaSettings, description="media")


def test_precedence_file_then_set_then_explicit(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("lr: 0.1\nname: base\nmedia: {fps: 1.0}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\n")
    toy = load_recipe(Toy, child, ["media.max_frames=4"], {"name": "explicit", "lr": None})
    assert (toy.lr, toy.name, toy.media.fps, toy.media.max_frames) == (0.1, "explicit", 1.0, 4)


def test_errors_name_the_key_and_the_set_that_set_it(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"lr: .*greater than 0 \(from --set lr=-1\)"):
        load_recipe(Toy, recipe, ["lr=-1"])
    with pytest.raises(ConfigError, match=r"unknown key 'media.colour' \(from --set media.colour=red\)"):
        load_recipe(Toy, recipe, ["media.colour=red"])
    recipe.write_text("lr: -1\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: lr: ") as err:
        load_recipe(Toy, recipe)
    assert "--set" not in str(err.value)  # a bad value from the file is not blamed on the command line


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_malformed_set_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides([bad])


def test_extends_loop_and_non_mapping(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_recipe(Toy, a)
    a.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_recipe(Toy, a)
    with pytest.raises(ConfigError, match="is a directory"):
        load_recipe(Toy, tmp_path)


def test_write_resolved_round_trips(tmp_path: Path) -> None:
    toy = Toy(lr=0.5, media=MediaSettings(video_size=(64, 32), min_pixels=100))
    path = write_resolved(toy, tmp_path / "deep" / "toy.yaml")
    assert Toy.model_validate(yaml.safe_load(path.read_text())) == toy
