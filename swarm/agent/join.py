"""Joining a swarm: the swarm created or checked against the local arena, the agent's workspace,
its arena profile and its hardware track. What the agent's collaborators are then built on.

A CPU agent process first takes its share of the host's cores (`take_cpu_share`, called by `swarm
agent` before torch is imported): its thread count, hence its track (`cpu:<n>c`), is fixed for its
life. The rule (docs/agent.md, "CPU agents on one host"):

- `--threads N` (or OMP_NUM_THREADS in the environment): N threads;
- otherwise the thread count of the CPU agents already on this host (the most common one) while
  that many cores are free, else the free cores; the first agent on a host takes CPU_AGENT_THREADS
  (1), leaving the other cores to agents started after it. So agents started by hand share the
  cores evenly, one per core, on one track; `--threads` on the first sets the share for the rest.
- with no core free the agent still starts, on 1 thread, and says the host is oversubscribed.

Agents find each other through slot files in a host-local directory (CPU_SLOTS_DIR, per user): each
holds an flock on its slot for its life and writes its pid and threads in it. The kernel drops the
lock when the process ends, kill -9 included, so a dead agent's cores are free again at once, and a
stale file is just a free slot. A second lock, held only while an agent decides, keeps two agents
started at the same moment from taking the same free cores.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from swarm import defaults
from swarm.board import Board
from swarm.errors import Conflict, UserError
from swarm.experiment.manifest import Manifest, load_manifest
from swarm.experiment.sandbox import SandboxChoice, SandboxMode, choose_sandbox
from swarm.experiment.workspace import Workspace
from swarm.models import SwarmSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seat:
    """Where an agent sits in its swarm: the settings, its workspace and arena, its profile and track."""

    settings: SwarmSettings
    ws: Workspace
    manifest: Manifest
    profile: str
    track: str
    device: str  # "cuda" or "cpu"
    sandbox: SandboxChoice  # what the runs get (decided once, here)


def detect_track(profile: str, gpu: str) -> str:
    """profile + ':' + hardware, as the default arena's harness names it (cpu:<threads>c or the GPU name)."""
    import torch  # here, not at the top: the CLI and the board never need it

    if gpu != "cpu" and torch.cuda.is_available():
        return f"{profile}:{torch.cuda.get_device_name(0).replace(' ', '-')}"
    return f"{profile}:{torch.get_num_threads()}c"


def take_seat(
    board: Board,
    workdir: Path,
    arena: Path | None,
    gpu: str,
    profile: str | None,
    track: str | None,
    sandbox: SandboxMode | str = SandboxMode.AUTO,
) -> Seat:
    """Create the swarm from `arena` (or check `arena` against its pin), build the workspace under
    `workdir`, pick the profile ("auto": gpu when CUDA is asked for), the track and the sandbox
    (`--sandbox required` on a host or arena without one: a UserError, before the agent registers)."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = board.settings()
    if settings is None:
        if arena is None:
            raise UserError(f"swarm {board.swarm!r} does not exist; pass --arena PATH to create it")
        settings = board.init(arena)
    elif arena is not None and (differ := board.arena_diff(arena)):
        raise Conflict(
            f"local arena {arena} differs from the arena pinned on swarm {board.swarm!r}: {', '.join(differ[:10])}"
        )
    ws = Workspace.create(workdir / "ws", board.arena_files(), settings.editable)
    manifest = load_manifest(ws.dir)
    cuda = gpu != "cpu"
    profile = profile or manifest.run.default_profile
    if profile == "auto":
        profile = "gpu" if cuda and "gpu" in manifest.profiles else next(iter(manifest.profiles))
    manifest.profile(profile)  # ArenaError if unknown
    box = choose_sandbox(sandbox, manifest)
    return Seat(settings, ws, manifest, profile, track or detect_track(profile, gpu), "cuda" if cuda else "cpu", box)


# --- the host's cores, shared by its CPU agents ---------------------------------------------------------


@dataclass
class CpuShare:
    """This process's share of the host's cores, held until `close()` or the process's end."""

    threads: int
    cores: int  # the CPUs this process may run on (its affinity mask: a container's cpuset counts)
    others: list[tuple[int, int]]  # (pid, threads) of the CPU agents already on this host
    slot: Path
    _fd: int | None = field(default=None, repr=False)

    @property
    def index(self) -> int:
        """The slot's number on this host (0 for the first agent): stable for an agent restarted after
        its death, since a dead agent's slot is the lowest free one again."""
        return int(self.slot.name.removeprefix("slot-"))

    @property
    def oversubscribed(self) -> bool:
        return sum(t for _, t in self.others) + self.threads > self.cores

    def describe(self) -> str:
        """One line: what was taken, next to whom."""
        peers = ", ".join(f"pid {pid} ({t} threads)" for pid, t in self.others)
        alone = not self.others and self.threads < self.cores
        return (
            f"cpu share: {self.threads} thread(s) of this host's {self.cores} core(s); "
            f"{len(self.others)} other CPU agent(s) here{': ' + peers if peers else ''}"
            + ("; the first agent on a host leaves the other cores to agents started later: pass --threads all "
               "to an agent that runs alone" if alone else "")
        )  # fmt: skip

    def close(self) -> None:
        """Give the slot back (the process's end does the same)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def host_cores() -> int:
    """The CPUs this process may use: its affinity mask where the OS has one, else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def slots_dir() -> Path:
    """The host-local directory of CPU slots: SWARM_CPU_SLOTS_DIR, else CPU_SLOTS_DIR for this user."""
    env = os.environ.get("SWARM_CPU_SLOTS_DIR")
    return Path(env) if env else Path(defaults.CPU_SLOTS_DIR.format(uid=os.getuid()))


