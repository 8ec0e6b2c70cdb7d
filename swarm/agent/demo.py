"""`swarm demo`: the whole swarm on one machine, no Redis install and no API key needed.

It starts an embedded redis-server (or uses `--redis`), prepares the CPU arena's data, creates a
fresh swarm, launches CPU agents (the classical proposer, plus the LLM proposers whose keys are set),
prints progress while they run, then stops them and prints the leaderboard, the best diff and where
the logs are. Everything lives under the demo's work dir; nothing else on the machine changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from swarm import defaults
from swarm.agent.launch import Launcher, LaunchPlan
from swarm.board import Board
from swarm.board.embedded import RedisProcess
from swarm.code.diff import EMPTY_PATCH
from swarm.errors import ArenaError
from swarm.experiment.manifest import load_manifest

Echo = Callable[[str], None]


@dataclass
class DemoPlan:
    arena: Path
    workdir: Path
    minutes: float = defaults.DEMO_MINUTES
    agents: int = defaults.DEMO_AGENTS
    budget_s: float | None = defaults.DEMO_BUDGET_S
    redis_url: str | None = None  # None: start an embedded redis-server
    agent_args: list[str] = field(default_factory=list)
    progress_every_s: float = 15.0


def prepare_arena(arena: Path, echo: Echo) -> None:
    """Prepare the CPU arena's data (tokenizer and token files; cached, so quick the second time)."""
    manifest = load_manifest(arena)
    if (arena / "harness").is_dir():
        echo("preparing the arena's data (first time: trains the tokenizer, about a minute)...")
        proc = subprocess.run([sys.executable, "-m", "harness", "prepare", "--profile", "cpu"], cwd=arena)
        if proc.returncode != 0:
            raise ArenaError(f"preparing the arena {manifest.arena.name} failed (exit {proc.returncode})")


def progress_line(board: Board, started: float) -> str:
    status = board.status()
    counts = status["counts"]
    leaders = (
        ", ".join(f"{t} gen {ld['generation']} {ld['metric']:.4f}" for t, ld in sorted(status["leaders"].items()))
        or "baseline being measured"
    )
    done = sum(1 for r in board.results(limit=1000))
    return (
        f"[{(time.monotonic() - started) / 60:4.1f} min] experiments {done}, open {counts.get('open', 0)}, "
        f"claimed {counts.get('claimed', 0)}, agents {status['agents_alive']} | leader: {leaders}"
    )


def summary(board: Board, workdir: Path, logs: list[Path]) -> str:
    """The leaderboard, the leader history, the best diff and where the logs are."""
    settings = board.require_settings()
    lines = ["", f"== swarm {board.swarm}: {settings.metric_name} ({settings.direction}) =="]
    every = board.results(limit=10_000)
    results = [r for r in every if r.metric is not None]
    lines.append(f"{len(every)} experiments; best single runs:")
    for r in sorted(results, key=lambda r: -settings.direction.gain(0.0, r.metric or 0.0))[:8]:
        title = board.get(r.hypothesis_id).title if r.hypothesis_id else "-"
        lines.append(f"  {r.metric:.6f}  {r.status:8} {r.kind:8} {title[:70]}")
    for track, leader in sorted(board.leaders().items()):
        lines.append(f"leader history of {track}:")
        for move in board.leader_history(track):
            title = board.get(move.hypothesis_id).title if move.hypothesis_id else "baseline"
            lines.append(f"  gen {move.generation}: {move.metric:.6f}  {title[:80]}")
        if leader.patch_hash != EMPTY_PATCH:
            lines.append(f"best diff on {track} (against the pinned arena):")
            lines.extend("  " + line for line in board.get_patch(leader.patch_hash).splitlines())
        else:
            lines.append(f"no confirmed improvement on {track} yet: the baseline leads (run longer: --minutes)")
    lines.append(f"logs: {', '.join(str(p) for p in logs)}; experiment logs under {workdir}/agent-*/runs/")
    return "\n".join(lines)


def run_demo(plan: DemoPlan, echo: Echo) -> int:
    """Run the demo; returns the number of experiments the swarm ran."""
    plan.workdir.mkdir(parents=True, exist_ok=True)
    server = None
    url = plan.redis_url
    if url is None:
        server = RedisProcess(plan.workdir / "redis")
        server.start()
        url = server.url
        echo(f"embedded redis-server on {url}")
    launcher = None
    board: Board | None = None
    try:
        prepare_arena(plan.arena, echo)
        swarm = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        board = Board.connect(url, swarm)
        board.init(plan.arena)
        args = list(plan.agent_args)
        if plan.budget_s is not None:
            args += ["--budget", str(plan.budget_s)]
        launch_dir = plan.workdir / swarm
        launcher = Launcher(LaunchPlan(url, swarm, launch_dir, plan.agents, args, None), gpus=0)
        launcher.start(quiet=True)
        echo(f"swarm {swarm}: {plan.agents} CPU agents for {plan.minutes:g} min (logs in {launch_dir})")
        started = time.monotonic()
        deadline = started + plan.minutes * 60
        while time.monotonic() < deadline and launcher.alive():
            time.sleep(min(plan.progress_every_s, max(0.0, deadline - time.monotonic())))
            echo(progress_line(board, started))
        if not launcher.alive():
            echo("the agents stopped early; see their logs")
        echo("stopping the agents...")
        launcher.stop()
        launcher = None
        echo(summary(board, launch_dir, [launch_dir / f"agent-{i}.log" for i in range(plan.agents)]))
        best = plan.workdir / "best"
        shutil.rmtree(best, ignore_errors=True)
        board.export_best(best, next(iter(board.leaders()), None))
        echo(f"the best arena (pinned files + the leader's patch) is in {best}")
        return len(board.results(limit=10_000))
    finally:
        if launcher is not None:
            launcher.stop()
        if board is not None:
            board.close()
        if server is not None:
            server.stop()
            shutil.rmtree(plan.workdir / "redis", ignore_errors=True)
