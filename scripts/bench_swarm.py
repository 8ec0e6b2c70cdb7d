"""Swarm benchmark: N simulated agents (real `Agent`s, real Redis) on a synthetic experiment.

Each agent is a real `swarm.agent.Agent` (claims, leases, publish, noise-rule promotion with
confirmations, rebase on leader moves, pub/sub) with two things simulated:

- the experiment: `SimRunner` sleeps D seconds (the GPU run) and scores the edited train.py of the
  synthetic arena (tests/arenas/synth) as objective.py does: (X-0.7)^2 + (Y-0.3)^2 + 1 plus Gaussian
  noise seeded by the code and the seed;
- the proposer: `SimProposer` makes random local moves of X and Y (a patch per idea) after sleeping L
  seconds, standing for LLM or optimizer think time.

For each N in --agents (default 1 8 32 64) it runs the pipelined loop, and for each N in --sequential
(default 1 8) the sequential loop (`pipeline=False`), each on a fresh swarm for --seconds after every
agent has joined, and reports (JSON on stdout or --json, a markdown table on stderr):

- throughput: experiments done in the window over N x window/D (the single-agent ideal). A run that
  straddles an edge of the window counts for the fraction of it inside (agents keep running for a
  grace period after the window, so the runs in flight at its end complete and count): counting only
  runs that end inside would under-count by up to D/window. Baseline runs (NOISE_SEEDS seeded runs)
  and confirmation runs are the swarm's real work and count as experiments. `steady` starts once the
  track has its baseline leader; `whole` starts when the last agent joined (so it includes the
  baseline phase, where N-3 agents have nothing to run);
- duty cycle: the fraction of the window in which the agent's experiment is running, mean over agents;
- overhead: idle time between one experiment's end and the agent's next experiment's start;
- leader-move propagation latency p50/p99 (move -> heard on pub/sub, server clock, all agents);
- duplicates: hypotheses with more than one non-stale result (must be 0);
- false promotions: leader moves whose true (noise-free) objective is not better than the previous
  leader's true objective;
- CPU: cores used by this process (agent threads) and its children (git), and by redis-server.

The agents of a run are split over --processes P forked processes (default 4; fewer when N < P), each
agent a set of threads there, as a real agent is threads in its own process. With P = 1 all agents are
threads of one process and the GIL shows: on 2 cores, 64 agents reach about half the throughput.

    .venv/bin/python scripts/bench_swarm.py                          # ~8 minutes, private redis-server
    .venv/bin/python scripts/bench_swarm.py --agents 1 8 --sequential 1 --seconds 20 --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import queue
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from swarm import defaults
from swarm.agent.job import Job
from swarm.agent.loop import Agent, AgentOptions
from swarm.board import Board
from swarm.board.embedded import RedisProcess
from swarm.code.diff import EMPTY_PATCH, apply_patch, make_patch
from swarm.errors import ProposerError
from swarm.experiment.runner import RunOutcome, RunStatus
from swarm.models import Kind, Status
from swarm.proposers.base import Idea, ProposalContext, Usage
from swarm.proposers.select import Selector

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
TRACK = "bench:sim"
OPTIMUM = (0.7, 0.3)  # objective.py's bowl
CONST_RE = re.compile(r"^(X|Y)\s*=\s*([-+0-9.eE]+)", re.MULTILINE)


# --- the simulated world -----------------------------------------------------------------------------
def read_xy(code: str) -> tuple[float, float]:
    vals = {m.group(1): float(m.group(2)) for m in CONST_RE.finditer(code)}
    return vals["X"], vals["Y"]


def with_xy(code: str, x: float, y: float) -> str:
    new = {"X": x, "Y": y}
    return CONST_RE.sub(lambda m: f"{m.group(1)} = {new[m.group(1)]:.4f}", code)


def true_objective(x: float, y: float) -> float:
    """The noise-free score (lower is better)."""
    return (x - OPTIMUM[0]) ** 2 + (y - OPTIMUM[1]) ** 2 + 1.0


def noisy_objective(code: str, seed: int, noise: float) -> float:
    """As objective.py scores it: the noise draw depends on the seed and the code."""
    x, y = read_xy(code)
    digest = hashlib.sha256(f"{seed}:{code}".encode()).hexdigest()
    return true_objective(x, y) + random.Random(int(digest[:16], 16)).gauss(0.0, noise)


class SimRunner:
    """The injected experiment runner of one agent: sleeps the budget (the GPU run), records when."""

    def __init__(self, noise: float) -> None:
        self.noise = noise
        self.runs: list[tuple[float, float, bool]] = []  # (start, end, cancelled), wall clock

    def __call__(
        self, arena_dir: Path, files: dict[str, str], seed: int, budget_s: float, cancel: threading.Event
    ) -> RunOutcome:
        t0 = time.time()
        cancelled = cancel.wait(budget_s)
        t1 = time.time()
        self.runs.append((t0, t1, cancelled))
        if cancelled:
            return RunOutcome(RunStatus.CRASH, None, t1 - t0, {}, "cancelled")
        score = noisy_objective(files["train.py"], seed, self.noise)
        return RunOutcome(RunStatus.OK, score, t1 - t0, {"training_s": t1 - t0, "steps": 1})


class SimProposer:
    """Random local moves of X and Y, each idea with its patch, after `latency_s` of 'thinking'."""

    name = "classical"  # the board's source label for a patch-carrying, non-LLM proposer
    can_implement = False

    def __init__(self, seed: int, latency_s: float, step: float, ideas_per_call: int) -> None:
        self.rng = random.Random(seed)
        self.latency_s = latency_s
        self.step = step
        self.ideas_per_call = ideas_per_call
        self.calls = 0

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        time.sleep(self.latency_s)
        self.calls += 1
        code = ctx.files["train.py"]
        x, y = read_xy(code)
        ideas = []
        for _ in range(min(n, self.ideas_per_call)):
            nx = min(1.0, max(0.0, x + self.rng.gauss(0.0, self.step)))
            ny = min(1.0, max(0.0, y + self.rng.gauss(0.0, self.step)))
            patch = make_patch(ctx.files, {"train.py": with_xy(code, nx, ny)})
            ideas.append(Idea(title=f"move to X={nx:.4f} Y={ny:.4f}", patch=patch, meta={"x": nx, "y": ny}))
        return ideas, Usage(latency_s=self.latency_s, calls=1)

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        raise ProposerError("the simulated proposer only makes patch-carrying ideas")

    def repair(
        self, hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str
    ) -> tuple[dict[str, str] | None, Usage]:
        return None, Usage()


class BenchAgent(Agent):
    """An Agent that notes when it has joined and times the steps of its loop between two runs
    (measurement only: every step is the real one, timed by wrapping the collaborator that does it)."""

    joined_at = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_s: defaultdict[str, float] = defaultdict(float)  # loop step -> seconds, summed
        self.no_job = 0  # prepares that found nothing to claim (the caller then sleeps IDLE_POLL_S)

    def join(self) -> None:
        super().join()
        self._time(self.pipeline, "take", "wait_for_job")
        self._time(self.source, "sync", "sync")
        self._time(self.executor, "run", "execute")  # the runner's own time is subtracted in the report
        self._time(self.publisher, "publish", "publish")
        prepare = self.pipeline.prepare

        def counted() -> Job | None:
            job = prepare()
            self.no_job += job is None and not self.stop.is_set()
            return job

        self.pipeline.prepare = counted  # type: ignore[method-assign]
        self.joined_at = time.time()

    def _time(self, part: Any, method: str, step: str) -> None:
        original = getattr(part, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.step_s[step] += time.perf_counter() - t0

        setattr(part, method, timed)


# --- one group of agents (threads of this process) ------------------------------------------------------
@dataclass
class Config:
    url: str
    swarm: str
    workdir: str
    pipeline: bool
    duration_s: float
    latency_s: float
    noise: float
    step: float
    ideas_per_call: int
    seed: int


class WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "#", record.getMessage())[:90]] += 1


def run_group(cfg: Config, indices: list[int], joined: Any, stop_at: Any, out: Any) -> None:
    """Run agents `indices` as threads until the wall-clock time in `stop_at.value` (0: not set yet)."""
    warn = WarningCounter()
    logging.getLogger("swarm").addHandler(warn)
    agents: list[BenchAgent] = []
    runners: list[SimRunner] = []
    proposers: list[SimProposer] = []
    errors: list[str] = []
    for i in indices:
        prop = SimProposer(cfg.seed * 100_003 + i, cfg.latency_s, cfg.step, cfg.ideas_per_call)
        runner = SimRunner(cfg.noise)
        opts = AgentOptions(
            workdir=Path(cfg.workdir) / f"a{i}",
            budget_s=cfg.duration_s,
            track=TRACK,
            agent_id=f"bench-{i}",
            pipeline=cfg.pipeline,
            runner=runner,
            seed=cfg.seed * 100_003 + i,
        )
        agents.append(BenchAgent(Board.connect(cfg.url, cfg.swarm), opts, [prop], Selector([prop], [1.0])))
        runners.append(runner)
        proposers.append(prop)

    def body(agent: BenchAgent) -> None:
        try:
            agent.run()
        except Exception as exc:  # reported, not hidden: a crashed agent spoils the figures
            errors.append(f"{agent.agent_id}: {type(exc).__name__}: {exc}")
            if not agent.joined_at:
                agent.joined_at = -1.0

    threads = [threading.Thread(target=body, args=(a,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    pending = list(agents)
    while pending:
        still = []
        for a in pending:
            if a.joined_at:
                joined.put(a.joined_at)
            else:
                still.append(a)
        pending = still
        time.sleep(0.05)
    while not stop_at.value or time.time() < stop_at.value:
        time.sleep(0.02)
    stopped = time.time()
    for a in agents:
        a.request_stop()
    for t in threads:
        t.join(timeout=120)
    out.put(
        {
            "stopped": stopped,
            "agents": [
                {
                    "id": a.agent_id,
                    "joined": a.joined_at,
                    "runs": r.runs,
                    "propagation_ms": a.propagation_ms,
                    "ran": a.ran,
                    "agent_duty_cycle": a.duty_cycle(),
                    "proposer_calls": p.calls,
                    "step_s": dict(a.step_s),
                    "no_job": a.no_job,
                }
                for a, r, p in zip(agents, runners, proposers, strict=True)
            ],
            "errors": errors + [f"{t.name} did not stop" for t in threads if t.is_alive()],
            "warnings": dict(warn.counts),
        }
    )


class _Value:
    value = 0.0


# --- one measured run -----------------------------------------------------------------------------------
def cpu_s_self_children() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def redis_cpu_s(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def overlap(s: float, e: float, t0: float, t1: float) -> float:
    """Seconds of [s, e] inside [t0, t1]."""
    return max(0.0, min(e, t1) - max(s, t0))


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no data)."""
    if not xs:
        return None
    ys = sorted(xs)
    return ys[min(len(ys) - 1, max(0, math.ceil(q / 100 * len(ys)) - 1))]


