"""The board exporter: swarm-wide Prometheus metrics read from Redis on every scrape.

`swarm exporter --port P` serves these; it is the one Prometheus target that sees the whole swarm,
even when agents sit behind NAT and their own /metrics ports cannot be reached. Nothing is cached
between scrapes: each scrape reads counts, agents, leaders and the board's running summary of the
results (never the results themselves), so the numbers are as fresh as the scrape, a restarted
exporter loses nothing, and a scrape costs the same at 100,000 results as at 100.

Paths served (`exporter_routes`, one WSGI app each; `router` dispatches on the exact path, `/` lists them):

    /metrics    the series below (prometheus_client's exposition: text or OpenMetrics, gzip)
    /sd         the live agents' /metrics addresses for Prometheus' http_sd_configs (observe.discovery)

Series (all gauges; documented for users in docs/operations.md):

    swarm_board_up                                      1 when the last read of the board succeeded
    swarm_board_scrape_duration_seconds                 time this scrape spent reading the board
    swarm_board_hypotheses{state}                       hypotheses per state (open = queue depth)
    swarm_board_agents_live{track}                      agents with a current heartbeat
    swarm_board_leader_metric{track}                    the leader's metric
    swarm_board_leader_generation{track}                how many times the leader moved
    swarm_board_experiments_per_hour{track}             results published in the last hour
    swarm_board_results_window                          results the figures below cover (all of them)
    swarm_board_experiments{track,proposer,status}      results by outcome
    swarm_board_proposer_acceptance_ratio{proposer}     promoted / explore runs (observe.accounting)
    swarm_board_proposer_promotions{proposer}           results that became a leader
    swarm_board_proposer_llm_calls{proposer}            LLM calls, swarm total (board usage)
    swarm_board_proposer_llm_failures{proposer}         LLM call batches that failed, swarm total
    swarm_board_proposer_cost_usd{proposer}             LLM spend, swarm total
    swarm_board_proposer_tokens{proposer,direction}     LLM tokens (input/output), swarm total
    swarm_board_proposer_paused_agents{proposer}        live agents that have the proposer paused now

Outcome, run and promotion figures cover every result, read from the summary the publish script keeps
(`board.tally()`, one hash read, plus the few results leader moves name); so do calls, failures,
tokens and cost, the board's running totals of every call. They are counters in all but type:
`increase()` over them works until the swarm is deleted. On a board whose results are not all in the
summary (published before it existed) they cover the newest `defaults.EXPORTER_RESULTS_WINDOW`
results instead, and `swarm_board_results_window` says how many. "Last hour" counts results published
within an hour of the Redis server's clock (`board.results_since_by_track`: per-minute counts, not
the results).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from swarm import defaults
from swarm.errors import SwarmError, UserError
from swarm.models import State
from swarm.observe.accounting import NO_PROPOSER, moved_results, paused_agents, proposer_stats, tally_stats
from swarm.observe.discovery import sd_groups
from swarm.proposers.base import source_label

__all__ = ["BoardCollector", "board_registry", "exporter_routes", "router", "serve_forever", "start_server"]

log = logging.getLogger(__name__)


class BoardCollector(Collector):
    """A prometheus_client collector that reads the board on each `collect()`.

    `board` is a `swarm.board.Board` (anything with counts/agents/leaders/leader_history/results/
    proposer_usage).
    Every family is always emitted, empty when the board cannot be read, so the set of names is
    stable and `swarm_board_up` says whether the numbers are current.
    """

    def __init__(
        self,
        board: Any,
        window: int = defaults.EXPORTER_RESULTS_WINDOW,
        rate_window_s: float = defaults.EXPORTER_RATE_WINDOW_S,
    ) -> None:
        self.board = board
        self.window = window
        self.rate_window_s = rate_window_s

    def describe(self) -> list[GaugeMetricFamily]:
        # Describing without reading the board: registering must not need Redis.
        return list(self._families().values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = self._families()
        t0 = time.monotonic()
        try:
            self._fill(fam)
            up = 1.0
        except (SwarmError, redis.exceptions.RedisError, OSError) as exc:
            # The board is down or unreadable: say so in swarm_board_up, keep serving the families.
            log.warning("exporter: cannot read the board: %s", exc)
            fam = self._families()
            up = 0.0
        fam["up"].add_metric([], up)
        fam["scrape"].add_metric([], time.monotonic() - t0)
        yield from fam.values()

    # --- internals --------------------------------------------------------------------------------
    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        g = GaugeMetricFamily
        return {
            "up": g("swarm_board_up", "1 when the last read of the board succeeded, else 0."),
            "scrape": g("swarm_board_scrape_duration_seconds", "Time this scrape spent reading the board."),
            "hyp": g("swarm_board_hypotheses", "Hypotheses per state (open = queue depth).", labels=["state"]),
            "live": g("swarm_board_agents_live", "Agents with a current heartbeat.", labels=["track"]),
            "lmetric": g("swarm_board_leader_metric", "The leader's metric per track.", labels=["track"]),
            "lgen": g("swarm_board_leader_generation", "Leader moves per track.", labels=["track"]),
            "perhour": g("swarm_board_experiments_per_hour", "Results published in the last hour.", labels=["track"]),
            "window": g("swarm_board_results_window", "Results the outcome and per-proposer figures cover."),
            "exps": g(
                "swarm_board_experiments",
                "Results by outcome (every result; the newest window on a board without the summary).",
                labels=["track", "proposer", "status"],
            ),
            "accept": g(
                "swarm_board_proposer_acceptance_ratio",
                "Promoted / explore experiments per proposer.",
                labels=["proposer"],
            ),
            "promo": g(
                "swarm_board_proposer_promotions",
                "Results that became a leader, per proposer.",
                labels=["proposer"],
            ),
            "calls": g(
                "swarm_board_proposer_llm_calls",
                "LLM calls per proposer over the swarm (every call, failed ones included).",
                labels=["proposer"],
            ),
            "fails": g(
                "swarm_board_proposer_llm_failures",
                "LLM call batches that failed per proposer over the swarm.",
                labels=["proposer"],
            ),
            "cost": g(
                "swarm_board_proposer_cost_usd",
                "LLM spend per proposer over the swarm, US dollars.",
                labels=["proposer"],
            ),
            "tokens": g(
                "swarm_board_proposer_tokens",
                "LLM tokens per proposer over the swarm.",
                labels=["proposer", "direction"],
            ),
            "paused": g(
                "swarm_board_proposer_paused_agents",
                "Live agents that have the proposer paused now (after failures in a row).",
                labels=["proposer"],
            ),
        }

    def _fill(self, fam: dict[str, GaugeMetricFamily]) -> None:
        counts = self.board.counts()
        for state in sorted({st.value for st in State} | set(counts)):
            fam["hyp"].add_metric([state], float(counts.get(state, 0)))

        agents = self.board.agents()
        live = Tally(a.track for a in agents if a.alive)
        for track, n in sorted(live.items()):
            fam["live"].add_metric([track], float(n))

        leaders = self.board.leaders()
        histories = {}
        for track, leader in sorted(leaders.items()):
            fam["lmetric"].add_metric([track], float(leader.metric))
            fam["lgen"].add_metric([track], float(leader.generation))
            histories[track] = self.board.leader_history(track)

        since_ms = self.board.server_ms() - self.rate_window_s * 1000.0  # the server's clock, as leases use
        per_hour = self.board.results_since_by_track(int(since_ms))
        for track in sorted(set(per_hour) | set(leaders)):
            fam["perhour"].add_metric([track], float(per_hour.get(track, 0)))

        tally = self.board.tally()
        if tally is not None:  # every result, from the board's running summary
            counted = tally.results
            by_outcome: Tally[tuple[str, str, str]] = Tally()
            for (_kind, status, track, p), n in tally.outcomes.items():
                by_outcome[(track, p or NO_PROPOSER, status)] += n
            stats = tally_stats(tally, moved_results(self.board, histories), self.board.proposer_usage())
        else:  # a board with results from before the summary: the newest `window` results
            results = self.board.results(limit=self.window)
            counted = len(results)
            by_outcome = Tally((r.track, r.proposer or NO_PROPOSER, r.status.value) for r in results)
            stats = proposer_stats(results, histories, self.board.proposer_usage())
        fam["window"].add_metric([], float(counted))
        for (track, p, status), n in sorted(by_outcome.items()):
            fam["exps"].add_metric([track, p, status], float(n))
        for p, st in stats.items():
            if st.acceptance_rate is not None:
                fam["accept"].add_metric([p], st.acceptance_rate)
            fam["promo"].add_metric([p], float(st.moves))  # baseline moves included, as the help says
            fam["calls"].add_metric([p], float(st.calls))
            fam["fails"].add_metric([p], float(st.failed_calls))
            fam["cost"].add_metric([p], st.cost_usd)
            fam["tokens"].add_metric([p, "input"], float(st.input_tokens))
            fam["tokens"].add_metric([p, "output"], float(st.output_tokens))
        paused = paused_agents(agents)
        running = {source_label(p) for a in agents if a.alive for p in a.proposers}
        for p in sorted(running | set(paused)):  # 0 for a live agent's healthy proposer: no gap in the series
            fam["paused"].add_metric([p], float(paused.get(p, 0)))


def board_registry(board: Any) -> CollectorRegistry:
    """A fresh registry holding only the board collector (what `swarm exporter` serves)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector(board))
    return registry


