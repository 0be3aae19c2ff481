"""`msa-thinker doctor`: one line per check, PASS / WARN / FAIL with the fix, exit 1 only on a FAIL."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from msa_thinker import doctor as D
from msa_thinker.cli import app


@pytest.mark.slow  # imports the Omni processor stack and runs the real audio-in-video check
def test_doctor_reports_every_check_and_hears_audio_tokens():
    result = CliRunner().invoke(app, ["doctor"])
    # Libraries may log their own lines (transformers warns about a video-processor default on stderr): the
    # doctor's own output is its check lines and the summary.
    lines = [
        x
        for x in result.output.strip().splitlines()
        if x.startswith(("PASS", "WARN", "FAIL")) or "ready" in x
    ]
    checks = lines[:-1]
    names = [line.split()[1] for line in checks]
    assert names == ["python", "uv", "ffmpeg", "sft", "vllm", "cuda", "deepspeed", "audio"]
    assert all(line.split()[0] in ("PASS", "WARN", "FAIL") for line in checks)
    assert all(" -> " in line for line in checks if not line.startswith("PASS"))  # each non-pass says the fix
    audio = checks[-1]
    assert (
        audio.startswith("PASS") and "audio tokens" in audio and int(audio.split(" gives ")[1].split()[0]) > 0
    )
    # What this machine is known to have, found without the doctor: the tests run on Python >= 3.11 under uv with
    # FFmpeg (CI installs it) and the locked transformers; the SFT env, vLLM and DeepSpeed may be missing (WARN),
    # never broken. So nothing FAILs and the exit status is 0; a doctor that cried wolf would fail here.
    import torch

    status = {line.split()[1]: line.split()[0] for line in checks}
    assert status["python"] == "PASS" and status["uv"] == "PASS" and status["ffmpeg"] == "PASS"
    assert status["cuda"] == ("PASS" if torch.cuda.is_available() else "WARN")
    assert status["sft"] in ("PASS", "WARN") and status["vllm"] in ("PASS", "WARN")
    assert status["deepspeed"] in ("PASS", "WARN")
    assert result.exit_code == 0, result.output
    assert lines[-1].startswith(f"{sum(line.startswith('PASS') for line in checks)}/8 ready")
    assert "failed:" not in lines[-1]


def test_a_missing_ffmpeg_fails_with_the_install_command(monkeypatch: pytest.MonkeyPatch):
    real = shutil.which
    monkeypatch.setattr(D.shutil, "which", lambda name: None if name == "ffmpeg" else real(name))
    result = CliRunner().invoke(app, ["doctor", "--no-audio-check"])
    assert result.exit_code == 1
    (line,) = [x for x in result.output.splitlines()[:-1] if x.split()[1] == "ffmpeg"]
    assert line.startswith("FAIL") and "sudo apt-get install -y ffmpeg" in line
    assert "failed: ffmpeg" in result.output.splitlines()[-1]


def test_no_audio_tokens_is_a_failure(monkeypatch: pytest.MonkeyPatch):
    import msa_omni
    from msa_core import MediaError

    def silent(*args, **kwargs):
        raise MediaError(
            "the processor produced no audio tokens for a clip with audio (audio-in-video switch)"
        )

    monkeypatch.setattr(msa_omni, "encode_prompt", silent)
    check = D.check_audio_in_video()
    assert check.status == D.FAIL and "no audio tokens" in check.detail and "uv sync --locked" in check.fix


def test_doctor_reports_a_model_directorys_family(tiny_qwen3_model_dir, tmp_path):
    ok = D.check_model(str(tiny_qwen3_model_dir))
    assert ok.status == D.PASS and "Qwen3-Omni (qwen3-omni; LLaMA-Factory template qwen3_omni" in ok.detail
    assert "mixture of experts" in ok.detail
    bad = D.check_model(str(tmp_path))
    assert bad.status == D.FAIL and "no config.json" in bad.detail
