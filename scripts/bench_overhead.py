"""Where an agent's wall time goes with real runs: training against the harness and the agent around it.

N real agents (`swarm.agent.Agent`, the classical proposer, a private redis-server), each in its own
forked process with one torch thread, run the real CPU arena (subprocess runs through the guard, the
harness supervisor and its sandboxed children) for --seconds after the last one joined; then they
are stopped, after a grace that lets the runs in flight finish. bench_swarm.py measures the loop with
simulated runs; this measures what a real run costs around its training. Per run it records the
runner's wall time (from `run_experiment`, wrapped) and the harness's own result (setup_s,
training_s, eval_s, total_s); per agent the loop's steps (as bench_swarm times them). It reports:

- duty: training seconds inside the window over agent-seconds of the window (N x window), over the
  whole window and from the track's baseline leader on (`steady`); and the tokens trained per
  agent-second (a harness that works while runs train takes CPU from them on a saturated host);
- harness overhead per run: the runner's wall minus training_s (median, mean), and its parts:
  before the supervisor's clock (guard and supervisor start, or the hand-over to a pre-started one),
  setup (the training child's start to its first batch), evaluation, the rest;
- the agent's own time between runs: from a run's end to its next run's start (median, mean, sum),
  and the loop's steps per run (sync, publish, waiting for the prepared job, the workspace).

    .venv/bin/python scripts/bench_overhead.py --budget 20 --seconds 240
    PYTHONPATH=/tmp/wt-before .venv/bin/python scripts/bench_overhead.py --tree /tmp/wt-before --budget 20

--tree names the checkout whose `swarm` package and arena are measured (default: this one); the
report says where `swarm` and the harness were loaded from.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

AGENT_THREADS = "1"  # torch threads per agent: agents on a shared host take one core each
TRACK = "cpu:1c"


def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 3) if xs else None


def agent_body(
    url: str, swarm: str, workdir: str, i: int, budget: float, joined_q: Any, stop_at: Any, out: Any
) -> None:
    """One agent in this (forked) process until the wall-clock time in `stop_at.value` (0: not set)."""
    # imported here, after the fork: each agent process loads torch and optuna for itself
    from swarm.agent import executor as executor_mod
    from swarm.agent.loop import Agent, AgentOptions
    from swarm.board import Board
    from swarm.proposers.classical import ClassicalProposer
    from swarm.proposers.select import Selector

    runs: list[dict[str, Any]] = []
    original = executor_mod.run_experiment

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        outcome = original(*args, **kwargs)
        f = outcome.fields
        keys = ("status", "setup_s", "training_s", "eval_s", "total_s", "steps", "tokens", "val_bpb", "prestarted")
        keys += ("harness_hash", "sandbox")
        runs.append({"start": t0, "end": time.time(), "wall_s": outcome.wall_s, **{k: f.get(k) for k in keys}})
        return outcome

    executor_mod.run_experiment = timed_run  # measurement only: the real runner, timed
    step_s: defaultdict[str, float] = defaultdict(float)
    prop = ClassicalProposer(seed=i)
    opts = AgentOptions(workdir=Path(workdir) / f"a{i}", budget_s=budget, track=TRACK, agent_id=f"bench-{i}", seed=i)
    agent = Agent(Board.connect(url, swarm), opts, [prop], Selector([prop], [1.0]))
    joined = [0.0]
    join = agent.join

    def timed_join() -> None:
        join()
        for part, method, step in (
            (agent.pipeline, "take", "wait_for_job"),
            (agent.source, "sync", "sync"),
            (agent.executor, "run", "execute"),
            (agent.publisher, "publish", "publish"),
        ):
            wrap(part, method, step, step_s)
        joined[0] = time.time()
        joined_q.put(joined[0])

    agent.join = timed_join  # type: ignore[method-assign]
    err = ""
    thread = threading.Thread(target=lambda: agent.run(), daemon=True)
    thread.start()
    while not stop_at.value or time.time() < stop_at.value:
        time.sleep(0.1)
    stopped = time.time()
    agent.request_stop()
    thread.join(timeout=120)
    if thread.is_alive():
        err = "did not stop"
    out.put({"id": i, "joined": joined[0], "stopped": stopped, "runs": runs, "step_s": dict(step_s), "error": err})


def wrap(part: Any, method: str, step: str, step_s: defaultdict[str, float]) -> None:
    original = getattr(part, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            step_s[step] += time.perf_counter() - t0

    setattr(part, method, timed)


def measure(tree: Path, url: str, agents: int, budget: float, seconds: float) -> dict[str, Any]:
    from swarm.board import Board

    swarm = f"overhead-{uuid.uuid4().hex[:8]}"
    board = Board.connect(url, swarm)
    board.init(tree / "arena")
    workdir = tempfile.mkdtemp(prefix="bench-overhead-")
    ctx = mp.get_context("fork")
    stop_at, outq, joined_q = ctx.Value("d", 0.0), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=agent_body, args=(url, swarm, workdir, i, budget, joined_q, stop_at, outq))
        for i in range(agents)
    ]
    t_launch = time.time()
    for p in procs:
        p.start()
    last_joined = max(joined_q.get(timeout=600) for _ in procs)
    window = (last_joined, last_joined + seconds)  # from the moment every agent has joined
    stop_at.value = window[1] + budget + 15.0  # the runs in flight at the window's end complete
    parts = [outq.get(timeout=seconds + budget + 600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    shutil.rmtree(workdir, ignore_errors=True)
    history = board.leader_history(TRACK)
    baseline_at = history[0].time_ms / 1000 - (board.server_ms() / 1000 - time.time()) if history else window[1]
    res = analyze(parts, window, budget, agents, t_launch)
    res["steady"] = duty(parts, (min(max(baseline_at, window[0]), window[1]), window[1]), agents)
    return res


def duty(parts: list[dict[str, Any]], window: tuple[float, float], agents: int) -> dict[str, float]:
    """Training seconds (and tokens trained) inside `window` over the agents' seconds in it; a run that
    straddles an edge counts for the fraction of its wall time inside."""
    t0, t1 = window
    training = tokens = 0.0
    for r in (r for p in parts for r in p["runs"]):
        if r["training_s"] and r["end"] > r["start"]:
            frac = max(0.0, min(r["end"], t1) - max(r["start"], t0)) / (r["end"] - r["start"])
            training += r["training_s"] * frac
            tokens += (r["tokens"] or 0) * frac
    span = max(t1 - t0, 1e-9)
    return {
        "window_s": round(t1 - t0, 1),
        "training_s": round(training, 1),
        "duty": round(training / (agents * span), 4),
        "tokens_per_agent_s": round(tokens / (agents * span), 1),
    }


def analyze(
    parts: list[dict[str, Any]], window: tuple[float, float], budget: float, agents: int, t_launch: float
) -> dict[str, Any]:
    t0, t1 = window
    span = t1 - t0
    whole = duty(parts, window, agents)
    runs = [r for p in parts for r in p["runs"]]
    done = [r for r in runs if r["status"] == "ok" and r["training_s"]]
    over = [r["wall_s"] - r["training_s"] for r in done]
    before = [r["wall_s"] - r["total_s"] for r in done if r["total_s"]]
    setup = [r["setup_s"] for r in done if r["setup_s"] is not None]
    evals = [r["eval_s"] for r in done if r["eval_s"] is not None]
    rest = [
        r["total_s"] - r["setup_s"] - r["training_s"] - r["eval_s"]
        for r in done
        if None not in (r["total_s"], r["setup_s"], r["eval_s"])
    ]
    gaps = [
        b["start"] - a["end"]
        for p in parts
        for a, b in zip(p["runs"], p["runs"][1:], strict=False)
        if a["start"] >= t0 and b["start"] <= t1
    ]
    steps: defaultdict[str, float] = defaultdict(float)
    for p in parts:
        for k, v in p["step_s"].items():
            steps[k] += v
        steps["execute"] -= sum(r["end"] - r["start"] for r in p["runs"])
    steps["workspace"] = steps.pop("execute", 0.0)
    n = max(1, len(runs))
    return {
        "agents": agents,
        "budget_s": budget,
        "window_s": round(span, 1),
        "join_s": [round(p["joined"] - t_launch, 2) for p in parts],
        "runs": len(runs),
        "runs_ok": len(done),
        "statuses": {s: sum(r["status"] == s for r in runs) for s in {r["status"] for r in runs}},
        "duty": whole["duty"],
        "training_s_in_window": whole["training_s"],
        "tokens_per_agent_s": whole["tokens_per_agent_s"],
        "prestarted_runs": sum(bool(r["prestarted"]) for r in done),
        "tokens_per_s_median": med([r["tokens"] / r["training_s"] for r in done if r["tokens"]]),
        "steps_median": med([float(r["steps"]) for r in done if r["steps"] is not None]),
        "harness_overhead_s": {
            "median": med(over),
            "mean": mean(over),
            "before_clock_median": med(before),
            "setup_median": med(setup),
            "eval_median": med(evals),
            "rest_median": med(rest),
            "training_minus_budget_median": med([r["training_s"] - budget for r in done]),
        },
        "between_runs_s": {"median": med(gaps), "mean": mean(gaps), "sum": round(sum(gaps), 1), "gaps": len(gaps)},
        "loop_s_per_run": {k: round(v / n, 3) for k, v in sorted(steps.items())},
        "harness_hashes": sorted({r["harness_hash"] for r in runs if r["harness_hash"]}),
        "sandboxes": sorted({r["sandbox"] for r in runs if r["sandbox"]}),
        "errors": [f"agent {p['id']}: {p['error']}" for p in parts if p["error"]],
        "runs_detail": runs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to measure")
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--budget", type=float, nargs="+", default=[20.0], help="training budgets, one run each")
    ap.add_argument("--seconds", type=float, default=240.0, help="measured window per budget")
    ap.add_argument("--json", help="write the JSON report here instead of stdout")
    args = ap.parse_args(argv)
    tree = args.tree.resolve()
    if not (tree / "swarm").is_dir() or not (tree / "arena" / "arena.toml").is_file():
        print(f"error: {tree} is not a checkout of swarm (no swarm/ or arena/arena.toml)", file=sys.stderr)
        return 2
    if args.agents < 1 or args.seconds <= 0 or any(b <= 0 for b in args.budget):
        print("error: --agents, --seconds and --budget must be positive", file=sys.stderr)
        return 2
    sys.path.insert(0, str(tree))
    os.environ["OMP_NUM_THREADS"] = AGENT_THREADS  # the runs inherit it (the runner passes OMP_*)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    import swarm
    from swarm.board.embedded import RedisProcess

    loaded = str(Path(swarm.__file__).resolve().parent)
    if not loaded.startswith(str(tree)):
        print(f"error: swarm loaded from {loaded}, not from --tree {tree}", file=sys.stderr)
        return 2
    rdir = tempfile.mkdtemp(prefix="bench-overhead-redis-")
    server = RedisProcess(rdir)
    server.start()
    sys.path.insert(0, str(tree / "arena"))
    from harness import pins  # the harness whose runs are measured: its hash is in every result

    report: dict[str, Any] = {
        "tree": str(tree),
        "swarm_from": loaded,
        "arena": str(tree / "arena"),
        "harness_hash": pins.harness_hash(),
        "results": [],
    }
    try:
        for budget in args.budget:
            res = measure(tree, server.url, args.agents, budget, args.seconds)
            if res["harness_hashes"] != [report["harness_hash"]]:  # the runs ran another harness than --tree's
                res["errors"].append(f"runs' harness hashes {res['harness_hashes']} != {report['harness_hash']}")
            report["results"].append(res)
            h, g = res["harness_overhead_s"], res["between_runs_s"]
            print(
                f"budget {budget:g} s: {res['runs']} runs ({res['runs_ok']} ok, {res['prestarted_runs']} prestarted), "
                f"duty {res['duty']:.3f} (steady {res['steady']['duty']:.3f}), tokens per agent-second "
                f"{res['tokens_per_agent_s']}, steps median {res['steps_median']}, "
                f"harness overhead median {h['median']} s (before clock {h['before_clock_median']}, setup "
                f"{h['setup_median']}, eval {h['eval_median']}, rest {h['rest_median']}), between runs median "
                f"{g['median']} s, loop per run {res['loop_s_per_run']}"
                + (f", ERRORS {res['errors']}" if res["errors"] else ""),
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(rdir, ignore_errors=True)
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 1 if any(r["errors"] for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
