"""`msa-thinker doctor`: is this machine ready, and if not, what to do. One line per check.

PASS: ready. WARN: missing but only some stages need it (the line says which, and how to get it). FAIL: the
workspace cannot work as it is (the line says how to fix it); the command then exits 1.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status}  {self.name:<13} {self.detail}" + (f" -> {self.fix}" if self.fix else "")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, (proc.stdout or proc.stderr).strip()


def check_python() -> Check:
    v = sys.version_info
    text = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if v < (3, 11):
        return Check("python", FAIL, text, "Python 3.11 or newer: `uv run` fetches it")
    return Check("python", PASS, text)


def check_uv() -> Check:
    uv = shutil.which("uv")
    if uv is None:
        return Check("uv", FAIL, "uv not found on PATH", "pip install uv (https://docs.astral.sh/uv/)")
    code, out = _run([uv, "--version"])
    return Check("uv", PASS if code == 0 else FAIL, out.splitlines()[0] if out else uv)


def check_ffmpeg() -> Check:
    exe = shutil.which("ffmpeg")
    if exe is None:
        return Check(
            "ffmpeg",
            FAIL,
            "system FFmpeg not found (LLaMA-Factory loads audio through its libraries)",
            "sudo apt-get install -y ffmpeg",
        )
    code, out = _run([exe, "-version"])
    first = out.splitlines()[0] if out else exe
    return Check("ffmpeg", PASS if code == 0 else FAIL, first, "" if code == 0 else "reinstall FFmpeg")


def check_sft_env(root: Path | None) -> Check:
    from msa_core.envs import sft_env_path, sft_env_ready, sft_python

    if root is None:
        return Check(
            "sft env", WARN, "not inside the msa-thinker workspace", "run doctor from the repository"
        )
    env = sft_env_path(root)
    if not (env / "bin" / "python").exists():
        return Check(
            "sft env",
            WARN,
            f"{env} not created yet (LLaMA-Factory, for `msa-rl sft`)",
            "the first `msa-rl sft` creates it (about 20 s with a warm uv cache)",
        )
    if not sft_env_ready(env, root):
        return Check("sft env", WARN, f"{env} is older than uv.lock", "the next `msa-rl sft` re-syncs it")
    code, out = _run(
        [
            str(sft_python(env)),
            "-c",
            "import importlib.metadata as m; print(m.version('llamafactory'), m.version('transformers'))",
        ]
    )
    if code != 0:
        return Check(
            "sft env", FAIL, f"{env}: LLaMA-Factory does not import", f"delete {env}; rerun `msa-rl sft`"
        )
    lf, tf = [*out.split(), "?", "?"][:2]
    return Check("sft env", PASS, f"{env}: LLaMA-Factory {lf}, transformers {tf}")


def check_vllm() -> Check:
    version = _version("vllm")
    if version is None:
        return Check(
            "vllm",
            WARN,
            "not installed (GPU rollouts in GRPO and `msa-eval predict --backend vllm` need it)",
            "on a GPU machine: uv sync --locked --extra vllm",
        )
    return Check("vllm", PASS, f"vLLM {version}")


def check_cuda() -> Check:
    import torch

    if not torch.cuda.is_available():
        return Check(
            "cuda",
            WARN,
            f"no CUDA GPU visible (torch {torch.__version__}): CPU only; the demo and tests run, 7B training does not",
            "on a GPU machine: check nvidia-smi and CUDA_VISIBLE_DEVICES",
        )
    gpus = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        gpus.append(f"{torch.cuda.get_device_name(i)} ({free / 2**30:.0f}/{total / 2**30:.0f} GiB free)")
    return Check("cuda", PASS, f"torch {torch.__version__}, CUDA {torch.version.cuda}: " + "; ".join(gpus))


def check_deepspeed() -> Check:
    version = _version("deepspeed")
    if version is None:
        return Check(
            "deepspeed",
            WARN,
            "not installed in the default environment (multi-GPU GRPO recipes use it)",
            "uv sync --locked --extra deepspeed (the SFT environment has it from its own extra)",
        )
    return Check("deepspeed", PASS, f"DeepSpeed {version}")


def check_audio_in_video() -> Check:
    """The installed transformers' audio-in-video form really yields audio tokens (on the tiny processor)."""
    import numpy as np
    from msa_core import build_prompt, get_spec
    from msa_omni import ClipMedia, count_tokens, encode_prompt
    from msa_rl.tiny import build_processor, build_tokenizer

    tf = _version("transformers")
    try:
        processor = build_processor(build_tokenizer())
        t = np.arange(16000, dtype=np.float32) / 16000
        media = ClipMedia(
            frames=np.full((2, 56, 56, 3), 128, np.uint8),
            audio=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
            fps=2.0,
        )
        batch = encode_prompt(processor, build_prompt("a test clip", get_spec("sims")), media)
        n = count_tokens(processor, batch, "audio")
    except Exception as exc:  # any failure here means training would see no audio
        return Check(
            "audio tokens",
            FAIL,
            f"transformers {tf}: audio-in-video gives no audio tokens ({type(exc).__name__}: {exc})",
            "use the locked versions: uv sync --locked",
        )
    return Check("audio tokens", PASS, f"transformers {tf}: 1 s of audio in a video gives {n} audio tokens")


def check_model(model: str) -> Check:
    """Which student family (msa_omni.families) a model directory or Hub id is, and what the pipeline uses for it."""
    from msa_core import MSAError
    from msa_omni import check_thinker_dir
    from msa_omni.families import family_of_model

    try:
        check_thinker_dir(model)
        family = family_of_model(model)
    except MSAError as exc:
        return Check(
            "model", FAIL, f"{model}: {exc}", "give an Omni thinker checkpoint of a supported family"
        )
    moe = "; mixture of experts: router aux loss in SFT and GRPO" if family.moe else ""
    return Check(
        "model",
        PASS,
        f"{model}: {family.display} ({family.name}; LLaMA-Factory template {family.lf_template}, vLLM "
        f"{family.vllm_architecture}{moe})",
    )


def run_checks(
    echo: Callable[[str], None] = print, *, audio: bool = True, model: str | None = None
) -> list[Check]:
    from msa_core.envs import workspace_root

    try:
        root: Path | None = workspace_root()
    except Exception:
        root = None
    checks: list[Callable[[], Check]] = [
        check_python,
        check_uv,
        check_ffmpeg,
        lambda: check_sft_env(root),
        check_vllm,
        check_cuda,
        check_deepspeed,
    ]
    if audio:
        checks.append(check_audio_in_video)
    if model is not None:
        checks.append(lambda: check_model(model))
    results = []
    for check in checks:
        result = check()
        echo(result.line())
        results.append(result)
    return results
