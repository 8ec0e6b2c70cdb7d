"""Running one experiment: the arena's command in a child process of its own, and its result.

`run_experiment()` builds the command from the arena manifest, starts it in its own process group
(start_new_session) with a scrubbed environment, sends its output to a per-experiment log file (never
an unbounded pipe), calls `on_tick` about once a second (the agent renews its lease there), and kills
the whole group at the hard deadline or when `cancel` is set (SIGTERM of the agent). The metric is read
from the run's JSON result file (or the log, for a regex arena), never from anything else.

`prestart()` starts an arena's `run.prestart` command ahead of its run (same guard, process group,
environment and log as a run): it gets ready without the experiment and waits for its seed on stdin;
`run_experiment(..., prestarted=)` hands it the run, and the clock starts there. One never used is
`discard()`ed: its group killed, its run dir removed.

Why each guard exists:
- process group + killpg: a training script may fork data-loader workers; killing only the parent
  leaves them burning the GPU. Never kill by name (`pkill -f train.py` kills other agents' runs).
- scrubbed environment + a private HOME: code proposed by an LLM or another agent runs here; it must
  not see API keys, Redis credentials or the user's dotfiles.
- log file: a child that prints gigabytes must not fill a pipe buffer and deadlock us.

The sandbox (no network, a PID namespace, a read-only filesystem, no validation tokens while training)
is the arena harness's, around each of its children: `sandbox` fills the command's {sandbox}
placeholder (`bwrap`, `none`, or `auto`: the harness decides), see swarm.experiment.sandbox.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from swarm import defaults
from swarm.experiment.manifest import Manifest

log = logging.getLogger(__name__)

# Variables passed through to the experiment. Everything else (API keys, Redis URLs and passwords,
# cloud credentials, SSH agents) is dropped. Prefix matches cover locale and threading knobs.
ENV_ALLOW = {"PATH", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM", "SYSTEMROOT", "ARENA_CACHE", "ARENA_BWRAP"}
ENV_ALLOW_PREFIXES = (
    "LC_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "CUDA_",
    "NVIDIA_",
    "PYTORCH_",
    "NCCL_",
    "TORCHINDUCTOR_",
)
# Even an allowed prefix never carries these (e.g. a user naming a variable CUDA_TOKEN).
ENV_DENY_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "REDIS", "AUTH")


class RunStatus(StrEnum):
    """How a run ended, as the arena reports it. Not a result's `Status`: the agent turns ok into keep
    or discard (by judging the metric) and publishes the others as they are."""

    OK = "ok"  # a finite metric came out
    CRASH = "crash"  # no metric: a non-zero exit, no result, or the agent stopping
    TIMEOUT = "timeout"  # killed at the hard deadline
    INVALID = "invalid"  # the harness refused the run (e.g. a pinned file changed)


def scrubbed_env(home: Path, gpu: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an experiment sees: allow-listed variables, a private HOME, its GPU only."""
    env: dict[str, str] = {}
    for key, value in os.environ.items():
        allowed = key in ENV_ALLOW or key.startswith(ENV_ALLOW_PREFIXES)
        if allowed and not any(word in key.upper() for word in ENV_DENY_WORDS):
            env[key] = value
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("ARENA_CACHE", str(Path(os.path.expanduser("~")) / ".cache" / "swarm-arena"))
    if gpu is None or gpu == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU agent must not grab a GPU another agent owns
    else:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    env.update(extra or {})
    return env


class Cancel(Protocol):
    """What ends a run early when set: the agent's stop (a `threading.Event`), or the executor's cancel of
    one run (`swarm.agent.executor.RunCancel`: the stop, or a preemption of that run)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class RunOutcome:
    """What one run produced. `status` is the arena's (compares equal to its plain value: "ok")."""

    status: RunStatus
    metric: float | None
    wall_s: float
    fields: dict[str, Any] = field(default_factory=dict)  # the whole JSON result (training_s, steps, ...)
    error: str = ""
    log_path: str = ""

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)  # a simulated runner may hand "ok"; a typo raises here


def build_command(manifest: Manifest, command: list[str] | None = None, **values: Any) -> list[str]:
    """The run command (or `command`: the prestart one) with its {placeholders} filled ({python} is this
    interpreter)."""
    subst = {"python": sys.executable, **{k: str(v) for k, v in values.items()}}
    try:
        return [part.format(**subst) for part in (command or manifest.run.command)]
    except KeyError as exc:
        raise ValueError(f"arena run command uses unknown placeholder {exc}") from exc


