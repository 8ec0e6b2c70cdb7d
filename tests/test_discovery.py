"""Service discovery: the exporter's /sd (Prometheus HTTP SD) and a real Prometheus that finds and scrapes
real agents through it.

/sd is read over HTTP from an exporter on a board whose agents are registered by hand (live, dead,
not serving); `--metrics-advertise` is checked on its own and through `swarm agent`; then a real
`prometheus` (Debian's package; the test skips with the reason where the binary is absent) runs the
swarm-agents job of docker/prometheus.yml against an exporter and two `swarm agent` processes on the
synthetic arena, and must report both targets up with their labels, then drop one that stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from cli_run import one_line_error, swarm_cli
from redis.backoff import NoBackoff
from redis.retry import Retry

from swarm.board import Board
from swarm.board.embedded import free_port
from swarm.errors import UserError
from swarm.models import AgentInfo
from swarm.observe.discovery import LABELS, check_advertise
from swarm.observe.exporter import exporter_routes, router, start_server

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
PROMETHEUS_YML = REPO / "docker" / "prometheus.yml"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Prometheus' label names; "__" is reserved


def get(url: str) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read()


@pytest.fixture()
def serve() -> Iterator[Callable[[Board], str]]:
    """Serve a board's exporter routes in this process on a loopback port; yields a function giving its URL."""
    servers = []

    def start(board: Board) -> str:
        server = start_server(router(exporter_routes(board)), 0, "127.0.0.1")
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def info(agent_id: str, addr: str, gpu: str = "cpu", track: str = "cpu:test") -> AgentInfo:
    return AgentInfo(agent_id=agent_id, host="node7", gpu=gpu, track=track, metrics_addr=addr)


# --- /sd -------------------------------------------------------------------------------------------------


def test_sd_lists_live_agents_serving_metrics(redis_url: str, swarm_name: str, serve: Callable[[Board], str]) -> None:
    board = Board.connect(redis_url, swarm_name)
    board.register(info("node7-0", "node7:9410", gpu="0", track="gpu:NVIDIA-H100"), ttl_s=60)
    board.register(info("node7-1", "[2001:db8::7]:9411", gpu="1", track="gpu:NVIDIA-H100"), ttl_s=60)
    board.register(info("dead", "node8:9410"), ttl_s=0.2)  # killed: registered, heartbeat expired
    board.register(info("quiet", ""), ttl_s=60)  # --no-metrics: nothing to scrape
    board.register(info("gone", "node9:9410"), ttl_s=60)
    board.deregister("gone")  # stopped cleanly
    time.sleep(0.4)
    url = serve(board)

    status, ctype, body = get(f"{url}/sd")
    assert status == 200 and ctype == "application/json"  # HTTP SD refuses any other content type
    groups = json.loads(body)
    labels = {"swarm": swarm_name, "track": "gpu:NVIDIA-H100", "host": "node7"}
    assert groups == [
        {"targets": ["node7:9410"], "labels": {**labels, "agent": "node7-0", "gpu": "0"}},
        {"targets": ["[2001:db8::7]:9411"], "labels": {**labels, "agent": "node7-1", "gpu": "1"}},
    ]
    for group in groups:
        assert list(group["labels"]) == list(LABELS)
        for name, value in group["labels"].items():
            assert LABEL_NAME.match(name) and not name.startswith("__") and isinstance(value, str)

    # the board's series are still served beside it; / lists the paths, anything else is a 404
    status, ctype, body = get(f"{url}/metrics")
    assert status == 200 and ctype.startswith("text/plain") and b"\nswarm_board_up 1.0\n" in body
    assert get(f"{url}/")[2].decode().split() == ["/metrics", "/sd"]
    assert get(f"{url}/sd/")[0] == 404 and get(f"{url}/nothing")[0] == 404
    board.r.close()


def test_sd_answers_503_when_the_board_is_down(serve: Callable[[Board], str]) -> None:
    """An error, not an empty list: Prometheus keeps the targets it had instead of dropping every agent."""
    # nothing listens there; no retries, so the answer comes at once
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    board = Board(client, "down")
    try:
        status, ctype, body = get(f"{serve(board)}/sd")
    finally:
        client.close()
    assert status == 503 and ctype == "application/json"
    assert json.loads(body)["error"].startswith("cannot read the board: ")


# --- --metrics-advertise -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["node7:9410", "203.0.113.7:19410", "[2001:db8::7]:9410", "[::1]:1", "swarm_agent-cpu_1:65535", "a:9"]
)
def test_advertise_accepts_host_and_port(text: str) -> None:
    assert check_advertise(text) == text


@pytest.mark.parametrize(
    "text",
    ["node7", "node7:", ":9410", "node7:0", "node7:65536", "node7:94a", "2001:db8::7:9410", "[node7]:9410",
     "[2001:db8::zz]:9410", "http://node7:9410", "node7:9410/metrics", "-node7:9410", "no de:9410", "a" * 254 + ":1"],
)  # fmt: skip
def test_advertise_refuses_anything_else(text: str) -> None:
    with pytest.raises(UserError, match=r"^--metrics-advertise must be HOST:PORT "):
        check_advertise(text)


def test_agent_refuses_a_bad_advertise_in_one_line(redis_url: str, tmp_path: Path, clean_env: dict[str, str]) -> None:
    base = ["--redis", redis_url, "--swarm", "never-created", "agent", "--workdir", str(tmp_path / "a")]
    err = one_line_error(swarm_cli([*base, "--metrics-advertise", "node7"], clean_env, REPO))
    assert err == (
        "error: --metrics-advertise must be HOST:PORT (a host name or IP, [IPv6] in brackets, port 1-65535), "
        "not 'node7'"
    )
    err = one_line_error(swarm_cli([*base, "--metrics-advertise", "node7:9410", "--no-metrics"], clean_env, REPO))
    assert err == "error: --metrics-advertise needs /metrics served: drop --no-metrics"


