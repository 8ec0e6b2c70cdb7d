"""Running the `swarm` CLI as a user would, in a subprocess, and reading its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def swarm_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m swarm ARGS` with `env` (plus this checkout on PYTHONPATH), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args],
        cwd=cwd,
        env=dict(env, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command; fails unless it exited non-zero with exactly one
    `error: ...` line on stderr and no traceback."""
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]
