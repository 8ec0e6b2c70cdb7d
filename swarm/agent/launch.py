"""Launching agents on this machine: one process per visible GPU (or N CPU agents).

Each agent is a separate `swarm agent` process pinned to its GPU (`--gpu i`), with its own work dir
and metrics port (base + i). CPU agents split the cores between them (OMP_NUM_THREADS), so two CPU
agents on a 2-core machine do not fight over the same cores and their track says so (`cpu:1c`).
SIGINT/SIGTERM to the launcher is forwarded to every agent, which releases its claims and
deregisters; the launcher waits for them all.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from swarm import defaults

log = logging.getLogger(__name__)


def visible_gpus() -> int:
    """How many CUDA GPUs this machine shows (0 without nvidia-smi or CUDA)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@dataclass
class LaunchPlan:
    redis_url: str
    swarm: str
    workdir: Path
    agents: int | None = None  # None: one per GPU, or one CPU agent without GPUs
    agent_args: list[str] = field(default_factory=list)  # passed through to every `swarm agent`
    metrics_base_port: int | None = defaults.METRICS_BASE_PORT


def agent_commands(plan: LaunchPlan, gpus: int | None = None) -> list[tuple[list[str], dict[str, str]]]:
    """The (argv, env) of each agent process of the plan."""
    gpus = visible_gpus() if gpus is None else gpus
    n = plan.agents if plan.agents is not None else max(gpus, 1)
    use_gpu = gpus > 0
    threads = max(1, (os.cpu_count() or 1) // n)
    out = []
    for i in range(n):
        argv = [
            sys.executable,
            "-m",
            "swarm.cli",
            "--redis",
            plan.redis_url,
            "--swarm",
            plan.swarm,
            "agent",
            "--gpu",
            str(i % gpus) if use_gpu else "cpu",
            "--workdir",
            str(plan.workdir / f"agent-{i}"),
        ]
        if plan.metrics_base_port is not None:
            argv += ["--metrics-port", str(plan.metrics_base_port + i)]
        else:
            argv += ["--no-metrics"]
        argv += plan.agent_args
        env = dict(os.environ)
        if not use_gpu:
            env["OMP_NUM_THREADS"] = str(threads)
        out.append((argv, env))
    return out


class Launcher:
    """Starts the agents of a plan and stops them all on a signal or `stop()`."""

    def __init__(self, plan: LaunchPlan, gpus: int | None = None) -> None:
        self.plan = plan
        self.commands = agent_commands(plan, gpus)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, quiet: bool = False) -> None:
        self.plan.workdir.mkdir(parents=True, exist_ok=True)
        for i, (argv, env) in enumerate(self.commands):
            logp = self.plan.workdir / f"agent-{i}.log"
            self.logs.append(logp)
            with logp.open("ab") as f:
                out = f if quiet else None
                self.procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=out))
            log.info("started agent %d (pid %d), log %s", i, self.procs[-1].pid, logp)

    def stop(self, grace_s: float = 30.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def wait(self) -> int:
        """Wait for every agent; SIGINT/SIGTERM stop them all. Returns the worst exit code."""

        def forward(signum: int, frame: FrameType | None) -> None:
            self.stop()

        old_int = signal.signal(signal.SIGINT, forward)
        old_term = signal.signal(signal.SIGTERM, forward)
        try:
            codes = [p.wait() for p in self.procs]
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
        return max((abs(c) for c in codes), default=0)

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)
