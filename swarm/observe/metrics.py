"""The agent's Prometheus metrics: one `AgentMetrics` per agent, served on its own `/metrics` port.

The agent builds one `AgentMetrics(agent_id, track)`, calls `serve(port)` once (port 0 picks a free
one; `scan=N` passes over a taken port to the next, up to N ports: an agent's default port, taken by
an agent started before it on the same host), registers `address(host)` on the board so its port can
be found, and reports what happens through the methods below; Prometheus scrapes the port. Every agent
owns a private `CollectorRegistry`, so several agents in one process (tests, `swarm launch` threads)
never share or double-register series. The training child never imports this module: it runs in its
own process and the agent reports for it.

Series (all prefixed `swarm_`; documented for users in docs/operations.md):

    swarm_agent_info{agent_id,track}                      gauge      1, identifies the agent
    swarm_experiments_total{status,proposer,track}        counter    finished experiments
    swarm_experiment_duration_seconds{track}              histogram  wall time of one experiment
    swarm_gpu_duty_cycle_ratio{track}                     gauge      fraction of wall time spent training
    swarm_last_metric{track}                              gauge      metric of the last finished run
    swarm_leader_seen_metric{track}                       gauge      leader metric this agent last synced
    swarm_leader_seen_generation{track}                   gauge      leader generation this agent last synced
    swarm_claim_wait_seconds                              histogram  time from asking for work to a claim
    swarm_llm_calls_total{proposer}                       counter    LLM calls
    swarm_llm_input_tokens_total{proposer}                counter    prompt tokens
    swarm_llm_output_tokens_total{proposer}               counter    completion tokens
    swarm_llm_cost_usd_total{proposer}                    counter    LLM spend in US dollars
    swarm_llm_latency_seconds{proposer}                   histogram  latency of one LLM call
    swarm_llm_failures_total{proposer}                    counter    proposer call batches that failed
    swarm_proposer_state{proposer,state}                  gauge      1 for its state now: healthy, backoff, paused
    swarm_redis_errors_total                              counter    board operations that failed

Labels stay few and bounded (status, proposer, track, proposer state); never a hypothesis or result id.
"""

from __future__ import annotations

import errno
import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from swarm import defaults
from swarm.errors import UserError
from swarm.models import Status, parse_enum

__all__ = ["AgentMetrics"]

log = logging.getLogger(__name__)


