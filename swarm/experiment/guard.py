"""The run's guard: a tiny process between the agent and the arena's command, so a run dies with its agent.

    python guard.py --parent AGENT_PID -- COMMAND ARGS...

The runner starts the guard as the leader of the run's own process group; the guard starts the
command in that same group and exits with its status. It asks the kernel for SIGTERM when its parent
dies (Linux `prctl(PR_SET_PDEATHSIG)`), so an agent killed with kill -9 or by the OOM killer leaves no
training process holding the GPU: on SIGTERM the guard SIGKILLs its whole group, itself included.
When the agent is gone before the guard could ask (a race at start), the guard does not start the
command at all.

Run as a file, not as `swarm.experiment.guard`: it imports only the standard library, so it starts in
a few milliseconds and works whatever the child's environment (the runner scrubs it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> bool:
    """Ask for SIGTERM when the parent dies; False when it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent


def kill_group(signum: int, frame: object) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--parent" or argv[2] != "--":
        print("usage: guard.py --parent PID -- COMMAND ARGS...", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, kill_group)
    if not die_with_parent(int(argv[1])):
        return 137  # the agent died before the run started: nothing to run for
    code = subprocess.call(argv[3:])
    return code if code >= 0 else 128 - code  # killed by signal N: exit 128 + N, as a shell says


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
