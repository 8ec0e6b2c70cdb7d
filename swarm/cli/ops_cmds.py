"""Operations commands: `exporter` (board-wide Prometheus metrics), `report`, `export`, `import`."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from swarm import defaults
from swarm.board.snapshot import export_swarm, import_swarm, read_snapshot, temporary_board
from swarm.cli.app import app, state
from swarm.errors import UserError
from swarm.observe.exporter import serve_forever


@app.command("exporter")
def exporter_cmd(
    ctx: typer.Context,
    port: int = typer.Option(
        defaults.EXPORTER_PORT, "--port", help="Port to serve /metrics and /sd on (0: a free one)."
    ),
    addr: str = typer.Option(defaults.METRICS_ADDR, "--addr", help="Address to listen on."),
) -> None:
    """Serve board-wide metrics (queue, agents, leaders, throughput, proposers) for Prometheus, and the live
    agents' /metrics addresses for its HTTP service discovery at /sd."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    board = state(ctx).board()

    def ready(bound: int) -> None:
        typer.echo(f"exporter: swarm={board.swarm} serving http://{addr}:{bound}/metrics and /sd", err=True)

    serve_forever(board, port, addr, on_ready=ready)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Directory for progress.png and report.md."),
    snapshot: Path | None = typer.Option(None, "--snapshot", help="Report an exported snapshot, not the live board."),
) -> None:
    """Write the progress chart and the markdown report of the swarm."""
    # matplotlib takes ~0.4 s to import: only `swarm report` pays it, not every other command's startup
    from swarm.observe.report import collect, write_report

    if snapshot is not None:
        with temporary_board(snapshot) as board:
            paths = write_report(collect(board), out)
    else:
        paths = write_report(collect(state(ctx).board()), out)
    typer.echo(f"chart: {paths.chart}")
    typer.echo(f"report: {paths.markdown}")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Snapshot file to write (gzip msgpack, e.g. NAME.swarm.gz)."),
) -> None:
    """Write the whole board state of the swarm to one file."""
    board = state(ctx).board()
    snap = export_swarm(board.r, board.swarm, out)
    typer.echo(f"exported: swarm={snap.swarm} keys={len(snap.keys)} file={out} bytes={out.stat().st_size}")


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A snapshot written by `swarm export`."),
    as_name: str | None = typer.Option(
        None, "--as", help="Import under this swarm name (a copy beside the original), not the exported one."
    ),
) -> None:
    """Load a snapshot into this Redis, as the swarm it was exported from or `--as NAME` (never over an
    existing swarm)."""
    snap = read_snapshot(file)
    st = state(ctx)
    # --swarm names the swarm every other command works on; here the name comes from the snapshot or
    # --as. A --swarm that says otherwise was once ignored (the import then refused: the exported name
    # existed), so it is refused up front, naming the option that does it.
    source = ctx.find_root().get_parameter_source("swarm")
    on_command_line = getattr(source, "name", "") == "COMMANDLINE"
    if on_command_line and as_name is None and st.swarm != snap.swarm:
        raise UserError(
            f"the snapshot is swarm {snap.swarm!r}; import takes a new name from --as, not --swarm: "
            f"swarm import {file} --as {st.swarm}"
        )
    if on_command_line and as_name is not None and st.swarm != as_name:
        raise UserError(f"--swarm {st.swarm} and --as {as_name} name different swarms; give only --as")
    if as_name is None and st.swarm not in (defaults.SWARM_NAME, snap.swarm):  # SWARM_NAME from the env
        typer.echo(
            f"note: the snapshot is swarm {snap.swarm!r}; it is imported under that name (--as NAME to rename)",
            err=True,
        )
    # connect to the server only; the swarm named on the command line need not exist
    board = st.board()
    n = import_swarm(board.r, snap, as_name)
    typer.echo(f"imported: swarm={as_name or snap.swarm} from={snap.swarm} keys={n}")
