"""The agent's /metrics and the board exporter, scraped over real HTTP and parsed with prometheus_client."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm.errors import UserError
from swarm.metrics import AgentMetrics


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and return {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def exp(status: str, proposer: str, track: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("swarm_experiments_total", (("proposer", proposer), ("status", status), ("track", track)))


def test_agent_metrics_over_http() -> None:
    m = AgentMetrics("host-a/gpu0", "h100")
    port = m.serve(0)
    try:
        assert port > 0 and m.port == port
        before = scrape(port)
        assert before[("swarm_agent_info", (("agent_id", "host-a/gpu0"), ("track", "h100")))] == 1
        assert before[("swarm_gpu_duty_cycle_ratio", (("track", "h100"),))] == 0
        assert before[("swarm_redis_errors_total", ())] == 0

        m.experiment_finished("keep", "claude", 312.0)
        m.experiment_finished("discard", "claude", 20.0)
        m.experiment_finished("discard", "claude", 301.0)
        m.experiment_finished("crash", "tpe", 3.0)
        m.set_duty_cycle(0.93)
        m.set_last_metric(0.9812)
        m.set_leader(0.9755, 7)
        m.claim_wait(0.02)
        m.llm_call("claude", 12000, 800, 0.048, 14.5)
        m.llm_call("claude", 1000, 200, 0.002, 2.5)
        m.redis_error()
        m.redis_retry()
        m.redis_retry()

        got = scrape(port)
        assert got[exp("discard", "claude", "h100")] == 2
        assert got[exp("keep", "claude", "h100")] == 1
        assert got[exp("crash", "tpe", "h100")] == 1
        assert got[("swarm_experiment_duration_seconds_count", (("track", "h100"),))] == 4
        assert got[("swarm_experiment_duration_seconds_sum", (("track", "h100"),))] == pytest.approx(636.0)
        # 20 s and 3 s fall at or below the 30 s bucket, 301 and 312 only from the 330 s bucket up
        assert got[("swarm_experiment_duration_seconds_bucket", (("le", "30.0"), ("track", "h100")))] == 2
        assert got[("swarm_experiment_duration_seconds_bucket", (("le", "300.0"), ("track", "h100")))] == 2
        assert got[("swarm_experiment_duration_seconds_bucket", (("le", "330.0"), ("track", "h100")))] == 4
        assert got[("swarm_gpu_duty_cycle_ratio", (("track", "h100"),))] == pytest.approx(0.93)
        assert got[("swarm_last_metric", (("track", "h100"),))] == pytest.approx(0.9812)
        assert got[("swarm_leader_seen_metric", (("track", "h100"),))] == pytest.approx(0.9755)
        assert got[("swarm_leader_seen_generation", (("track", "h100"),))] == 7
        assert got[("swarm_claim_wait_seconds_count", ())] == 1
        assert got[("swarm_llm_calls_total", (("proposer", "claude"),))] == 2
        assert got[("swarm_llm_input_tokens_total", (("proposer", "claude"),))] == 13000
        assert got[("swarm_llm_output_tokens_total", (("proposer", "claude"),))] == 1000
        assert got[("swarm_llm_cost_usd_total", (("proposer", "claude"),))] == pytest.approx(0.05)
        assert got[("swarm_llm_latency_seconds_sum", (("proposer", "claude"),))] == pytest.approx(17.0)
        assert got[("swarm_redis_errors_total", ())] == 1
        assert got[("swarm_redis_retries_total", ())] == 2
        # never a per-hypothesis label: cardinality stays bounded by status x proposer x track
        labels = {name for (_, lbls) in got for name, _ in lbls}
        assert labels <= {"agent_id", "track", "status", "proposer", "le"}
    finally:
        m.close()


def test_agents_in_one_process_do_not_share_series() -> None:
    a, b = AgentMetrics("a", "cpu"), AgentMetrics("b", "cpu")
    pa, pb = a.serve(0), b.serve(0)
    try:
        a.experiment_finished("keep", "tpe", 1.0)
        assert scrape(pa)[exp("keep", "tpe", "cpu")] == 1
        assert exp("keep", "tpe", "cpu") not in scrape(pb)
    finally:
        a.close()
        b.close()


def test_bad_input_and_busy_port() -> None:
    m = AgentMetrics("a", "cpu")
    with pytest.raises(UserError):
        m.experiment_finished("kept", "tpe", 1.0)
    m.set_duty_cycle(1.7)  # clamped, never above 1
    port = m.serve(0)
    other = AgentMetrics("b", "cpu")
    try:
        assert scrape(port)[("swarm_gpu_duty_cycle_ratio", (("track", "cpu"),))] == 1.0
        with pytest.raises(UserError):
            other.serve(port)
        with pytest.raises(UserError):
            m.serve(0)
    finally:
        m.close()
        other.close()
    m.close()  # idempotent
