"""The progress report of a swarm: one chart (progress.png) and one markdown file (report.md).

    data = collect(board)                  # a live Board, or one from snapshot.temporary_board(path)
    paths = write_report(data, "reports/") # progress.png + report.md

The chart is the picture the original autoresearch made famous, per hardware track: every
experiment a dot over time (kept, discarded, failed in different colours), the running best as a step
line, each leader move labelled with its hypothesis title. The markdown has the leader history with
each move's diff, per-proposer acceptance, calls (failed ones too) and cost, per-agent throughput and
duty cycle, and failures by kind. Both are built from board reads only, so a live board and an
exported snapshot give the same report.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers, and no GUI backend import in tests

import matplotlib.pyplot as plt  # after the backend choice

from swarm import defaults
from swarm.code.diff import EMPTY_PATCH, apply_patch, make_patch
from swarm.errors import NotFound, SwarmError, UserError
from swarm.models import AgentRecord, Direction, Leader, ProposerUsage, Result, Status, SwarmSettings
from swarm.observe.accounting import proposer_stats

__all__ = ["ReportData", "collect", "render_chart", "render_markdown", "write_report"]

log = logging.getLogger(__name__)

COLOURS = {"keep": "#2ca02c", "discard": "#9a9a9a", "fail": "#d62728", "best": "#1f77b4"}


@dataclass
class ReportData:
    """Everything the report shows, read from the board once."""

    swarm: str
    settings: SwarmSettings | None
    results: list[Result]  # oldest first
    history: dict[str, list[Leader]]  # track -> moves, oldest first
    titles: dict[str, str]  # hypothesis id -> title, for those the report names (moves, latest failures)
    agents: list[AgentRecord]
    diffs: dict[str, str] = field(default_factory=dict)  # result id of a move -> diff from the previous leader
    generated_ms: int = 0
    usage: dict[str, ProposerUsage] = field(default_factory=dict)  # board.proposer_usage(): every LLM call

    @property
    def tracks(self) -> list[str]:
        return sorted({r.track for r in self.results} | set(self.history))


def _texts(files: dict[str, bytes]) -> dict[str, str]:
    out = {}
    for path, data in files.items():
        try:
            out[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary files (data) are never patched
    return out


def _move_diffs(board: Any, history: dict[str, list[Leader]], editable: list[str]) -> dict[str, str]:
    """For each move, the diff of the editable files from the previous leader's code to the new one's."""
    try:
        base = _texts(board.arena_files())
    except SwarmError as exc:
        log.warning("report: no arena files on the board (%s); leader diffs left out", exc)
        return {}
    if editable:
        base = {p: t for p, t in base.items() if p in editable}
    diffs: dict[str, str] = {}
    cache: dict[str, dict[str, str] | None] = {EMPTY_PATCH: base}

    def code(patch_hash: str) -> dict[str, str] | None:
        if patch_hash not in cache:
            try:
                cache[patch_hash] = apply_patch(base, board.get_patch(patch_hash))
            except SwarmError as exc:
                log.warning("report: patch %s does not apply: %s", patch_hash[:12], exc)
                cache[patch_hash] = None
        return cache[patch_hash]

    for moves in history.values():
        prev = base
        for move in moves:
            new = code(move.patch_hash)
            if new is None:
                diffs[move.result_id] = "(the patch of this move could not be applied to the pinned arena)"
                continue
            diffs[move.result_id] = make_patch(prev, new)
            prev = new
    return diffs


def latest_failures(results: list[Result]) -> list[Result]:
    """The failed results the report lists with their error, newest first (`results` oldest first)."""
    return [r for r in reversed(results) if r.status.failed][: defaults.REPORT_LATEST_ERRORS]


def collect(board: Any, max_results: int = defaults.REPORT_MAX_RESULTS) -> ReportData:
    """Read what the report needs from `board` (a `swarm.board.Board`)."""
    settings = board.settings()
    results = list(reversed(board.results(limit=max_results)))
    if settings is None and not results:
        raise NotFound(f"swarm {board.swarm!r} does not exist on this server (nothing to report)")
    leaders = board.leaders()
    tracks = sorted(set(leaders) | {r.track for r in results})
    history = {t: board.leader_history(t) for t in tracks}
    history = {t: h for t, h in history.items() if h}
    # Only the titles the report shows (leader moves, the latest failures), in one round trip: reading
    # every result's hypothesis took one round trip per result (most of 58 s at 100,000 results). An id
    # with no hypothesis (cancelled and purged, or from another swarm) is shown as the id.
    hids = {m.hypothesis_id for h in history.values() for m in h if m.hypothesis_id}
    hids |= {r.hypothesis_id for r in latest_failures(results) if r.hypothesis_id}
    titles = {h.id: h.title for h in board.get_many(sorted(hids))}
    editable = list(settings.editable) if settings is not None else []
    return ReportData(
        swarm=board.swarm,
        settings=settings,
        results=results,
        history=history,
        titles=titles,
        agents=board.agents(),
        diffs=_move_diffs(board, history, editable),
        generated_ms=board.server_ms(),
        usage=board.proposer_usage(),
    )


# --- chart -----------------------------------------------------------------------------------------


def _when_ms(r: Result) -> int:
    return r.finished_ms or r.published_ms or r.started_ms or 0


def _label(data: ReportData, move: Leader) -> str:
    if move.hypothesis_id is None:
        return "baseline"
    title = data.titles.get(move.hypothesis_id, move.hypothesis_id)
    n = defaults.REPORT_LABEL_CHARS
    return title if len(title) <= n else title[: n - 1] + "…"


def render_chart(data: ReportData, path: str | Path) -> None:
    """Write the progress chart: one panel per track, hours since the first experiment on x."""
    tracks = data.tracks or ["(no experiments yet)"]
    times = [_when_ms(r) for r in data.results] + [m.time_ms for h in data.history.values() for m in h]
    t0 = min((t for t in times if t), default=data.generated_ms)
    t_end = max(times) if times else data.generated_ms  # not "now": an archived swarm stays readable

    def hours(ms: int) -> float:
        return (ms - t0) / 3_600_000

    metric = data.settings.metric_name if data.settings else "metric"
    fig, axes = plt.subplots(len(tracks), 1, figsize=(12, 4.2 * len(tracks)), squeeze=False, sharex=True)
    for ax, track in zip(axes[:, 0], tracks, strict=True):
        rs = [r for r in data.results if r.track == track]
        for status, colour, size, z in (
            (Status.DISCARD, COLOURS["discard"], 14, 2),
            (Status.KEEP, COLOURS["keep"], 26, 3),
        ):
            pts = [(hours(_when_ms(r)), r.metric) for r in rs if r.status == status and r.metric is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.scatter(xs, ys, s=size, c=colour, label=f"{status} ({len(pts)})", zorder=z, alpha=0.85)
        fails = [hours(_when_ms(r)) for r in rs if r.status.failed]
        if fails:  # no metric: ticks along the bottom edge
            ax.scatter(
                fails,
                [0.02] * len(fails),
                marker="x",
                s=22,
                c=COLOURS["fail"],
                transform=ax.get_xaxis_transform(),
                label=f"crash/timeout/invalid ({len(fails)})",
                zorder=4,
            )
        moves = data.history.get(track, [])
        if moves:
            # a move is drawn where its result finished (the dot it promotes), else when the leader moved
            by_id = {r.result_id: r for r in rs}
            move_ms = [_when_ms(by_id[m.result_id]) if m.result_id in by_id else m.time_ms for m in moves]
            step_x = [hours(t) for t in move_ms] + [hours(t_end)]
            step_y = [m.metric for m in moves] + [moves[-1].metric]
            ax.step(
                step_x,
                step_y,
                where="post",
                color=COLOURS["best"],
                linewidth=1.8,
                label="leader (running best)",
                zorder=5,
            )
            for i, m in enumerate(moves):
                ax.annotate(
                    _label(data, m),
                    (step_x[i], m.metric),
                    xytext=(6, 10 + 12 * (i % 3)),
                    textcoords="offset points",
                    fontsize=7.5,
                    color="#203040",
                    arrowprops={"arrowstyle": "-", "color": "#8899aa", "lw": 0.6},
                )
        ax.set_title(f"{data.swarm} · track {track}", fontsize=10, loc="left")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if rs or moves:
            ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("hours since the first experiment")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- markdown --------------------------------------------------------------------------------------------


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "-"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _pct(a: float, b: float) -> str:
    return f"{100 * a / b:.0f}%" if b else "-"


def render_markdown(data: ReportData, chart_name: str = "progress.png") -> str:
    s = data.settings
    out: list[str] = [f"# Swarm report: {data.swarm}", ""]
    if s is not None:
        out.append(
            f"Arena `{s.arena_name}` ({s.arena_hash[:12]}), metric `{s.metric_name}` ({s.direction}), "
            f"min_delta {s.min_delta:g}.  "
        )
    first = min((_when_ms(r) for r in data.results if _when_ms(r)), default=0)
    last = max((_when_ms(r) for r in data.results), default=0)
    out += [
        f"{len(data.results)} experiments from {_ts(first)} to {_ts(last)}; "
        f"{len(data.agents)} agents; generated {_ts(data.generated_ms)}.",
        "",
        f"![progress]({chart_name})",
        "",
    ]

    # leaders
    out += [
        "## Leaders",
        "",
        "| track | generation | metric | baseline | improvement | leader hypothesis |",
        "|---|---|---|---|---|---|",
    ]
    for track, moves in sorted(data.history.items()):
        cur, base = moves[-1], moves[0]
        gain = (s.direction if s else Direction.MINIMIZE).gain(base.metric, cur.metric)
        out.append(
            f"| {_cell(track)} | {cur.generation} | {_num(cur.metric)} | {_num(base.metric)} | "
            f"{_num(gain)} ({_pct(gain, abs(base.metric))}) | {_cell(_label(data, cur))} |"
        )
    if not data.history:
        out.append("| - | 0 | - | - | - | no leader yet |")
    out.append("")

    # leader history with diffs
    out += ["## Leader history", ""]
    by_id = {r.result_id: r for r in data.results}
    for track, moves in sorted(data.history.items()):
        out += [
            f"### Track {track}",
            "",
            "| gen | time | metric | change | hypothesis | proposer | agent | result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        prev: float | None = None
        for m in moves:
            r = by_id.get(m.result_id)
            change = "-" if prev is None else _num(m.metric - prev)
            out.append(
                f"| {m.generation} | {_ts(m.time_ms)} | {_num(m.metric)} | {change} | "
                f"{_cell(_label(data, m))} | {_cell(r.proposer if r and r.proposer else '-')} | "
                f"{_cell(m.agent_id)} | `{m.result_id}` |"
            )
            prev = m.metric
        out.append("")
        for m in moves:
            diff = data.diffs.get(m.result_id)
            if diff is None:
                continue
            lines = diff.splitlines()
            cut = len(lines) > defaults.REPORT_DIFF_MAX_LINES
            body = "\n".join(lines[: defaults.REPORT_DIFF_MAX_LINES]) or "(no change to the editable files)"
            out += [
                f"<details><summary>generation {m.generation}: {_cell(_label(data, m))}</summary>",
                "",
                "```diff",
                body,
                "```",
            ]
            if cut:
                out.append(
                    f"({len(lines) - defaults.REPORT_DIFF_MAX_LINES} more lines; "
                    f"the board keeps the full patch {m.patch_hash[:12]})"
                )
            out += ["", "</details>", ""]

    # proposers (observe.accounting: the same figures as `swarm status`)
    out += [
        "## Proposers",
        "",
        "| proposer | experiments | kept | acceptance | promotions | failed | LLM cost (USD) "
        "| tokens in / out | cost per promotion | LLM calls | failed calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p, st in proposer_stats(data.results, data.history, data.usage).items():
        per_promo = st.cost_per_promotion_usd
        out.append(
            f"| {_cell(p)} | {st.experiments} | {st.kept} | {_pct(st.promoted, st.experiments)} | {st.promoted} | "
            f"{st.failed} | {st.cost_usd:.4f} | {st.input_tokens} / {st.output_tokens} | "
            f"{'-' if per_promo is None else f'{per_promo:.4f}'} | {st.calls} | {st.failed_calls} |"
        )
    out += [
        "",
        "LLM calls, failed calls, tokens and cost cover every call the swarm made (ideation and failed calls "
        "included); experiments and promotions come from the results above.",
        "",
    ]

    # agents
    out += [
        "## Agents",
        "",
        "| agent | track | host / gpu | alive | experiments | active hours | experiments/hour | duty cycle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    known = {a.agent_id: a for a in data.agents}
    by_agent: dict[str, list[Result]] = defaultdict(list)
    for r in data.results:
        by_agent[r.agent_id].append(r)
    for aid in sorted(set(known) | set(by_agent)):
        rs, a = by_agent.get(aid, []), known.get(aid)
        starts = [r.started_ms or _when_ms(r) for r in rs]
        ends = [_when_ms(r) for r in rs]
        span_h = (max(ends) - min(starts)) / 3_600_000 if rs and max(ends) > min(starts) else 0.0
        train_h = sum(r.training_s or 0.0 for r in rs) / 3600
        where = f"{a.host} / {a.gpu}" if a else "-"
        track = a.track if a else (rs[0].track if rs else "-")
        out.append(
            f"| {_cell(aid)} | {_cell(track)} | {_cell(where)} | {'yes' if a and a.alive else 'no'} | "
            f"{len(rs)} | {span_h:.2f} | {f'{len(rs) / span_h:.1f}' if span_h else '-'} | "
            f"{_pct(train_h, span_h) if span_h else '-'} |"
        )
    out += ["", "Duty cycle: training time over the agent's active span (first start to last finish).", ""]

    # failures
    out += ["## Failures by kind", ""]
    fails = [r for r in data.results if r.status.failed]
    if not fails:
        out += ["No crashes, timeouts or invalid results.", ""]
    else:
        counts = Counter((r.status, r.track) for r in fails)
        out += ["| kind | track | count | share of the track's experiments |", "|---|---|---|---|"]
        per_track = Counter(r.track for r in data.results)
        for (status, track), n in sorted(counts.items()):
            out.append(f"| {status} | {_cell(track)} | {n} | {_pct(n, per_track[track])} |")
        out += ["", "Latest errors:", ""]
        for r in latest_failures(data.results):
            err = _cell(r.error.strip().splitlines()[-1] if r.error.strip() else "(no message)")[:200]
            title = data.titles.get(r.hypothesis_id or "", r.hypothesis_id or "baseline")
            out.append(f"- {r.status} · {_cell(title)} · {_cell(r.agent_id)}: {err}")
        out.append("")
    return "\n".join(out)


@dataclass
class ReportPaths:
    chart: Path
    markdown: Path


def write_report(data: ReportData, out_dir: str | Path) -> ReportPaths:
    """Write progress.png and report.md into `out_dir` (created)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create report directory {out}: {exc.strerror or exc}") from exc
    paths = ReportPaths(chart=out / "progress.png", markdown=out / "report.md")
    render_chart(data, paths.chart)
    paths.markdown.write_text(render_markdown(data, paths.chart.name), encoding="utf-8")
    log.info("report: swarm=%s experiments=%d out=%s", data.swarm, len(data.results), out)
    return paths
