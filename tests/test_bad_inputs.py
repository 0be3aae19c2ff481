"""The bad-input corpus: every CLI given a user mistake exits with its documented status and one clear message that
names the bad file, line, field or option (no traceback). In-process through typer's CliRunner.

Each case builds its input under its own tmp folder and returns (argv, what the message must name).
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cot_distill.cli import app as distill_app
from cot_distill.standin import ServerThread, StandInTeacher, parse_faults
from msa_core import MediaSettings
from msa_eval.cli import app as eval_app
from msa_rl.cli import app as rl_app
from typer.testing import CliRunner

from msa_thinker.cli import app as thinker_app

APPS = {"distill": distill_app, "eval": eval_app, "rl": rl_app, "thinker": thinker_app}
HEADER = "video_id,clip_id,text,label,mode\n"
FAST = ["--no-progress", "--set", "retry.max_retries=0", "--set", "retry.connect_timeout_s=3"]
UNWRITABLE = "/sys/msa-thinker-bad-input"  # mkdir fails there even for root
UNDER_PROC = "/proc/msa-thinker-bad-input/out"  # and under /proc


@dataclass
class Env:
    data: Path
    tmp: Path
    teacher: Callable[..., str]
    hold: Callable[..., object]  # a second real process holding a folder's output lock (tests/conftest.py)

    def copy(self) -> Path:
        """A fresh copy of the 5-clip dataset (3 train, 2 test) to break."""
        return Path(shutil.copytree(self.data, self.tmp / "data"))

    def with_labels(self, rows: str) -> Path:
        d = self.copy()
        (d / "label.csv").write_text(HEADER + rows)
        return d

    def generate(self, data: Path, *extra: str, url: str | None = None) -> list[str]:
        url = url or self.teacher()
        return ["generate", "--data", str(data), "--split", "all", "--base-url", url, *FAST, *extra]

    def preds(self, rows: list[dict] | str, name: str = "sims.jsonl") -> Path:
        path = self.tmp / "run" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        path.write_text(text)
        return path

    def fake_model(self) -> Path:
        """Passes predict's checkpoint check; every case below fails before a model would load."""
        m = self.tmp / "model"
        m.mkdir()
        (m / "config.json").write_text(json.dumps({"model_type": "qwen2_5_omni_thinker"}))
        (m / "tokenizer_config.json").write_text("{}")
        MediaSettings().write(m)  # media.json, as every trained checkpoint has
        return m

    def predict(self, data: Path, *extra: str, out: Path | None = None) -> list[str]:
        out = out or self.tmp / "preds"
        return [
            "predict",
            "--model",
            str(self.fake_model()),
            "--data",
            str(data),
            "--dataset",
            "sims",
            "--out",
            str(out),
            *extra,
        ]


Case = Callable[[Env], tuple[list[str], list[str]]]
CASES: list = []


def case(name: str, cli: str, code: int = 1) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES.append(pytest.param(cli, code, fn, id=name))
        return fn

    return register


def a_file(e: Env) -> Path:
    f = e.tmp / "a-file"
    f.write_text("x")
    return f


def first_clip_label(d: Path) -> str:
    return (d / "label.csv").read_text().splitlines()[1]


# ------------------------------------------------------------------------------------------ cot-distill generate
@case("generate: label.csv is a folder", "distill")
def _(e):
    d = e.copy()
    (d / "label.csv").unlink()
    (d / "label.csv").mkdir()
    return e.generate(d, "--out", str(e.tmp / "o")), [f"{d}/label.csv", "is a folder"]


@case("generate: header-only label.csv", "distill")
def _(e):
    d = e.with_labels("")
    return e.generate(d, "--out", str(e.tmp / "o")), [f"{d}/label.csv", "header but no rows"]


@case("generate: no Raw/ folder", "distill")
def _(e):
    d = e.copy()
    shutil.rmtree(d / "Raw")
    return e.generate(d, "--out", str(e.tmp / "o")), [f"{d}/Raw", "Raw/ folder not found"]


@case("generate: label off the scale", "distill")
def _(e):
    d = e.with_labels("v,1,t,1.5,train\n")
    return e.generate(d, "--out", str(e.tmp / "o")), [
        "label.csv, line 2",
        "column 'label'",
        "label 1.5 outside sims's range",
        "--on-bad-label",
    ]


@case("generate: label just off the scale keeps its exact value", "distill")
def _(e):
    d = e.with_labels("v,1,t,1.001,train\n")
    return e.generate(d, "--out", str(e.tmp / "o")), ["line 2", "label 1.001 outside"]


@case("generate: label not a number", "distill")
def _(e):
    d = e.with_labels("v,1,t,abc,train\n")
    return e.generate(d, "--out", str(e.tmp / "o")), ["label.csv, line 2", "column 'label'", "'abc'"]


