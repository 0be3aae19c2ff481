"""`msa-eval score` and `report` need neither torch nor transformers: scoring a predictions file on a laptop (or
in CI without the model stack) must work, and evaluation must not sit above training in the import graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Run in a fresh interpreter in which importing any of the model stack fails, as if it were not installed.
BLOCKER = """
import importlib.abc, sys
BLOCKED = ("torch", "transformers", "peft", "trl", "accelerate", "msa_omni", "msa_rl", "vllm")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
sys.meta_path.insert(0, Block())
try:
    import torch  # noqa: F401
    raise SystemExit("the blocker did not block torch")
except ImportError:
    pass
from msa_eval.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LEAKED", leaked)
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_score_and_report_run_without_torch(tmp_path: Path, write_jsonl, synthetic_rows) -> None:
    runs = []
    for name, noise in (("good", 0.1), ("bad", 0.6)):
        write_jsonl(tmp_path / name / "sims.jsonl", synthetic_rows("sims", 30, seed=3, noise=noise))
        runs.append(str(tmp_path / name))

    score = _run("score", f"{runs[0]}/sims.jsonl", "--dataset", "sims", "--json")
    assert score.returncode == 0, score.stderr
    assert "LEAKED []" in score.stdout
    assert set(json.loads(score.stdout.split("LEAKED")[0])) >= {"acc2", "mae", "corr"}

    report = _run("report", *runs, "--out", str(tmp_path / "report"), "--bootstrap", "50")
    assert report.returncode == 0, report.stderr
    assert "LEAKED []" in report.stdout
    assert (tmp_path / "report" / "report.md").read_text().count("| ") > 4


def test_predict_does_need_the_model_stack(tmp_path: Path) -> None:
    """The blocker is effective: the one command that loads a model fails under it."""
    result = _run(
        "predict",
        "--model",
        str(tmp_path),
        "--data",
        str(tmp_path),
        "--dataset",
        "sims",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode != 0
    assert "blocked for this test" in result.stderr + result.stdout