class AgentMetrics:
    """The metrics of one agent, in a registry of its own. Thread-safe (prometheus_client locks)."""

    def __init__(self, agent_id: str, track: str, registry: CollectorRegistry | None = None) -> None:
        self.agent_id = agent_id
        self.track = track
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._addr = defaults.METRICS_ADDR
        r = self.registry

        self._info = Gauge(
            "swarm_agent_info", "Always 1; labels identify the agent.", ["agent_id", "track"], registry=r
        )
        self._info.labels(agent_id=agent_id, track=track).set(1)
        self._experiments = Counter(
            "swarm_experiments",
            "Finished experiments by outcome.",
            ["status", "proposer", "track"],
            registry=r,
        )
        self._duration = Histogram(
            "swarm_experiment_duration_seconds",
            "Wall time of one experiment, setup to result.",
            ["track"],
            buckets=defaults.EXPERIMENT_BUCKETS_S,
            registry=r,
        )
        self._duty = Gauge(
            "swarm_gpu_duty_cycle_ratio",
            "Fraction of recent wall time the accelerator spent training.",
            ["track"],
            registry=r,
        )
        self._last = Gauge(
            "swarm_last_metric",
            "Metric of the last finished experiment.",
            ["track"],
            registry=r,
        )
        self._leader_metric = Gauge(
            "swarm_leader_seen_metric", "Leader metric as of this agent's last sync.", ["track"], registry=r
        )
        self._leader_gen = Gauge(
            "swarm_leader_seen_generation",
            "Leader generation as of this agent's last sync.",
            ["track"],
            registry=r,
        )
        self._preempted = Counter(
            "swarm_preemptions",
            "Explorations stopped in their first moments for urgent work (run again right after it).",
            ["track"],
            registry=r,
        )
        self._claim_wait = Histogram(
            "swarm_claim_wait_seconds",
            "Time from asking the board for work to a claim.",
            buckets=defaults.CLAIM_WAIT_BUCKETS_S,
            registry=r,
        )
        self._llm_calls = Counter("swarm_llm_calls", "LLM calls by proposer.", ["proposer"], registry=r)
        self._llm_in = Counter("swarm_llm_input_tokens", "LLM prompt tokens by proposer.", ["proposer"], registry=r)
        self._llm_out = Counter(
            "swarm_llm_output_tokens", "LLM completion tokens by proposer.", ["proposer"], registry=r
        )
        self._llm_cost = Counter("swarm_llm_cost_usd", "LLM spend in US dollars by proposer.", ["proposer"], registry=r)
        self._llm_latency = Histogram(
            "swarm_llm_latency_seconds",
            "Latency of one LLM call.",
            ["proposer"],
            buckets=defaults.LLM_LATENCY_BUCKETS_S,
            registry=r,
        )
        self._llm_failures = Counter(
            "swarm_llm_failures",
            "Proposer call batches that failed (transport or HTTP errors after the SDK's retries, malformed "
            "replies, edits that never applied).",
            ["proposer"],
            registry=r,
        )
        self._proposer_state = Gauge(
            "swarm_proposer_state",
            "1 for the state each proposer is in now: healthy, backoff (waiting after failures in a row) or "
            "paused (probed again later).",
            ["proposer", "state"],
            registry=r,
        )
        self._redis_errors = Counter("swarm_redis_errors", "Board operations that failed.", registry=r)
        # Series without labels exist from the start; labelled ones for this agent's track too, so a
        # dashboard shows 0 rather than "no data" before the first experiment.
        self._duty.labels(track=track).set(0)
        self._duration.labels(track=track)

    # --- serving ----------------------------------------------------------------------------------
    def serve(self, port: int, addr: str = defaults.METRICS_ADDR, scan: int = 1) -> int:
        """Serve /metrics on `port` (0 picks a free one) in a daemon thread; return the bound port.

        With `scan` > 1 a port in use is passed over for the next one, up to `scan` ports in all (an
        agent's default port when another agent on this host has it); with 1 (a port the user asked
        for) a port in use is an error, as is a full range. Only "address in use" moves on: any other
        failure (no such address, a privileged port) would fail on every port alike."""
        if self._server is not None:
            raise UserError(f"metrics already served on port {self.port}")
        tries = 1 if port == 0 else max(1, min(scan, 65536 - port))
        for candidate in range(port, port + tries):
            try:
                self._server, self._thread = start_http_server(candidate, addr=addr, registry=self.registry)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or tries == 1:
                    raise UserError(f"cannot serve metrics on {addr}:{candidate}: {exc.strerror or exc}") from exc
        else:
            raise UserError(
                f"cannot serve metrics: ports {port}-{port + tries - 1} on {addr} are all in use "
                "(choose one with --metrics-port, or --no-metrics)"
            )
        self._addr = addr
        bound = int(self._server.server_port)
        if port not in (0, bound):
            log.warning("metrics: port %d is in use; serving agent=%s on port %d instead", port, self.agent_id, bound)
        log.info("metrics: serving agent=%s port=%d", self.agent_id, bound)
        return bound

    def address(self, host: str) -> str:
        """Where Prometheus finds this agent: "host:port" ("[v6]:port"), `host` standing for a wildcard
        listen address (every interface); "" when not serving."""
        if self._server is None:
            return ""
        name = host if self._addr in ("", "0.0.0.0", "::") else self._addr
        return f"[{name}]:{self.port}" if ":" in name else f"{name}:{self.port}"

    @property
    def port(self) -> int | None:
        """The bound port, or None before `serve`."""
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    # --- what the agent reports ----------------------------------------------------------------------
    def experiment_finished(self, status: str, proposer: str, duration_s: float) -> None:
        """One experiment ended with `status` (a `Status` or its value) after `duration_s`. An unknown
        status is a bug in the caller, not a new series: UserError."""
        label = parse_enum(Status, status, "experiment status").value
        self._experiments.labels(status=label, proposer=proposer, track=self.track).inc()
        self._duration.labels(track=self.track).observe(max(0.0, duration_s))

    def set_duty_cycle(self, fraction: float) -> None:
        """Fraction (0..1) of recent wall time spent training; clamped so a clock hiccup cannot exceed 1."""
        self._duty.labels(track=self.track).set(min(1.0, max(0.0, fraction)))

    def set_last_metric(self, value: float) -> None:
        """Metric of the experiment that just finished."""
        self._last.labels(track=self.track).set(value)

    def set_leader(self, metric: float, generation: int) -> None:
        """The leader this agent synced to: its metric and generation."""
        self._leader_metric.labels(track=self.track).set(metric)
        self._leader_gen.labels(track=self.track).set(generation)

    def preempted(self) -> None:
        self._preempted.labels(track=self.track).inc()

    def claim_wait(self, seconds: float) -> None:
        """Time from asking the board for work to holding a claim."""
        self._claim_wait.observe(max(0.0, seconds))

    def llm_call(
        self,
        proposer: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        latency_s: float,
        *,
        calls: int = 1,
        failed: bool = False,
    ) -> None:
        """`calls` LLM calls made by `proposer` for one step (an ideation, an implementation with its edit
        rounds, a repair); `failed`: the step failed (its calls still cost)."""
        self._llm_calls.labels(proposer=proposer).inc(max(0, calls))
        if failed:
            self._llm_failures.labels(proposer=proposer).inc()
        self._llm_in.labels(proposer=proposer).inc(max(0, input_tokens))
        self._llm_out.labels(proposer=proposer).inc(max(0, output_tokens))
        self._llm_cost.labels(proposer=proposer).inc(max(0.0, cost_usd))
        self._llm_latency.labels(proposer=proposer).observe(max(0.0, latency_s))

    def set_proposer_state(self, proposer: str, state: str) -> None:
        """`proposer` is now healthy, backing off or paused (swarm.proposers.health)."""
        for st in ("healthy", "backoff", "paused"):
            self._proposer_state.labels(proposer=proposer, state=st).set(1 if st == state else 0)

    def redis_error(self) -> None:
        """A board operation failed (after which the agent backs off)."""
        self._redis_errors.inc()