@case("generate: label column missing", "distill")
def _(e):
    d = e.copy()
    (d / "label.csv").write_text("video_id,clip_id,text,mode\nv,1,t,train\n")
    return e.generate(d, "--out", str(e.tmp / "o")), ["label.csv, line 1", "missing column(s) label"]


@case("generate: no dataset folder", "distill")
def _(e):
    return e.generate(e.tmp / "nowhere", "--out", str(e.tmp / "o")), [
        f"{e.tmp}/nowhere/label.csv",
        "not found",
    ]


@case("generate: --out is a file", "distill", code=2)
def _(e):
    f = a_file(e)
    return e.generate(e.data, "--out", str(f)), [str(f), "--out is a file"]


@case("generate: --out under a file", "distill", code=2)
def _(e):
    f = a_file(e)
    return e.generate(e.data, "--out", str(f / "sub")), [str(f / "sub"), f"is under {f}"]


@case("generate: --out not writable", "distill", code=2)
def _(e):
    return e.generate(e.data, "--out", UNWRITABLE), [UNWRITABLE, "--out folder"]


@case("generate: connection refused", "distill")
def _(e):
    out = e.tmp / "o"
    return e.generate(e.data, "--out", str(out), url="http://127.0.0.1:9/v1"), [
        "http://127.0.0.1:9/v1",
        "connection refused",
    ]


@case("generate: model not served", "distill")
def _(e):
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--model", "no/such-model"), [
        "does not serve model 'no/such-model'",
        "--model",
    ]


@case("generate: API key refused", "distill")
def _(e):
    url = e.teacher(api_key_env="BAD_INPUT_TEACHER_KEY")
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--api-key-env", "NOT_SET_ANYWHERE", url=url), [
        url,
        "refused the API key (HTTP 401)",
        "$NOT_SET_ANYWHERE",
    ]


@case("generate: base URL is not the API root", "distill")
def _(e):
    url = e.teacher().removesuffix("/v1")
    return e.generate(e.data, "--out", str(e.tmp / "o"), url=url), [url, "HTTP 404", "/v1"]


@case("generate: HTTP 500 on every request", "distill")
def _(e):
    url = e.teacher(faults="http500=1.0")
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--limit", "2", url=url), [
        "failed (http500): 2 sample(s)",
        "the teacher answered no request",
        "failures.jsonl",
    ]


@case("generate: answers that are no JSON", "distill")
def _(e):
    url = e.teacher(faults="not_json=1.0")
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--limit", "2", url=url), [
        "failed (bad_response): 2 sample(s)",
        "not a chat completion",
        "the teacher answered no request",
    ]


@case("generate: OUT holds another dataset's answers", "distill")
def _(e):
    out = e.tmp / "o"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"dataset": "mosi", "model": "x", "clips": []}))
    return e.generate(e.data, "--out", str(out)), [str(out), "dataset 'mosi'", "--force"]


@case("generate: --set with a bad value names the --set", "distill")
def _(e):
    cfg = e.tmp / "generate.yaml"
    cfg.write_text("concurrency: 2\n")
    argv = e.generate(e.data, "--out", str(e.tmp / "o"), "--config", str(cfg), "--set", "sampling.top_p=lots")
    return argv, ["--set sampling.top_p=lots", "sampling.top_p"]


@case("generate: --set of an unknown key", "distill")
def _(e):
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--set", "sampling.temprature=0.2"), [
        "--set sampling.temprature=0.2",
        "unknown key 'sampling.temprature'",
    ]


@case("generate: --set without a value", "distill")
def _(e):
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--set", "concurrency"), [
        "--set 'concurrency'",
        "KEY=VALUE",
    ]


@case("generate: bad value in the recipe file names the file", "distill")
def _(e):
    cfg = e.tmp / "generate.yaml"
    cfg.write_text("concurrency: many\n")
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--config", str(cfg)), [str(cfg), "concurrency"]


@case("generate: --config not found", "distill")
def _(e):
    cfg = e.tmp / "nope.yaml"
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--config", str(cfg)), [
        str(cfg),
        "config file not found",
    ]


@case("generate: unknown dataset", "distill")
def _(e):
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--dataset", "simz"), ["unknown dataset 'simz'"]


@case("generate: not an http URL", "distill")
def _(e):
    return e.generate(e.data, "--out", str(e.tmp / "o"), url="ftp://host/v1"), ["'ftp://host/v1'", "http(s)"]


@case("generate: bad --on-bad-label", "distill", code=2)
def _(e):
    return e.generate(e.data, "--out", str(e.tmp / "o"), "--on-bad-label", "ignore"), ["--on-bad-label"]


# ---------------------------------------------------------------------------------------- cot-distill, the rest
@case("stand-in teacher: port in use", "distill")
def _(e):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    e.keep = sock  # closed with the Env
    return ["stand-in-teacher", "--data", str(e.data), "--port", str(port)], [f"127.0.0.1:{port}", "--port"]


