"""The typer application and what every command shares: global options, the board handle, output.

Command modules (`board_cmds`, `arena_cmds`, `agent_cmds`, ...) import `app` from here and register
their commands on it; `swarm.cli.main` is the console script and the error boundary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import typer

from swarm import defaults

# show_locals stays off: locals hold API keys and Redis passwords.
app = typer.Typer(
    name="swarm",
    help="A swarm of autoresearch agents sharing one Redis hypothesis board.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@dataclass
class CliState:
    """Global options, parsed once by the callback and handed to every command through ctx.obj."""

    redis_url: str
    swarm: str
    _board: Any = field(default=None, repr=False)

    def board(self) -> Any:
        """The board for --redis/--swarm, connected on first use (one-line error if unreachable)."""
        if self._board is None:
            from swarm.board import Board  # keeps `swarm --help` fast; not a cycle

            self._board = Board.connect(self.redis_url, self.swarm)
        return self._board

    def close(self) -> None:
        """Close the board's connections (the command is done; in-process callers must not leak sockets)."""
        if self._board is not None:
            self._board.close()
            self._board = None


@app.callback()
def _global_options(
    ctx: typer.Context,
    redis: str = typer.Option(
        defaults.REDIS_URL, "--redis", envvar="SWARM_REDIS_URL", help="Redis URL of the board."
    ),
    swarm: str = typer.Option(defaults.SWARM_NAME, "--swarm", envvar="SWARM_NAME", help="Swarm name."),
) -> None:
    ctx.obj = CliState(redis_url=redis, swarm=swarm)
    ctx.call_on_close(ctx.obj.close)


def state(ctx: typer.Context) -> CliState:
    """The CliState of this invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def emit_json(obj: Any) -> None:
    """Print one JSON document (the `--json` output of every read command)."""
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
