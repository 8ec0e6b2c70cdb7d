"""The web view's pages as HTML: pure functions from what `swarm.observe.web` read to one document.

    html = render_overview(Overview(...))      # the same data always renders the same bytes

Server-rendered HTML with one inline stylesheet and an inline SVG chart: no script, no CDN, no font
or image fetched from anywhere, so the page works on an air-gapped cluster and its Content-Security-
Policy can forbid every script. Pages that change by themselves (overview, agents, proposers) reload
with `<meta http-equiv="refresh">`; the hypothesis page does not (one reads a diff there).

Everything that comes from the board -- hypothesis text, patches, failure reasons, agent and proposer
names, tracks, ids -- is user or LLM content and goes through `esc` (html.escape, quotes included)
before it reaches the page; ids in links are percent-encoded as well. A name that cannot be escaped
away (there is none: escaping is total) would be a bug here, and tests/test_web.py posts `<script>`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from swarm.models import AgentRecord, Direction, Hypothesis, Leader, Result, State
from swarm.observe.accounting import ProposerStats
from swarm.observe.watch import dur, health_text
from swarm.observe.web_index import Row

__all__ = [
    "AgentView", "AgentsPage", "HypothesisPage", "ListPage", "Overview", "ProposersPage", "TrackView",
    "chart_svg", "error_page", "render_agents", "render_hypothesis", "render_list", "render_overview",
    "render_proposers",
]  # fmt: skip

CHART_W, CHART_H = 960, 260  # px of the SVG's coordinate system (it scales to the page's width)
PAD_L, PAD_R, PAD_T, PAD_B = 70, 14, 10, 26  # px around the plot: y labels left, x labels below
CHART_CLIP_Q = 0.02  # the y range spans the 2nd-98th percentile of metrics (and every leader): one
#                      diverged run must not flatten the rest into a line
DOT_CELL = 2  # px: results falling in one cell of the chart draw one dot (100,000 results: a few thousand)
COLOURS = {"keep": "#2ca02c", "discard": "#9a9a9a", "fail": "#d62728", "best": "#1f77b4"}  # as the report's

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2630;background:#f6f7f9}
header{background:#1d2a3a;color:#e8eef5;padding:8px 18px;display:flex;gap:22px;align-items:baseline}
header b{font-size:16px}header a{color:#bcd4f0;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .right{margin-left:auto;color:#9fb0c4;font-size:12px}
main{padding:6px 18px 40px;max-width:1400px}
h1{font-size:20px;margin:14px 0 6px}h2{font-size:17px;margin:22px 0 6px}h3{font-size:15px;margin:16px 0 4px}
table{border-collapse:collapse;background:#fff;margin:4px 0 8px;font-size:13px}
th,td{border:1px solid #dde2e8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}td:first-child{white-space:nowrap}
tr:nth-child(even) td{background:#fafbfc}
td.n{text-align:right;font-variant-numeric:tabular-nums}
a{color:#1659a8}code,.id,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.id{font-size:12px}.muted{color:#6b7785}.dead{color:#b02a2a;font-weight:600}.alive{color:#217a35}
.keep{color:#217a35}.discard{color:#6b7785}.crash,.timeout,.invalid,.stale{color:#b02a2a}
pre{background:#fff;border:1px solid #dde2e8;padding:8px;overflow:auto;font-size:12px;max-height:640px}
pre.text{white-space:pre-wrap;max-width:1000px}
.diff .a{color:#1a7f37;background:#eefbf0}.diff .d{color:#b3261e;background:#fdf0ef}.diff .h{color:#6f42c1}
.badge{display:inline-block;padding:0 6px;border-radius:8px;background:#e4e9ef;font-size:12px}
.chart{background:#fff;border:1px solid #dde2e8;max-width:980px}.legend span{margin-right:14px;font-size:12px}
.pager{margin:4px 0 10px;font-size:13px}.pager a,.pager b{margin-right:8px}
"""


def esc(v: object) -> str:
    """Text from the board, safe inside HTML (element content and quoted attributes)."""
    return html.escape(str(v), quote=True)


def href(path: str, **params: object) -> str:
    """An escaped URL: `path` (its segments already percent-encoded) with the non-empty `params`."""
    q = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return esc(f"{path}?{q}" if q else path)


def hyp_href(hid: str) -> str:
    return esc("/h/" + quote(hid, safe=""))


def hyp_link(hid: str | None, title: str | None = None) -> str:
    if not hid:
        return '<span class="muted">(baseline)</span>'
    return f'<a href="{hyp_href(hid)}">{esc(title or hid)}</a>'


