"""The agent's /metrics and the board exporter, scraped over real HTTP and parsed with prometheus_client."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import RedisServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_report import record_board

from swarm import defaults
from swarm.board import Board
from swarm.errors import UserError
from swarm.models import ProposerHealth, Status
from swarm.observe.exporter import board_registry
from swarm.observe.metrics import AgentMetrics

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def sample_values(text: str) -> Samples:
    """{(sample name, sorted labels): value} of a /metrics text."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(port: int) -> Samples:
    """GET /metrics over HTTP and parse it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return sample_values(resp.read().decode())


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
        m.experiment_finished(Status.CRASH, "tpe", 3.0)  # a member labels as its plain value
        m.set_duty_cycle(0.93)
        m.set_last_metric(0.9812)
        m.set_leader(0.9755, 7)
        m.claim_wait(0.02)
        m.llm_call("claude", 12000, 800, 0.048, 14.5)
        m.llm_call("claude", 1000, 200, 0.002, 2.5)
        m.redis_error()

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
        assert not any(name.startswith("swarm_redis_retries") for name, _ in got)  # nothing ever retried it
        # never a per-hypothesis label: cardinality stays bounded by status x proposer x track
        labels = {name for (_, lbls) in got for name, _ in lbls}
        assert labels <= {"agent_id", "track", "status", "proposer", "le"}
    finally:
        m.close()


def test_failed_llm_calls_and_proposer_state_over_http() -> None:
    m = AgentMetrics("a", "cpu")
    port = m.serve(0)
    try:
        m.llm_call("anthropic:x", 500, 0, 0.001, 30.0, calls=3, failed=True)  # a step of 3 calls that failed
        m.llm_call("anthropic:x", 800, 100, 0.002, 4.0, calls=2)
        m.llm_call("classical", 0, 0, 0.0, 0.0, calls=0, failed=True)  # a failure without a call
        m.set_proposer_state("anthropic:x", "backoff")
        m.set_proposer_state("anthropic:x", "paused")
        m.set_proposer_state("classical", "healthy")
        got = scrape(port)

        def v(name: str, **labels: str) -> float:
            return got[(name, tuple(sorted(labels.items())))]

        assert v("swarm_llm_calls_total", proposer="anthropic:x") == 5
        assert v("swarm_llm_failures_total", proposer="anthropic:x") == 1  # failed steps, not calls
        assert v("swarm_llm_input_tokens_total", proposer="anthropic:x") == 1300
        assert v("swarm_llm_latency_seconds_count", proposer="anthropic:x") == 2
        assert v("swarm_llm_calls_total", proposer="classical") == 0
        assert v("swarm_llm_failures_total", proposer="classical") == 1
        # exactly one state is 1 per proposer: the latest
        states = {
            st: v("swarm_proposer_state", proposer="anthropic:x", state=st) for st in ("healthy", "backoff", "paused")
        }
        assert states == {"healthy": 0, "backoff": 0, "paused": 1}
        assert v("swarm_proposer_state", proposer="classical", state="healthy") == 1
        assert v("swarm_proposer_state", proposer="classical", state="paused") == 0
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


def listening_socket() -> socket.socket:
    """A port held by someone else (a listening socket on every interface, as the agents use)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", 0))
    sock.listen()
    return sock


