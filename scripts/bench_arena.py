"""Benchmark of the arena's CPU profile: tokens per second and the time split of one run.

Runs `python -m harness run` once (fresh interpreter, as an agent would) and reports setup,
training and evaluation seconds, the supervisor's overhead, steps, tokens and tokens/s.

    .venv/bin/python scripts/bench_arena.py [--budget 60] [--profile cpu] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARENA = Path(__file__).resolve().parents[1] / "arena"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="ARENA_THREADS (default: torch's default)")
    a = ap.parse_args()
    env = dict(os.environ)
    if a.threads:
        env["ARENA_THREADS"] = str(a.threads)
    subprocess.run(
        [sys.executable, "-m", "harness", "prepare", "--profile", a.profile],
        cwd=ARENA,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        t0 = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "run",
                "--profile",
                a.profile,
                "--budget",
                str(a.budget),
                "--seed",
                str(a.seed),
                "--out",
                str(out),
                "--device",
                a.device,
            ],
            cwd=ARENA,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.monotonic() - t0
        r = json.loads(out.read_text())
    other = r["total_s"] - (r["setup_s"] or 0) - (r["training_s"] or 0) - (r["eval_s"] or 0)
    print(f"track:          {r['track']}   status: {r['status']}   val_bpb: {r['val_bpb']}")
    print(f"params:         {r['params']}")
    print(f"steps:          {r['steps']}   tokens: {r['tokens']}")
    print(f"tokens_per_s:   {r['tokens'] / r['training_s']:.0f}" if r["tokens"] else "tokens_per_s:")
    print(f"setup_s:        {r['setup_s']}   (child start -> first batch: imports, build_model)")
    print(f"training_s:     {r['training_s']}   (budget {r['budget_s']})")
    print(f"eval_s:         {r['eval_s']}   (probe excluded: pure val_bpb forward passes)")
    print(f"other_s:        {other:.3f}   (pins, eval process start, probe, supervisor)")
    print(f"total_s:        {r['total_s']}   wall incl. interpreter start: {wall:.3f}")
    print(f"peak_mem_mb:    {r['peak_mem_mb']}   mfu: {r['mfu']}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
