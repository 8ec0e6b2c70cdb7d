"""The live terminal view of a swarm: `swarm status --watch`.

    frame = take_frame(board)          # one round of board reads
    print(render(frame, width=100))       # pure: the same frame always renders the same text
    watch(board, interval_s=2.0)         # clear + redraw in place until Ctrl-C (exit 0)

A frame shows the hypotheses by state, each track's leader (generation, metric, hypothesis), every
agent (alive or dead, track, state, what it is running and for how long), the top of the queue,
the newest results, one line per proposer (from `swarm.observe.accounting`: runs and promotions over
the newest `WATCH_RESULTS_WINDOW` results so a redraw stays cheap on a long-running swarm; calls,
tokens and cost the swarm's totals) and the proposers an agent has paused or is backing off from.

How long an agent has run its hypothesis comes from the claim event of that hypothesis by that
agent (server clock). When the event is no longer in the capped event log, the view shows how long
it has itself seen the agent in that state, prefixed with `>=`: a lower bound, never a guess.

Redrawing is plain ANSI (cursor home + clear screen) when stdout is a terminal; otherwise frames are
printed one after another, separated by a blank line (logs, tests). If the board stops answering,
the last frame stays on screen with a line saying so, and the view keeps retrying.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from swarm import defaults
from swarm.board.connection import BOARD_DOWN
from swarm.errors import NotFound
from swarm.models import Hypothesis, Leader, ProposerHealth, Result, State
from swarm.observe.accounting import ProposerStats, proposer_stats

__all__ = [
    "AgentRow", "Frame", "health_lines", "health_text", "proposer_lines", "render", "short_reason", "take_frame",
    "watch",
]  # fmt: skip

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: every ANSI/VT100 terminal understands it
REASON_SHOWN_CHARS = 80  # of why a proposer is unhealthy: the exception and its first words fit one line


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    alive: bool
    track: str
    state: str
    current: str | None  # the hypothesis id it holds, if any
    title: str | None  # that hypothesis' title
    since_ms: int | None  # when it started what it is doing (server clock); None: unknown
    since_exact: bool  # False: only a lower bound (first seen in this state by this view)
    last_ms: int  # its last heartbeat
    health: dict[str, ProposerHealth] = field(default_factory=dict)  # its proposers backing off or paused


@dataclass(frozen=True)
class Frame:
    """Everything one frame shows, read from the board at `server_ms`."""

    swarm: str
    server_ms: int
    counts: dict[str, int]
    leaders: dict[str, Leader]
    agents: list[AgentRow]
    top_open: list[Hypothesis]
    recent: list[Result]
    titles: dict[str, str]  # hypothesis id -> title, for leaders and recent results
    proposers: dict[str, ProposerStats]
    results_counted: int  # results the proposer lines cover
    interval_s: float = defaults.WATCH_INTERVAL_S
    notes: list[str] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------------------


def _title(board: Any, hid: str, cache: dict[str, str]) -> str:
    if hid not in cache:
        try:
            cache[hid] = board.get(hid).title
        except NotFound:
            cache[hid] = "?"  # cancelled and purged, or never existed: keep the frame going
    return cache[hid]


def _claim_starts(board: Any) -> dict[tuple[str, str], int]:
    """(agent, hypothesis id) -> time of its newest claim event, over the newest WATCH_EVENTS_SCAN events."""
    out: dict[tuple[str, str], int] = {}
    for e in board.events(defaults.WATCH_EVENTS_SCAN):  # oldest first: later claims overwrite
        if e.kind == "claim" and "agent" in e.fields and "hid" in e.fields:
            out[(str(e.fields["agent"]), str(e.fields["hid"]))] = e.time_ms
    return out


def take_frame(
    board: Any,
    first_seen: dict[tuple[str, str, str], int] | None = None,
    interval_s: float = defaults.WATCH_INTERVAL_S,
) -> Frame:
    """Read one frame's worth from `board` (a `swarm.board.Board`).

    `first_seen` carries, between frames, when this view first saw each (agent, state, current): the
    fallback for how long an agent has been doing what it does.
    """
    seen = first_seen if first_seen is not None else {}
    now = board.server_ms()
    titles: dict[str, str] = {}
    records = board.agents()
    starts = _claim_starts(board) if any(a.current for a in records) else {}
    rows: list[AgentRow] = []
    for a in records:
        key = (a.agent_id, a.state, a.current or "")
        seen.setdefault(key, now)
        exact = a.current is not None and (a.agent_id, a.current) in starts
        since = starts[(a.agent_id, a.current or "")] if exact else seen[key]
        rows.append(
            AgentRow(
                agent_id=a.agent_id,
                alive=a.alive,
                track=a.track,
                state=a.state,
                current=a.current,
                title=_title(board, a.current, titles) if a.current else None,
                since_ms=since,
                since_exact=exact,
                last_ms=a.last_ms,
                health=a.health,
            )
        )
    live = {(r.agent_id, r.state, r.current or "") for r in rows}
    for key in [k for k in seen if k not in live]:
        del seen[key]  # bounded by the agents on the board

    opened = board.list_hypotheses(state=State.OPEN, limit=defaults.WATCH_OPEN_SCAN)
    top = sorted(opened, key=lambda h: (-h.priority, h.created_ms))[: defaults.WATCH_TOP_OPEN]
    leaders = board.leaders()
    histories = {t: board.leader_history(t) for t in leaders}
    results = board.results(limit=defaults.WATCH_RESULTS_WINDOW)
    recent = results[: defaults.WATCH_RECENT_RESULTS]
    for hid in [ld.hypothesis_id for ld in leaders.values()] + [r.hypothesis_id for r in recent]:
        if hid:
            _title(board, hid, titles)
    notes = []
    if len(opened) >= defaults.WATCH_OPEN_SCAN:
        notes.append(f"queue: the top is chosen among the newest {defaults.WATCH_OPEN_SCAN} open hypotheses")
    return Frame(
        swarm=board.swarm,
        server_ms=now,
        counts=board.counts(),
        leaders=leaders,
        agents=rows,
        top_open=top,
        recent=recent,
        titles=titles,
        proposers=proposer_stats(results, histories, board.proposer_usage()),
        results_counted=len(results),
        interval_s=interval_s,
        notes=notes,
    )


# --- rendering (pure) ------------------------------------------------------------------------------


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


def dur(ms: float) -> str:
    """A duration: 45s, 3m12s, 2h05m, 3d04h."""
    s = max(0, int(ms // 1000))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:.4f}"


def _table(rows: list[list[str]], header: list[str], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


def proposer_lines(stats: dict[str, ProposerStats], indent: str = "  ") -> list[str]:
    """The per-proposer table (shared by `swarm status` and the live view)."""
    rows = [
        [
            p,
            str(s.calls),
            str(s.failed_calls),
            str(s.experiments),
            str(s.promoted),
            _pct(s.acceptance_rate),
            _pct(s.crash_rate),
            f"{s.input_tokens}/{s.output_tokens}",
            _usd(s.cost_usd),
            _usd(s.cost_per_promotion_usd),
            "-" if s.mean_llm_latency_s is None else f"{s.mean_llm_latency_s:.1f}s",
        ]
        for p, s in stats.items()
    ]
    header = ["proposer", "calls", "failed", "runs", "promoted", "accept", "crash", "tokens in/out", "cost",
              "per promotion", "llm"]  # fmt: skip
    return _table(rows, header, indent)


def short_reason(text: str) -> str:
    """Why something failed, on one line of at most REASON_SHOWN_CHARS characters."""
    one = " ".join(text.split())
    return one if len(one) <= REASON_SHOWN_CHARS else one[: REASON_SHOWN_CHARS - 3] + "..."


def health_text(proposer: str, h: ProposerHealth) -> str:
    """One unhealthy proposer: `paused anthropic:x (3 failures: APIConnectionError ...)`."""
    n = f"{h.failures} failure{'' if h.failures == 1 else 's'}"
    reason = short_reason(h.reason)
    return f"{h.state} {proposer} ({n}: {reason})" if reason else f"{h.state} {proposer} ({n})"


def health_lines(agents: list[tuple[str, bool, dict[str, ProposerHealth]]], indent: str = "  ") -> list[str]:
    """`agent: paused x (...)` per unhealthy proposer of each (agent id, alive, health); dead agents marked."""
    return [
        f"{indent}{aid}{'' if alive else ' (DEAD)'}: {health_text(p, h)}"
        for aid, alive, health in agents
        for p, h in sorted(health.items())
    ]


def _agent_doing(a: AgentRow, now_ms: int) -> tuple[str, str]:
    """(what it is doing, for how long)."""
    if not a.alive:
        return "-", f"last beat {dur(now_ms - a.last_ms)} ago" if a.last_ms else "never beat"
    what = f"{a.current} {a.title or ''}".strip() if a.current else "-"
    if a.since_ms is None:
        return what, "-"
    return what, ("" if a.since_exact else ">=") + dur(now_ms - a.since_ms)


def render(frame: Frame, width: int | None = None) -> str:
    """One frame as text; lines are cut at `width` characters (None: never)."""
    now = frame.server_ms
    out = [
        f"swarm {frame.swarm}  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now / 1000))} UTC"
        f"  (every {frame.interval_s:g}s, Ctrl-C to quit)",
        "hypotheses: " + " ".join(f"{s}={frame.counts.get(s, 0)}" for s in State),
        "",
    ]
    # leaders
    if frame.leaders:
        out.append("leaders:")
        rows = [
            [
                t,
                f"gen {ld.generation}",
                f"{ld.metric:.6f}" + (f" ({ld.runs} runs)" if ld.runs else ""),
                ld.agent_id,
                f"{dur(now - ld.time_ms)} ago",
                frame.titles.get(ld.hypothesis_id, ld.hypothesis_id) if ld.hypothesis_id else "(baseline)",
            ]
            for t, ld in sorted(frame.leaders.items())
        ]
        out += _table(rows, ["track", "generation", "metric", "agent", "since", "hypothesis"])
    else:
        out.append("leaders: none yet")
    out.append("")
    # agents
    alive = sum(a.alive for a in frame.agents)
    out.append(f"agents: {alive} alive, {len(frame.agents) - alive} dead")
    if frame.agents:
        rows = []
        for a in frame.agents:
            what, since = _agent_doing(a, now)
            rows.append([a.agent_id, "alive" if a.alive else "DEAD", a.track, a.state, since, what])
        out += _table(rows, ["agent", "", "track", "state", "for", "running"])
    out.append("")
    # queue
    out.append(f"queue: {frame.counts.get('open', 0)} open, {frame.counts.get('claimed', 0)} claimed")
    if frame.top_open:
        rows = [[h.id, str(h.priority), h.kind, h.track or "*", h.source, h.title] for h in frame.top_open]
        out += _table(rows, ["next", "prio", "kind", "track", "source", "title"])
    out.append("")
    # results
    if frame.recent:
        out.append("recent results:")
        rows = [
            [
                _clock(r.published_ms or r.finished_ms or 0),
                r.status + (" STALE" if r.stale else ""),
                "-" if r.metric is None else f"{r.metric:.6f}",
                r.kind,
                r.track,
                r.agent_id,
                r.proposer or "none",
                frame.titles.get(r.hypothesis_id, r.hypothesis_id) if r.hypothesis_id else "-",
            ]
            for r in frame.recent
        ]
        out += _table(rows, ["time", "status", "metric", "kind", "track", "agent", "proposer", "hypothesis"])
    else:
        out.append("recent results: none yet")
    out.append("")
    # proposers
    if frame.proposers:
        out.append(f"proposers (newest {frame.results_counted} results; calls, tokens and cost: swarm totals):")
        out += proposer_lines(frame.proposers)
    else:
        out.append("proposers: no results yet")
    sick = health_lines([(a.agent_id, a.alive, a.health) for a in frame.agents if a.health])
    if sick:
        out += ["proposer health:", *sick]
    out += frame.notes
    if width is not None:
        out = [ln if len(ln) <= width else ln[: max(width - 1, 0)] + "~" for ln in out]
    return "\n".join(out)


# --- the loop --------------------------------------------------------------------------------------


def watch(
    board: Any,
    interval_s: float = defaults.WATCH_INTERVAL_S,
    iterations: int = 0,
    out: TextIO | None = None,
) -> int:
    """Redraw a frame every `interval_s` until Ctrl-C (or `iterations` frames, when > 0). Returns the
    number of frames drawn. Ctrl-C is a normal way out, not an error."""
    stream = out if out is not None else sys.stdout
    tty = stream.isatty()
    first_seen: dict[tuple[str, str, str], int] = {}
    last = ""
    frames = 0
    try:
        while True:
            size = shutil.get_terminal_size((120, 40))
            try:
                frame = take_frame(board, first_seen, interval_s)
                last = render(frame, width=size.columns if tty else None)
                screen = last
            except BOARD_DOWN as exc:
                # Keep the last frame up and say why it is not moving; retry at the next tick.
                msg = f"! board unreachable at {time.strftime('%H:%M:%S')}: {exc} (retrying)"
                screen = f"{last}\n{msg}" if last else f"swarm {board.swarm}\n{msg}"
            if tty:
                lines = screen.splitlines()[: max(size.lines - 1, 1)]
                stream.write(CLEAR + "\n".join(lines) + "\n")
            else:
                stream.write(("\n" if frames else "") + screen + "\n")
            stream.flush()
            frames += 1
            if iterations and frames >= iterations:
                break
            time.sleep(interval_s)
    except KeyboardInterrupt:
        stream.write("\n")
        stream.flush()
    return frames
