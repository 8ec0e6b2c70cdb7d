"""Benchmark of the arena's CPU profile: tokens per second and the time split of one run; and what the
sandbox costs per run.

Runs `python -m harness run` once (fresh interpreter, as an agent would) and reports setup,
training and evaluation seconds, the supervisor's overhead, steps, tokens and tokens/s.

With `--compare-sandbox N`: N pairs of runs side by side, `--sandbox none` then `--sandbox bwrap`
(alternating, so load drifts hit both alike), and the time outside training (`total_s - training_s`:
setup of both children, evaluation, the supervisor) of each mode, its mean and the difference; plus
the launch cost alone: a child that only imports torch, and `true`, started bare and in the sandbox,
N times each.

    .venv/bin/python scripts/bench_arena.py [--budget 60] [--profile cpu] [--device cpu] [--threads N]
    .venv/bin/python scripts/bench_arena.py --compare-sandbox 10 --budget 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARENA = Path(__file__).resolve().parents[1] / "arena"


def run_once(a: argparse.Namespace, env: dict[str, str], sandbox: str, tmp: Path) -> tuple[dict[str, Any], float]:
    """One `harness run`; returns its result and the wall time including the interpreter's start."""
    out = tmp / f"r-{sandbox}.json"
    cmd = [
        sys.executable, "-m", "harness", "run", "--profile", a.profile, "--budget", str(a.budget),
        "--seed", str(a.seed), "--out", str(out), "--device", a.device, "--sandbox", sandbox,
    ]  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=ARENA, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text()), time.monotonic() - t0


def report(r: dict[str, Any], wall: float) -> None:
    other = r["total_s"] - (r["setup_s"] or 0) - (r["training_s"] or 0) - (r["eval_s"] or 0)
    print(f"track:          {r['track']}   status: {r['status']}   val_bpb: {r['val_bpb']}   sandbox: {r['sandbox']}")
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


def launch_cost(n: int, env: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    """Seconds to start a child that imports torch and exits, and `true` (bwrap's own cost): bare, and
    inside the harness's sandbox (the binds of a training child, minus the data), alternating."""
    sys.path.insert(0, str(ARENA))
    from harness import sandbox

    bwrap = sandbox.binary()
    assert bwrap is not None, "no bwrap"
    times: dict[str, dict[str, list[float]]] = {}
    for name, child in (("torch child start (s)", [sys.executable, "-c", "import torch"]), ("true (s)", ["true"])):
        boxed = sandbox.wrap(child, bwrap=bwrap, cwd=ARENA, ro=[ARENA / "harness"], rw=[], hidden=[], gpu=False)
        times[name] = {"none": [], "bwrap": []}
        for _ in range(n):
            for mode, cmd in (("none", child), ("bwrap", boxed)):
                t0 = time.monotonic()
                subprocess.run(cmd, env=env, check=True)
                times[name][mode].append(time.monotonic() - t0)
    return times


def compare(a: argparse.Namespace, env: dict[str, str]) -> None:
    fixed: dict[str, list[float]] = {"none": [], "bwrap": []}
    setup: dict[str, list[float]] = {"none": [], "bwrap": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.compare_sandbox):
            for mode in ("none", "bwrap"):
                r, _ = run_once(a, env, mode, Path(tmp))
                assert r["status"] == "ok" and r["sandbox"] == mode, r
                fixed[mode].append(r["total_s"] - r["training_s"])
                setup[mode].append(r["setup_s"])
                print(f"pair {i}: {mode:<5} total_s {r['total_s']:7.3f}  training_s {r['training_s']:7.3f}  "
                      f"setup_s {r['setup_s']:6.3f}  outside training {fixed[mode][-1]:6.3f}  "
                      f"peak_mem_mb {r['peak_mem_mb']}", flush=True)  # fmt: skip
    launch = launch_cost(a.compare_sandbox, env)
    print("---")
    for name, data in (("outside training (s)", fixed), ("setup_s", setup), *launch.items()):
        m0, m1 = statistics.fmean(data["none"]), statistics.fmean(data["bwrap"])
        med0, med1 = statistics.median(data["none"]), statistics.median(data["bwrap"])
        print(f"{name + ':':<24} none mean {m0:.3f} median {med0:.3f}   bwrap mean {m1:.3f} median {med1:.3f}   "
              f"added: mean {m1 - m0:+.3f} median {med1 - med0:+.3f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="ARENA_THREADS (default: torch's default)")
    ap.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"], help="the single run's sandbox")
    ap.add_argument("--compare-sandbox", type=int, default=0, metavar="N", help="N pairs: none vs bwrap")
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
    if a.compare_sandbox:
        compare(a, env)
        return
    with tempfile.TemporaryDirectory() as tmp:
        r, wall = run_once(a, env, a.sandbox, Path(tmp))
    report(r, wall)


if __name__ == "__main__":
    main()
