"""The live web view of a board: `swarm web --port P [--token T]`, read-only, server-rendered.

    view = WebView(board, token=None)
    server = make_server(view, "127.0.0.1", 9408)   # a stdlib ThreadingHTTPServer, bound
    serve_forever(view, "127.0.0.1", 9408)           # until SIGTERM or Ctrl-C (the CLI's way)

Pages (rendered by `swarm.observe.web_html`; what each shows: docs/web.md):

    /                        per track the leader, its lineage and the progress chart; the queue by
                             state, the claimed and open hypotheses (?page=N); the newest results
    /hypotheses?state=S      every hypothesis in one state, newest first (?page=N)
    /h/<id>                  one hypothesis: text, state, failures, patch, every result, best diff
    /agents                  state, current run, track, proposer health, throughput, alive (?page=N)
    /proposers               swarm.observe.accounting per proposer (?window=N results)

Cost per page, whatever the board's size: counts, leaders, a page of hypotheses (50), the agents, and
what was published since the previous page. Results are never read whole per page: the view keeps an
index of the newest results (`web_index.ResultIndex`) that each request tops up from the results
stream, which is how a hypothesis page finds its results and the agents page its throughput; the
proposers page reads a window of the newest results (`?window=`), as `swarm status --watch` does.
Open and claimed hypotheses are paged straight from the board's `state:<state>` sorted sets.

Access: with no token the server answers anyone who reaches it, so it binds 127.0.0.1 by default and,
bound to loopback, answers only requests whose Host is a loopback name (a web page elsewhere cannot
read the board through a DNS-rebound name). With a token every request needs it: `?token=T` (answered
with a cookie and a redirect to the same page without it, so the token leaves the address bar),
`Authorization: Bearer T`, or the cookie. The token is never logged; request lines are logged without
their query.

Like every read that reports hypothesis states, the overview's counts reap expired claims first (the
board's contract), which is the only write a page causes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from swarm import defaults
from swarm.board.connection import BOARD_DOWN
from swarm.board.results import decode_result
from swarm.errors import NotFound, SwarmError, UserError
from swarm.models import Direction, Hypothesis, Leader, Result, State, parse_enum
from swarm.observe import web_html as H
from swarm.observe.accounting import board_proposer_stats, paused_agents
from swarm.observe.exporter import run_until_signalled
from swarm.observe.web_index import ResultIndex

__all__ = ["WEB_PORT", "WebView", "make_server", "serve_forever"]

log = logging.getLogger(__name__)

WEB_PORT = 9408  # beside the exporter (9409) and the agents' /metrics (9410+)
PER_PAGE = 50  # hypotheses per table page: one screen, and a 50-hash pipeline per table
AGENTS_PER_PAGE = 100  # agent rows per page: 100 agents read in one call, rendered in a few ms
RECENT_RESULTS = 12  # results on the overview: the last minutes of a small swarm
RESULTS_SHOWN = 500  # results on a hypothesis page (a confirmation job rarely has more than 10)
REFRESH_S = 10.0  # auto-refresh of overview, agents and proposers: live enough, ~1 page read per 10 s
PROPOSER_WINDOW = 5_000  # newest results per proposers page: ~0.3 s of decoding (docs/web.md)
HOUR_MS = 3_600_000
ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")  # what a hypothesis id in a URL may be
COOKIE = "swarm_web"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
SECURITY_HEADERS = (
    # no script at all, styles inline, nothing fetched from anywhere; not framed; no referrer (a ?token=)
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


def _page(query: dict[str, list[str]], name: str = "page", default: int = 1, top: int = 1_000_000) -> int:
    raw = query.get(name, [str(default)])[0]
    try:
        n = int(raw)
    except ValueError:
        raise UserError(f"{name} must be a whole number, not {raw!r}") from None
    return min(max(n, 1), top)


class WebView:
    """The pages of one board, read on each request; shared by the server's threads."""

    def __init__(self, board: Any, token: str | None = None, refresh_s: float | None = REFRESH_S) -> None:
        self.board = board
        self.token = token or None
        self.refresh_s = refresh_s
        self.index = ResultIndex()
        self._charts: dict[str, tuple[tuple[int, str, int], str]] = {}  # track -> (key, svg)
        self._charts_lock = threading.Lock()

    # --- what every page needs ---------------------------------------------------------------------

    def _metric(self) -> tuple[str, Direction]:
        st = self.board.settings()
        return (st.metric_name, st.direction) if st is not None else ("metric", Direction.MINIMIZE)

    def _titles(self, ids: set[str]) -> dict[str, str]:
        return {h.id: h.title for h in self.board.get_many(sorted(ids))} if ids else {}

    def _state_page(self, state: State, page: int, per_page: int = PER_PAGE) -> list[Hypothesis]:
        """One page of the hypotheses in `state`, newest first, straight from its sorted set."""
        b = self.board
        start = (page - 1) * per_page
        ids = [m.decode() for m in b.r.zrevrange(b.k.state(state), start, start + per_page - 1)]
        return b.get_many(ids)

    def _chart(self, track: str, moves: list[Leader], titles: dict[str, str]) -> tuple[str, int]:
        rows = self.index.of_track(track)
        key = (len(rows), rows[-1].result_id if rows else "", len(moves))  # new results or moves: redraw
        with self._charts_lock:
            cached = self._charts.get(track)
        if cached is not None and cached[0] == key:
            return cached[1], len(rows)
        svg = H.chart_svg(rows, moves, titles, f"progress of track {track}")
        with self._charts_lock:
            self._charts[track] = (key, svg)
        return svg, len(rows)

    # --- pages -------------------------------------------------------------------------------------

    def overview(self, page: int) -> str:
        b = self.board
        self.index.refresh(b)
        metric_name, direction = self._metric()
        counts = b.counts()  # reaps first: no dead agent's claim is shown as held
        now = b.server_ms()
        leaders = b.leaders()
        histories = {t: b.leader_history(t) for t in leaders}
        recent = self.index.newest(RECENT_RESULTS)
        ids = {m.hypothesis_id for h in histories.values() for m in h if m.hypothesis_id}
        titles = self._titles(ids | {r.hypothesis_id for r in recent if r.hypothesis_id})
        tracks = []
        for t in sorted(set(leaders) | set(self.index.tracks())):
            svg, n = self._chart(t, histories.get(t, []), titles)
            tracks.append(H.TrackView(track=t, moves=histories.get(t, []), chart=svg, results=n))
        return H.render_overview(
            H.Overview(
                swarm=b.swarm, server_ms=now, metric_name=metric_name, direction=direction, counts=counts,
                tracks=tracks, titles=titles, claimed=self._state_page(State.CLAIMED, page),
                open=self._state_page(State.OPEN, page), page=page, per_page=PER_PAGE, recent=recent,
                indexed=len(self.index), dropped=self.index.dropped, refresh_s=self.refresh_s,
            )
        )  # fmt: skip

    def hypotheses(self, state: str, page: int) -> str:
        st = parse_enum(State, state, "state")
        counts = self.board.counts()
        items = self._state_page(st, page)
        return H.render_list(
            H.ListPage(self.board.swarm, self.board.server_ms(), st.value, counts, items, page, PER_PAGE)
        )

    def _results(self, rids: list[str]) -> list[Result]:
        if not rids:
            return []
        b = self.board
        blobs, metas = b.r.hmget(b.k.results, rids), b.r.hmget(b.k.results_meta, rids)
        return [decode_result(x, m) for x, m in zip(blobs, metas, strict=True) if x is not None]

    def hypothesis(self, hid: str) -> str:
        b = self.board
        if not ID_RE.match(hid):
            raise NotFound(f"no hypothesis {hid!r}")
        h = b.get(hid)
        _, direction = self._metric()
        notes: list[str] = []
        patch: str | None = None
        if h.patch_hash:
            try:
                patch = b.get_patch(h.patch_hash)
            except NotFound:
                notes.append(f"its patch {h.patch_hash[:12]} is not on the board")
        self.index.refresh(b)
        rows = self.index.of_hypothesis(hid)
        if len(rows) > RESULTS_SHOWN:
            notes.append(f"the newest {RESULTS_SHOWN} of its {len(rows)} results are shown")
            rows = rows[-RESULTS_SHOWN:]
        if self.index.dropped:
            notes.append(f"results older than the newest {len(self.index)} are not indexed")
        results = self._results([r.result_id for r in rows])
        scored = [r for r in results if r.metric is not None and not r.status.failed]
        pool = [r for r in scored if not r.stale] or scored
        # the gain over 0 orders metrics best-last in either direction (every metric in the pool is set)
        best = max(pool, key=lambda r: direction.gain(0.0, r.metric or 0.0), default=None)
        best_diff: str | None = None
        if best is not None and best.patch_hash:
            try:
                best_diff = b.get_patch(best.patch_hash)
            except NotFound:
                notes.append(f"the best result's patch {best.patch_hash[:12]} is not on the board")
        rids = {r.result_id for r in results}
        moves = [m for t in b.leaders() for m in b.leader_history(t) if m.result_id in rids]
        return H.render_hypothesis(
            H.HypothesisPage(b.swarm, b.server_ms(), h, direction, patch, results, best, best_diff, notes, moves)
        )

    def agents(self, page: int) -> str:
        b = self.board
        self.index.refresh(b)
        records = b.agents()
        now = b.server_ms()
        total, recent, first = self.index.agent_counts(now - HOUR_MS)
        shown = records[(page - 1) * AGENTS_PER_PAGE : page * AGENTS_PER_PAGE]
        titles = self._titles({a.current for a in shown if a.current})
        views = []
        for a in shown:
            n = total.get(a.agent_id, 0)
            per_hour = None
            if n:
                end = now if a.alive else max(a.last_ms, first[a.agent_id])
                per_hour = n / max(1.0, (end - first[a.agent_id]) / HOUR_MS)  # at least an hour: no wild rates
            views.append(H.AgentView(a, titles.get(a.current or ""), n, recent.get(a.agent_id, 0), per_hour))
        return H.render_agents(
            H.AgentsPage(
                b.swarm, now, views, sum(a.alive for a in records), len(records), page, AGENTS_PER_PAGE, self.refresh_s
            )
        )

    def proposers(self, window: int) -> str:
        b = self.board
        stats, counted = board_proposer_stats(b, max_results=window)
        return H.render_proposers(
            H.ProposersPage(b.swarm, b.server_ms(), stats, counted, window, paused_agents(b.agents()), self.refresh_s)
        )

    # --- routing -----------------------------------------------------------------------------------

    def route(self, path: str, query: dict[str, list[str]]) -> str:
        """The page at `path` (NotFound, UserError or a board error otherwise)."""
        if path == "/":
            return self.overview(_page(query))
        if path == "/hypotheses":
            return self.hypotheses(query.get("state", ["open"])[0], _page(query))
        if path.startswith("/h/"):
            return self.hypothesis(unquote(path[3:]))
        if path == "/agents":
            return self.agents(_page(query))
        if path == "/proposers":
            top = defaults.STATUS_MAX_RESULTS
            return self.proposers(_page(query, "window", PROPOSER_WINDOW, top))
        raise NotFound(f"no page {path!r}")

    def respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, str]:
        """(HTTP status, HTML) for a request that passed the access check; errors become pages."""
        try:
            return 200, self.route(path, query)
        except NotFound as exc:
            return 404, self._error(404, str(exc))
        except UserError as exc:
            return 400, self._error(400, str(exc))
        except BOARD_DOWN as exc:
            log.warning("web: board unreachable: %s", exc)
            return 503, H.error_page(self.board.swarm, 0, 503, f"the board is unreachable: {exc}")
        except SwarmError as exc:
            return 500, self._error(500, str(exc))

    def _error(self, status: int, message: str) -> str:
        try:
            now = self.board.server_ms()
        except BOARD_DOWN:
            now = 0
        return H.error_page(self.board.swarm, now, status, message)

    # --- access ------------------------------------------------------------------------------------

    def cookie_value(self) -> str:
        """What the cookie holds: a hash of the token (the token itself never rides in a cookie)."""
        return hashlib.sha256(f"swarm-web:{self.token}".encode()).hexdigest()

    def check(self, headers: Any, query: dict[str, list[str]]) -> str:
        """`ok`, `set` (the ?token= was right: set the cookie and redirect) or `no`."""
        if self.token is None:
            return "ok"
        tok = self.token.encode()
        given = query.get("token", [""])[0]
        if given:
            return "set" if hmac.compare_digest(given.encode(), tok) else "no"
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), tok):
            return "ok"
        jar = SimpleCookie()
        try:
            jar.load(headers.get("Cookie", ""))
        except CookieError:  # a malformed Cookie header is no cookie
            return "no"
        morsel = jar.get(COOKIE)
        return "ok" if morsel is not None and hmac.compare_digest(morsel.value, self.cookie_value()) else "no"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _host_name(host_header: str) -> str:
    """The name in a Host header, without its port: `[::1]:9408` -> `[::1]`, `localhost:9408` -> `localhost`."""
    h = host_header.strip().lower()
    return h.split("]")[0] + "]" if h.startswith("[") else h.rsplit(":", 1)[0]