# --- a real Prometheus ---------------------------------------------------------------------------------------


def start_exporter(
    redis_url: str, swarm_name: str, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[Any], int]:
    """`swarm exporter --port 0` on loopback, its output to `log`; returns the process and the port it reports."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name, "exporter", "--port",
             "0", "--addr", "127.0.0.1"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    pattern = re.compile(r"serving http://127\.0\.0\.1:(\d+)/metrics and /sd")
    found = poll(lambda: pattern.search(log.read_text()), lambda m: m is not None, 30, "the exporter to serve")
    return proc, int(found.group(1))


def prometheus_config(exporter_port: int, targets_dir: Path) -> dict[str, Any]:
    """docker/prometheus.yml's swarm-agents job, pointed at this exporter, refreshed and scraped every second."""
    job = next(
        j for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"] if j["job_name"] == "swarm-agents"
    )
    (sd,) = job["http_sd_configs"]
    assert sd["url"] == "http://exporter:9409/sd"
    sd.update(url=f"http://127.0.0.1:{exporter_port}/sd", refresh_interval="1s")
    job["file_sd_configs"][0]["files"] = [str(targets_dir / "*.json")]
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": [job]}


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
    """read() until done(value) or the deadline; connection errors (a server still starting) are retried."""
    deadline = time.monotonic() + timeout_s
    value: Any = None
    while time.monotonic() < deadline:
        try:
            value = read()
        except (urllib.error.URLError, ConnectionError):
            value = None
        if value is not None and done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {value}")


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus not installed (Debian: apt-get install prometheus)"
)
def test_prometheus_discovers_and_scrapes_agents_through_the_exporter(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = {**clean_env, "SWARM_CPU_SLOTS_DIR": str(tmp_path / "slots"), "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name]
    subprocess.run([*cli, "init", "--arena", str(SYNTH)], check=True, capture_output=True, env=env, timeout=60)
    board = Board.connect(redis_url, swarm_name)
    procs: dict[str, subprocess.Popen[Any]] = {}
    try:
        exporter, exporter_port = start_exporter(redis_url, swarm_name, env, tmp_path / "exporter.log")
        procs["exporter"] = exporter
        ports = {"a": free_port(), "b": free_port()}
        assert ports["a"] != ports["b"]
        for name, port in ports.items():
            # advertised on loopback: the default (this hostname) may not resolve on every test host, and a
            # registered hostname instead of 127.0.0.1 would show that the advertise was not honoured
            with (tmp_path / f"agent-{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    [*cli, "agent", "--workdir", str(tmp_path / name), "--track", "cpu:test", "--budget", "0.2",
                     "--metrics-port", str(port), "--metrics-advertise", f"127.0.0.1:{port}"],
                    stdout=log, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
        targets_dir = tmp_path / "targets"
        targets_dir.mkdir()
        (targets_dir / "none.json").write_text("[]")  # the fallback, empty as shipped
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(exporter_port, targets_dir)))
        prom_port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            procs["prometheus"] = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            )  # fmt: skip

        live = poll(lambda: [a for a in board.agents() if a.alive], lambda v: len(v) == 2, 60, "two live agents")
        ids = {a.metrics_addr: a.agent_id for a in live}
        assert set(ids) == {f"127.0.0.1:{p}" for p in ports.values()}  # the advertised addresses, registered

        def targets() -> list[dict[str, Any]]:
            return api(prom_port, "targets?state=active")["activeTargets"]  # type: ignore[no-any-return]

        def both_up(ts: list[dict[str, Any]]) -> bool:
            return len(ts) == 2 and all(t["health"] == "up" for t in ts)

        started = time.monotonic()
        up = poll(targets, both_up, 30, "Prometheus to scrape both agents")
        took_s = time.monotonic() - started
        by_addr = {t["labels"]["instance"]: t for t in up}
        assert set(by_addr) == set(ids)
        for addr, target in by_addr.items():
            assert target["scrapeUrl"] == f"http://{addr}/metrics" and target["scrapePool"] == "swarm-agents"
            assert target["labels"] == {
                "instance": addr, "job": "swarm-agents", "swarm": swarm_name, "track": "cpu:test",
                "agent": ids[addr], "host": socket.gethostname(), "gpu": "cpu",
            }  # fmt: skip

        # the agents' own series carry the discovered labels, their `track` kept as is (honor_labels)
        series = poll(lambda: api(prom_port, "query?query=swarm_agent_info")["result"], lambda r: len(r) == 2, 10,
                      "swarm_agent_info from both agents")  # fmt: skip
        for s in series:
            m = s["metric"]
            assert m["agent_id"] == m["agent"] == ids[m["instance"]] and m["track"] == "cpu:test"
            assert m["swarm"] == swarm_name and "exported_track" not in m

        # an agent that stops leaves the board, then the targets
        procs["b"].send_signal(signal.SIGTERM)
        assert procs["b"].wait(timeout=30) == 0
        left = poll(targets, lambda ts: len(ts) == 1, 15, "Prometheus to drop the stopped agent")
        assert left[0]["labels"]["instance"] == f"127.0.0.1:{ports['a']}"
        print(f"discovery: both agents up in Prometheus {took_s:.1f} s after they registered")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        board.r.close()
    for name in ("a", "b"):
        assert procs[name].returncode == 0, (tmp_path / f"agent-{name}.log").read_text()[-2000:]
