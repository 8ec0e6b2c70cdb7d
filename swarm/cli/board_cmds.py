"""Board commands for humans: init, post, hypotheses, cancel, reopen, results, leader, best, agents,
log, status, brief. Each parses its input, calls `swarm.board.Board`, and prints a table or (`--json`)
one JSON document (`log --json --follow`: one JSON object per line, JSON Lines). Bad input is a
`UserError`: one line `error: ...`, a non-zero exit, nothing written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ValidationError

from swarm import defaults
from swarm.cli.app import app, emit_json, state
from swarm.cli.hypofile import parse_path
from swarm.code.diff import check_patch_text
from swarm.errors import UserError
from swarm.models import Event, Hypothesis, HypothesisIn, State, parse_enum
from swarm.observe.accounting import board_proposer_stats
from swarm.observe.watch import health_lines, health_text, proposer_lines, short_reason, watch

brief_app = typer.Typer(help="Show or set the brief (program.md) LLM proposers read.", no_args_is_help=True)
app.add_typer(brief_app, name="brief")


def _fmt_ms(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _table(rows: list[list[str]], header: list[str], notes: list[list[str]] | None = None) -> None:
    """Print the rows under the header, columns aligned; `notes[i]`: lines printed under row i, indented."""
    if not rows:
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    typer.echo("  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip())
    for i, r in enumerate(rows):
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        for line in notes[i] if notes else []:
            typer.echo(f"    {line}")


def _failures_note(h: Hypothesis) -> list[str]:
    """`failures 3 (1 counted): last by anthropic:x: reason` for a hypothesis with failed implementations."""
    if not h.failures:
        return []
    counted = sum(f.counted for f in h.failures)
    before = sum(f.reopened for f in h.failures)
    last = h.failures[-1]
    why = short_reason(last.reason)
    extra = f", {before} before a reopen" if before else ""
    return [f"failures {len(h.failures)} ({counted} counted{extra}): last by {last.proposer}: {why or '-'}"]


def _event_line(e: Event) -> str:
    return f"{_fmt_ms(e.time_ms)}  {e.kind:<8} {e.text}"


def _dump(items: list[BaseModel] | dict[str, Any]) -> Any:
    if isinstance(items, dict):
        return {k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in items.items()}
    return [i.model_dump(mode="json") for i in items]


@app.command()
def init(
    ctx: typer.Context,
    arena: Path = typer.Option(..., "--arena", help="Arena directory (with arena.toml) to pin."),
    min_delta: float | None = typer.Option(None, "--min-delta", help="Least improvement that moves a leader."),
    lease_s: float | None = typer.Option(None, "--lease-s", help="Claim lease in seconds."),
    max_attempts: int | None = typer.Option(None, "--max-attempts", help="Expired leases before failed."),
    heartbeat_ttl_s: float | None = typer.Option(
        None, "--heartbeat-ttl-s", help="Seconds without a heartbeat before an agent is dead and its claims reaped."
    ),
) -> None:
    """Create the swarm: settings and the pinned arena (same arena again: a no-op)."""
    st = (
        state(ctx)
        .board()
        .init(arena, min_delta=min_delta, lease_s=lease_s, max_attempts=max_attempts, heartbeat_ttl_s=heartbeat_ttl_s)
    )
    typer.echo(
        f"swarm {st.name}: arena {st.arena_name} {st.arena_hash[:12]} "
        f"metric {st.metric_name} ({st.direction}) "
        f"min_delta {st.min_delta} lease_s {st.lease_s} max_attempts {st.max_attempts} "
        f"heartbeat_ttl_s {st.heartbeat_ttl_s}"
    )


@app.command()
def post(
    ctx: typer.Context,
    text: str | None = typer.Argument(None, help="The hypothesis: first line is the title."),
    priority: int = typer.Option(0, "--priority", help="Higher is claimed first (-1000..1000)."),
    patch: Path | None = typer.Option(None, "--patch", help="Unified diff against the arena baseline."),
    tag: list[str] = typer.Option([], "--tag", help="Tag (repeatable)."),
    track: str | None = typer.Option(None, "--track", help="Only agents of this track may claim it."),
    file: Path | None = typer.Option(None, "--file", help="A hypothesis file, or a folder of them."),
) -> None:
    """Post a hypothesis (prints its id; the existing id for a duplicate)."""
    if file is not None:
        if text is not None or patch is not None:
            raise UserError("give either TEXT (with --patch) or --file, not both")
        items = parse_path(file)  # everything is validated before anything is posted
        board = state(ctx).board()
        for path, h in items:
            hid, created = board.post(h)
            typer.echo(f"{hid}  {'posted' if created else 'duplicate'}  {path}")
        return
    if text is None or not text.strip():
        raise UserError("hypothesis text is empty (give TEXT or --file)")
    patch_text = None
    if patch is not None:
        if not patch.is_file():
            raise UserError(f"patch file {patch} not found")
        patch_text = check_patch_text(patch.read_bytes())
    try:
        h = HypothesisIn(text=text, priority=priority, patch=patch_text, tags=tag, track=track)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from exc
    hid, _created = state(ctx).board().post(h)
    typer.echo(hid)


@app.command()
def hypotheses(
    ctx: typer.Context,
    state_: str | None = typer.Option(None, "--state", help=f"One of {', '.join(State)}."),
    limit: int = typer.Option(100, "--limit"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """List hypotheses, newest first."""
    want = None if state_ is None else parse_enum(State, state_, "state")  # before connecting
    hs = state(ctx).board().list_hypotheses(state=want, limit=limit)
    if json_:
        emit_json(_dump(list(hs)))
        return
    rows = [
        [
            h.id,
            h.state.value,
            str(h.priority),
            str(h.attempts),
            h.track or "*",
            h.source,
            "patch" if h.patch_hash else "text",
            h.title[:70],
        ]
        for h in hs
    ]
    _table(rows, ["id", "state", "prio", "tries", "track", "source", "kind", "title"], [_failures_note(h) for h in hs])


@app.command()
def cancel(ctx: typer.Context, hid: str = typer.Argument(..., metavar="ID")) -> None:
    """Cancel an open or claimed hypothesis."""
    state(ctx).board().cancel(hid)
    typer.echo(f"cancelled {hid}")


@app.command()
def reopen(ctx: typer.Context, hid: str = typer.Argument(..., metavar="ID")) -> None:
    """Put a failed, done or cancelled hypothesis back on the board (attempts 0; its earlier
    implementation failures stay listed and no longer count)."""
    was = state(ctx).board().reopen(hid)
    typer.echo(f"reopened {hid} (was {was})")


@app.command()
def results(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit"),
    track: str | None = typer.Option(None, "--track"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Recent results, newest first."""
    if limit < 0:
        raise UserError("--limit must be >= 0")
    rs = state(ctx).board().results(limit=limit, track=track)
    if json_:
        emit_json(_dump(list(rs)))
        return
    rows = [
        [
            _fmt_ms(r.published_ms),
            r.result_id[:12],
            r.status + (" STALE" if r.stale else ""),
            "-" if r.metric is None else f"{r.metric:.6f}",
            r.track,
            r.agent_id,
            r.hypothesis_id or "(baseline)",
            r.kind,
        ]
        for r in rs
    ]
    _table(rows, ["time", "result", "status", "metric", "track", "agent", "hypothesis", "kind"])