def _private_dir(path: Path) -> None:
    """Create `path` (mode 700) or check that it is a directory of ours: in a shared /tmp another user
    could have made it first, to see or block our agents."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise UserError(f"cannot use the CPU slots directory {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise UserError(
            f"the CPU slots directory {path} is not a directory of this user's: remove it, or set "
            "SWARM_CPU_SLOTS_DIR to a directory of your own"
        )


def _read_slot(fd: int) -> tuple[int, int] | None:
    """(pid, threads) written in a held slot, or None while its holder has not written it yet."""
    try:
        fields = os.pread(fd, 64, 0).split()
        pid, threads = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, threads) if threads > 0 else None


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"OMP_NUM_THREADS={value!r} is not a positive integer (unset it, or pass --threads N)")
    return int(value)


def choose_threads(asked: int | None, others: list[int], cores: int) -> int:
    """The rule: asked if given; else the others' most common count while that many cores are free,
    else the free cores; CPU_AGENT_THREADS for the first agent on a host; never fewer than 1."""
    if asked is not None:
        return asked
    free = cores - sum(others)
    if not others:
        return max(1, min(defaults.CPU_AGENT_THREADS, cores))
    counts = collections.Counter(others)
    common = min(counts, key=lambda t: (-counts[t], t))  # most common; the smaller one on a tie
    return common if common <= free else max(1, free)


def take_cpu_share(threads: int | None = None, directory: Path | None = None, cores: int | None = None) -> CpuShare:
    """Take this process's share of the host's cores (see the module docstring) and hold it.

    `threads`: what the user asked (`--threads`); None reads OMP_NUM_THREADS, then applies the rule."""
    asked = threads if threads is not None else _env_threads()
    if asked is not None and asked < 1:
        raise UserError(f"--threads must be at least 1, not {asked}")
    directory = directory or slots_dir()
    cores = cores or host_cores()
    _private_dir(directory)
    guard = os.open(directory / "host.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one agent decides at a time; held for milliseconds
        others: list[tuple[int, int]] = []
        mine: tuple[Path, int] | None = None
        names = sorted(
            (int(p.name[5:]) for p in directory.glob("slot-*") if p.name[5:].isdigit()),
        )[: defaults.CPU_SLOTS_MAX]
        for index in [*names, (names[-1] + 1) if names else 0]:
            path = directory / f"slot-{index}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held by a live agent
                if (held := _read_slot(fd)) is not None:
                    others.append(held)
                os.close(fd)
                continue
            if mine is None:
                mine = (path, fd)  # the first free slot is ours; its lock is kept
            else:
                os.close(fd)  # free too: closing drops the lock just taken
        assert mine is not None  # the last index looked at is always a new, free file
        n = choose_threads(asked, [t for _, t in others], cores)
        os.ftruncate(mine[1], 0)
        os.pwrite(mine[1], f"{os.getpid()} {n}\n".encode(), 0)
    finally:
        os.close(guard)  # the decision is written: the next agent may decide
    share = CpuShare(threads=n, cores=cores, others=others, slot=mine[0], _fd=mine[1])
    if share.oversubscribed:
        log.warning(
            "%s: more threads than cores (runs are slowed and may time out); start the agents of a host "
            "with --threads so that their sum fits, or use `swarm launch --agents N`",
            share.describe(),
        )
    else:
        log.info("%s", share.describe())
    return share


def hold_workdir(workdir: Path) -> int:
    """Lock `workdir` for this process's life (an flock the kernel drops when it ends): two agents on one
    work dir would share a workspace and an outbox, and each would take the other's runs for leftovers
    of a dead agent. Returns the descriptor, kept open; a work dir in use is a UserError naming its pid."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(workdir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UserError(f"cannot use the work dir {workdir}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UserError(
            f"the work dir {workdir} is in use by another agent (pid {holder}): give each agent its own --workdir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
