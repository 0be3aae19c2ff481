"""Throughput of the real `cot-distill generate` path against the stand-in teacher on loopback.

Two points, each N >= 2000 requests at concurrency 64 (the stand-in answers after a fixed latency, in its own
process, so the ideal rate is concurrency / latency):
- realistic: latency 1.0 s → ideal 64 req/s (target ratio >= 0.95);
- stress:    latency 0.2 s → ideal 320 req/s (target ratio >= 0.85).
Everything of generate runs: prompt building, the openai client (aiohttp transport), retries, cache appends,
filters, the outcome summary. Printed per point: requests/s over the request phase, the ratio to ideal, and the
client's CPU milliseconds per request (process CPU time of the whole generate call / requests). The last line is
``ratio_to_ideal X`` for the stress point.

    uv run python bench/distill_throughput.py [--requests 2048] [--concurrency 64] [--point realistic|stress]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cot_distill.config import load_config
from cot_distill.generate import generate
from msa_core.synthetic import make_dataset

POINTS = {"realistic": 1.0, "stress": 0.2}
CLIPS = 64


def start_standin(data: Path, latency: float) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "cot_distill.cli",
        "stand-in-teacher",
        "--data",
        str(data),
        "--dataset",
        "sims",
        "--port",
        "0",
        "--latency",
        str(latency),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+/v1)", line)
    if m is None:
        proc.kill()
        raise RuntimeError(f"stand-in did not start: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_point(name: str, latency: float, data: Path, work: Path, requests: int, concurrency: int) -> float:
    samples = math.ceil(requests / CLIPS)
    n = CLIPS * samples
    proc, url = start_standin(data, latency)
    server_cpu0 = _cpu_seconds(proc.pid)  # imports and label.csv reading are not per-request work
    try:
        out = work / f"out-{name}"
        cfg = load_config(
            overrides={
                "data": str(data),
                "split": "all",
                "out": str(out),
                "base_urls": [url],
                "concurrency": concurrency,
                "samples_per_clip": samples,
                "max_attempts": 1,
                "progress": False,
                # The bench's own data: wavs inside it travel as file:// URLs, the path measured so far.
                "wav_dir": str(data / "wav16k"),
            }
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = generate(cfg)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        server_cpu = _cpu_seconds(proc.pid) - server_cpu0
    finally:
        proc.terminate()
        proc.wait(10)
    done = result.completed
    rate = done / result.request_phase_s
    ideal = concurrency / latency
    ratio = rate / ideal
    print(
        f"{name:9s} latency {latency:.1f}s concurrency {concurrency}: {done}/{n} requests in "
        f"{result.request_phase_s:.2f}s (generate total {wall:.2f}s) = {rate:.1f} req/s, ideal {ideal:.0f}, "
        f"ratio {ratio:.3f}, client CPU {1000 * cpu / max(done, 1):.2f} ms/request "
        f"({1000 * result.request_phase_cpu_s / max(done, 1):.2f} in the request phase), "
        f"server CPU {1000 * server_cpu / max(done, 1):.2f} ms/request, accepted {result.stats['accepted']}",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2048, help="Requests per point (>= 2000).")
    parser.add_argument("--concurrency", type=int, default=64, help="Requests in flight.")
    parser.add_argument("--point", choices=[*POINTS, "both"], default="both", help="Which point(s) to run.")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp:
        work = Path(tmp)
        data = make_dataset(work / "data", "sims", n=CLIPS, seed=0)
        ratios = {}
        for name, latency in POINTS.items():
            if args.point in (name, "both"):
                ratios[name] = run_point(name, latency, data, work, args.requests, args.concurrency)
    last = ratios.get("stress", next(iter(ratios.values())))
    print(f"ratio_to_ideal {last:.3f}")


if __name__ == "__main__":
    main()