# --- HTTP: one WSGI app per path ------------------------------------------------------------------------


def json_app(read: Callable[[], Any], what: str) -> WSGIApplication:
    """A WSGI app answering GET with `read()` as JSON; 503 with {"error": ...} when the board cannot be
    read (Prometheus' HTTP SD then keeps the targets it had instead of dropping them all)."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            status, body = "200 OK", read()
        except (SwarmError, redis.exceptions.RedisError, OSError) as exc:
            log.warning("exporter: cannot read the board for %s: %s", what, exc)
            status, body = "503 Service Unavailable", {"error": f"cannot read the board: {exc}"}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app


def exporter_routes(board: Any) -> dict[str, WSGIApplication]:
    """What `swarm exporter` serves, by path: add a view here (a WSGI app) and it is served."""
    return {
        "/metrics": make_wsgi_app(board_registry(board)),
        "/sd": json_app(lambda: sd_groups(board), "/sd"),  # Prometheus http_sd_configs (observe.discovery)
    }


def router(routes: dict[str, WSGIApplication]) -> WSGIApplication:
    """One WSGI app dispatching on the exact path (the query string aside); 404 naming the paths served."""
    index = "".join(f"{path}\n" for path in sorted(routes)).encode()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO") or "/")
        if route is not None:
            return route(environ, start_response)
        status = "200 OK" if environ.get("PATH_INFO") in ("", "/") else "404 Not Found"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(index)))])
        return [index]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr: Prometheus asks every few seconds."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a client that never finishes its request does not hold up shutdown


def start_server(app: WSGIApplication, port: int, addr: str = defaults.METRICS_ADDR) -> WSGIServer:
    """Serve `app` on `addr:port` (port 0: a free one) from a daemon thread; `shutdown()` and
    `server_close()` stop it. OSError when the port cannot be bound."""
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(_ThreadingServer):
        address_family = family  # an IPv6 listen address needs AF_INET6

    server = make_server(addr, port, app, Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="exporter-http", daemon=True).start()
    return server


def serve_forever(
    board: Any, port: int, addr: str = defaults.METRICS_ADDR, on_ready: Callable[[int], None] | None = None
) -> None:
    """Serve the board's metrics (/metrics) and its agents' targets (/sd) on `addr:port` until SIGTERM or
    SIGINT (call from the main thread). `on_ready(bound_port)` is called once the port is bound."""
    try:
        server = start_server(router(exporter_routes(board)), port, addr)
    except OSError as exc:
        raise UserError(f"cannot serve the exporter on {addr}:{port}: {exc.strerror or exc}") from exc
    log.info("exporter: serving port=%d", server.server_port)
    run_until_signalled(server, "exporter", on_ready)


def run_until_signalled(server: Any, name: str, on_ready: Callable[[int], None] | None = None) -> None:
    """Wait (in the main thread) for SIGTERM or SIGINT while `server` serves from its own thread, then
    restore the signal handlers and shut it down. `on_ready(bound_port)` is called first."""
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("%s: signal %d, stopping", name, signum)
        stop.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    if on_ready is not None:
        on_ready(int(server.server_port))
    try:
        stop.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.shutdown()
        server.server_close()
