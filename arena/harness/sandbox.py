"""The children's sandbox: each child of a run inside bubblewrap (`bwrap`), seeing only what it needs.

    training child     reads: the system, the Python install, the harness, train.py, train.bin
                       writes: its own output dir (weights, counters) and a private /tmp
    evaluation child   reads: the same, minus train.bin, plus val.bin, tokenizer.pkl and the weights
                       writes: its own output dir (its result) and a private /tmp

Both also get: no network (a new network namespace holding only its own loopback), a new PID
namespace (its /proc lists only the run's own processes, and the kernel kills every process in it
when the child exits or is killed: a `setsid` grandchild included), no capabilities, a new session,
no nested user namespaces (bwrap >= 0.8), HOME and TMPDIR on the private /tmp. The root of the
filesystem is an empty tmpfs with only those paths bound into it, so whatever is not listed does
not exist in there (the cache's other files, the arena's corpus and git history, the user's home,
sockets under /run and /tmp), rather than being masked. On a cuda device the GPU nodes (/dev/nvidia*)
are passed through read-write.

A run's `mode`: "bwrap" (must: a bwrap that fails fails the child, with its message in the log),
"none", or "auto" (bwrap when `probe()` passes, else none). ARENA_BWRAP names the binary (default:
`bwrap` on PATH). What this does and does not protect against: docs/arena.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shutil
import site
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

MODES = ("auto", "bwrap", "none")
PROBE_TIMEOUT_S = 10.0  # a probe is ~10 ms; a host that hangs on namespaces counts as no sandbox
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # read-only, as on the host
# /etc holds host secrets (shadow, ssh keys, service env files): only what the loader, Python, torch and
# a compiler (torch.compile on GPU) read
ETC_ENTRIES = (
    "alternatives",
    "group",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "passwd",
)


class SandboxError(Exception):
    """The sandbox cannot be built as asked (no bwrap, or a bind that would expose a hidden path)."""


def binary() -> str | None:
    """The bwrap binary: env ARENA_BWRAP, else `bwrap` on PATH; None when there is none."""
    name = os.environ.get("ARENA_BWRAP") or "bwrap"
    return shutil.which(name)


@functools.cache
def _version(bwrap: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()


def namespace_flags(bwrap: str) -> list[str]:
    """Every namespace bwrap can make, no capabilities, killed with its parent, a new session."""
    flags = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if _version(bwrap) >= (0, 8):  # a child that makes its own user namespace gets capabilities in it
        flags[1:1] = ["--unshare-user", "--disable-userns"]
    return flags


def system_binds() -> list[str]:
    """The host's system dirs (a merged-/usr symlink stays a symlink), /sys, a few /etc entries; a new
    /proc of the PID namespace, a minimal /dev, a private /tmp."""
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for name in ETC_ENTRIES:
        path = f"/etc/{name}"
        if os.path.lexists(path):
            args += ["--ro-bind-try", path, path]
    args += ["--ro-bind-try", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    return args


def python_roots() -> list[Path]:
    """Where this interpreter, its packages and its libraries live (the venv, its base install,
    site-packages, LD_LIBRARY_PATH), each as written and as resolved (a venv's python is a symlink into
    its base install). Not sys.path as a whole: an editable install puts a project root there."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    paths += [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    found = [p for p in paths if os.path.isdir(p)]
    return _outermost([Path(os.path.abspath(p)) for p in found] + [Path(os.path.realpath(p)) for p in found])


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """Distinct paths with any path inside another one (or inside the system dirs, bound already) dropped."""
    kept: list[Path] = []
    for p in sorted(set(paths), key=lambda x: len(x.parts)):
        if not any(p == k or k in p.parents for k in [*map(Path, SYSTEM_DIRS), *kept]):
            kept.append(p)
    return kept


def hidden_paths(cache_root: Path, arena_dir: Path) -> list[Path]:
    """What no bind may contain: every prepared cache (validation tokens), the arena's corpus, the
    user's home (dotfiles, keys)."""
    paths = [cache_root, arena_dir / "data"]
    with contextlib.suppress(KeyError):  # a uid without a passwd entry (some containers): no home to hide
        paths.append(Path(pwd.getpwuid(os.getuid()).pw_dir))
    return [Path(os.path.realpath(p)) for p in paths]


def wrap(
    cmd: list[str],
    *,
    bwrap: str,
    cwd: Path,
    ro: list[Path],
    rw: list[Path],
    hidden: list[Path],
    gpu: bool,
) -> list[str]:
    """`cmd` inside the sandbox: `ro` bound read-only and `rw` read-write at their own paths, with the
    system and Python binds; refused (SandboxError) when a bind would contain one of `hidden`."""
    binds = [(Path(os.path.abspath(p)), "--ro-bind") for p in [*python_roots(), *ro]]
    binds += [(Path(os.path.abspath(p)), "--bind") for p in rw]
    for path, _ in binds:
        src = Path(os.path.realpath(path))  # what the bind shows, through any symlink
        for h in hidden:
            if src == h or src in h.parents:
                raise SandboxError(f"the sandbox would expose {h} through {path}: move it, or run with --sandbox none")
    args = [bwrap, *namespace_flags(bwrap), *system_binds()]
    for path, how in sorted(binds, key=lambda b: len(b[0].parts)):  # a parent before what is bound inside it
        args += [how, str(path), str(path)]
    if gpu:
        for node in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(node), str(node)]
    args += ["--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--chdir", str(cwd), "--"]
    return args + cmd


def probe(bwrap: str | None = None) -> str | None:
    """None when bwrap can build a sandbox here (namespaces, the system binds, this Python starting
    inside), else why not, in one line."""
    bwrap = bwrap or binary()
    if bwrap is None:
        return "no bwrap on PATH (install bubblewrap, or set ARENA_BWRAP)"
    roots: list[str] = []
    for p in python_roots():
        roots += ["--ro-bind", str(p), str(p)]
    cmd = [bwrap, *namespace_flags(bwrap), *system_binds(), *roots, "--", sys.executable, "-S", "-c", ""]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap did not run: {exc}"
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"bwrap failed (exit {proc.returncode}): {lines[-1] if lines else 'no message'}"
    return None


def resolve(mode: str) -> tuple[str | None, str]:
    """(bwrap binary or None, why none) for a run's mode; "bwrap" without a binary is a SandboxError."""
    if mode not in MODES:
        raise SandboxError(f"unknown sandbox mode {mode!r} (known: {', '.join(MODES)})")
    if mode == "none":
        return None, "--sandbox none"
    bwrap = binary()
    if mode == "bwrap":
        if bwrap is None:
            raise SandboxError("--sandbox bwrap: no bwrap on PATH (install bubblewrap, or set ARENA_BWRAP)")
        return bwrap, ""
    reason = probe(bwrap)
    return (None, reason) if reason else (bwrap, "")