@case("stand-in teacher: unknown fault", "distill")
def _(e):
    return ["stand-in-teacher", "--data", str(e.data), "--faults", "oops=0.1"], ["--faults", "'oops'"]


@case("stand-in teacher: label.csv is a folder", "distill")
def _(e):
    d = e.copy()
    (d / "label.csv").unlink()
    (d / "label.csv").mkdir()
    return ["stand-in-teacher", "--data", str(d)], [f"{d}/label.csv", "is a folder"]


@case("filter: not a generate folder", "distill")
def _(e):
    return ["filter", str(e.tmp)], [str(e.tmp), "not a generate output folder (no config.yaml)"]


@case("filter: folder does not exist", "distill")
def _(e):
    return ["filter", str(e.tmp / "nope")], [f"{e.tmp}/nope", "not a generate output folder"]


@case("filter: while a generate writes the folder", "distill")
def _(e):
    out = e.tmp / "o"
    out.mkdir()
    (out / "config.yaml").write_text("dataset: sims\n")
    proc = e.hold(out, "cot-distill generate --out o")
    return ["filter", str(out)], [str(out), "in use by another job", f"pid {proc.pid}", "another OUT"]


class _HTTPStub:
    """A web server that is no OpenAI API: every GET answers ``status`` with an HTML page."""

    def __init__(self, status: int):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"<html><body>a web page</body></html>"
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@case("doctor: a web page, not an OpenAI server", "distill")
def _(e):
    e.keep = _HTTPStub(200)
    return ["doctor", "--base-url", e.keep.url, "--model", "m"], [
        f"{e.keep.url} is not an OpenAI-compatible server",
        "--base-url",
        "SKIP text not run: not an OpenAI-compatible server",
    ]


@case("doctor: HTTP 404 with an HTML page", "distill")
def _(e):
    e.keep = _HTTPStub(404)
    return ["doctor", "--base-url", e.keep.url, "--model", "m"], [
        "is not an OpenAI-compatible server",
        "answered HTTP 404 with text/html",
    ]


@case("export: no accepted.jsonl", "distill")
def _(e):
    return ["export", str(e.tmp), "--to", str(e.tmp / "x")], [f"{e.tmp}/accepted.jsonl", "not found"]


@case("export: a line that is no JSON", "distill")
def _(e):
    (e.tmp / "accepted.jsonl").write_text("{not json\n")
    return ["export", str(e.tmp), "--to", str(e.tmp / "x")], ["accepted.jsonl, line 1", "not valid JSON"]


@case("push: not an export folder", "distill")
def _(e):
    return ["push", str(e.tmp), "--repo-id", "org/name"], [f"{e.tmp}/export.json", "not an export directory"]


# --------------------------------------------------------------------------------------------- msa-eval predict
@case("predict: label.csv is a folder", "eval")
def _(e):
    d = e.copy()
    (d / "label.csv").unlink()
    (d / "label.csv").mkdir()
    return e.predict(d), [f"{d}/label.csv", "is a folder"]


@case("predict: header-only label.csv", "eval")
def _(e):
    d = e.with_labels("")
    return e.predict(d), [f"{d}/label.csv", "header but no rows"]


@case("predict: model without media.json and no media options", "eval")
def _(e):
    args = e.predict(e.copy())
    model = e.tmp / "model"
    (model / "media.json").unlink()
    return args, [f"{model}/media.json", "not found", "give --fps, --max-frames, --video-size"]


@case("predict: no Raw/ folder", "eval")
def _(e):
    d = e.copy()
    shutil.rmtree(d / "Raw")
    return e.predict(d), [f"{d}/Raw", "Raw/ folder not found"]


@case("predict: label off the scale", "eval")
def _(e):
    d = e.with_labels("v,1,t,-7,test\n")
    return e.predict(d), ["label.csv, line 2", "column 'label'", "label -7 outside sims's range"]


@case("predict: --out is a file", "eval", code=2)
def _(e):
    f = a_file(e)
    return e.predict(e.data, out=f), [str(f), "--out is a file"]


@case("predict: --out under a file", "eval", code=2)
def _(e):
    f = a_file(e)
    return e.predict(e.data, out=f / "run"), [str(f / "run"), f"is under {f}"]


@case("predict: --out not writable", "eval", code=2)
def _(e):
    return e.predict(e.data, out=Path(UNWRITABLE)), [UNWRITABLE, "--out folder"]


@case("predict: model path missing", "eval")
def _(e):
    argv = e.predict(e.data)
    argv[argv.index("--model") + 1] = str(e.tmp / "no-model")
    return argv, [f"{e.tmp}/no-model", "does not exist"]


@case("predict: bad --on-bad-label", "eval", code=2)
def _(e):
    return e.predict(e.data, "--on-bad-label", "maybe"), ["--on-bad-label", "'maybe'"]