@app.command()
def leader(
    ctx: typer.Context,
    track: str | None = typer.Option(None, "--track", help="One track (all when omitted)."),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """The leader of each track (or of one)."""
    board = state(ctx).board()
    if track is not None:
        one = board.leader(track)
        leaders = {track: one} if one else {}
    else:
        leaders = board.leaders()
    if json_:
        emit_json(_dump(leaders))
        return
    if not leaders:
        typer.echo("no leader yet")
        return
    rows = [
        [
            t,
            str(ld.generation),
            f"{ld.metric:.6f}",
            ld.patch_hash[:12],
            ld.agent_id,
            ld.hypothesis_id or "-",
            _fmt_ms(ld.time_ms),
        ]
        for t, ld in leaders.items()
    ]
    _table(rows, ["track", "gen", "metric", "patch", "agent", "hypothesis", "since"])


@app.command()
def best(
    ctx: typer.Context,
    export: Path = typer.Option(..., "--export", help="Directory to write the leader's arena into."),
    track: str | None = typer.Option(None, "--track"),
) -> None:
    """Write the pinned arena with the leader's patch applied (the baseline when there is no leader)."""
    paths, lead = state(ctx).board().export_best(export, track)
    what = f"leader gen {lead.generation} of {lead.track} ({lead.metric:.6f})" if lead else "baseline (no leader)"
    typer.echo(f"wrote {len(paths)} files of the {what} to {export}")


@app.command()
def agents(ctx: typer.Context, json_: bool = typer.Option(False, "--json")) -> None:
    """Registered agents, alive or dead."""
    recs = state(ctx).board().agents()
    if json_:
        emit_json(_dump(list(recs)))
        return
    rows = [
        [
            a.agent_id,
            "alive" if a.alive else "DEAD",
            a.state,
            a.track,
            a.host,
            a.gpu,
            a.current or "-",
            _fmt_ms(a.last_ms),
            a.metrics_addr or "-",
        ]
        for a in recs
    ]
    notes = [
        [health_text(p, h) for p, h in sorted(a.health.items())]
        + (["runs UNSANDBOXED (no bwrap, or --sandbox off)"] if a.sandbox == "none" else [])
        for a in recs
    ]
    _table(rows, ["agent", "alive", "state", "track", "host", "gpu", "current", "last beat", "metrics"], notes)


@app.command()
def log(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events (Ctrl-C ends)."),
    json_: bool = typer.Option(
        False, "--json", help="A JSON list of the events; with --follow one JSON object per line (JSON Lines)."
    ),
) -> None:
    """The event log (post, claim, result, leader move, requeue, giveback, reopen, join/leave)."""
    if limit < 0:
        raise UserError("--limit must be >= 0")
    board = state(ctx).board()
    events = board.events(limit) if limit else []
    # follow on from the last event shown; an empty log: from its start (nothing posted meanwhile is
    # missed); --limit 0: from now
    last = events[-1].id if events else ("0-0" if limit else "$")
    if json_ and not follow:
        emit_json(_dump(list(events)))
        return
    for e in events:
        typer.echo(json.dumps(e.model_dump(mode="json"), sort_keys=True) if json_ else _event_line(e))
    if not follow:
        return
    try:
        for e in board.follow(after_id=last):
            typer.echo(json.dumps(e.model_dump(mode="json"), sort_keys=True) if json_ else _event_line(e))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a follow ends: exit 0, no "Aborted!"


@app.command()
def status(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json"),
    watch_: bool = typer.Option(False, "--watch", "-w", help="A live view, redrawn in place until Ctrl-C."),
    interval: float = typer.Option(defaults.WATCH_INTERVAL_S, "--interval", help="Seconds between redraws."),
    iterations: int = typer.Option(0, "--iterations", hidden=True, help="Stop after N frames (tests)."),
    max_results: int | None = typer.Option(
        None,
        "--max-results",
        help="Per-proposer figures over the newest N results only (default: every result, from the board's summary).",
    ),
) -> None:
    """Counts by state, live agents, leaders per track, experiments in the last hour, per-proposer
    calls (failed ones too), experiments, acceptance (promoted / run), crash rate, tokens and cost,
    and the proposers agents paused or are backing off from. --watch: the live view."""
    board = state(ctx).board()
    if watch_:
        if json_:
            raise UserError("--watch and --json do not go together")
        if not interval > 0:
            raise UserError("--interval must be > 0")
        if iterations < 0:
            raise UserError("--iterations must be >= 0")
        watch(board, interval_s=interval, iterations=iterations)
        return
    if max_results is not None and max_results < 0:
        raise UserError("--max-results must be >= 0")
    st = board.status()
    stats, counted = board_proposer_stats(board, max_results)
    st["proposers"] = {p: s.as_dict() for p, s in stats.items()}
    st["proposers_results"] = counted
    everyone = board.agents()
    recs = [a for a in everyone if a.health]
    st["unsandboxed_agents"] = [a.agent_id for a in everyone if a.alive and a.sandbox == "none"]
    st["proposer_health"] = {
        a.agent_id: {"alive": a.alive, "proposers": {p: h.model_dump() for p, h in sorted(a.health.items())}}
        for a in recs
    }
    if json_:
        emit_json(st)
        return
    c = st["counts"]
    typer.echo(f"swarm: {st['swarm']}")
    typer.echo("hypotheses: " + " ".join(f"{k}={v}" for k, v in c.items()))
    typer.echo(f"agents: alive={st['agents_alive']} dead={st['agents_dead']}")
    if st["unsandboxed_agents"]:
        typer.echo(f"agents running UNSANDBOXED: {', '.join(st['unsandboxed_agents'])}")
    typer.echo(f"experiments_last_hour: {st['experiments_last_hour']}")
    for t, ld in st["leaders"].items():
        runs = f" runs={ld['runs']}" if ld.get("runs") else ""  # how many runs the metric is the mean of
        typer.echo(f"leader {t}: gen={ld['generation']} metric={ld['metric']:.6f}{runs} agent={ld['agent_id']}")
    if stats:
        typer.echo(f"proposers ({counted} results; calls, tokens and cost: swarm totals):")
        for line in proposer_lines(stats):
            typer.echo(line)
    if recs:
        typer.echo("proposer health:")
        for line in health_lines([(a.agent_id, a.alive, a.health) for a in recs]):
            typer.echo(line)


@brief_app.command("show")
def brief_show(ctx: typer.Context, json_: bool = typer.Option(False, "--json")) -> None:
    """Print the current brief (--json: {"version", "text"}; version 0 when none is set)."""
    version, text = state(ctx).board().brief()
    if json_:
        emit_json({"version": version, "text": text})
        return
    if not version:
        raise UserError("no brief set (swarm init sets it from the arena's brief file; or `swarm brief set FILE`)")
    typer.echo(f"# version {version}", err=True)
    typer.echo(text, nl=not text.endswith("\n"))


@brief_app.command("set")
def brief_set(ctx: typer.Context, file: Path = typer.Argument(..., help="Markdown file.")) -> None:
    """Replace the brief with FILE's text (bumps its version)."""
    if not file.is_file():
        raise UserError(f"{file}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text") from exc
    typer.echo(f"brief version {state(ctx).board().set_brief(text)}")
