"""Search efficiency: the swarm against Optuna on the same objective, noise, workers and wall time.

The objective is the search arena (tests/arenas/search, a generic arena through its manifest): nine
tunable constants of train.py, a known smooth function of seven of them with one optimum (1.000 at the
shipped file, 0.970 at the optimum), Gaussian seed noise of sd 0.001 (about the smallest gain worth
keeping, as val_bpb noise is in practice), each run sleeping D seconds. Every run, for both contenders,
is a real subprocess of the arena's command started by the swarm's runner (`run_experiment`: the guard,
its own process group, a scrubbed environment, the JSON result), on a private redis-server on a free port.

Contenders, N workers each, for each N in --agents and each seed in --seeds:

- `swarm`: N real `swarm.agent.Agent`s with the classical proposer on one board (baseline seeds, noise
  rule, confirmations, rebase, pipelining: all the real code), split over ceil(N/4) forked processes, as
  scripts/bench_swarm.py does (in-process agents instead of `swarm agent` processes: 16 interpreters
  with torch-free imports would still cost ~1 core of startup and memory for nothing the figures need).
  The reported best is the leader (the mean of its runs, the re-measured ones included by the end);
  the current best is the leader at that time.
- `optuna`: N Optuna workers (threads, ceil(N/4) forked processes) sharing one study through Optuna's
  `JournalStorage` with `JournalRedisBackend` on the same Redis; `TPESampler(constant_liar=True)`, the
  setting Optuna recommends for parallel workers, over the same search space the classical proposer
  derives from the shipped train.py (`swarm.proposers.constants.search_space`), the shipped values
  enqueued as the first trial, as a user would. Each trial writes train.py and runs the same command
  with the trial number as its seed. The reported best is `study.best_trial` (the best single run).

Both contenders of one (N, seed) start together on a signal and stop after --budget-s of wall time
(side by side, so load on the machine hits both alike); several (N, seed) units run at once up to
--max-workers workers. The train.py of seed s carries NOISE_SEED = s, so each seed sees its own noise.

Reported per contender and N (mean and spread over seeds): the true (noise-free) value of the current
best over time (the chart), the time to reach --target (true), the gap between the reported best and
its true value in noise sds (the winner's curse), the speed-up of the time to target over N = 1, the
experiments and the shares that were confirmations, re-measures of a standing leader and baseline runs,
and the CPU cores used (each contender's processes and their children; redis-server per batch).

    .venv/bin/python scripts/bench_search.py --seeds 0 1 2 --variant before --variant-agents 4 16 \\
        --json out.json --png docs/bench-search.png                   # the sweep of docs/benchmarks.md
    .venv/bin/python scripts/bench_search.py --agents 2 --seeds 0 --budget-s 30 --duration 2   # a quick try
    .venv/bin/python scripts/bench_search.py --from-json a.json b.json --png chart.png       # parts -> one table
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import logging
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna
import redis
from optuna.storages.journal import JournalRedisBackend

from swarm import defaults
from swarm.agent.loop import Agent, AgentOptions
from swarm.board import Board
from swarm.board.embedded import RedisProcess
from swarm.code.diff import EMPTY_PATCH, apply_patch
from swarm.experiment.manifest import load_manifest
from swarm.experiment.runner import RunStatus, run_experiment
from swarm.models import Kind, Status
from swarm.proposers.classical import ClassicalProposer
from swarm.proposers.constants import Constant, apply_values, format_value, parse_constants, search_space
from swarm.proposers.select import Selector

ARENA = Path(__file__).resolve().parents[1] / "tests" / "arenas" / "search"
TRACK = "bench:search"
PER_PROCESS = 4  # workers per forked process: threads of one interpreter share its GIL
CONTENDERS = ("swarm", "optuna")


def load_objective() -> Any:
    """The arena's objective.py as a module (true_value, NOISE_SD, FLOOR, START), never run as a script."""
    spec = importlib.util.spec_from_file_location("search_objective", ARENA / "objective.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


OBJ = load_objective()
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the journal backend's


def constants_of(code: str) -> dict[str, float | int]:
    return {c.name: c.value for c in parse_constants({"train.py": code}, "cpu")}


def true_of(code: str) -> float:
    return float(OBJ.true_value(constants_of(code)))


def seeded_arena(seed: int, into: Path) -> Path:
    """A copy of the arena whose train.py says NOISE_SEED = seed (its own noise draws)."""
    shutil.copytree(ARENA, into)
    train = into / "train.py"
    code = train.read_text(encoding="utf-8").replace("NOISE_SEED = 0 ", f"NOISE_SEED = {seed} ")
    train.write_text(code, encoding="utf-8")
    return into


# --- one unit: a contender with N workers on one seed ------------------------------------------------
@dataclass
class Unit:
    contender: str  # "swarm" or "optuna"
    n: int
    seed: int
    name: str  # swarm name / study name
    variant: str = "current"  # swarm only: "current" or "before" (item 4's earlier settings)


@dataclass
class Shared:
    url: str
    duration_s: float
    budget_s: float
    workdir: str
    target: float  # true val_bpb to reach (--target)


class GatedAgent(Agent):
    """An Agent that joins, then waits for the start signal before its first claim, so every worker of
    both contenders starts at the same moment."""

    go: Any = None
    ready: threading.Event

    def start_threads(self) -> None:
        self.ready.set()
        while not self.go.value and not self.stop.is_set():
            time.sleep(0.01)
        super().start_threads()


def rusage_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_swarm_group(sh: Shared, unit: Unit, ids: list[int], ready: Any, go: Any, out: Any) -> None:
    """Agents `ids` of a swarm unit, as threads of this (forked) process, until go + budget."""
    logging.getLogger("swarm").setLevel(logging.ERROR)
    kwargs = apply_variant(unit.variant)
    cpu0 = rusage_s()
    agents: list[GatedAgent] = []
    for i in ids:
        seed = unit.seed * 1000 + i
        prop = ClassicalProposer(seed=seed, **kwargs)
        opts = AgentOptions(
            workdir=Path(sh.workdir) / unit.name / f"a{i}",
            budget_s=sh.duration_s,
            track=TRACK,
            agent_id=f"{unit.name}-{i}",
            sandbox="off",
            seed=seed,
        )
        a = GatedAgent(Board.connect(sh.url, unit.name), opts, [prop], Selector([prop], [1.0], seed=seed))
        a.go, a.ready = go, threading.Event()
        agents.append(a)
    errors: list[str] = []

    def body(a: GatedAgent) -> None:
        try:
            a.run()
        except Exception as exc:  # reported, not hidden: a crashed agent spoils the figures
            errors.append(f"{a.agent_id}: {type(exc).__name__}: {exc}")
            a.ready.set()

    threads = [threading.Thread(target=body, args=(a,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    for a in agents:
        a.ready.wait(600)
    ready.put(len(agents))
    while not go.value:
        time.sleep(0.01)
    time.sleep(max(0.0, go.value + sh.budget_s - time.time()))
    for a in agents:
        a.request_stop()
    for t in threads:
        t.join(timeout=60)
    preempted = sum(preemptions(a) for a in agents)
    out.put({"unit": unit.name, "cpu_s": rusage_s() - cpu0, "errors": errors, "trials": [], "preempted": preempted})


def preemptions(a: Agent) -> int:
    """Explorations the agent stopped for urgent work (`swarm.agent.preempt`; 0 before it joined)."""
    metrics = getattr(a, "metrics", None)
    value = metrics.registry.get_sample_value("swarm_preemptions_total", {"track": TRACK}) if metrics else None
    return int(value or 0)


def optuna_space(code: str) -> tuple[list[Constant], dict[str, Any]]:
    constants = [c for c in parse_constants({"train.py": code}, "cpu") if search_space(c) is not None]
    return constants, {c.key: s for c in constants if (s := search_space(c)) is not None}


def optuna_storage(url: str, name: str) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalRedisBackend(url, prefix=f"optuna:{name}"))


def run_optuna_group(sh: Shared, unit: Unit, ids: list[int], ready: Any, go: Any, out: Any) -> None:
    """Optuna workers `ids` of a unit, as threads of this (forked) process, until go + budget."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cpu0 = rusage_s()
    base = Path(sh.workdir) / unit.name
    manifest = load_manifest(base / "arena")
    shipped = (base / "arena" / "train.py").read_text(encoding="utf-8")
    constants, spaces = optuna_space(shipped)
    dists = {k: s.distribution() for k, s in spaces.items()}
    trials: list[dict[str, Any]] = []
    errors: list[str] = []
    stop = threading.Event()
    barrier = threading.Barrier(len(ids) + 1)

    def worker(i: int) -> None:
        wdir = base / f"w{i}"
        shutil.copytree(base / "arena", wdir / "arena")
        sampler = optuna.samplers.TPESampler(seed=unit.seed * 1000 + i, constant_liar=True)
        study = optuna.load_study(study_name=unit.name, storage=optuna_storage(sh.url, unit.name), sampler=sampler)
        barrier.wait()
        while not go.value:
            time.sleep(0.01)
        end = go.value + sh.budget_s
        while time.time() < end and not stop.is_set():
            trial = study.ask(dists)
            point = {k: spaces[k].to_value(trial.params[k]) if spaces[k].kind != "float" else trial.params[k]
                     for k in spaces}  # fmt: skip
            texts = {c: format_value(c, point[c.key]) for c in constants}
            code = apply_values({"train.py": shipped}, texts)["train.py"]
            (wdir / "arena" / "train.py").write_text(code, encoding="utf-8")
            t0 = time.time()
            outcome = run_experiment(
                wdir / "arena", manifest, profile="cpu", budget_s=sh.duration_s, timeout_s=sh.duration_s + 60,
                seed=trial.number, device="cpu", gpu="cpu", run_dir=wdir / "runs" / str(trial.number), cancel=stop,
            )  # fmt: skip
            if outcome.status == RunStatus.OK and outcome.metric is not None:
                study.tell(trial, outcome.metric)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            trials.append(
                {"start": t0, "end": time.time(), "metric": outcome.metric, "true": true_of(code),
                 "status": str(outcome.status), "worker": i}
            )  # fmt: skip
            shutil.rmtree(wdir / "runs" / str(trial.number), ignore_errors=True)

    def body(i: int) -> None:
        try:
            worker(i)
        except Exception as exc:  # reported, not hidden
            errors.append(f"optuna worker {i}: {type(exc).__name__}: {exc}")
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in ids]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed: it is in `errors`
        barrier.wait(600)
    ready.put(len(ids))
    while not go.value:
        time.sleep(0.01)
    time.sleep(max(0.0, go.value + sh.budget_s - time.time()))
    stop.set()  # cancels the runs in flight: they end after the budget and do not count
    for t in threads:
        t.join(timeout=60)
    out.put({"unit": unit.name, "cpu_s": rusage_s() - cpu0, "errors": errors, "trials": trials})


# name -> {"defaults": swarm.defaults values, "proposer": ClassicalProposer keyword arguments}
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "current": {},
    "before": {"defaults": {"CARRY_OVER": False}},  # item 4: without carrying candidates over a promotion
    "no-model": {"proposer": {"model_step": False}},  # item 4: local TPE moves only, no surrogate jump
}


def apply_variant(variant: str) -> dict[str, Any]:
    """Set a swarm variant's defaults in this (forked, so private) process; its proposer's arguments."""
    for k, v in VARIANTS[variant].get("defaults", {}).items():
        if not hasattr(defaults, k):
            raise SystemExit(f"error: swarm.defaults has no {k}")
        setattr(defaults, k, v)
    return VARIANTS[variant].get("proposer", {})


# --- a batch: units side by side ------------------------------------------------------------------
def run_batch(sh: Shared, units: list[Unit]) -> dict[str, Any]:
    """Start every unit's workers, give the start signal when all are ready, collect after the budget."""
    ctx = mp.get_context("fork")
    ready, go, out = ctx.Queue(), ctx.Value("d", 0.0), ctx.Queue()
    procs = []
    for u in units:
        udir = Path(sh.workdir) / u.name
        arena = seeded_arena(u.seed, udir / "arena")
        if u.contender == "swarm":
            Board.connect(sh.url, u.name).init(arena)
        else:
            study = optuna.create_study(study_name=u.name, storage=optuna_storage(sh.url, u.name), direction="minimize")
            study.enqueue_trial({c.key: s.to_internal(c.value) for c, s in zip(*_shipped_space(arena), strict=True)})
        target = run_swarm_group if u.contender == "swarm" else run_optuna_group
        for k in range(0, u.n, PER_PROCESS):
            ids = list(range(k, min(u.n, k + PER_PROCESS)))
            procs.append(ctx.Process(target=target, args=(sh, u, ids, ready, go, out)))
    r = redis.Redis.from_url(sh.url)
    for p in procs:
        p.start()
    workers = sum(ready.get(timeout=900) for _ in procs)
    rcpu0 = _redis_cpu(r)
    go.value = time.time()
    t_go = go.value
    parts = [out.get(timeout=sh.budget_s + 900) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = time.time() - t_go
    by_unit: dict[str, dict[str, Any]] = {}
    for part in parts:
        d = by_unit.setdefault(part["unit"], {"cpu_s": 0.0, "errors": [], "trials": [], "preempted": 0})
        d["cpu_s"] += part["cpu_s"]
        d["preempted"] += part.get("preempted", 0)
        d["errors"] += part["errors"]
        d["trials"] += part["trials"]
    return {
        "go": t_go, "wall_s": wall, "workers": workers, "redis_cores": (_redis_cpu(r) - rcpu0) / wall,
        "loadavg_1m": os.getloadavg()[0], "units": by_unit,
    }  # fmt: skip


def _shipped_space(arena: Path) -> tuple[list[Constant], list[Any]]:
    constants, spaces = optuna_space((arena / "train.py").read_text(encoding="utf-8"))
    return constants, [spaces[c.key] for c in constants]


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


# --- what each unit achieved ----------------------------------------------------------------------
def analyze_swarm(sh: Shared, unit: Unit, go: float) -> dict[str, Any]:
    board = Board.connect(sh.url, unit.name)
    offset = board.server_ms() / 1000 - time.time()  # server clock minus ours (0 on this host)
    end = go + sh.budget_s
    base = board.arena_files()["train.py"].decode()
    best: list[tuple[float, float, float]] = []  # (time since go, reported, true)
    titles: list[str] = []
    history = board.leader_history(TRACK)
    for move in history:
        t = move.time_ms / 1000 - offset
        if t > end:
            break
        files = {"train.py": base}
        if move.patch_hash != EMPTY_PATCH:
            files = apply_patch(files, board.get_patch(move.patch_hash))
        best.append((t - go, move.metric, true_of(files["train.py"])))
        titles.append(board.get(move.hypothesis_id).title[:60] if move.hypothesis_id else "")
    results = [r for r in board.results(limit=1_000_000, track=TRACK) if r.published_ms / 1000 - offset <= end]
    kinds = {str(k): sum(r.kind == k for r in results) for k in (Kind.EXPLORE, Kind.CONFIRM, Kind.BASELINE)}
    kinds["refresh"] = sum(r.kind == Kind.CONFIRM and bool(r.meta.get("refresh")) for r in results)  # re-measures
    kinds["confirm"] -= kinds["refresh"]
    candidates = sum(r.kind == Kind.EXPLORE and r.status == Status.KEEP for r in results)
    cache: dict[str, float] = {}

    def true_at(patch_hash: str | None) -> float:
        h = patch_hash or EMPTY_PATCH
        if h not in cache:
            code = base if h == EMPTY_PATCH else apply_patch({"train.py": base}, board.get_patch(h))["train.py"]
            cache[h] = true_of(code)
        return cache[h]

    explores = [r for r in results if r.kind == Kind.EXPLORE and r.metric is not None]
    promoted = {m.result_id for m in history}
    if best and len(best) > 1:  # the final leader's metric as re-measured by the end (LEADER_REFRESH_RUNS)
        last = history[len(best) - 1]
        runs = [r.metric for r in results if r.metric is not None and r.patch_hash == last.patch_hash
                and r.status == Status.KEEP and (r.result_id == last.result_id or r.candidate_of == last.result_id)]
        if runs:
            best[-1] = (best[-1][0], statistics.fmean(runs), best[-1][2])

    def since_go(ms: int | None) -> float | None:
        return None if ms is None else round(ms / 1000 - offset - go, 1)

    def first_run_at(runs: list[Any]) -> float | None:
        """When the first exploration whose code is at the target finished (what Optuna's clock reads)."""
        hits = [r.finished_ms for r in runs if r.finished_ms and true_at(r.patch_hash) <= sh.target]
        return since_go(min(hits)) if hits else None

    def repeated(runs: list[Any]) -> int:
        """Explorations that ran an edit already run on the same code (a wasted run: not a confirmation)."""
        seen = [(r.parent_patch_hash, r.patch_hash) for r in runs]
        return len(seen) - len(set(seen))

    def latency(move: Any, runs: list[Any]) -> tuple[float | None, float | None, float | None]:
        cand = next((r for r in runs if r.result_id == move.result_id), None)
        confirms = [r.published_ms for r in runs if r.kind == Kind.CONFIRM and r.candidate_of == move.result_id
                    and not r.meta.get("refresh")]  # fmt: skip
        return (since_go(cand.published_ms) if cand else None, since_go(max(confirms)) if confirms else None,
                since_go(move.time_ms))  # fmt: skip
    def move_noise(move: Any, runs: list[Any]) -> tuple[float | None, float | None, float]:
        true = true_at(move.patch_hash)
        cand = next((r for r in runs if r.result_id == move.result_id and r.metric is not None), None)
        confirms = [r.metric for r in runs if r.kind == Kind.CONFIRM and r.candidate_of == move.result_id
                    and r.metric is not None and not r.meta.get("refresh")]  # fmt: skip
        err = (lambda v: round((v - true) / OBJ.NOISE_SD, 2))  # noqa: E731
        return (err(cand.metric) if cand else None, err(statistics.fmean(confirms)) if confirms else None,
                err(move.metric))  # fmt: skip

    parent_of = {r.result_id: r.parent_patch_hash for r in results}
    gains = [(true_at(r.parent_patch_hash) - true_at(r.patch_hash)) / OBJ.NOISE_SD for r in explores]
    kept = [g for r, g in zip(explores, gains, strict=True) if r.status == Status.KEEP]
    diag = {
        "explore_true_gain_over_1sd": sum(g > 1 for g in gains) / max(1, len(gains)),
        "explore_true_gain_mean_sd": statistics.fmean(gains) if gains else None,
        "candidates_true_gain_over_1sd": sum(g > 1 for g in kept) / max(1, len(kept)),
        "moves": titles,
        "combined": [
            (str(r.status), round(g, 1))
            for r, g in zip(explores, gains, strict=True)
            if r.hypothesis_id and board.get(r.hypothesis_id).title.startswith("combine")
        ],
        "first_run_at_target_s": first_run_at(explores),
        "repeated_explores": repeated(explores),
        "candidate_list": [  # (seconds since go it finished, true value, its parent's, promoted, title)
            (since_go(r.finished_ms), round(true_at(r.patch_hash), 4), round(true_at(r.parent_patch_hash), 4),
             r.result_id in promoted, board.get(r.hypothesis_id).title[:70] if r.hypothesis_id else "")
            for r in explores if r.status == Status.KEEP
        ],
        "explore_list": [  # every exploration: (finished, true, its parent's, status, title)
            (since_go(r.finished_ms), round(true_at(r.patch_hash), 4), round(true_at(r.parent_patch_hash), 4),
             str(r.status), board.get(r.hypothesis_id).title[:70] if r.hypothesis_id else "")
            for r in explores
        ],
        "overtaking_moves": sum(  # moves whose candidate was built on an older leader than the one it replaced
            parent_of.get(b.result_id, a.patch_hash) != a.patch_hash
            for a, b in itertools.pairwise(history) if b.time_ms / 1000 - offset <= end
        ),
        "move_latency": [  # per move: (seconds since go the candidate finished, its last confirmation, the move)
            latency(m, results) for m in history[1:] if m.time_ms / 1000 - offset <= end
        ],
        "move_noise": [  # per move: (its screening run's error, its confirmations' mean error, the leader's), sds
            move_noise(m, results) for m in history[1:] if m.time_ms / 1000 - offset <= end
        ],
        "model_steps": [  # (status, true gain over its parent in sds, seconds since go)
            (str(r.status), round(g, 1), round(r.published_ms / 1000 - offset - go))
            for r, g in zip(explores, gains, strict=True)
            if r.meta.get("basis") == "model"
        ],
    }
    return {"best": best, "experiments": len(results), "by_kind": kinds,
            "moves": max(0, len(best) - 1), "candidates": candidates, "diag": diag}  # fmt: skip


def analyze_optuna(sh: Shared, trials: list[dict[str, Any]], go: float) -> dict[str, Any]:
    end = go + sh.budget_s
    done = sorted((t for t in trials if t["end"] <= end and t["metric"] is not None), key=lambda t: t["end"])
    best: list[tuple[float, float, float]] = []
    for t in done:
        if not best or t["metric"] < best[-1][1]:
            best.append((t["end"] - go, t["metric"], t["true"]))
    n = sum(1 for t in trials if t["end"] <= end)
    return {"best": best, "experiments": n, "by_kind": {"explore": n, "confirm": 0, "baseline": 0}}


def summarize(sh: Shared, unit: Unit, res: dict[str, Any], target: float, cpu_s: float) -> dict[str, Any]:
    best = res["best"]
    hit = next((t for t, _, true in best if true <= target), None)
    final = best[-1] if best else None
    total = max(1, res["experiments"])
    return {
        **asdict(unit),
        "final_true": final[2] if final else OBJ.START,
        "final_reported": final[1] if final else None,
        "curse_sd": (final[1] - final[2]) / OBJ.NOISE_SD if final else None,
        "time_to_target_s": hit,
        "experiments": res["experiments"],
        "confirm_share": res["by_kind"].get("confirm", 0) / total,
        "refresh_share": res["by_kind"].get("refresh", 0) / total,
        "baseline_share": res["by_kind"].get("baseline", 0) / total,
        "cores": cpu_s / sh.budget_s,
        "moves": res.get("moves", len(best) - 1),
        "candidates": res.get("candidates"),
        "diag": res.get("diag"),
        "best": best,
    }


# --- the report -----------------------------------------------------------------------------------
def mean_sd(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):.4f} ± {sd:.4f}"


def table(rows: list[dict[str, Any]], budget_s: float) -> tuple[str, list[dict[str, Any]]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        label = r["contender"] if r["variant"] == "current" else f"swarm ({r['variant']})"
        groups.setdefault((label, r["n"]), []).append(r)
    ttt1: dict[str, float] = {}
    lines = [
        "| contender | N | true best at end (mean ± sd) | time to target, s (mean; reached) | speed-up vs N=1 "
        "| winner's curse, sds (mean; max) | experiments | confirmations / re-measures / baseline | CPU cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for (label, n), rs in sorted(groups.items()):
        times = [r["time_to_target_s"] if r["time_to_target_s"] is not None else budget_s for r in rs]
        reached = sum(r["time_to_target_s"] is not None for r in rs)
        t = statistics.fmean(times)
        if n == 1:
            ttt1[label] = t
        speed = ttt1[label] / t if label in ttt1 and t > 0 else None
        curse = [r["curse_sd"] for r in rs if r["curse_sd"] is not None]
        s = {
            "contender": label, "n": n, "seeds": len(rs), "final_true": [r["final_true"] for r in rs],
            "time_to_target_s": t, "reached": reached, "speedup": speed,
            "curse_sd_mean": statistics.fmean(curse) if curse else None,
            "curse_sd_max": max(curse, key=abs) if curse else None,
            "experiments": statistics.fmean(r["experiments"] for r in rs),
            "confirm_share": statistics.fmean(r["confirm_share"] for r in rs),
            "refresh_share": statistics.fmean(r.get("refresh_share", 0.0) for r in rs),
            "baseline_share": statistics.fmean(r["baseline_share"] for r in rs),
            "cores": statistics.fmean(r["cores"] for r in rs),
        }  # fmt: skip
        summary.append(s)
        curse_text = f"{s['curse_sd_mean']:+.1f}; {s['curse_sd_max']:+.1f}" if curse else "-"
        speed_text = f"{speed:.2f}x" if speed else "-"
        lines.append(
            f"| {label} | {n} | {mean_sd(s['final_true'])} | {'≥' if reached < len(rs) else ''}{t:.0f} "
            f"({reached}/{len(rs)}) | {speed_text} "
            f"| {curse_text} "
            f"| {s['experiments']:.0f} | {s['confirm_share']:.0%} / {s['refresh_share']:.0%} "
            f"/ {s['baseline_share']:.0%} | {s['cores']:.2f} |"
        )
    return "\n".join(lines), summary


def chart(rows: list[dict[str, Any]], budget_s: float, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in rows})
    labels = sorted({r["contender"] if r["variant"] == "current" else f"swarm ({r['variant']})" for r in rows})
    colours = {"swarm": "#1f77b4", "optuna": "#ff7f0e", "swarm (before)": "#7f7f7f"}
    fig, axes = plt.subplots(2, len(ns), figsize=(3.6 * len(ns), 6.4), sharey="row", squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.4]})  # fmt: skip
    grid = [budget_s * k / 200 for k in range(201)]
    for ax, low, n in zip(axes[0], axes[1], ns, strict=True):
        for label in labels:
            rs = [r for r in rows if r["n"] == n and (r["contender"] if r["variant"] == "current"
                                                       else f"swarm ({r['variant']})") == label]  # fmt: skip
            if not rs:
                continue
            curves = [[next((tr for tt, _, tr in reversed(r["best"]) if tt <= g), OBJ.START) for g in grid] for r in rs]
            mean = [statistics.fmean(c[k] for c in curves) for k in range(len(grid))]
            colour = colours.get(label, "#2ca02c")
            for c in curves:
                ax.step(grid, c, where="post", color=colour, alpha=0.18, lw=0.8)
            ax.step(grid, mean, where="post", color=colour, lw=1.8, label=label)
            gaps = [[next(((rp - tr) / OBJ.NOISE_SD for tt, rp, tr in reversed(r["best"]) if tt <= g), 0.0)
                     for g in grid] for r in rs]  # fmt: skip
            low.step(grid, [statistics.fmean(c[k] for c in gaps) for k in range(len(grid))], where="post",
                     color=colour, lw=1.4)  # fmt: skip
        ax.axhline(target, color="#d62728", lw=0.8, ls="--")
        ax.set_title(f"N = {n}")
        ax.grid(alpha=0.3)
        low.axhline(0.0, color="#203040", lw=0.6)
        low.axhspan(-1.0, 1.0, color="#2ca02c", alpha=0.08)
        low.set_xlabel("wall time (s)")
        low.grid(alpha=0.3)
    axes[0][0].set_ylabel("true val_bpb of the current best")
    axes[1][0].set_ylabel("reported - true (sds)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_lines() if not h.get_label().startswith("_")}
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=8)
    fig.suptitle("True value of each contender's best (thin: each seed, thick: mean, dashed: the target)\n"
                 "below: its reported value minus its true value, in noise sds (mean over seeds; band: ±1)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plan(args: argparse.Namespace) -> list[list[Unit]]:
    """Units packed into batches of at most --max-workers workers, both contenders of one (N, seed)
    always in the same batch."""
    tag = uuid.uuid4().hex[:6]
    pairs: list[list[Unit]] = []
    for n in args.agents:
        for s in args.seeds:
            pair = [Unit(c, n, s, f"{c}-{n}-{s}-{tag}") for c in args.contenders]
            for v in args.variant:
                if n in (args.variant_agents or args.agents):
                    pair.append(Unit("swarm", n, s, f"{v}-{n}-{s}-{tag}", v))
            pairs.append(pair)
    batches: list[list[Unit]] = []
    load = 0
    for pair in sorted(pairs, key=lambda p: -sum(u.n for u in p)):
        w = sum(u.n for u in pair)
        if batches and load + w <= args.max_workers:
            batches[-1].extend(pair)
            load += w
        else:
            batches.append(list(pair))
            load = w
    return batches


def from_reports(paths: list[str], png: str | None) -> int:
    """One table and chart over the runs of several reports (a sweep run in parts, same settings)."""
    reports = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    same = {(r["config"]["duration"], r["config"]["budget_s"], r["config"]["target"]) for r in reports}
    if len(same) != 1:
        print(f"error: the reports' duration, budget and target differ: {sorted(same)}", file=sys.stderr)
        return 2
    _duration, budget_s, target = same.pop()
    rows = [row for r in reports for row in r["runs"]]
    if png:
        chart(rows, budget_s, target, Path(png))
    print(table(rows, budget_s)[0])
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="N workers per contender")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    ap.add_argument("--variant-agents", type=int, nargs="*", default=[], help="the N the variants run at (default all)")
    ap.add_argument("--variant", nargs="*", default=[], help="swarm variants run beside (before, or name=JSON)")
    ap.add_argument("--duration", type=float, default=4.0, help="D: seconds per run")
    ap.add_argument("--budget-s", type=float, default=240.0, help="wall time of each contender")
    ap.add_argument("--target", type=float, default=0.980, help="true val_bpb to reach (start 1.000, optimum 0.970)")
    ap.add_argument("--max-workers", type=int, default=32, help="workers running at once (both contenders)")
    ap.add_argument("--json", help="write the JSON report here")
    ap.add_argument("--png", help="write the chart here")
    ap.add_argument("--from-json", nargs="+", metavar="JSON", help="no run: one table (and --png) of these reports")
    args = ap.parse_args(argv)
    if args.from_json:
        return from_reports(args.from_json, args.png)
    bad = [n for n in args.agents + args.variant_agents if n < 1] or ([args.duration] if args.duration <= 0 else [])
    if bad or args.budget_s <= args.duration or not OBJ.FLOOR < args.target < OBJ.START or args.max_workers < 1:
        print("error: need N >= 1, D > 0, a budget longer than D, FLOOR < target < START and --max-workers >= 1",
              file=sys.stderr)  # fmt: skip
        return 2
    for i, v in enumerate(args.variant):
        name, _, kw = v.partition("=")
        if kw:
            VARIANTS[name] = json.loads(kw)
        if name not in VARIANTS:
            print(f"error: unknown swarm variant {name!r} (known: {', '.join(VARIANTS)})", file=sys.stderr)
            return 2
        args.variant[i] = name
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    work = tempfile.mkdtemp(prefix="bench-search-")
    server = RedisProcess(os.path.join(work, "redis"))
    server.start()
    rows: list[dict[str, Any]] = []
    batches_out = []
    errors: list[str] = []
    try:
        sh = Shared(server.url, args.duration, args.budget_s, work, args.target)
        for units in plan(args):
            b = run_batch(sh, units)
            for u in units:
                part = b["units"][u.name]
                errors += part["errors"]
                if u.contender == "swarm":
                    res = analyze_swarm(sh, u, b["go"])
                else:
                    res = analyze_optuna(sh, part["trials"], b["go"])
                rows.append(summarize(sh, u, res, args.target, part["cpu_s"]))
                r = rows[-1]
                r["preempted"] = part["preempted"]
                msg = (
                    f"{u.contender} {u.variant} N={u.n} seed {u.seed}: true {r['final_true']:.4f}, reported "
                    f"{r['final_reported']}, target at {r['time_to_target_s']} s, {r['experiments']} runs, "
                    f"confirm {r['confirm_share']:.0%}, moves {r['moves']}, preempted {r['preempted']}, "
                    f"{r['cores']:.2f} cores"
                )
                print(msg, file=sys.stderr, flush=True)
            batches_out.append({k: v for k, v in b.items() if k != "units"} | {"units": [u.name for u in units]})
            print(f"batch: {b['workers']} workers, redis {b['redis_cores']:.2f} cores, load {b['loadavg_1m']:.2f}"
                  + (f", ERRORS {errors[:3]}" if errors else ""), file=sys.stderr, flush=True)  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    text, summary = table(rows, args.budget_s)
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "png")},
        "noise_sd": OBJ.NOISE_SD,
        "summary": summary,
        "runs": rows,
        "batches": batches_out,
        "errors": errors,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if args.png:
        chart(rows, args.budget_s, args.target, Path(args.png))
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
