"""The `swarm` command line: thin commands that parse, build config and call library code.

`main()` is the console script and the error boundary: a `SwarmError` ends as one line on stderr
and the error's exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from swarm.cli import agent_cmds as _agent_cmds  # noqa: F401
from swarm.cli import arena_cmds as _arena_cmds  # noqa: F401
from swarm.cli import board_cmds as _board_cmds  # noqa: F401  (registers commands)
from swarm.cli import ops_cmds as _ops_cmds  # noqa: F401
from swarm.cli import web_cmds as _web_cmds  # noqa: F401
from swarm.cli.app import app
from swarm.errors import SwarmError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `swarm` console script."""
    command = typer.main.get_command(app)
    try:
        command.main(prog_name="swarm", standalone_mode=True)
    except SwarmError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
