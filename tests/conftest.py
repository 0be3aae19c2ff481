"""Session-wide test environment (offline, CPU, quiet, deterministic) and the fixtures several packages share."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Nothing may be fetched from a hub during tests; the tiny model and the data are built on the spot.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The CUDA build of torch runs on CPU here; make that explicit so no code path probes for a GPU.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_DISABLED", "true")
# Two cores shared by torch's intra-op pool and the test's own work: one thread is several times faster for the
# tiny model here (64 generated tokens: 30 s with 2 threads under load, 0.3 s with 1). Must precede torch's import.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by msa_omni, msa_rl and msa_eval tests. A tiny random Qwen2.5-Omni thinker + processor (seed 0), written once; treat it as read-only."""
    from msa_rl.tiny import build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("tiny-omni"), seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen3-Omni MoE thinker + processor (seed 0; 4 experts, top-2; head_dim 32, so vLLM's CPU
    build loads it too), written once per session for every Qwen3-Omni test; read-only."""
    from msa_rl.tiny import build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"), seed=0, family="qwen3-omni")


@pytest.fixture(scope="session")
def synthetic_sims_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic CH-SIMS-style clips (2 s, 64x64 H.264 + AAC) in the MMSA layout; read-only."""
    from msa_core.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synthetic-sims"), "sims", n=6, seed=0)


@pytest.fixture(scope="session")
def tiny_vllm_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """The tiny thinker at hidden 128 (head_dim 32: vLLM's CPU attention has no head_dim-16 kernel); read-only.

    Shared by the vLLM tests of msa-eval (predict) and cot-distill (the teacher server).
    """
    from msa_rl.tiny import VLLM_TINY_HIDDEN, build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("tiny-omni-128"), seed=0, hidden=VLLM_TINY_HIDDEN)


@dataclass(frozen=True)
class DemoRun:
    """`msa-thinker demo` run once: its folder (``cwd/runs/demo``, the default --out seen from ``cwd``) and the
    finished process."""

    cwd: Path
    out: Path
    process: subprocess.CompletedProcess

    @property
    def model(self) -> Path:
        """The model the demo trains last (SFT + Hint-GRPO)."""
        return self.out / "models" / "hint-grpo"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The whole demo (slow: data, distillation, LLaMA-Factory SFT, GRPO, predict, report), run once per session.

    tests/e2e checks the run itself; analyze, the app and the model push use its trained model and its clips.
    Read-only for everyone but tests/e2e's rerun check (which changes nothing).
    """
    script = Path(sys.executable).parent / "msa-thinker"
    if os.environ.get("MSA_THINKER_TEST_DEMO_CWD"):
        # While developing: a folder whose runs/demo a finished `msa-thinker demo` wrote. The demo is still run
        # there, so it only confirms every stage is done (seconds) and the test sees a real run's output.
        cwd = Path(os.environ["MSA_THINKER_TEST_DEMO_CWD"]).resolve()
    else:
        cwd = tmp_path_factory.mktemp("demo-cwd")
    out = cwd / "runs" / "demo"
    process = subprocess.run(
        [str(script), "demo", "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=cwd
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return DemoRun(cwd, out, process)


_HOLD_SCRIPT = """
import sys
from msa_core.lock import OutputLock
lock = OutputLock(sys.argv[1], command=sys.argv[2]).acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes stdin (or kills us)
lock.release()
"""


@pytest.fixture
def lock_holder():
    """``hold(folder, command)``: a second real process that holds ``folder``'s output lock (msa_core.lock) until
    the test ends; returns its Popen (kill it with SIGKILL to leave a stale lock behind)."""
    import subprocess
    import sys

    started: list[subprocess.Popen] = []

    def hold(folder: Path, command: str = "msa-eval predict --out elsewhere") -> subprocess.Popen:
        Path(folder).mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD_SCRIPT, str(folder), command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in started:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=10)


_HOLD_MANY_SCRIPT = """
import sys
from msa_core.lock import OutputLock
held = []
for line in sys.stdin:  # FOLDER<TAB>COMMAND: lock it and say so; everything is held until stdin closes
    folder, command = line.rstrip("\\n").split("\\t")
    held.append(OutputLock(folder, command=command).acquire())
    print("locked", flush=True)
"""


@pytest.fixture(scope="session")
def shared_lock_holder():
    """Like ``lock_holder``, but one second process for the whole session (its start costs seconds here): each
    ``hold(folder, command)`` makes it lock one more folder, held until the session ends; returns its Popen."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_MANY_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def hold(folder: Path, command: str = "msa-eval predict --out elsewhere") -> subprocess.Popen:
        Path(folder).mkdir(parents=True, exist_ok=True)
        proc.stdin.write(f"{folder}\t{command}\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    proc.stdin.close()
    proc.wait(timeout=10)
