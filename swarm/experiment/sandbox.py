"""Which sandbox an agent's runs get: `--sandbox auto|required|off`, decided once when the agent starts.

    choice = choose_sandbox(SandboxMode.AUTO, manifest)   # probes bwrap once; UserError for required
    run_experiment(..., sandbox=choice.kind)              # the arena's {sandbox} placeholder: bwrap | none

The sandbox itself is the arena's: its harness runs each child of a run (training, evaluation) in
bubblewrap (arena/harness/sandbox.py, docs/arena.md) when its run command carries `{sandbox}` and is
handed `bwrap`. Here the agent only checks that this host can build one, with the namespaces and
the read-only system binds the harness uses (`probe`), and that the arena takes the placeholder:

- `auto`: bwrap when both hold; otherwise none, with a warning now and on every result;
- `required`: both must hold, else a UserError (one line, a non-zero exit) before the agent registers;
- `off`: none (a warning now).

The arena reports the sandbox each run really had (its result's `sandbox`); the agent publishes that.
ARENA_BWRAP names the binary, as for the harness (default: `bwrap` on PATH).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum

from swarm.errors import UserError
from swarm.experiment.manifest import Manifest

log = logging.getLogger(__name__)

BWRAP = "bwrap"  # a run inside bubblewrap
NONE = "none"  # a run without a sandbox
PLACEHOLDER = "{sandbox}"  # in an arena's run command: where `bwrap` or `none` goes
PROBE_TIMEOUT_S = 10.0  # a probe takes ~10 ms; a host that hangs creating namespaces has no sandbox
# the probe's mounts: the system read-only, a new /proc, a minimal /dev, a private /tmp, this Python
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class SandboxMode(StrEnum):
    AUTO = "auto"  # the sandbox when the host and the arena allow it, else a warning per result
    REQUIRED = "required"  # refuse to start without it
    OFF = "off"  # never (the runs see what the agent's user sees)


@dataclass(frozen=True)
class SandboxChoice:
    """What the agent's runs get: `kind` (BWRAP or NONE), why NONE, and whether each result warns."""

    kind: str
    reason: str = ""
    warn_each: bool = False  # auto without a sandbox: every result says so

    @property
    def sandboxed(self) -> bool:
        return self.kind == BWRAP


def bwrap_binary() -> str | None:
    return shutil.which(os.environ.get("ARENA_BWRAP") or "bwrap")


@functools.cache
def namespace_flags(bwrap: str) -> tuple[str, ...]:
    """The harness's: every namespace, no capabilities, a new session; no nested user namespaces where
    bwrap can forbid them (>= 0.8)."""
    flags = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    m = re.search(r"(\d+)\.(\d+)", out)
    if m and (int(m.group(1)), int(m.group(2))) >= (0, 8):
        flags[1:1] = ["--unshare-user", "--disable-userns"]
    return tuple(flags)


def probe(bwrap: str | None = None) -> str | None:
    """None when bwrap builds a sandbox on this host (every namespace, no capabilities, the read-only
    system and this interpreter starting inside), else why not, in one line."""
    bwrap = bwrap or bwrap_binary()
    if bwrap is None:
        return "no bwrap on PATH (install bubblewrap: apt-get install bubblewrap; or set ARENA_BWRAP)"
    # /tmp first: a bind below it (a checkout or venv under /tmp) must land on the tmpfs, not under it
    cmd = [bwrap, *namespace_flags(bwrap), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    for root in {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}:
        cmd += ["--ro-bind", root, root]
    cmd += ["--", sys.executable, "-S", "-c", ""]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap did not run: {exc}"
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"bwrap failed here (exit {proc.returncode}): {lines[-1] if lines else 'no message'}"
    return None


def arena_supports(manifest: Manifest) -> bool:
    """Whether the arena's run command takes the {sandbox} placeholder (its harness sandboxes runs)."""
    return any(PLACEHOLDER in part for part in manifest.run.command)


def choose_sandbox(mode: SandboxMode | str, manifest: Manifest) -> SandboxChoice:
    """The sandbox for this agent's runs (see the module docstring); logs a warning when there is none."""
    mode = SandboxMode(mode)
    if mode is SandboxMode.OFF:
        choice = SandboxChoice(NONE, "--sandbox off")
    elif not arena_supports(manifest):
        choice = SandboxChoice(NONE, f"the arena's run command has no {PLACEHOLDER} placeholder", warn_each=True)
    elif (why := probe()) is not None:
        choice = SandboxChoice(NONE, why, warn_each=True)
    else:
        return SandboxChoice(BWRAP)
    if mode is SandboxMode.REQUIRED:
        raise UserError(f"--sandbox required, but runs cannot be sandboxed: {choice.reason}")
    log.warning(
        "runs are NOT sandboxed (%s): train.py can read what this user can read, use the network and "
        "start processes that outlive the run; install bubblewrap, or pass --sandbox required to refuse",
        choice.reason,
    )
    return choice
