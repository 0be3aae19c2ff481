"""cot-distill push against a local Hub double that really stores what is uploaded (tests/cot_distill/hub_double.py):
what the tests read back is what the client sent. The token comes from HF_TOKEN and is written nowhere."""

from __future__ import annotations

import json

import pytest
from cot_distill.cli import app
from cot_distill.export import export
from hub_double import HubDouble
from huggingface_hub import HfApi
from publish_helpers import TEACHER, make_generate_out
from typer.testing import CliRunner

TOKEN = "hf_TESTtoken_d0n0tL3ak_9f8e7d6c5b4a"
runner = CliRunner()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    out, _ = make_generate_out(root, n=6)
    export(out, root / "ds")
    return root, root / "ds"


@pytest.fixture
def hub(monkeypatch, tmp_path_factory):
    """The Hub double, with huggingface_hub (in this process) pointed at it and online."""
    from huggingface_hub import constants

    with HubDouble(tmp_path_factory.mktemp("hub")) as double:
        monkeypatch.setattr(constants, "ENDPOINT", double.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield double


def _sent(hub: HubDouble) -> list:
    return [r for r in hub.requests if r.path.startswith("/api/") and r.path != "/api/agent-harnesses"]


def test_push_creates_the_repo_and_uploads_the_export_with_a_card(export_dir, hub, monkeypatch):
    _, ds = export_dir
    (ds / ".export.json.tmp").write_text("left by an interrupted export")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot", "--private"])
    assert result.exit_code == 0, result.output
    assert hub.repos[("dataset", "my-org/msa-cot")].private is True
    files = hub.files("dataset", "my-org/msa-cot")
    local = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file())
    expected = [f for f in local if not f.startswith(("video/", "audio/", "."))]
    assert files == expected  # everything but the media and the temp file, nothing else
    for name in ("README.md", "dataset_info.json", "msa_cot.json", "data/train.parquet", "export.json"):
        assert name in files
        assert hub.read("dataset", "my-org/msa-cot", name) == (ds / name).read_bytes()
    assert {r.authorization for r in _sent(hub)} == {f"Bearer {TOKEN}"}
    card = hub.read("dataset", "my-org/msa-cot", "README.md").decode()
    assert 'load_dataset("my-org/msa-cot")' in card and TEACHER in card and "research use only" in card
    assert f"{hub.url}/datasets/my-org/msa-cot" in result.output.replace("\n", "")
    (ds / ".export.json.tmp").unlink()


def test_missing_token_is_a_clean_error_and_nothing_is_sent(export_dir, hub, monkeypatch):
    _, ds = export_dir
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot"])
    assert (
        result.exit_code == 1 and "HF_TOKEN is not set" in result.output and "Traceback" not in result.output
    )
    assert _sent(hub) == []


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "/name", "org/"])
def test_bad_repo_id_is_refused(export_dir, hub, monkeypatch, repo_id):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(export_dir[1]), "--repo-id", repo_id])
    assert result.exit_code == 1 and "ORG/NAME" in result.output and _sent(hub) == []


def test_not_an_export_directory(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(tmp_path), "--repo-id", "o/n"])
    assert result.exit_code == 1 and "export.json not found" in result.output and _sent(hub) == []


def test_hub_errors_are_shown_without_the_token(export_dir, monkeypatch):
    _, ds = export_dir
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    def refuse(self, repo_id, **kwargs):
        raise RuntimeError(f"401 Unauthorized for token {self.token}")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    result = runner.invoke(app, ["push", str(ds), "--repo-id", "o/n"])
    assert result.exit_code == 1 and "401 Unauthorized" in result.output
    assert TOKEN not in result.output and "***" in result.output


def test_no_file_written_anywhere_contains_the_token(tmp_path, hub, monkeypatch):
    """Generate-style OUT, the export and the pushed card: scan every byte written for the token."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out, _ = make_generate_out(tmp_path, n=3)
    outputs = [
        runner.invoke(app, ["export", str(out), "--to", str(tmp_path / "ds")]),
        runner.invoke(app, ["push", str(tmp_path / "ds"), "--repo-id", "o/n"]),
    ]
    assert [r.exit_code for r in outputs] == [0, 0], [r.output for r in outputs]
    assert all(TOKEN not in r.output for r in outputs)
    scanned = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(scanned) > 10 and (tmp_path / "ds" / "README.md") in scanned
    needle = TOKEN.encode()
    assert [p for p in scanned if needle in p.read_bytes()] == []
    assert json.loads((tmp_path / "ds" / "export.json").read_text())["clips"] == 3


def test_media_stay_local_unless_asked_and_the_card_says_how_to_get_them(export_dir, hub, monkeypatch):
    _, ds = export_dir
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot"])
    assert result.exit_code == 0, result.output
    assert "without the media files" in result.output
    files = hub.files("dataset", "my-org/msa-cot")
    assert "data/train.parquet" in files and not [f for f in files if f.startswith(("video/", "audio/"))]
    card = hub.read("dataset", "my-org/msa-cot", "README.md").decode()
    assert "The clips are not included" in card and "github.com/thuiar/MMSA" in card
    assert "extract_wav" in card and "Raw/<video_id>/<clip_id>.mp4" in card

    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot", "--include-media"])
    assert result.exit_code == 0, result.output
    files = hub.files("dataset", "my-org/msa-cot")
    media = sorted(
        p.relative_to(ds).as_posix() for d in ("video", "audio") for p in (ds / d).rglob("*") if p.is_file()
    )
    assert media and set(media) <= set(files)
    assert "are included" in hub.read("dataset", "my-org/msa-cot", "README.md").decode()


def test_the_resolved_distillation_config_is_published_without_paths_or_secrets(tmp_path, monkeypatch):
    import yaml

    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-in-any-file")
    out, _ = make_generate_out(tmp_path, n=4)
    (out / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "data": str(tmp_path / "data"),
                "model": TEACHER,
                "out": str(out),
                "base_urls": ["http://10.0.0.7:8000/v1"],
                "api_key_env": "OPENAI_API_KEY",
                "sampling": {"temperature": 0.7, "top_p": 0.95},
                "filters": {"min_think_chars": 40},
            }
        )
    )
    ds = tmp_path / "ds"
    export(out, ds)
    published = yaml.safe_load((ds / "distill_config.yaml").read_text())
    assert published["model"] == TEACHER and published["sampling"]["temperature"] == 0.7
    assert published["filters"] == {"min_think_chars": 40} and published["data"] == "data"
    assert not {"out", "base_urls"} & set(published)
    assert json.loads((ds / "export.json").read_text())["distill_config"] == "distill_config.yaml"
    assert "distill_config.yaml" in (ds / "README.md").read_text()
    for path in ds.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json", ".md"):
            text = path.read_text()
            assert "sk-not-in-any-file" not in text and "10.0.0.7" not in text, path