def test_a_default_port_in_use_is_passed_over_an_asked_one_is_an_error() -> None:
    held = [listening_socket()]
    port = held[0].getsockname()[1]
    m = AgentMetrics("a", "cpu")
    try:
        with pytest.raises(UserError, match=f"cannot serve metrics on 0.0.0.0:{port}: Address already in use"):
            m.serve(port)  # the user's port: no other
        assert m.address("box") == ""
        got = m.serve(port, scan=64)  # the default port: the next free one
        assert port < got < port + 64 and m.address("box") == f"box:{got}"
        assert scrape(got)[("swarm_agent_info", (("agent_id", "a"), ("track", "cpu")))] == 1
    finally:
        m.close()
    # a range with no free port is an error naming it
    held.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        # port + 1 was the server's just closed: its connections may linger in TIME_WAIT
        held[1].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            held[1].bind(("0.0.0.0", port + 1))
            held[1].listen()
        except OSError:
            pytest.skip(f"port {port + 1} is not free here")
        other = AgentMetrics("b", "cpu")
        try:
            with pytest.raises(UserError, match=f"ports {port}-{port + 1} on 0.0.0.0 are all in use"):
                other.serve(port, scan=2)
        finally:
            other.close()
    finally:
        for sock in held:  # on a skip too: a socket left to the garbage collector fails a later test
            sock.close()
    only_here = AgentMetrics("c", "cpu")
    try:
        bound = only_here.serve(0, addr="127.0.0.1")
        assert only_here.address("box") == f"127.0.0.1:{bound}"  # a specific listen address is the address
    finally:
        only_here.close()


