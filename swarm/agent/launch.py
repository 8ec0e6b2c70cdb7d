"""Launching and supervising the agents of this machine: one process per visible GPU (or N CPU agents).

Each agent is a separate `swarm agent` process pinned to its GPU (`--gpu i`), with its own work dir
and its output appended to `<workdir>/agent-<i>.log`. CPU agents split the cores between them
(`--threads cores/N`), so two CPU agents on a 2-core machine do not fight over the same cores and
their track says so (`cpu:1c`). Each agent serves /metrics from base + its GPU index, or the next free
port, and registers the address on the board.

`Launcher.supervise()` keeps them running:

- an agent that exits with an error (a crash, kill -9, the OOM killer) is started again on the same
  work dir (its outbox is published, its workspace reused) after LAUNCH_RESTART_BACKOFF_S, doubled
  for each failure at start in a row (an exit within LAUNCH_FAST_FAIL_S of starting);
- one that failed at start LAUNCH_GIVE_UP_AFTER times in a row is given up, with one line naming it,
  its last error and its log; the others go on. Redis unreachable (exit 3) is never a reason to give
  up: waiting is what fixes it, so such an agent keeps being retried at the capped back-off;
- an agent that exits 0 (`--max-experiments` reached) is done and not restarted;
- SIGINT/SIGTERM to the launcher is forwarded as SIGTERM to every agent (each releases its claims
  and deregisters); the launcher waits for all, kills any still running after LAUNCH_STOP_GRACE_S,
  and a second signal kills them at once. The agents also get SIGTERM if the launcher itself dies
  (Linux: PR_SET_PDEATHSIG), so none is left running without its supervisor.

It returns 0 when every agent ended cleanly and 1 when one was given up or had to be killed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from swarm import defaults
from swarm.errors import BoardUnavailable

log = logging.getLogger(__name__)

Echo = Callable[[str], None]
PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal a child gets when its parent thread ends
ERROR_TAIL_BYTES = 64 * 1024  # the end of an agent's log searched for its last `error:` line


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
    metrics_base_port: int | None = defaults.METRICS_BASE_PORT  # None: no /metrics
    # supervision (the defaults' reasons are in swarm/defaults.py; tests shorten them)
    backoff_s: float = defaults.LAUNCH_RESTART_BACKOFF_S
    backoff_max_s: float = defaults.LAUNCH_RESTART_BACKOFF_MAX_S
    fast_fail_s: float = defaults.LAUNCH_FAST_FAIL_S
    give_up_after: int = defaults.LAUNCH_GIVE_UP_AFTER
    stop_grace_s: float = defaults.LAUNCH_STOP_GRACE_S
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "swarm.cli"])  # the `swarm` CLI


def agent_commands(plan: LaunchPlan, gpus: int | None = None) -> list[tuple[list[str], dict[str, str]]]:
    """The (argv, env) of each agent process of the plan."""
    gpus = visible_gpus() if gpus is None else gpus
    n = plan.agents if plan.agents is not None else max(gpus, 1)
    use_gpu = gpus > 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // n)
    asked_threads = any(a == "--threads" or a.startswith("--threads=") for a in plan.agent_args)
    out = []
    for i in range(n):
        argv = [
            *plan.command,
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
        if plan.metrics_base_port is None:
            argv += ["--no-metrics"]
        elif use_gpu:
            argv += ["--metrics-base-port", str(plan.metrics_base_port)]  # the agent adds its GPU index
        else:
            argv += ["--metrics-base-port", str(plan.metrics_base_port + i)]
        if not use_gpu and not asked_threads:
            argv += ["--threads", str(threads)]
        argv += plan.agent_args
        out.append((argv, dict(os.environ)))
    return out


@dataclass
class Child:
    """One agent of the plan across its restarts."""

    index: int
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # monotonic time of the last start
    starts: int = 0
    failed_at_start: int = 0  # exits in error within fast_fail_s of starting, in a row: the back-off's exponent
    counted: int = 0  # those of them that count towards giving up (all but "Redis unreachable")
    restart_at: float | None = None  # monotonic time of the next start, while waiting to restart
    outcome: str | None = None  # once ended for good: "done", "stopped", "given up", "failed", "killed"
    last_code: int | None = None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def last_error(logp: Path) -> str:
    """The last `error: ...` line (the CLI's one-line errors) in the end of an agent's log, or ""."""
    try:
        with logp.open("rb") as f:
            f.seek(max(0, logp.stat().st_size - ERROR_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return next((line.strip() for line in reversed(tail.splitlines()) if line.startswith("error: ")), "")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies (Linux only; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Launcher:
    """Starts the agents of a plan, restarts the ones that fail, stops them all on a signal or `stop()`."""

    def __init__(self, plan: LaunchPlan, gpus: int | None = None, echo: Echo | None = None) -> None:
        self.plan = plan
        self.commands = agent_commands(plan, gpus)
        self.echo: Echo = echo or log.info
        self.children = [
            Child(i, argv, env, plan.workdir / f"agent-{i}.log") for i, (argv, env) in enumerate(self.commands)
        ]
        self.stopping = False
        self.signals = 0

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        """The agent processes running now."""
        return [c.proc for c in self.children if c.proc is not None]

    @property
    def logs(self) -> list[Path]:
        return [c.log for c in self.children]

    # --- starting and restarting ------------------------------------------------------------------
    def start(self, quiet: bool = False) -> None:
        """Start every agent. Their output goes to their logs; `quiet` only keeps the launcher's own
        lines (started, restarted, given up) out of `echo` and in the log module."""
        if quiet:
            self.echo = log.info
        self.plan.workdir.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.restart_at = None
        child.starts += 1
        with child.log.open("ab") as f:
            if child.starts > 1:
                f.write(f"--- swarm launch: start {child.starts} of agent {child.index} ---\n".encode())
                f.flush()
            child.proc = subprocess.Popen(
                child.argv,
                env=child.env,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # safe: the launcher runs no threads of its own
            )
        child.started = time.monotonic()
        verb = "started" if child.starts == 1 else "restarted"
        self.echo(f"agent {child.index} {verb} (pid {child.proc.pid}), log {child.log}")

    def _exited(self, child: Child, code: int, now: float) -> None:
        """An agent ended: done, restarted after a back-off, or given up."""
        child.proc, child.last_code = None, code
        ran_s = now - child.started
        if self.stopping:  # ended by our SIGTERM, or by the terminal's Ctrl-C before its handler was set
            child.outcome = "stopped" if code in (0, -signal.SIGTERM, -signal.SIGINT) else "failed"
            return
        if code == 0:
            child.outcome = "done"
            self.echo(f"agent {child.index} finished (exit 0 after {ran_s:.0f} s)")
            return
        error = last_error(child.log)
        if ran_s >= self.plan.fast_fail_s:
            child.failed_at_start = child.counted = 0  # it ran: a crash mid-run, not a start that cannot work
        else:
            child.failed_at_start += 1
            child.counted += code != BoardUnavailable.exit_code  # waiting is what fixes an unreachable Redis
        if child.counted >= self.plan.give_up_after:
            child.outcome = "given up"
            self.echo(
                f"agent {child.index} given up: it ended in error within {self.plan.fast_fail_s:.0f} s of starting "
                f"{child.failed_at_start} times in a row (last: {describe_exit(code)}"
                f"{': ' + error if error else ''}); see {child.log}"
            )
            return
        wait_s = min(self.plan.backoff_max_s, self.plan.backoff_s * 2 ** min(child.failed_at_start, 20))
        child.restart_at = now + wait_s
        self.echo(
            f"agent {child.index} ended ({describe_exit(code)} after {ran_s:.0f} s{': ' + error if error else ''}); "
            f"restarting in {wait_s:g} s"
        )

    def poll(self) -> int:
        """One look at every agent: note the ones that ended, start the ones whose wait is over.
        Returns how many are running or waiting to restart."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and (code := child.proc.poll()) is not None:
                self._exited(child, code, now)
            if child.restart_at is not None and now >= child.restart_at and not self.stopping:
                self._spawn(child)
        return sum(c.outcome is None for c in self.children)

    def alive(self) -> int:
        """Agents running or waiting to restart (supervising them once on the way: `swarm demo` polls this)."""
        return self.poll()

    # --- stopping ---------------------------------------------------------------------------------
    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM to every agent, wait up to `grace_s` for them, SIGKILL the rest."""
        self.stopping = True
        grace = self.plan.stop_grace_s if grace_s is None else grace_s
        for child in self.children:
            child.restart_at = None
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.proc is None:
                continue
            try:
                code = child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"agent {child.index} still running {grace:.0f} s after SIGTERM: killed")
                child.proc.kill()
                code = child.proc.wait()
                child.last_code = code
                child.proc, child.outcome = None, "killed"
                continue
            self._exited(child, code, time.monotonic())
        for child in self.children:
            if child.outcome is None:
                child.outcome = "stopped"

    def kill_all(self) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()

    def exit_code(self) -> int:
        """0 when every agent ended cleanly (finished, or stopped by a signal); 1 when one was given up, failed
        while stopping, or had to be killed."""
        return int(any(c.outcome not in ("done", "stopped") for c in self.children))

    def supervise(self) -> int:
        """Keep the agents running until all have ended, or a signal stops them all. Returns `exit_code()`."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.signals += 1
            self.stopping = True
            if self.signals > 1:  # a second Ctrl-C: no more waiting
                self.kill_all()

        old_int = signal.signal(signal.SIGINT, on_signal)
        old_term = signal.signal(signal.SIGTERM, on_signal)
        try:
            while not self.stopping and self.poll():
                time.sleep(defaults.LAUNCH_POLL_S)
            if self.stopping:
                self.echo(f"stopping {len(self.procs)} agent(s) (SIGTERM; again to kill them at once)")
                self.stop()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
        ended = ", ".join(f"agent {c.index} {c.outcome}" for c in self.children)
        self.echo(f"all agents ended: {ended}")
        return self.exit_code()

    def wait(self) -> int:
        """`supervise()` (the name callers used before agents were restarted)."""
        return self.supervise()