@case("predict: bad --video-size", "eval", code=2)
def _(e):
    return e.predict(e.data, "--video-size", "big"), ["--video-size", "'big'"]


@case("predict: --data without its --dataset", "eval", code=2)
def _(e):
    return e.predict(e.data, "--data", str(e.data)), ["--dataset per --data"]


# ------------------------------------------------------------------------------------- msa-eval score and report
def _rows(n: int = 3, **change) -> list[dict]:
    rows = [{"id": f"v$_${i}", "label": 0.2 * i, "score": 0.1 * i} for i in range(n)]
    for i, fields in change.items():
        rows[int(i.removeprefix("line"))].update(fields)
    return rows


@case("score: duplicate ids", "eval")
def _(e):
    rows = _rows()
    rows.append(dict(rows[0]))
    path = e.preds(rows)
    return ["score", str(path), "--dataset", "sims"], [
        f"{path}, line 4",
        "column 'id'",
        "duplicate id",
        "line 1",
    ]


@case("score: label off the dataset's scale", "eval")
def _(e):
    path = e.preds(_rows(line1={"label": 2.5}))
    return ["score", str(path), "--dataset", "sims"], [f"{path}, line 2", "label 2.5 outside sims's range"]


@case("score: a line that is no JSON", "eval")
def _(e):
    path = e.preds('{"label": 0.1, "score": 0.1}\n{oops\n')
    return ["score", str(path), "--dataset", "sims"], [f"{path}, line 2", "not valid JSON"]


@case("score: score field missing", "eval")
def _(e):
    path = e.preds([{"label": 0.1}])
    return ["score", str(path), "--dataset", "sims"], [f"{path}, line 1", "column 'score'", "missing field"]


@case("score: label not a number", "eval")
def _(e):
    path = e.preds(_rows(line0={"label": "high"}))
    return ["score", str(path), "--dataset", "sims"], [f"{path}, line 1", "column 'label'", "'high'"]


@case("score: empty file", "eval")
def _(e):
    path = e.preds("")
    return ["score", str(path), "--dataset", "sims"], [str(path), "no predictions"]


@case("score: file missing", "eval")
def _(e):
    path = e.tmp / "none.jsonl"
    return ["score", str(path), "--dataset", "sims"], [str(path), "cannot read predictions"]


@case("score: parse failure under --on-failure error", "eval")
def _(e):
    path = e.preds(_rows(line2={"score": None}))
    return ["score", str(path), "--dataset", "sims", "--on-failure", "error"], [f"{path}, line 3", "'error'"]


@case("score: unknown dataset", "eval")
def _(e):
    path = e.preds(_rows())
    return ["score", str(path), "--dataset", "imdb"], ["unknown dataset 'imdb'"]


@case("score: rows of another dataset than --dataset", "eval")
def _(e):
    path = e.preds([{**r, "dataset": "sims"} for r in _rows()], name="preds.jsonl")
    return ["score", str(path), "--dataset", "mosi"], [
        f"{path}, line 1",
        "column 'dataset'",
        "rows say dataset 'sims' but --dataset is 'mosi'",
    ]


@case("score: a file that mixes datasets", "eval")
def _(e):
    rows = [{**r, "dataset": "sims"} for r in _rows()]
    rows[2]["dataset"] = "simsv2"
    path = e.preds(rows, name="preds.jsonl")
    return ["score", str(path), "--dataset", "sims"], [f"{path}, line 3", "mixes datasets (sims, simsv2)"]


@case("score: file named after another dataset", "eval")
def _(e):
    path = e.preds(_rows(), name="mosi.jsonl")
    return ["score", str(path), "--dataset", "sims"], [str(path), "named mosi.jsonl but --dataset is 'sims'"]


@case("report: CH-SIMS rows saved as mosi.jsonl", "eval")
def _(e):
    path = e.preds([{**r, "dataset": "sims"} for r in _rows()], name="mosi.jsonl")
    return ["report", str(path.parent), "--out", str(e.tmp / "r")], [
        f"{path}, line 1",
        "rows say dataset 'sims' but its file name is 'mosi'",
    ]


@case("report: a file that mixes datasets", "eval")
def _(e):
    rows = [{**r, "dataset": "sims"} for r in _rows()]
    rows[1]["dataset"] = "mosi"
    path = e.preds(rows)
    return ["report", str(path.parent), "--out", str(e.tmp / "r")], [f"{path}, line 2", "mixes datasets"]


@case("report: --baseline names no run", "eval", code=2)
def _(e):
    run = e.preds(_rows()).parent
    return ["report", str(run), "--out", str(e.tmp / "r"), "--baseline", "nope"], [
        "--baseline 'nope' is not one of the runs (run)"
    ]