def test_two_agents_without_a_metrics_port_serve_and_register_distinct_addresses(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    """Both start from the default port (9410): the first to bind it keeps it, the other takes the next
    free one; each registers where it serves, and `swarm agents` shows it."""
    env = {**clean_env, "SWARM_CPU_SLOTS_DIR": str(tmp_path / "slots")}

    def swarm(*args: str) -> list[str]:
        return [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name, *args]

    subprocess.run(swarm("init", "--arena", str(SYNTH)), check=True, capture_output=True, env=env)
    board = Board.connect(redis_url, swarm_name)
    procs = []
    for i in range(2):
        with (tmp_path / f"a{i}.log").open("wb") as log:
            procs.append(subprocess.Popen(swarm("agent", "--workdir", str(tmp_path / f"a{i}"), "--track", "cpu:test"),
                                          stdout=log, stderr=subprocess.STDOUT, env=env))  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(agents := [a for a in board.agents() if a.alive]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(agents) == 2, [(tmp_path / f"a{i}.log").read_text()[-1500:] for i in range(2)]
        addrs = {a.agent_id: a.metrics_addr for a in agents}
        ports = {int(addr.rpartition(":")[2]) for addr in addrs.values()}
        assert len(ports) == 2 and min(ports) >= defaults.METRICS_BASE_PORT, addrs
        for agent_id, addr in addrs.items():
            host, _, port = addr.rpartition(":")
            assert host == socket.gethostname()
            samples = scrape(int(port))  # each address serves the agent that registered it
            assert samples[("swarm_agent_info", (("agent_id", agent_id), ("track", "cpu:test")))] == 1
        listed = subprocess.run(swarm("agents"), capture_output=True, text=True, env=env, check=True).stdout
        assert listed.splitlines()[0].split()[-1] == "metrics" and all(a in listed for a in addrs.values())
        as_json = json.loads(subprocess.run(swarm("agents", "--json"), capture_output=True, text=True, env=env,
                                            check=True).stdout)  # fmt: skip
        assert {a["agent_id"]: a["metrics_addr"] for a in as_json} == addrs
        # asking for a port in use is still an error, on one line
        taken = min(ports)
        out = subprocess.run(swarm("agent", "--workdir", str(tmp_path / "a2"), "--metrics-port", str(taken)),
                             capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1] == (
            f"error: cannot serve metrics on 0.0.0.0:{taken}: Address already in use"
        ), out.stderr
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(timeout=30) == 0


# --- the board exporter --------------------------------------------------------------------------------


def _start_exporter(redis_url: str, swarm_name: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from swarm.cli import main; main()",
            "exporter",
            "--port",
            "0",
            "--addr",
            "127.0.0.1",
        ],
        env={**env, "SWARM_REDIS_URL": redis_url, "SWARM_NAME": swarm_name},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        found = re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", line)
        if found:
            return proc, int(found.group(1))
    proc.kill()
    raise AssertionError(f"exporter did not start: {proc.stderr.read()}")


def test_exporter_over_http_from_a_recorded_board(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    board.add_usage("anthropic:claude", calls=9, failures=4, input_tokens=20000, output_tokens=900, cost_usd=0.3)
    paused = ProposerHealth(state="paused", reason="HTTP 500", failures=3)
    board.set_health("node1-gpu0", {"anthropic:claude": paused, "tpe": ProposerHealth(state="backoff")})
    board.r.close()
    proc, port = _start_exporter(redis_url, swarm_name, clean_env)
    try:
        got = scrape(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert rc == 0  # SIGTERM is a clean stop

    def v(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    h, c = "gpu:H100", "cpu:2c"
    assert v("swarm_board_up") == 1
    assert v("swarm_board_hypotheses", state="done") == 5
    assert v("swarm_board_hypotheses", state="failed") == 2
    assert v("swarm_board_hypotheses", state="open") == 0  # queue depth, present even when 0
    assert v("swarm_board_agents_live", track=h) == 1 and v("swarm_board_agents_live", track=c) == 1
    assert v("swarm_board_leader_metric", track=h) == pytest.approx(0.95)
    assert v("swarm_board_leader_generation", track=h) == 3
    assert v("swarm_board_leader_metric", track=c) == pytest.approx(1.45)
    assert v("swarm_board_leader_generation", track=c) == 2
    assert v("swarm_board_experiments_per_hour", track=h) == 5
    assert v("swarm_board_experiments_per_hour", track=c) == 4
    assert v("swarm_board_results_window") == 9
    assert v("swarm_board_experiments", track=h, proposer="claude", status="keep") == 2
    assert v("swarm_board_experiments", track=h, proposer="claude", status="crash") == 1
    assert v("swarm_board_experiments", track=c, proposer="tpe", status="timeout") == 1
    assert v("swarm_board_proposer_acceptance_ratio", proposer="claude") == pytest.approx(2 / 3)
    assert v("swarm_board_proposer_acceptance_ratio", proposer="tpe") == 0
    assert ("swarm_board_proposer_acceptance_ratio", (("proposer", "none"),)) not in got  # baselines only
    assert v("swarm_board_proposer_promotions", proposer="claude") == 2
    assert v("swarm_board_proposer_promotions", proposer="human") == 1
    assert v("swarm_board_proposer_promotions", proposer="none") == 2  # the two baselines
    assert v("swarm_board_proposer_cost_usd", proposer="claude") == pytest.approx(0.15)
    assert v("swarm_board_proposer_tokens", proposer="claude", direction="input") == 15000
    # the usage totals (every call, failed ones too) under the result label of the agents' spec name
    llm = "llm:anthropic/claude"
    assert v("swarm_board_proposer_llm_calls", proposer=llm) == 9
    assert v("swarm_board_proposer_llm_failures", proposer=llm) == 4
    assert v("swarm_board_proposer_cost_usd", proposer=llm) == pytest.approx(0.3)
    assert v("swarm_board_proposer_tokens", proposer=llm, direction="output") == 900
    assert v("swarm_board_proposer_llm_calls", proposer="claude") == 0  # results only: no totals recorded
    assert v("swarm_board_proposer_paused_agents", proposer=llm) == 1
    assert v("swarm_board_proposer_paused_agents", proposer="llm:tpe/tpe") == 0  # backing off is not paused


def test_exporter_reports_an_unreachable_board(redis_server: RedisServer, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_server.url, swarm_name)
    record_board(board, tmp_path)
    registry = board_registry(board)
    before = sample_values(generate_latest(registry).decode())
    assert before[("swarm_board_up", ())] == 1
    redis_server.stop()
    try:
        after = sample_values(generate_latest(registry).decode())
    finally:
        redis_server.start()
    assert after[("swarm_board_up", ())] == 0
    assert not any(name == "swarm_board_leader_metric" for name, _ in after)  # no stale numbers
    assert sample_values(generate_latest(registry).decode())[("swarm_board_up", ())] == 1  # recovers
    board.r.close()  # the reconnected socket would otherwise be left for the garbage collector
