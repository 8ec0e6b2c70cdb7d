"""Search on the real CPU arena: 1 agent against 2 agents, each agent one CPU thread, same wall time.

The question of issue 15, asked once on the real arena rather than the synthetic one: do two agents on
one board find a better train.py in the same wall time than one agent, and is what the board reports as
its leader true? For each N in --agents (default 1 2), in turn and never at the same time (this is a
2-core machine), it

1. starts a private redis-server and creates a fresh swarm on the arena (`arena/`, data prepared);
2. starts N real `swarm agent` processes through `swarm launch`'s Launcher, each with `--threads 1`
   (one core, standing for one GPU), the classical proposer and `--budget` seconds of training;
3. stops them after --minutes and reads the leader history (val_bpb of each move over time);
4. re-runs the final leader's train.py (the pinned arena plus the leader's patch, `swarm best`) with
   --check-seeds new seeds (never used by the agents: 1001, 1002, ...) on one thread, and reports their
   mean: the leader's true value as far as 3 runs tell, to compare with the number the board reported.

Output: a JSON document (--json PATH, default stdout), a markdown table on stderr and, with --chart,
a PNG of the leader's val_bpb over time for each N with the re-runs' mean and SD at the end
(--from-json re-draws the chart and the table from a saved document without running anything).

    .venv/bin/python scripts/bench_cpu_search.py --chart docs/bench-cpu-search.png   # 2 x 20 min + re-runs
    .venv/bin/python scripts/bench_cpu_search.py --minutes 3 --agents 1 --check-seeds 2   # a quick try
    .venv/bin/python scripts/bench_cpu_search.py --from-json out.json --chart docs/bench-cpu-search.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swarm.agent.launch import Launcher, LaunchPlan  # noqa: E402
from swarm.board import Board  # noqa: E402
from swarm.board.embedded import RedisProcess  # noqa: E402
from swarm.code.diff import EMPTY_PATCH  # noqa: E402


def prepare(arena: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "prepare", "--profile", "cpu"], cwd=arena)
    if proc.returncode != 0:
        sys.exit(f"error: preparing the arena failed (exit {proc.returncode})")


def run_swarm(arena: Path, work: Path, n: int, minutes: float, budget_s: float) -> dict[str, Any]:
    server = RedisProcess(work / f"redis-{n}")
    server.start()
    try:
        swarm = f"cpu-search-{n}"
        board = Board.connect(server.url, swarm)
        board.init(arena)
        args = ["--threads", "1", "--budget", f"{budget_s:g}", "--proposer", "classical", "--no-metrics"]
        launcher = Launcher(LaunchPlan(server.url, swarm, work / swarm, n, args, None), gpus=0)
        os.environ["SWARM_CPU_SLOTS_DIR"] = str(work / f"slots-{n}")  # this run's agents only
        started_ms = int(time.time() * 1000)
        launcher.start(quiet=True)
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline and launcher.alive():
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        alive = launcher.alive()
        launcher.stop()
        results = board.results(limit=100_000)
        (track, leader), *_ = sorted(board.leaders().items()) or [(None, None)]
        if track is None or leader is None:
            raise SystemExit(f"error: no leader after {minutes:g} min with {n} agents (see {work / swarm})")
        history = [
            {"generation": m.generation, "val_bpb": m.metric, "minute": (m.time_ms - started_ms) / 60_000}
            for m in board.leader_history(track)
        ]
        best = work / f"best-{n}"
        shutil.rmtree(best, ignore_errors=True)
        board.export_best(best, track)
        kinds: dict[str, int] = {}
        for r in results:
            kinds[str(r.kind)] = kinds.get(str(r.kind), 0) + 1
        points = [
            [round(((r.finished_ms or r.published_ms) - started_ms) / 60_000, 3), r.metric, str(r.kind)]
            for r in results
            if r.metric is not None
        ]
        return {
            "agents": n,
            "track": track,
            "alive_at_end": alive,
            "experiments": len(results),
            "by_kind": kinds,
            "crashed": sum(1 for r in results if r.metric is None),
            "training_s": round(sum(r.training_s or 0.0 for r in results), 1),
            "noise": board.noise(track),
            "history": history,
            "points": points,
            "leader_val_bpb": leader.metric,
            "leader_is_baseline": leader.patch_hash == EMPTY_PATCH,
            "best_arena": str(best),
            "patch": "" if leader.patch_hash == EMPTY_PATCH else board.get_patch(leader.patch_hash),
        }
    finally:
        server.stop()


def check(best: Path, seeds: list[int], budget_s: float) -> list[float]:
    """val_bpb of the best arena's train.py with new seeds, one thread, one run at a time."""
    values = []
    env = {**os.environ, "ARENA_THREADS": "1"}
    for seed in seeds:
        proc = subprocess.run(
            [sys.executable, "-m", "swarm", "arena", "run", "--arena", str(best), "--profile", "cpu",
             "--budget", f"{budget_s:g}", "--seed", str(seed), "--device", "cpu", "--json"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"error: re-running {best} with seed {seed} failed: {proc.stderr.strip()[-300:]}")
        out = json.loads(proc.stdout)
        if out.get("val_bpb") is None:
            raise SystemExit(f"error: re-running {best} with seed {seed}: {out.get('status')} {out.get('error', '')}")
        values.append(float(out["val_bpb"]))
    return values


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| agents | experiments (baseline/explore/confirm) | leader moves | reported val_bpb | re-run val_bpb "
        "(mean ± SD, new seeds) | reported - re-run | noise SD |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        k = row["by_kind"]
        check_vals = row["check_val_bpb"]
        mean = statistics.fmean(check_vals)
        sd = statistics.stdev(check_vals) if len(check_vals) > 1 else 0.0
        noise_sd = statistics.stdev(row["noise"]) if len(row["noise"]) > 1 else float("nan")
        lines.append(
            f"| {row['agents']} | {row['experiments']} ({k.get('baseline', 0)}/{k.get('explore', 0)}/"
            f"{k.get('confirm', 0)}) | {len(row['history']) - 1} | {row['leader_val_bpb']:.4f} | "
            f"{mean:.4f} ± {sd:.4f} | {row['leader_val_bpb'] - mean:+.4f} | {noise_sd:.4f} |"
        )
    return "\n".join(lines)


def chart(doc: dict[str, Any], path: Path) -> None:
    """The leader's val_bpb over time per N (steps), every run (dots), the re-runs' mean ± SD at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.6))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    end = doc["minutes"]
    for row, colour in zip(doc["rows"], colours, strict=False):
        n = row["agents"]
        pts = row.get("points", [])
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=9, color=colour, alpha=0.35)
        moves = row["history"]
        xs = [m["minute"] for m in moves] + [end]
        ys = [m["val_bpb"] for m in moves] + [moves[-1]["val_bpb"]]
        ax.step(xs, ys, where="post", color=colour, linewidth=2, label=f"{n} agent{'s' if n > 1 else ''}: leader")
        vals = row["check_val_bpb"]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        ax.errorbar([end + 0.3 * (1 + colours.index(colour))], [statistics.fmean(vals)], yerr=[sd], fmt="D",
                    color=colour, capsize=4, label=f"{n}: final leader re-run, {len(vals)} new seeds")  # fmt: skip
    ax.set_xlabel("minutes since the agents started")
    ax.set_ylabel("val_bpb (lower is better)")
    ax.set_title(f"CPU arena, {doc['budget_s']:g} s runs, one thread per agent", fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arena", type=Path, default=ROOT / "arena")
    ap.add_argument("--agents", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--budget", type=float, default=20.0, help="training seconds per run")
    ap.add_argument("--check-seeds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--chart", type=Path, default=None, help="write the PNG here")
    ap.add_argument("--from-json", type=Path, default=None, help="re-draw from a saved document; run nothing")
    ap.add_argument("--workdir", type=Path, default=None, help="kept after the run (default: a temp dir, removed)")
    a = ap.parse_args()
    if a.from_json:
        try:
            saved = json.loads(a.from_json.read_text())
        except (OSError, ValueError) as e:
            sys.exit(f"error: cannot read {a.from_json}: {e}")
        print(table(saved["rows"]))
        if a.chart:
            chart(saved, a.chart)
        return
    if any(n < 1 for n in a.agents) or a.minutes <= 0 or a.budget <= 0 or a.check_seeds < 1:
        sys.exit("error: --agents, --minutes, --budget and --check-seeds must be positive")
    if not (a.arena / "arena.toml").is_file():
        sys.exit(f"error: no arena at {a.arena} (arena.toml missing)")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-cpu-search-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(a.arena)
    rows = []
    try:
        for n in a.agents:
            print(f"{n} agent(s), {a.minutes:g} min, budget {a.budget:g} s...", file=sys.stderr, flush=True)
            row = run_swarm(a.arena, work, n, a.minutes, a.budget)
            row["check_seeds"] = [1001 + i for i in range(a.check_seeds)]
            row["check_val_bpb"] = check(Path(row["best_arena"]), row["check_seeds"], a.budget)
            rows.append(row)
            print(table([row]), file=sys.stderr, flush=True)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    doc = {"minutes": a.minutes, "budget_s": a.budget, "rows": rows}
    text = json.dumps(doc, indent=1)
    if a.chart:
        chart(doc, a.chart)
    if a.json:
        a.json.write_text(text)
    else:
        print(text)
    print(table(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