def _handler(view: WebView, loopback_only_hosts: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "swarm-web"
        sys_version = ""

        def _send(self, status: int, body: str, extra: list[tuple[str, str]] | None = None, head: bool = False) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in [*SECURITY_HEADERS, *(extra or [])]:
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _get(self, head: bool) -> None:
            t0 = time.perf_counter()
            url = urlsplit(self.path)
            status = self._answer(url.path, parse_qs(url.query), head)
            # the path alone: the query may hold the token
            log.info("web: %s %s %d %.0fms", self.command, url.path, status, 1000 * (time.perf_counter() - t0))

        def _answer(self, path: str, query: dict[str, list[str]], head: bool) -> int:
            """Check access, send the page (or the refusal); returns the status sent."""
            if loopback_only_hosts and _host_name(self.headers.get("Host", "")) not in LOOPBACK_NAMES:
                self._send(403, H.error_page("", 0, 403, "not a loopback host name"), head=head)
                return 403
            access = view.check(self.headers, query)
            if access == "no":  # nothing of the board on this page, not even the swarm's name
                self._send(401, H.error_page("", 0, 401, "a token is needed: ?token=..."),
                           [("WWW-Authenticate", 'Bearer realm="swarm"')], head)  # fmt: skip
                return 401
            if access == "set":
                rest = {k: v for k, v in query.items() if k != "token"}
                target = path + ("?" + urlencode(rest, doseq=True) if rest else "")
                cookie = f"{COOKIE}={view.cookie_value()}; Path=/; HttpOnly; SameSite=Strict"
                self._send(303, "", [("Location", target), ("Set-Cookie", cookie)], head)
                return 303
            try:
                status, body = view.respond(path, query)
            except Exception:
                log.exception("web: %s failed", path)  # logged here, answered as a 500 page
                status, body = 500, H.error_page(view.board.swarm, 0, 500, "internal error (see the server's log)")
            self._send(status, body, head=head)
            return status

        def do_GET(self) -> None:
            self._get(head=False)

        def do_HEAD(self) -> None:
            self._get(head=True)

        def _refuse(self) -> None:
            self._send(
                405, H.error_page(view.board.swarm, 0, 405, "read-only: GET and HEAD only"), [("Allow", "GET, HEAD")]
            )

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines (with their ?token=) are not logged; _get logs the path alone

    return Handler


def make_server(view: WebView, host: str = "127.0.0.1", port: int = WEB_PORT) -> ThreadingHTTPServer:
    """A bound server for `view` (call `serve_forever()` on it); UserError when the address is taken."""
    try:
        server = ThreadingHTTPServer((host, port), _handler(view, _is_loopback(host) and view.token is None))
    except OSError as exc:
        raise UserError(f"cannot serve the web view on {host}:{port}: {exc.strerror or exc}") from exc
    server.daemon_threads = True  # a slow browser never holds the process at exit
    return server


def serve_forever(
    view: WebView, host: str = "127.0.0.1", port: int = WEB_PORT, on_ready: Callable[[int], None] | None = None
) -> None:
    """Index the board's results, then serve until SIGTERM or SIGINT (call from the main thread).
    `on_ready(bound_port)` is called once the port is bound and the index is built."""
    server = make_server(view, host, port)
    if not _is_loopback(host) and view.token is None:
        log.warning("web: serving %s without a token: anyone who reaches the port reads the board", host)
    t0 = time.perf_counter()
    n = view.index.refresh(view.board)
    log.info("web: indexed %d results in %.1fs", n, time.perf_counter() - t0)
    thread = threading.Thread(target=server.serve_forever, name="swarm-web", daemon=True)
    thread.start()
    run_until_signalled(server, "web", on_ready)