@case("report: run folder missing", "eval")
def _(e):
    return ["report", str(e.tmp / "gone"), "--out", str(e.tmp / "r")], [
        f"{e.tmp}/gone",
        "run directory not found",
    ]


@case("report: no dataset files", "eval")
def _(e):
    (e.tmp / "empty-run").mkdir()
    return ["report", str(e.tmp / "empty-run"), "--out", str(e.tmp / "r")], ["no <dataset>.jsonl files"]


@case("report: negative --bootstrap", "eval", code=2)
def _(e):
    e.preds(_rows())
    return ["report", str(e.tmp / "run"), "--out", str(e.tmp / "r"), "--bootstrap", "-1"], ["--bootstrap"]


# ------------------------------------------------------------------------------------------------------- msa-rl
@case("tiny-model: OUT_DIR is a file", "rl", code=2)
def _(e):
    f = a_file(e)
    return ["tiny-model", str(f)], [str(f), "OUT_DIR is a file"]


@case("tiny-model: OUT_DIR under a file", "rl", code=2)
def _(e):
    f = a_file(e)
    return ["tiny-model", str(f / "tiny")], [str(f / "tiny"), f"is under {f}"]


@case("tiny-model: OUT_DIR not writable", "rl", code=2)
def _(e):
    return ["tiny-model", UNWRITABLE], [UNWRITABLE, "OUT_DIR folder"]


@case("grpo: --set with a bad value names the --set", "rl")
def _(e):
    cfg = e.tmp / "grpo.yaml"
    cfg.write_text("beta: 0.04\n")
    return ["grpo", "--config", str(cfg), "--set", "beta=strong"], ["--set beta=strong", "beta"]


@case("sft: --set of an unknown key", "rl")
def _(e):
    return ["sft", "--set", "learning_rat=1e-5"], ["--set learning_rat=1e-5", "unknown key 'learning_rat'"]


# ---------------------------------------------------------------------------------- every writer's output path
# One table for every command that writes: its output path is a file, lies under a file, or cannot be made (/sys,
# /proc). Each is refused before any work, exit 2, one line naming the path and the option.
def _run_dir(e: Env) -> Path:
    run = e.tmp / "run-a"
    run.mkdir(exist_ok=True)
    (run / "sims.jsonl").write_text(json.dumps({"id": "v$_$0", "label": 0.2, "score": 0.1}) + "\n")
    return run


def _grpo_run(e: Env) -> Path:
    run = e.tmp / "grpo-run"
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward/total": 0.5}) + "\n")
    return run


WRITERS: dict[str, tuple[str, str, Callable[[Env, str], list[str]]]] = {
    # name: (cli, option as the message names it, argv with that output path)
    "generate --out": ("distill", "--out", lambda e, p: e.generate(e.data, "--out", p)),
    "export --to": ("distill", "--to", lambda e, p: ["export", str(e.tmp), "--to", p]),
    "stand-in-teacher --request-log": (
        "distill",
        "--request-log",
        lambda e, p: ["stand-in-teacher", "--data", str(e.data), "--port", "0", "--request-log", p],
    ),
    "predict --out": ("eval", "--out", lambda e, p: e.predict(e.data, out=Path(p))),
    "report --out": ("eval", "--out", lambda e, p: ["report", str(_run_dir(e)), "--out", p]),
    "plot --out": ("rl", "--out", lambda e, p: ["plot", str(_grpo_run(e)), "--out", p]),
    "tiny-model OUT_DIR": ("rl", "OUT_DIR", lambda e, p: ["tiny-model", p]),
    "sft output_dir": ("rl", "output_dir", lambda e, p: ["sft", "--set", f"output_dir={p}"]),
    "grpo output_dir": (
        "rl",
        "output_dir",
        lambda e, p: [
            "grpo",
            "--set",
            f"model={e.fake_model()}",
            "--set",
            f"data={e.data}",
            "--set",
            f"output_dir={p}",
        ],
    ),
    "train output_dir": (
        "rl",
        "output_dir",
        lambda e, p: ["train", "--set", "model=m", "--set", f"data={e.data}", "--set", f"output_dir={p}"],
    ),
    "make-data OUT_DIR": ("thinker", "OUT_DIR", lambda e, p: ["make-data", p, "--n", "3"]),
    "demo --out": ("thinker", "--out", lambda e, p: ["demo", "--out", p]),
    "mini-repro --out": ("thinker", "--out", lambda e, p: ["mini-repro", "--quick", "--out", p]),
    "analyze --out": (
        "thinker",
        "--out",
        lambda e, p: ["analyze", str(e.data / "Raw"), "--model", str(e.fake_model()), "--out", p],
    ),
}