def run_phase(url: str, n: int, pipeline: bool, args: argparse.Namespace) -> dict[str, Any]:
    swarm = f"bench-{uuid.uuid4().hex[:8]}"
    board = Board.connect(url, swarm)
    board.init(SYNTH)
    workdir = tempfile.mkdtemp(prefix="bench-swarm-")
    cfg = Config(
        url,
        swarm,
        workdir,
        pipeline,
        args.duration,
        args.latency,
        args.noise,
        args.step,
        args.ideas_per_call,
        args.seed,
    )
    procs = max(1, min(args.processes, n))
    groups = [list(range(n))[k::procs] for k in range(procs)]
    cpu0, rcpu0, wall0 = cpu_s_self_children(), redis_cpu_s(board.r), time.time()
    if procs == 1:
        joined: Any = queue.Queue()
        stop_at: Any = _Value()
        outq: Any = queue.Queue()
        workers: list[Any] = [threading.Thread(target=run_group, args=(cfg, groups[0], joined, stop_at, outq))]
    else:
        ctx = mp.get_context("fork")  # forked before this process starts any thread of its own
        joined, stop_at, outq = ctx.Queue(), ctx.Value("d", 0.0), ctx.Queue()
        workers = [ctx.Process(target=run_group, args=(cfg, g, joined, stop_at, outq)) for g in groups]
    for w in workers:
        w.start()
    joins = [joined.get(timeout=600) for _ in range(n)]
    all_joined = time.time()
    measure_end = all_joined + args.seconds
    stop_at.value = measure_end + 1.5 * args.duration + 1.0  # the runs in flight at the end complete
    parts = [outq.get(timeout=args.seconds + 600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    wall = time.time() - wall0
    cpu = cpu_s_self_children() - cpu0
    rcpu = redis_cpu_s(board.r) - rcpu0
    shutil.rmtree(workdir, ignore_errors=True)
    agents = [a for p in parts for a in p["agents"]]
    res = analyze(board, agents, max(joins), measure_end, args)
    res.update(
        {
            "agents": n,
            "pipeline": pipeline,
            "processes": procs,
            "swarm": swarm,
            "join_s": round(max(joins) - wall0, 2),
            "errors": [e for p in parts for e in p["errors"]],
            "warnings": dict(sum((Counter(p["warnings"]) for p in parts), Counter()).most_common(8)),
            "cpu": {
                "wall_s": round(wall, 1),
                "bench_process_cores": round(cpu / wall, 2),  # agent threads + git children
                "redis_cores": round(rcpu / wall, 2),
                "machine_cores": os.cpu_count(),
                "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            },
        }
    )
    return res


def analyze(
    board: Board, agents: list[dict[str, Any]], all_joined: float, stopped: float, args: argparse.Namespace
) -> dict[str, Any]:
    d = args.duration
    offset_s = board.server_ms() / 1000 - time.time()  # server clock minus ours (0 for a local server)
    history = board.leader_history(TRACK)
    baseline_at = history[0].time_ms / 1000 - offset_s if history else stopped
    windows = {"steady": (max(all_joined, baseline_at), stopped), "whole": (all_joined, stopped)}
    out: dict[str, Any] = {"duration_s": d, "latency_s": args.latency}
    for name, (t0, t1) in windows.items():
        span = max(t1 - t0, 1e-9)
        done = [sum(overlap(s, e, t0, t1) / max(e - s, 1e-9) for s, e, c in a["runs"] if not c) for a in agents]
        busy = [sum(max(0.0, min(e, t1) - max(s, t0)) for s, e, _ in a["runs"]) / span for a in agents]
        out[name] = {
            "window_s": round(span, 2),
            "experiments": round(sum(done), 1),
            "ideal": round(len(agents) * span / d, 1),
            "fraction_of_linear": round(sum(done) / (len(agents) * span / d), 4),
            "duty_cycle_mean": round(statistics.fmean(busy), 4),
            "duty_cycle_min": round(min(busy), 4),
        }
    t0, t1 = windows["steady"]
    firsts = [min((s for s, e, _ in a["runs"] if e > t0), default=t1) for a in agents]
    delays = [max(0.0, f - t0) * 1000 for f in firsts]
    out["first_run_after_baseline_ms"] = {"mean": round(statistics.fmean(delays), 1), "max": round(max(delays), 1)}
    gaps = [
        (b[0] - a[1]) * 1000
        for ag in agents
        for a, b in zip(ag["runs"], ag["runs"][1:], strict=False)
        if a[0] >= t0 and b[1] <= t1
    ]
    out["overhead_ms"] = {
        "mean": round(statistics.fmean(gaps), 1) if gaps else None,
        "p50": round(pct(gaps, 50) or 0, 1) if gaps else None,
        "p99": round(pct(gaps, 99) or 0, 1) if gaps else None,
        "gaps": len(gaps),
    }
    steps: defaultdict[str, float] = defaultdict(float)
    for a in agents:
        for k, v in a["step_s"].items():
            steps[k] += v
        steps["execute"] -= sum(e - s for s, e, _ in a["runs"])
    nruns = max(1, sum(len(a["runs"]) for a in agents))
    steps["workspace"] = steps.pop("execute", 0.0)  # execute minus the runner: the git work around a run
    out["loop_ms_per_experiment"] = {k: round(v * 1000 / nruns, 1) for k, v in sorted(steps.items())}
    out["no_job_polls"] = sum(a["no_job"] for a in agents)
    out["agent_duty_cycle_mean"] = round(statistics.fmean(a["agent_duty_cycle"] for a in agents), 4)
    prop = [float(x) for a in agents for x in a["propagation_ms"]]
    out["propagation_ms"] = {
        "p50": pct(prop, 50),
        "p99": pct(prop, 99),
        "max": max(prop) if prop else None,
        "samples": len(prop),
    }
    results = board.results(limit=1_000_000, track=TRACK)
    counts = Counter(r.hypothesis_id for r in results if not r.stale)
    superseded = 0  # exploration runs whose parent was no longer the leader when they were published
    for r in results:
        if r.kind == Kind.EXPLORE and r.status in (Status.KEEP, Status.DISCARD):
            before = [m for m in history if m.time_ms <= r.published_ms]
            superseded += bool(before) and before[-1].patch_hash != r.parent_patch_hash
    out["results"] = {
        "total": len(results),
        "by_kind": dict(Counter(r.kind for r in results)),
        "by_status": dict(Counter(r.status for r in results)),
        "stale": sum(r.stale for r in results),
        "duplicates": sum(1 for c in counts.values() if c > 1),
        "explore_on_superseded_leader": superseded,
        "invalid_reasons": dict(Counter(r.error[:70] for r in results if r.status == "invalid").most_common(4)),
        "proposer_calls": sum(a["proposer_calls"] for a in agents),
    }
    out["promotions"] = promotions(board, history)
    return out


def promotions(board: Board, history: list[Any]) -> dict[str, Any]:
    """Every leader move after the baseline, judged by the true (noise-free) objective."""
    base = board.arena_files()["train.py"].decode()
    moves = []
    prev_true: float | None = None
    for move in history:
        files = {"train.py": base}
        if move.patch_hash != EMPTY_PATCH:
            files = apply_patch(files, board.get_patch(move.patch_hash))
        true = true_objective(*read_xy(files["train.py"]))
        if prev_true is not None:
            moves.append(
                {"generation": move.generation, "measured": move.metric, "true": true, "false": true >= prev_true}
            )
        prev_true = true
    false = sum(m["false"] for m in moves)
    return {
        "total": len(moves),
        "false": false,
        "false_rate": round(false / len(moves), 4) if moves else None,
        "final_true": prev_true,
        "moves": moves,
    }


# --- the report -----------------------------------------------------------------------------
def table(runs: list[dict[str, Any]]) -> str:
    rows = [
        "| agents | loop | experiments (steady) | of linear (steady / whole) | duty cycle (mean / min) "
        "| overhead mean / p99 | propagation p50 / p99 | duplicates | false / promotions | CPU: bench / redis |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        st, wh, oh, pr, pm = r["steady"], r["whole"], r["overhead_ms"], r["propagation_ms"], r["promotions"]
        prop = f"{pr['p50']:.0f} / {pr['p99']:.0f} ms" if pr["samples"] else "-"
        over = f"{oh['mean']:.0f} / {oh['p99']:.0f} ms" if oh["gaps"] else "-"
        rows.append(
            f"| {r['agents']} | {'pipelined' if r['pipeline'] else 'sequential'} | {st['experiments']} "
            f"| {st['fraction_of_linear']:.3f} / {wh['fraction_of_linear']:.3f} "
            f"| {st['duty_cycle_mean']:.3f} / {st['duty_cycle_min']:.3f} | {over} | {prop} "
            f"| {r['results']['duplicates']} | {pm['false']} / {pm['total']} "
            f"| {r['cpu']['bench_process_cores']:.2f} / {r['cpu']['redis_cores']:.2f} cores |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", help="Redis URL (default: start a private redis-server on a free port)")
    ap.add_argument("--agents", type=int, nargs="*", default=[1, 8, 32, 64], help="pipelined runs")
    ap.add_argument("--sequential", type=int, nargs="*", default=[1, 8], help="sequential-loop runs")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured time per run, after all joined")
    ap.add_argument("--duration", type=float, default=2.0, help="D: seconds per simulated experiment")
    ap.add_argument("--latency", type=float, default=None, help="L: proposer seconds per call (default 0.2*D)")
    ap.add_argument("--noise", type=float, default=0.002, help="seed-noise sd of the objective (objective.py's)")
    ap.add_argument("--step", type=float, default=0.05, help="sd of the proposer's moves of X and Y")
    ap.add_argument("--ideas-per-call", type=int, default=1, help="ideas per proposer call (1: L per idea)")
    ap.add_argument("--processes", type=int, default=4, help="split each run's agents over P processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the JSON report here instead of stdout")
    args = ap.parse_args(argv)
    if args.latency is None:
        args.latency = 0.2 * args.duration
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    server = None
    url = args.redis
    rdir = tempfile.mkdtemp(prefix="bench-swarm-redis-")
    if url is None:
        server = RedisProcess(rdir)  # a private redis-server on a free port
        server.start()
        url = server.url
    runs: list[dict[str, Any]] = []
    try:
        plan = [(n, True) for n in args.agents] + [(n, False) for n in args.sequential]
        for n, pipeline in plan:
            r = run_phase(url, n, pipeline, args)
            runs.append(r)
            st = r["steady"]
            print(
                f"{n:3d} agents {'pipelined ' if pipeline else 'sequential'}: {st['experiments']} experiments, "
                f"{st['fraction_of_linear']:.3f} of linear, duty {st['duty_cycle_mean']:.3f}, "
                f"propagation p99 {r['propagation_ms']['p99']} ms, duplicates {r['results']['duplicates']}, "
                f"promotions {r['promotions']['false']}/{r['promotions']['total']} false, "
                f"cpu {r['cpu']['bench_process_cores']} + redis {r['cpu']['redis_cores']} cores"
                + (f", ERRORS {r['errors'][:3]}" if r["errors"] else ""),
                file=sys.stderr,
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(rdir, ignore_errors=True)
    moves = [m for r in runs for m in r["promotions"]["moves"]]
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "redis")},
        "defaults": {
            "NOISE_SEEDS": defaults.NOISE_SEEDS,
            "CONFIRM_RUNS": defaults.CONFIRM_RUNS,
            "SCREEN_ALPHA": defaults.SCREEN_ALPHA,
            "PROMOTE_ALPHA": defaults.PROMOTE_ALPHA,
        },
        "runs": runs,
        "promotions_all_runs": {"total": len(moves), "false": sum(m["false"] for m in moves)},
    }
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    print(table(runs), file=sys.stderr)
    return 1 if any(r["errors"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
