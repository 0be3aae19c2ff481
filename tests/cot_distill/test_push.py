"""cot-distill push: Hub boundary mocked (no network); the token comes from HF_TOKEN, is written nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cot_distill.cli import app
from cot_distill.export import export
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
def hub(monkeypatch):
    """Replace the two Hub calls; record what they were given (including the token the client holds)."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kwargs}))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        calls.append(("upload_folder", {"token": self.token, "files": files, **kwargs}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_creates_the_repo_and_uploads_the_export_with_a_card(export_dir, hub, monkeypatch):
    _, ds = export_dir
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot", "--private"])
    assert result.exit_code == 0, result.output
    (name1, create), (name2, upload) = hub
    assert (name1, name2) == ("create_repo", "upload_folder")
    assert create["repo_id"] == "my-org/msa-cot" and create["repo_type"] == "dataset"
    assert create["private"] is True and create["exist_ok"] is True and create["token"] == TOKEN
    assert upload["repo_id"] == "my-org/msa-cot" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == ds and upload["token"] == TOKEN
    for expected in ("README.md", "dataset_info.json", "msa_cot.json", "data/train.parquet", "export.json"):
        assert expected in upload["files"]
    assert any(f.startswith("video/") for f in upload["files"]) and any(
        f.startswith("audio/") for f in upload["files"]
    )
    card = (ds / "README.md").read_text()
    assert 'load_dataset("my-org/msa-cot")' in card and TEACHER in card and "research use only" in card
    assert "huggingface.co/datasets/my-org/msa-cot" in result.output


def test_missing_token_is_a_clean_error_and_nothing_is_sent(export_dir, hub, monkeypatch):
    _, ds = export_dir
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot"])
    assert (
        result.exit_code == 1 and "HF_TOKEN is not set" in result.output and "Traceback" not in result.output
    )
    assert hub == []


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "/name", "org/"])
def test_bad_repo_id_is_refused(export_dir, hub, monkeypatch, repo_id):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(export_dir[1]), "--repo-id", repo_id])
    assert result.exit_code == 1 and "ORG/NAME" in result.output and hub == []


def test_not_an_export_directory(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = runner.invoke(app, ["push", str(tmp_path), "--repo-id", "o/n"])
    assert result.exit_code == 1 and "export.json not found" in result.output and hub == []


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
    upload = hub[-1][1]
    assert "video/**" in upload["ignore_patterns"] and "audio/**" in upload["ignore_patterns"]
    card = (ds / "README.md").read_text()
    assert "The clips are not included" in card and "github.com/thuiar/MMSA" in card
    assert "extract_wav" in card and "Raw/<video_id>/<clip_id>.mp4" in card

    result = runner.invoke(app, ["push", str(ds), "--repo-id", "my-org/msa-cot", "--include-media"])
    assert result.exit_code == 0, result.output
    upload = hub[-1][1]
    assert not {"video/**", "audio/**"} & set(upload["ignore_patterns"])
    assert "are included" in (ds / "README.md").read_text()


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