def _output_path_cases() -> None:
    for writer, (cli, option, argv) in WRITERS.items():

        def is_a_file(e, argv=argv, option=option):
            if option == "--request-log":  # an output file: a folder is what is in the way
                d = e.tmp / "a-folder"
                d.mkdir()
                return argv(e, str(d)), [str(d), f"{option} is a folder, not a file"]
            f = a_file(e)
            return argv(e, str(f)), [str(f), f"{option} is a file, not a folder"]

        def under_a_file(e, argv=argv):
            f = a_file(e)
            return argv(e, str(f / "deep" / "er")), [str(f / "deep" / "er"), f"is under {f}, which is a file"]

        def in_sys(e, argv=argv, option=option):
            return argv(e, f"{UNWRITABLE}/x"), [f"{UNWRITABLE}/x", f"{option} folder", "choose a writable"]

        def under_proc(e, argv=argv, option=option):
            return argv(e, f"{UNDER_PROC}/x"), [f"{UNDER_PROC}/x", "choose a writable " + option]

        for kind, fn in (
            ("in the way", is_a_file),
            ("under a file", under_a_file),
            ("under /sys", in_sys),
            ("under /proc", under_proc),
        ):
            case(f"output path: {writer} {kind}", cli, code=2)(fn)


_output_path_cases()


# ------------------------------------------------------------------------------------ one job per output folder
LOCKED: dict[str, tuple[str, Callable[[Env, Path], list[str]]]] = {
    "generate": ("distill", lambda e, o: e.generate(e.data, "--out", str(o))),
    "predict": ("eval", lambda e, o: e.predict(e.data, out=o)),
    "sft": ("rl", lambda e, o: ["sft", "--set", f"model={e.fake_model()}", "--set", f"output_dir={o}"]),
    "grpo": (
        "rl",
        lambda e, o: [
            "grpo",
            "--set",
            f"model={e.fake_model()}",
            "--set",
            f"data={e.data}",
            "--set",
            f"output_dir={o}",
        ],
    ),
    "train": (
        "rl",
        lambda e, o: ["train", "--set", "model=m", "--set", f"data={e.data}", "--set", f"output_dir={o}"],
    ),
    "demo": ("thinker", lambda e, o: ["demo", "--out", str(o)]),
    "mini-repro": ("thinker", lambda e, o: ["mini-repro", "--quick", "--out", str(o)]),
    "analyze": (
        "thinker",
        lambda e, o: ["analyze", str(e.data / "Raw"), "--model", str(e.fake_model()), "--out", str(o)],
    ),
}


def _lock_cases() -> None:
    for command, (cli, argv) in LOCKED.items():

        def in_use(e, argv=argv, command=command):
            out = e.tmp / "busy"
            proc = e.hold(out, f"holder {command} --out busy")
            return argv(e, out), [
                str(out),
                "in use by another job",
                f"pid {proc.pid}",
                f"(holder {command} --out busy)",
            ]

        case(f"locked: a second {command} on the same folder", cli)(in_use)


_lock_cases()