def tail(path: Path, max_chars: int = defaults.ERROR_MAX_CHARS) -> str:
    """The last `max_chars` characters of a log file (empty if missing)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_chars * 2))
            return f.read().decode("utf-8", "replace")[-max_chars:]
    except OSError:
        return ""


GUARD = str(Path(__file__).with_name("guard.py"))  # run as a file: see its docstring


def kill_leftover(marker: Path) -> bool:
    """Kill what a run of an earlier agent on this work dir left running (that agent was killed while
    its guard was killed too, so nothing ended the run). `marker` holds the run's process group and run
    dir; the group is killed only if one of its processes still names that run dir (so a recycled pid
    is never hit). Returns whether something was killed; the marker is removed."""
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        pgid, run_dir = int(info["pgid"]), str(info["run_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        marker.unlink(missing_ok=True)
        return False
    alive = False
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(entry.name)) == pgid and run_dir in (entry / "cmdline").read_bytes().decode(
                "utf-8", "replace"
            ):
                alive = True
                break
        except (OSError, ValueError):
            continue
    if alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        log.warning("killed the run an earlier agent left running here (process group %d, %s)", pgid, run_dir)
    marker.unlink(missing_ok=True)
    return alive


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@dataclass(eq=False)
class Prestarted:
    """The arena's `run.prestart` command, started under its guard ahead of its run: it gets ready (for
    the default arena: pins hashed, both harness children up with torch and the data loaded, nothing
    of the experiment) and waits for its seed on stdin. `run_experiment(..., prestarted=)` hands it a
    run; `discard()` kills its group and removes its run dir (a process that never got a run)."""

    proc: subprocess.Popen[bytes]
    run_dir: Path
    marker: Path | None  # names its process group while it waits (see `kill_leftover`)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def discard(self) -> None:
        kill_group(self.proc)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.marker is not None:
            self.marker.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _start(
    cmd: list[str], arena_dir: Path, run_dir: Path, gpu: str | None, extra_env: dict[str, str] | None, stdin: int
) -> subprocess.Popen[bytes]:
    """`cmd` under the guard (dies with this process), in its own process group, with the scrubbed
    environment and a private HOME in `run_dir`, its output to `run_dir/run.log`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    home = run_dir / "home"
    home.mkdir(exist_ok=True)
    with (run_dir / "run.log").open("wb") as logf:
        return subprocess.Popen(
            [sys.executable, GUARD, "--parent", str(os.getpid()), "--", *cmd],
            cwd=arena_dir,
            env=scrubbed_env(home, gpu, extra_env),
            stdin=stdin,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _mark(marker: Path | None, proc: subprocess.Popen[bytes], run_dir: Path) -> None:
    if marker is not None:
        marker.write_text(json.dumps({"pgid": proc.pid, "run_dir": str(run_dir)}), encoding="utf-8")


def prestart(
    arena_dir: Path,
    manifest: Manifest,
    *,
    profile: str,
    budget_s: float,
    device: str,
    gpu: str | None,
    run_dir: Path,
    extra_env: dict[str, str] | None = None,
    marker: Path | None = None,
    sandbox: str = "auto",
) -> Prestarted | None:
    """Start the arena's prestart command for a run to come (None when the arena has none). It gets
    the same environment, guard and process group as a run; `marker` names it meanwhile."""
    if not manifest.run.prestart:
        return None
    out = run_dir / "result.json"
    cmd = build_command(
        manifest, manifest.run.prestart, profile=profile, budget_s=_num(budget_s), out=out, device=device,
        sandbox=sandbox,
    )  # fmt: skip
    proc = _start(cmd, arena_dir, run_dir, gpu, extra_env, subprocess.PIPE)
    _mark(marker, proc, run_dir)
    return Prestarted(proc, run_dir, marker)


def run_experiment(
    arena_dir: Path,
    manifest: Manifest,
    *,
    profile: str,
    budget_s: float,
    timeout_s: float,
    seed: int,
    device: str,
    gpu: str | None,
    run_dir: Path,
    on_tick: Callable[[float], None] | None = None,
    cancel: Cancel | None = None,
    extra_env: dict[str, str] | None = None,
    marker: Path | None = None,
    sandbox: str = "auto",
    prestarted: Prestarted | None = None,
) -> RunOutcome:
    """Run the arena once in `arena_dir`; logs and the JSON result go to `run_dir`. The command runs
    under the guard (`guard.py`), so it dies with this process; `marker` (if given) names the run's
    process group while it runs, for `kill_leftover` should this process and the guard both be killed.
    `sandbox` goes to the command's {sandbox} placeholder (an arena without one ignores it).

    With `prestarted` (a live `Prestarted` of the same arena, profile, budget, device and sandbox) the
    run is handed to it, its seed on stdin, instead of starting the command: its run dir replaces
    `run_dir`, and the clock (`wall_s`, the timeout) starts at the hand-over."""
    if prestarted is not None:
        run_dir, proc = prestarted.run_dir, prestarted.proc
        start = time.monotonic()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps({"seed": seed}).encode() + b"\n")
            proc.stdin.close()
        except BrokenPipeError:  # it died meanwhile: its exit and log say why
            pass
        if prestarted.marker is not None and prestarted.marker != marker:
            prestarted.marker.unlink(missing_ok=True)
    else:
        out = run_dir / "result.json"
        out.unlink(missing_ok=True)
        arena_cmd = build_command(
            manifest, profile=profile, budget_s=_num(budget_s), seed=seed, out=out, device=device, sandbox=sandbox
        )
        start = time.monotonic()
        proc = _start(arena_cmd, arena_dir, run_dir, gpu, extra_env, subprocess.DEVNULL)
    out, log_path = run_dir / "result.json", run_dir / "run.log"
    _mark(marker, proc, run_dir)
    deadline = start + timeout_s
    killed = ""  # why we killed the group: "cancelled" or "timeout"
    while True:
        try:
            proc.wait(timeout=defaults.RUN_POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if on_tick is not None:
            on_tick(now - start)
        if cancel is not None and cancel.is_set():
            killed = "cancelled"
        elif now > deadline:
            killed = "timeout"
        if killed:
            kill_group(proc)
            break
    wall = time.monotonic() - start
    if marker is not None:
        marker.unlink(missing_ok=True)
    if killed == "timeout":
        err = f"killed at the hard timeout ({timeout_s:.0f} s)\n{tail(log_path, 1500)}"
        return RunOutcome(RunStatus.TIMEOUT, None, wall, {}, err, str(log_path))
    if killed == "cancelled":
        why = "cancelled: the agent is stopping, or the run was preempted"
        return RunOutcome(RunStatus.CRASH, None, wall, {}, why, str(log_path))
    return read_outcome(manifest, proc.returncode, out, log_path, wall)


def read_outcome(manifest: Manifest, returncode: int, out: Path, log_path: Path, wall: float) -> RunOutcome:
    """Turn the finished run's exit code and result file (or log) into a RunOutcome."""
    fields: dict[str, Any] = {}
    exited = RunStatus.OK if returncode == 0 else RunStatus.CRASH
    if manifest.run.result == "json":
        try:
            loaded = json.loads(out.read_text(encoding="utf-8"))
            fields = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            fields = {}
        reported = str(fields.get("status", exited))
        raw = fields.get(manifest.run.metric_key)
    else:
        reported = exited
        m = re.search(manifest.run.metric_regex, tail(log_path, 20_000), re.MULTILINE)
        raw = m.group(1) if m else None
    try:
        status = RunStatus(reported)
    except ValueError:  # a status the arena made up: the agent must not publish an unknown outcome
        status = RunStatus.CRASH
    metric = _finite(raw)
    error = str(fields.get("error") or "")
    if status is RunStatus.OK and metric is None:
        status = RunStatus.CRASH
        error = error or f"no finite {manifest.metric.name} in the result (exit code {returncode})"
    if status is not RunStatus.OK and not error:
        error = f"exit code {returncode}\n{tail(log_path, 1500)}"
    if returncode != 0 and status is RunStatus.OK:
        status, error = RunStatus.CRASH, f"exit code {returncode}\n{tail(log_path, 1500)}"
    return RunOutcome(
        status,
        metric if status is RunStatus.OK else None,
        wall,
        fields,
        error[-defaults.ERROR_MAX_CHARS :],
        str(log_path),
    )


def _finite(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