def ts(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) if ms else "-"



def ago(now_ms: int, ms: int | None) -> str:
    return f'<span title="{ts(ms)} UTC">{dur(now_ms - ms)} ago</span>' if ms else "-"


def num(v: float | None, fmt: str = ".6f") -> str:
    return "-" if v is None else format(v, fmt)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def usd(v: float | None) -> str:
    return "-" if v is None else f"${v:.4f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """Cells are HTML already (escape before); columns in `numeric` are right-aligned."""
    right = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{c}</td>' if i in right else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def status_cell(status: str, stale: bool = False) -> str:
    return f'<span class="{esc(status)}">{esc(status)}</span>' + (' <span class="stale">stale</span>' if stale else "")


def diff_block(text: str) -> str:
    """A unified diff, escaped, with added, removed and hunk lines coloured."""
    out = []
    for line in text.splitlines():
        cls = ""
        if line.startswith(("+++", "---")):
            cls = "h"
        elif line.startswith("+"):
            cls = "a"
        elif line.startswith("-"):
            cls = "d"
        elif line.startswith("@@"):
            cls = "h"
        out.append(f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line))
    return '<pre class="diff">' + "\n".join(out) + "</pre>"


def pager(path: str, page: int, total: int, per_page: int, **params: object) -> str:
    """`page 2 of 7 first previous next last` (nothing when everything fits on one page)."""
    pages = max(1, -(-total // per_page))
    if pages == 1:
        return ""
    links = [f"<b>page {page} of {pages}</b>"]
    for label, target in (("first", 1), ("previous", page - 1), ("next", page + 1), ("last", pages)):
        if 1 <= target <= pages and target != page:
            links.append(f'<a href="{href(path, page=target, **params)}">{label}</a>')
    return f'<div class="pager">{" ".join(links)}</div>'


NAV = (("/", "overview"), ("/hypotheses", "hypotheses"), ("/agents", "agents"), ("/proposers", "proposers"))


def layout(title: str, swarm: str, server_ms: int, body: str, active: str, refresh_s: float | None) -> str:
    nav = "".join(f'<a href="{p}"{" class=on" if p == active else ""}>{label}</a>' for p, label in NAV)
    refresh = f'<meta http-equiv="refresh" content="{refresh_s:g}">' if refresh_s else ""
    every = f", refreshed every {refresh_s:g}s" if refresh_s else ""
    clock = f"{ts(server_ms)} UTC (Redis clock){every}" if server_ms else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}'
        f"<title>{esc(title)} - swarm {esc(swarm)}</title><style>{CSS}</style></head><body>"
        f"<header><b>swarm {esc(swarm) or 'web'}</b>{nav}"
        f'<span class="right">{clock}'
        f"</span></header><main>{body}</main></body></html>"
    )


def error_page(swarm: str, server_ms: int, status: int, message: str) -> str:
    return layout(f"{status}", swarm, server_ms, f"<h1>{status}</h1><p>{esc(message)}</p>", "", None)


# --- the chart -------------------------------------------------------------------------------------


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))]


def _time_label(ms: int, t0: int, span_ms: int) -> str:
    if span_ms < 60_000 and ms > t0:  # a young swarm: seconds since its first result
        return f"+{(ms - t0) / 1000:.{2 if span_ms < 10_000 else 1}f}s"
    if span_ms < 600_000:
        return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))
    if span_ms < 2 * 86_400_000:
        return time.strftime("%H:%M", time.gmtime(ms / 1000))
    return time.strftime("%m-%d %H:%M", time.gmtime(ms / 1000))


def chart_svg(rows: Sequence[Row], moves: Sequence[Leader], titles: dict[str, str], label: str) -> str:
    """A track's progress: each result a dot at (time, metric) (kept green, discarded grey, failed runs
    red ticks on the bottom edge), the leader a step line with a marker per move linking to its
    hypothesis. Dots are merged per 2x2 pixels, so 100,000 results draw as a few thousand shapes."""
    times = [r.ms for r in rows] + [m.time_ms for m in moves]
    if not times:
        return '<p class="muted">no results on this track yet</p>'
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1)
    metrics = sorted(r.metric for r in rows if r.metric is not None)
    lead = [m.metric for m in moves]
    ends = [_quantile(metrics, CHART_CLIP_Q), _quantile(metrics, 1 - CHART_CLIP_Q)] if metrics else []
    lo, hi = min(ends + lead, default=0.0), max(ends + lead, default=1.0)
    pad = (hi - lo) * 0.06 or abs(hi) * 0.01 or 1.0
    lo, hi = lo - pad, hi + pad
    pw, ph = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B

    def x(ms: int) -> int:
        return PAD_L + round((ms - t0) / span * pw)

    def y(v: float) -> int:
        return PAD_T + round((hi - min(max(v, lo), hi)) / (hi - lo) * ph)  # outside the range: on the edge

    dots: dict[str, set[tuple[int, int]]] = {"discard": set(), "keep": set()}
    fails: set[int] = set()
    for r in rows:
        if r.metric is None:
            fails.add(x(r.ms))
        else:
            # one dot per DOT_CELL x DOT_CELL pixels: overlapping dots look the same, the page stays small
            dots["keep" if r.status == "keep" else "discard"].add((x(r.ms) // DOT_CELL, y(r.metric) // DOT_CELL))
    out = [
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f"<title>{esc(label)}</title>",
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="#fff" stroke="#c9d1da"/>',
    ]
    for i in range(5):  # y grid and labels
        v = lo + (hi - lo) * i / 4
        yy = y(v)
        out.append(f'<line x1="{PAD_L}" x2="{PAD_L + pw}" y1="{yy}" y2="{yy}" stroke="#eef1f4"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{yy + 4}" text-anchor="end" fill="#555">{v:.5g}</text>')
    for i in range(6):  # x labels
        ms = t0 + span * i // 5
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(
            f'<text x="{x(ms)}" y="{CHART_H - 8}" text-anchor="{anchor}" fill="#555">{_time_label(ms, t0, span)}</text>'
        )
    for status, radius in (("discard", 2), ("keep", 3)):
        if dots[status]:
            # each dot a zero-length segment with a round cap: ~10 bytes a dot, a quarter of a <circle>
            c = DOT_CELL
            d = "".join(f"M{a * c + 1} {b * c + 1}h0" for a, b in sorted(dots[status]))
            out.append(
                f'<path d="{d}" stroke="{COLOURS[status]}" stroke-width="{2 * radius}" stroke-linecap="round" '
                'stroke-opacity="0.75"/>'
            )
    if fails:
        d = "".join(f"M{a} {PAD_T + ph}v-7" for a in sorted(fails))
        out.append(f'<path d="{d}" stroke="{COLOURS["fail"]}" stroke-width="1.5"/>')
    if moves:
        d = f"M{x(moves[0].time_ms)} {y(moves[0].metric)}"
        for m in moves[1:]:
            d += f"H{x(m.time_ms)}V{y(m.metric)}"
        d += f"H{PAD_L + pw}"
        out.append(f'<path d="{d}" fill="none" stroke="{COLOURS["best"]}" stroke-width="2"/>')
        for m in moves:
            tip = f"gen {m.generation}: {m.metric:.6g} " + (titles.get(m.hypothesis_id or "", "") or "(baseline)")
            dot = (
                f'<circle cx="{x(m.time_ms)}" cy="{y(m.metric)}" r="4.5" fill="{COLOURS["best"]}">'
                f"<title>{esc(tip)}</title></circle>"
            )
            out.append(f'<a href="{hyp_href(m.hypothesis_id)}">{dot}</a>' if m.hypothesis_id else dot)
    out.append("</svg>")
    n_keep = sum(r.status == "keep" for r in rows if r.metric is not None)
    n_dis = sum(1 for r in rows if r.metric is not None) - n_keep
    legend = (
        f'<div class="legend"><span style="color:{COLOURS["keep"]}">&#9679; kept ({n_keep})</span>'
        f'<span style="color:{COLOURS["discard"]}">&#9679; discarded ({n_dis})</span>'
        f'<span style="color:{COLOURS["fail"]}">| failed, no metric ({len(rows) - n_keep - n_dis})</span>'
        f'<span style="color:{COLOURS["best"]}">&#9473; leader ({len(moves)} moves)</span></div>'
    )
    return "".join(out) + legend


# --- pages -----------------------------------------------------------------------------------------


@dataclass
class TrackView:
    track: str
    moves: list[Leader]  # oldest first
    chart: str  # the SVG (chart_svg), cached by the server
    results: int  # indexed results on the track


@dataclass
class Overview:
    swarm: str
    server_ms: int
    metric_name: str
    direction: Direction
    counts: dict[str, int]
    tracks: list[TrackView]
    titles: dict[str, str]  # hypothesis id -> title (moves, recent results)
    claimed: list[Hypothesis]
    open: list[Hypothesis]
    page: int
    per_page: int
    recent: list[Row]
    indexed: int
    dropped: int
    refresh_s: float | None = None


def _queue_table(hs: list[Hypothesis], now: int, claimed: bool) -> str:
    rows = []
    for h in hs:
        row = [
            f'<a class="id" href="{hyp_href(h.id)}">{esc(h.id)}</a>',
            str(h.priority),
            str(h.attempts) + (f' <span class="muted">+{len(h.failures)} failed impl.</span>' if h.failures else ""),
            esc(h.kind),
            esc(h.track or "any"),
            esc(h.source),
            f'<a href="{hyp_href(h.id)}">{esc(h.title[:140])}</a>',
        ]
        if claimed:
            left = f"{dur(h.deadline_ms - now)} left" if h.deadline_ms and h.deadline_ms > now else "expired"
            row += [esc(h.claimed_by or "-"), left]
        else:
            row.append(ago(now, h.created_ms))
        rows.append(row)
    header = ["id", "prio", "tries", "kind", "track", "source", "title"]
    header += ["held by", "lease"] if claimed else ["posted"]
    return table(header, rows, numeric=[1])


def render_overview(o: Overview) -> str:
    now = o.server_ms
    older = f", {o.dropped} older ones not shown" if o.dropped else ""
    b = [
        f"<h1>Overview</h1><p class=muted>metric {esc(o.metric_name)} ({esc(o.direction)}); "
        f"{o.indexed} results indexed{older}</p>"
    ]
    b.append("<h2>Leaders</h2>")
    if not o.tracks:
        b.append('<p class="muted">no results and no leader yet</p>')
    for tv in o.tracks:
        b.append(f"<h3>track {esc(tv.track)}</h3>")
        if tv.moves:
            cur, base = tv.moves[-1], tv.moves[0]
            total = o.direction.gain(base.metric, cur.metric)
            b.append(
                f"<p>leader: generation {cur.generation}, {esc(o.metric_name)} <b>{cur.metric:.6f}</b> "
                f"({total:+.6f} since the first leader), by {esc(cur.agent_id)} {ago(now, cur.time_ms)}: "
                f"{hyp_link(cur.hypothesis_id, o.titles.get(cur.hypothesis_id or ''))}</p>"
            )
        else:
            b.append('<p class="muted">no leader yet</p>')
        b.append(tv.chart)
        if tv.moves:
            rows = []
            for i in range(len(tv.moves) - 1, -1, -1):  # newest first: the current leader on top
                m, prev = tv.moves[i], tv.moves[i - 1] if i else None
                gain = "-" if prev is None else f"{o.direction.gain(prev.metric, m.metric):+.6f}"
                rows.append([
                    str(m.generation), f"{m.metric:.6f}", gain,
                    hyp_link(m.hypothesis_id, o.titles.get(m.hypothesis_id or "")),
                    esc(m.agent_id), ago(now, m.time_ms),
                ])  # fmt: skip
            b.append("<details open><summary>lineage</summary>")
            b.append(table(["gen", "metric", "gain", "hypothesis", "agent", "when"], rows, numeric=[0, 1, 2]))
            b.append("</details>")
    counts = " ".join(
        f'<a class="badge" href="{href("/hypotheses", state=st.value)}">{st.value} {o.counts.get(st.value, 0)}</a>'
        for st in State
    )
    b.append(f"<h2>Queue</h2><p>{counts}</p>")
    n_claimed, n_open = o.counts.get("claimed", 0), o.counts.get("open", 0)
    b.append(pager("/", o.page, max(n_claimed, n_open), o.per_page))
    b.append(f"<h3>claimed ({n_claimed})</h3>")
    b.append(_queue_table(o.claimed, now, True) if o.claimed else '<p class="muted">none on this page</p>')
    b.append(f"<h3>open ({n_open}, newest first; claimed by priority, then age)</h3>")
    b.append(_queue_table(o.open, now, False) if o.open else '<p class="muted">none on this page</p>')
    if o.recent:
        b.append("<h2>Recent results</h2>")
        rows = [
            [ago(now, r.ms), status_cell(r.status), num(r.metric), esc(r.kind), esc(r.track), esc(r.agent),
             esc(r.proposer or "none"), hyp_link(r.hypothesis_id, o.titles.get(r.hypothesis_id or ""))]
            for r in o.recent
        ]  # fmt: skip
        b.append(table(["when", "status", "metric", "kind", "track", "agent", "proposer", "hypothesis"], rows, [2]))
    return layout("overview", o.swarm, now, "".join(b), "/", o.refresh_s)


@dataclass
class ListPage:
    swarm: str
    server_ms: int
    state: str
    counts: dict[str, int]
    items: list[Hypothesis]
    page: int
    per_page: int


def render_list(p: ListPage) -> str:
    tabs = " ".join(
        f'<a class="badge" href="{href("/hypotheses", state=st.value)}">'
        + (
            f"<b>{st.value} {p.counts.get(st.value, 0)}</b>"
            if st.value == p.state
            else f"{st.value} {p.counts.get(st.value, 0)}"
        )
        + "</a>"
        for st in State
    )
    total = p.counts.get(p.state, 0)
    body = [
        f"<h1>Hypotheses: {esc(p.state)}</h1><p>{tabs}</p>",
        pager("/hypotheses", p.page, total, p.per_page, state=p.state),
    ]
    body.append(_queue_table(p.items, p.server_ms, p.state == "claimed") if p.items else '<p class="muted">none</p>')
    return layout(f"hypotheses {p.state}", p.swarm, p.server_ms, "".join(body), "/hypotheses", None)


@dataclass
class HypothesisPage:
    swarm: str
    server_ms: int
    h: Hypothesis
    direction: Direction
    patch: str | None  # the posted patch's text (None: text only)
    results: list[Result]  # its results and their confirmation runs, oldest first
    best: Result | None
    best_diff: str | None  # the best result's code against the pinned arena
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why
    moves: list[Leader] = field(default_factory=list)  # leader moves that name one of its results


def render_hypothesis(p: HypothesisPage) -> str:
    h, now = p.h, p.server_ms
    facts = [
        ("state", f"<b>{esc(h.state)}</b>"), ("priority", str(h.priority)), ("attempts", str(h.attempts)),
        ("kind", esc(h.kind)), ("track", esc(h.track or "any")), ("source", esc(h.source)),
        ("author", esc(h.author or "-")), ("posted", f"{ts(h.created_ms)} UTC ({ago(now, h.created_ms)})"),
        ("tags", esc(", ".join(h.tags) or "-")), ("parent", esc(h.parent or "-")),
        ("seed", esc("-" if h.seed is None else h.seed)),
    ]  # fmt: skip
    if h.state == State.CLAIMED:
        left = dur((h.deadline_ms or now) - now)
        facts.append(("held by", f"{esc(h.claimed_by or '-')} (lease {left} left, token {h.token})"))
    b = [f'<h1>Hypothesis <span class="id">{esc(h.id)}</span></h1>', f'<pre class="text">{esc(h.text)}</pre>']
    b.append(table(["", ""], [[esc(k), v] for k, v in facts]))
    for m in p.moves:
        b.append(f'<p><span class="badge">leader</span> generation {m.generation} of track {esc(m.track)} '
                 f"({m.metric:.6f}, {ago(now, m.time_ms)})</p>")  # fmt: skip
    b.append(f"<h2>Implementation failures ({len(h.failures)})</h2>")
    if h.failures:
        rows = [
            [ago(now, f.ms), esc(f.proposer), esc(f.agent or "-"),
             "yes" if f.counted else "no", "yes" if f.reopened else "no", f'<pre class="text">{esc(f.reason)}</pre>']
            for f in h.failures
        ]  # fmt: skip
        b.append(table(["when", "proposer", "agent", "counted", "before a reopen", "reason"], rows))
    else:
        b.append('<p class="muted">none</p>')
    b.append(f"<h2>Results ({len(p.results)})</h2>")
    if p.results:
        rows = []
        for r in p.results:
            best = " <b>best</b>" if p.best is not None and r.result_id == p.best.result_id else ""
            rows.append([
                ago(now, r.published_ms), status_cell(r.status, r.stale) + best, num(r.metric),
                esc("-" if r.seed is None else r.seed), esc(r.agent_id), esc(r.proposer or "none"),
                usd(r.llm_cost_usd), esc(r.kind) + (" (of " + esc(r.candidate_of[:12]) + ")" if r.candidate_of else ""),
                esc(r.sandbox or "-"), f'<span class="id">{esc(r.result_id)}</span>',
                esc(r.error[:200]) if r.error else "",
            ])  # fmt: skip
        header = ["when", "status", "metric", "seed", "agent", "proposer", "cost", "kind", "sandbox", "result", "error"]
        b.append(table(header, rows, numeric=[2, 3, 6]))
    else:
        b.append('<p class="muted">no result yet</p>')
    b.append("<h2>Patch as posted</h2>")
    b.append(diff_block(p.patch) if p.patch else '<p class="muted">text only: the implementer wrote the code</p>')
    b.append("<h2>Final diff of its best result</h2>")
    if p.best is not None:
        b.append(f"<p>{num(p.best.metric)} by {esc(p.best.agent_id)} (result <span class=id>"
                 f"{esc(p.best.result_id)}</span>), against the pinned arena:</p>")  # fmt: skip
        b.append(diff_block(p.best_diff) if p.best_diff else '<p class="muted">no diff</p>')
    else:
        b.append('<p class="muted">no result with a metric yet</p>')
    b += [f'<p class="muted">{esc(n)}</p>' for n in p.notes]
    return layout(h.title[:80], p.swarm, now, "".join(b), "", None)


@dataclass
class AgentView:
    rec: AgentRecord
    title: str | None  # of the hypothesis it runs
    results: int  # indexed results
    last_hour: int
    per_hour: float | None  # results / hours since its first indexed result (at least one hour)


@dataclass
class AgentsPage:
    swarm: str
    server_ms: int
    agents: list[AgentView]
    alive: int
    total: int
    page: int
    per_page: int
    refresh_s: float | None = None


def render_agents(p: AgentsPage) -> str:
    now = p.server_ms
    rows = []
    for v in p.agents:
        a = v.rec
        life = '<span class="alive">alive</span>' if a.alive else '<span class="dead">DEAD</span>'
        running = hyp_link(a.current, v.title) if a.current else "-"
        health = (
            "<br>".join(esc(health_text(k, h)) for k, h in sorted(a.health.items())) or '<span class="alive">ok</span>'
        )
        rows.append([
            esc(a.agent_id), life, esc(a.state), running, esc(a.track), health,
            str(v.results), str(v.last_hour), num(v.per_hour, ".1f"), ago(now, a.last_ms),
            esc(a.host or "-"), esc(a.gpu or "-"), esc(", ".join(a.proposers) or "-"), esc(a.sandbox or "-"),
        ])  # fmt: skip
    header = ["agent", "", "state", "running", "track", "proposer health", "results", "last hour", "per hour",
              "last beat", "host", "gpu", "proposers", "sandbox"]  # fmt: skip
    body = [
        f"<h1>Agents</h1><p>{p.alive} alive, {p.total - p.alive} dead</p>",
        pager("/agents", p.page, p.total, p.per_page),
    ]
    body.append(table(header, rows, numeric=[6, 7, 8]) if rows else '<p class="muted">no agent has joined</p>')
    return layout("agents", p.swarm, now, "".join(body), "/agents", p.refresh_s)


@dataclass
class ProposersPage:
    swarm: str
    server_ms: int
    stats: dict[str, ProposerStats]
    counted: int  # results the run figures cover
    window: int
    paused: dict[str, int]  # label -> live agents that paused it
    refresh_s: float | None = None


def render_proposers(p: ProposersPage) -> str:
    rows = [
        [esc(name), str(s.calls), str(s.failed_calls), str(s.experiments), str(s.kept), str(s.promoted),
         pct(s.acceptance_rate), pct(s.crash_rate), f"{s.input_tokens}/{s.output_tokens}", usd(s.cost_usd),
         usd(s.cost_per_promotion_usd), num(s.mean_llm_latency_s, ".1f"), str(p.paused.get(name, 0))]
        for name, s in p.stats.items()
    ]  # fmt: skip
    header = ["proposer", "calls", "failed calls", "experiments", "kept", "promoted", "acceptance", "crash rate",
              "tokens in/out", "cost", "cost per promotion", "llm latency s", "paused by"]  # fmt: skip
    if p.counted < p.window:
        covered = f"all {p.counted} results"
    else:
        covered = (f'the newest {p.counted} results (<a href="{href("/proposers", window=p.window * 10)}">'
                   f"widen to {p.window * 10}</a>, slower)")  # fmt: skip
    body = [
        "<h1>Proposers</h1>",
        f"<p class=muted>experiments, kept, promoted and the rates: {covered}; calls, failed calls, tokens and "
        "cost: the swarm's totals (swarm.observe.accounting, as in swarm status)</p>",
        table(header, rows, numeric=list(range(1, 13))) if rows else '<p class="muted">no proposer yet</p>',
    ]
    return layout("proposers", p.swarm, p.server_ms, "".join(body), "/proposers", p.refresh_s)