# ---------------------------------------------------------------------------- option ranges (typer, exit 2)
RANGES: list[tuple[str, str, Callable[[Env], list[str]], str]] = [
    # (case, cli, argv, the option the message names)
    (
        "stand-in-teacher --port 70000",
        "distill",
        lambda e: ["stand-in-teacher", "--data", str(e.data), "--port", "70000"],
        "--port",
    ),
    (
        "stand-in-teacher --port -1",
        "distill",
        lambda e: ["stand-in-teacher", "--data", str(e.data), "--port", "-1"],
        "--port",
    ),
    (
        "stand-in-teacher --latency -1",
        "distill",
        lambda e: ["stand-in-teacher", "--data", str(e.data), "--latency", "-1"],
        "--latency",
    ),
    (
        "stand-in-teacher --slow-seconds -2",
        "distill",
        lambda e: ["stand-in-teacher", "--data", str(e.data), "--slow-seconds", "-2"],
        "--slow-seconds",
    ),
    (
        "generate --concurrency 0",
        "distill",
        lambda e: e.generate(e.data, "--concurrency", "0"),
        "--concurrency",
    ),
    (
        "generate --samples-per-clip 0",
        "distill",
        lambda e: e.generate(e.data, "--samples-per-clip", "0"),
        "--samples-per-clip",
    ),
    (
        "generate --max-attempts 0",
        "distill",
        lambda e: e.generate(e.data, "--max-attempts", "0"),
        "--max-attempts",
    ),
    ("generate --limit 0", "distill", lambda e: e.generate(e.data, "--limit", "0"), "--limit"),
    (
        "export --workers 0",
        "distill",
        lambda e: ["export", str(e.tmp), "--to", str(e.tmp / "x"), "--workers", "0"],
        "--workers",
    ),
    ("serve --port 70000", "distill", lambda e: ["serve", "--port", "70000"], "--port"),
    (
        "doctor --beeps 0",
        "distill",
        lambda e: ["doctor", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--beeps", "0"],
        "--beeps",
    ),
    (
        "doctor --timeout 0",
        "distill",
        lambda e: ["doctor", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--timeout", "0"],
        "--timeout",
    ),
    ("predict --batch-size 0", "eval", lambda e: e.predict(e.data, "--batch-size", "0"), "--batch-size"),
    (
        "predict --max-new-tokens 0",
        "eval",
        lambda e: e.predict(e.data, "--max-new-tokens", "0"),
        "--max-new-tokens",
    ),
    ("predict --limit 0", "eval", lambda e: e.predict(e.data, "--limit", "0"), "--limit"),
    ("predict --fps 0", "eval", lambda e: e.predict(e.data, "--fps", "0"), "--fps"),
    ("predict --max-frames 0", "eval", lambda e: e.predict(e.data, "--max-frames", "0"), "--max-frames"),
    ("plot --smoothing 1.5", "rl", lambda e: ["plot", str(e.tmp), "--smoothing", "1.5"], "--smoothing"),
    (
        "make-data --hard-fraction 1.5",
        "thinker",
        lambda e: ["make-data", str(e.tmp / "d"), "--hard-fraction", "1.5"],
        "--hard-fraction",
    ),
    ("make-data --n 0", "thinker", lambda e: ["make-data", str(e.tmp / "d"), "--n", "0"], "--n"),
    (
        "mini-repro --seeds 0",
        "thinker",
        lambda e: ["mini-repro", "--seeds", "0", "--out", str(e.tmp / "m")],
        "--seeds",
    ),
    (
        "analyze --batch-size 0",
        "thinker",
        lambda e: ["analyze", str(e.data / "Raw"), "--batch-size", "0"],
        "--batch-size",
    ),
]


def _range_cases() -> None:
    for name, cli, argv, option in RANGES:
        case(f"range: {name}", cli, code=2)(lambda e, argv=argv, option=option: (argv(e), [f"'{option}'"]))


_range_cases()


# ------------------------------------------------------------------ files that point to files (extends, pipeline)
@case("sft: extends names a missing recipe", "rl")
def _(e):
    cfg = e.tmp / "child.yaml"
    cfg.write_text("extends: no-such-base.yaml\nlearning_rate: 1.0e-5\n")
    return ["sft", "--config", str(cfg)], [str(cfg), "key `extends`", f"{e.tmp}/no-such-base.yaml not found"]


@case("grpo: extends names a missing recipe", "rl")
def _(e):
    cfg = e.tmp / "ablation.yaml"
    cfg.write_text("extends: ../gone/grpo.yaml\nhint: false\n")
    return ["grpo", "--config", str(cfg)], [str(cfg), "key `extends`", "gone/grpo.yaml not found"]


@case("grpo: extends of an extends names the inner file", "rl")
def _(e):
    (e.tmp / "middle.yaml").write_text("extends: bottom.yaml\n")
    cfg = e.tmp / "top.yaml"
    cfg.write_text("extends: middle.yaml\n")
    return ["grpo", "--config", str(cfg)], [f"{e.tmp}/middle.yaml", "key `extends`", "bottom.yaml not found"]


@case("paper: pipeline names a missing file", "thinker")
def _(e):
    table = e.tmp / "table9.yaml"
    table.write_text("table: IX\npipeline: missing-pipeline.yaml\nruns: [a]\ndatasets: [sims]\nout: o\n")
    return ["paper", str(table)], [str(table), "key `pipeline`", "missing-pipeline.yaml not found"]


@case("train: sft_recipe names a missing recipe", "rl")
def _(e):
    cfg = e.tmp / "train.yaml"
    cfg.write_text(f"data: {e.data}\nsft_recipe: nowhere/sft.yaml\n")
    return ["train", "--config", str(cfg)], [str(cfg), "key `sft_recipe`", "nowhere/sft.yaml not found"]


@case("train: grpo_recipe set to a missing file", "rl")
def _(e):
    argv = ["train", "--set", f"data={e.data}", "--set", f"grpo_recipe={e.tmp}/g.yaml"]
    return argv, ["the train recipe, key `grpo_recipe`", f"{e.tmp}/g.yaml not found"]


# ------------------------------------------------------------------------ never overwrite what a command did not make
@case("make-data: OUT_DIR already holds a dataset", "thinker", code=2)
def _(e):
    d = e.copy()
    return ["make-data", str(d), "--n", "3"], [
        str(d),
        "already holds a dataset (label.csv and Raw)",
        "--force",
    ]


@case("make-data: OUT_DIR holds a Raw/ folder only", "thinker", code=2)
def _(e):
    d = e.tmp / "half"
    (d / "Raw").mkdir(parents=True)
    return ["make-data", str(d), "--n", "3"], [str(d), "already holds a dataset (Raw)"]


@case("tiny-model: OUT_DIR holds a model", "rl", code=2)
def _(e):
    m = e.fake_model()
    return ["tiny-model", str(m)], [str(m), "OUT_DIR already holds files (e.g. config.json)", "--force"]


@case("demo: --fresh on a folder the demo did not make", "thinker", code=2)
def _(e):
    d = e.tmp / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    return ["demo", "--out", str(d), "--fresh"], [
        str(d),
        "--fresh would delete files the demo did not make",
        "thesis.tex",
    ]


@case("mini-repro: --fresh on a folder it did not make", "thinker", code=2)
def _(e):
    d = e.tmp / "mine"
    d.mkdir()
    (d / "notes.md").write_text("mine")
    return ["mini-repro", "--quick", "--out", str(d), "--fresh"], [
        str(d),
        "mini-repro did not make",
        "notes.md",
    ]


@case("export: --to holds files that are no export", "distill")
def _(e):
    to = e.tmp / "to"
    to.mkdir()
    (to / "keep.txt").write_text("mine")
    return ["export", str(e.tmp), "--to", str(to)], [str(to), "holds no previous export", "--force"]


# --------------------------------------------------------------------- defaults, models and the Hub (offline)
@case("train: no data refuses instead of using the stage recipes' data", "rl")
def _(e):
    return ["train", "--set", f"output_dir={e.tmp / 't'}"], ["data is not set", "--set data=DIR"]


@case("train: data set to an empty string", "rl")
def _(e):
    return ["train", "--set", "data=", "--set", f"output_dir={e.tmp / 't'}"], ["data is not set"]


@case("sft: no model prints the default and fails fast offline naming it", "rl")
def _(e):
    return ["sft", "--set", f"output_dir={e.tmp / 's'}"], [
        "note: model is not set (recipe file or --set): using the default 'Qwen/Qwen2.5-Omni-7B'",
        "model 'Qwen/Qwen2.5-Omni-7B' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
    ]


@case("sft: a model path that does not exist", "rl")
def _(e):
    return ["sft", "--set", f"model={e.tmp / 'nope'}", "--set", f"output_dir={e.tmp / 's'}"], [
        f"model path {e.tmp}/nope does not exist"
    ]


@case("grpo: model is not a model", "rl")
def _(e):
    return [
        "grpo",
        "--set",
        "model=NOT_A_MODEL",
        "--set",
        f"data={e.data}",
        "--set",
        f"output_dir={e.tmp}/g",
    ], ["model path NOT_A_MODEL does not exist"]


@case("grpo: model folder is not a Hugging Face checkpoint", "rl")
def _(e):
    return [
        "grpo",
        "--set",
        f"model={e.data}",
        "--set",
        f"data={e.data}",
        "--set",
        f"output_dir={e.tmp}/g",
    ], [f"model path {e.data} has no config.json: not a Hugging Face checkpoint"]


@case("grpo: a Hub model offline fails fast naming it", "rl")
def _(e):
    return [
        "grpo",
        "--set",
        "model=org/absent-model",
        "--set",
        f"data={e.data}",
        "--set",
        f"output_dir={e.tmp}/g",
    ], [
        "model 'org/absent-model' is not in the local Hugging Face cache",
        "HF_HUB_OFFLINE",
    ]


@case("predict: a Hub model offline fails fast naming it", "eval")
def _(e):
    argv = e.predict(e.data)
    argv[argv.index("--model") + 1] = "org/absent-model"
    return argv, ["model 'org/absent-model' is not in the local Hugging Face cache"]


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from msa_core.synthetic import make_dataset

    return make_dataset(
        tmp_path_factory.mktemp("bad-input-data"), "sims", n=5, seed=3, splits=(0.4, 0.2, 0.4)
    )


@pytest.fixture(scope="module")
def teachers(dataset: Path) -> Iterator[Callable[..., str]]:
    """Stand-in teachers by setting, started on first use and shared by the cases."""
    running: dict[tuple, ServerThread] = {}

    def get(faults: str = "", api_key_env: str | None = None) -> str:
        key = (faults, api_key_env)
        if key not in running:
            teacher = StandInTeacher(
                data=dataset, dataset="sims", faults=parse_faults(faults), api_key_env=api_key_env
            )
            running[key] = ServerThread(teacher)
        return running[key].base_url

    yield get
    for server in running.values():
        server.stop()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("cli", "code", "build"), CASES)
def test_bad_input(
    cli: str, code: int, build: Case, dataset: Path, teachers, shared_lock_holder, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BAD_INPUT_TEACHER_KEY", "sk-right")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    env = Env(dataset, tmp_path, teachers, shared_lock_holder)
    argv, names = build(env)
    try:
        result = CliRunner().invoke(APPS[cli], [str(a) for a in argv])
    finally:
        if hasattr(env, "keep"):
            env.keep.close()
    flat = " ".join(result.output.split())
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # a clean exit, no crash
    assert "Traceback" not in result.output
    for name in names:
        assert " ".join(name.split()) in flat, f"{name!r} not in: {result.output}"
