"""`swarm web`: the live, read-only web view of the board (swarm.observe.web; docs/web.md)."""

from __future__ import annotations

import logging

import typer

from swarm.cli.app import app, state
from swarm.observe.web import REFRESH_S, WEB_PORT, WebView, serve_forever


@app.command("web")
def web_cmd(
    ctx: typer.Context,
    port: int = typer.Option(WEB_PORT, "--port", help="Port to serve on (0: a free one)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0 to expose it)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="SWARM_WEB_TOKEN",
        help="Require this token on every request (?token=, a Bearer header or the cookie it sets).",
    ),
    refresh_s: float = typer.Option(REFRESH_S, "--refresh-s", help="Auto-refresh period of live pages (0: never)."),
) -> None:
    """Serve the live web view of the board: leaders and progress, the queue, hypotheses, agents, proposers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    board = state(ctx).board()
    view = WebView(board, token=token, refresh_s=refresh_s if refresh_s > 0 else None)

    def ready(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        typer.echo(
            f"web: swarm={board.swarm} serving http://{shown}:{bound}/" + (" (token required)" if token else ""),
            err=True,
        )

    serve_forever(view, host, port, on_ready=ready)
