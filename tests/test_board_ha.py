"""The board on Redis Sentinel: a primary, one replica and three sentinels, all real `redis-server`
processes on loopback ports (swarm.board.embedded.SentinelGroup, failure detection at 0.5 s).

Covers: the `redis+sentinel://` URL (parsed, masked, each mistake one line); connecting through the
sentinels (a wrong name and a sentinel's password fail at once); a result and a leader move count as
stored only once the replica has them (WAIT), and raise NotReplicated (in BOARD_DOWN) when it does
not answer, the retry storing nothing twice; kill -9 of the primary: the client follows the failover
and everything acknowledged is on the promoted replica; a single Redis sends no WAIT; the CLI and a
real agent process on a Sentinel URL, the agent riding out a failover mid-run.
The module is skipped only when `redis-server --sentinel` cannot run here.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cli_run import one_line_error, swarm_cli
from test_agent import TRACK as AGENT_TRACK
from test_agent import init, spawn, wait_for

from swarm.board import Board, HypothesisIn, ResultIn
from swarm.board.connection import BOARD_DOWN, NotReplicated, connect, mask_url, parse_sentinel_url
from swarm.board.embedded import RedisProcess, SentinelGroup, SentinelProcess, free_port
from swarm.errors import BoardUnavailable, SwarmError, UserError

PASSWORD = "ha-s3cret"
TRACK = "cpu:2c"


def _sentinel_mode_runs() -> str | None:
    """None when `redis-server --sentinel` starts here, else why not."""
    workdir = tempfile.mkdtemp(prefix="swarm-sentinel-probe-")
    probe = SentinelProcess(workdir, free_port(), "probe")
    try:
        probe.start()
    except SwarmError as exc:
        return str(exc)
    finally:
        probe.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return None


_why_not = _sentinel_mode_runs()
if _why_not is not None:
    pytest.skip(f"redis-server --sentinel is unavailable: {_why_not}", allow_module_level=True)


@contextmanager
def ha_group(tmp: Path, **kwargs: Any) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp, password=PASSWORD, **kwargs)
    group.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture()
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A fresh group per test that kills or freezes a server."""
    with ha_group(tmp_path / "ha") as g:
        yield g


@pytest.fixture(scope="module")
def shared_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One group for the tests that leave every server as they found it."""
    with ha_group(tmp_path_factory.mktemp("ha-shared")) as g:
        yield g


def _result(metric: float = 1.0, rid: str | None = None) -> ResultIn:
    return ResultIn(
        result_id=rid or uuid.uuid4().hex, agent_id="a", track=TRACK, status="keep", metric=metric, kind="baseline",
        patch_hash="0" * 64,
    )


def _frozen(server: RedisProcess) -> None:
    """SIGSTOP: the process keeps its connections but answers nothing (a hung replica)."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)


def _thawed(server: RedisProcess) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGCONT)


# --- the group's own servers --------------------------------------------------------------------------


def test_free_port_never_hands_out_a_port_twice() -> None:
    """The kernel repeats a free port now and then (13 in 20,000 draws of five); a group that drew one
    port twice started two servers on it, and the second's start was answered by the first (CI, stop 22)."""
    ports = [free_port() for _ in range(5_000)]
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("make", [
    lambda tmp, port: RedisProcess(tmp / "second", port=port, password=PASSWORD),
    lambda tmp, port: SentinelProcess(tmp / "second", free_port(), "board", port=port),
])
def test_a_server_whose_port_is_taken_fails_at_once(tmp_path: Path, make: Callable[[Path, int], RedisProcess]) -> None:
    first = RedisProcess(tmp_path / "first", password=PASSWORD)
    first.start()
    try:
        second = make(tmp_path, first.port)
        t0 = time.monotonic()
        with pytest.raises(SwarmError, match=f"did not start on port {first.port}"):
            second.start()
        assert time.monotonic() - t0 < 5 and second.proc is None
        assert first.client().ping()
    finally:
        first.stop()


# --- the URL -------------------------------------------------------------------------------------------


def test_sentinel_url_parts() -> None:
    t = parse_sentinel_url("redis+sentinel://u:p%40w@h1:26380,[::1]:26381,h3/board/2?sentinel_password=sp")
    assert t.sentinels == [("h1", 26380), ("::1", 26381), ("h3", 26379)]
    assert t.service == "board"
    assert t.server_options == {"username": "u", "password": "p@w", "db": 2}
    assert t.sentinel_options == {"password": "sp"}
    ca = Path(__file__)  # any file that exists stands for the CA here
    t = parse_sentinel_url(f"rediss+sentinel://:pw@h1:1/board?ssl_ca_certs={ca}&ssl_check_hostname=false")
    assert t.server_options["ssl"] is True and t.server_options["db"] == 0
    assert t.server_options["ssl_check_hostname"] is False  # typed as for a plain URL
    assert t.sentinel_options == {"ssl": True, "ssl_ca_certs": str(ca), "ssl_check_hostname": False}
    masked = mask_url("redis+sentinel://:pw@h1:1,h2:2/board/0?sentinel_password=sp")
    assert masked == "redis+sentinel://:***@h1:1,h2:2/board/0?sentinel_password=***"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://:pw@/board", "no sentinel address"),
        ("redis+sentinel://:pw@h1:99999/board", "has no valid port"),
        ("redis+sentinel://:pw@h1:1", "no primary name"),
        ("redis+sentinel://:pw@h1:1/board/x", "expected /NAME or /NAME/DB"),
        ("redis+sentinel://:pw@h1:1/board?ssl_ca_certs=/x", "needs rediss+sentinel://"),
        ("rediss+sentinel://:pw@h1:1/board?ssl_ca_certs=/nonexistent/ca.crt", "does not exist"),
        ("redis+sentinel://:pw@h1:1/board?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
        ("redis+sentinel://:pw@h1:1/board?sentinel_pasword=x", "unknown parameter 'sentinel_pasword'"),
        ("sentinel://:pw@h1:1/board", "expected redis://, rediss://, unix://, redis+sentinel://"),
    ],
)
def test_sentinel_url_mistakes_are_one_clear_line(url: str, says: str) -> None:
    with pytest.raises(UserError) as err:
        connect(url, retries=0)
    assert says in str(err.value) and "pw" not in str(err.value) and "\n" not in str(err.value)


def test_cli_on_a_sentinel_url_and_its_mistakes(shared_group: SentinelGroup, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    ok = swarm_cli(["--redis", shared_group.url, "--swarm", "cli", "post", "an idea"], env, tmp_path)
    assert ok.returncode == 0, ok.stderr
    ok = swarm_cli(["--redis", shared_group.url + "?socket_timeout=2", "--swarm", "cli", "status"], env, tmp_path)
    assert ok.returncode == 0 and "open=1" in ok.stdout, ok.stderr
    t0 = time.monotonic()
    wrong_name = swarm_cli(["--redis", shared_group.url.replace("/board/", "/nope/"), "status"], env, tmp_path)
    line = one_line_error(wrong_name)
    assert wrong_name.returncode == 2 and "no sentinel monitors a primary named 'nope'" in line
    assert "(they monitor: board)" in line
    assert PASSWORD not in line and ":***@" in line
    wrong_pw = swarm_cli(["--redis", shared_group.url.replace(PASSWORD, "wrong"), "status"], env, tmp_path)
    assert wrong_pw.returncode == 3 and "cannot authenticate" in one_line_error(wrong_pw)
    assert time.monotonic() - t0 < 10  # neither mistake is retried


def test_no_sentinel_answering_is_retried_then_one_line() -> None:
    nobody = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/board"
    with pytest.raises(BoardUnavailable) as err:
        connect(nobody, retries=1, backoff_s=0.01)
    assert "after 2 attempts: none of the 2 sentinels answered" in str(err.value)
    assert PASSWORD not in str(err.value)


def test_sentinels_with_a_password_of_their_own(tmp_path: Path) -> None:
    with ha_group(tmp_path / "ha", sentinel_password="sentinel-pw") as group:
        assert Board.connect(group.url, "sp").post(HypothesisIn(text="reached through guarded sentinels"))[1]
        without = group.url.partition("?")[0]
        with pytest.raises(BoardUnavailable) as err:
            connect(without, retries=0)
        assert "refused the credentials" in str(err.value) and "sentinel_password=" in str(err.value)
        assert PASSWORD not in str(err.value)


# --- writes count once a replica has them -----------------------------------------------------------------


def test_publish_and_move_wait_for_the_replica(shared_group: SentinelGroup, swarm_name: str) -> None:
    board = Board.connect(shared_group.url, swarm_name)
    primary = shared_group.primary().client()
    waits = primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
    first = _result(1.0)
    assert board.publish(first).stored
    out = board.move_leader(TRACK, 0, 1.0, "0" * 64, None, "a", first.result_id)
    assert out.accepted
    assert primary.info("commandstats")["cmdstat_wait"]["calls"] == waits + 2
    replica = next(s for s in shared_group.servers if s is not shared_group.primary()).client()
    assert replica.hexists(board.k.results, first.result_id)  # there when publish returned
    assert replica.hget(board.k.leader(TRACK), "result_id") == first.result_id.encode()
    # a post (a human's hypothesis, a confirmation job) and a claim's completion wait for it too
    hid, created = board.post(HypothesisIn(text=f"wait for me {swarm_name}", track=TRACK))
    claim = board.claim("a", TRACK)
    assert created and claim is not None and claim.hypothesis.id == hid
    assert board.complete(hid, claim.token)
    assert primary.info("commandstats")["cmdstat_wait"]["calls"] == waits + 4
    assert replica.hget(board.k.hyp(hid), "state") == b"done"


def test_a_single_redis_sends_no_wait(redis_server: RedisProcess, swarm_name: str) -> None:
    board = Board.connect(redis_server.url, swarm_name)
    r = redis_server.client()
    waits = r.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
    res = _result()
    assert board.publish(res).stored
    assert board.move_leader(TRACK, 0, 1.0, "0" * 64, None, "a", res.result_id).accepted
    assert board.replication.replicas() == 0
    assert r.info("commandstats").get("cmdstat_wait", {}).get("calls", 0) == waits


def test_an_unacknowledged_publish_raises_and_the_retry_stores_it_once(group: SentinelGroup, swarm_name: str) -> None:
    board = Board.connect(group.url, swarm_name)
    assert board.publish(_result()).stored  # the board knows the primary has a replica
    replica = next(s for s in group.servers if s is not group.primary())
    res = _result(0.9)
    _frozen(replica)
    try:
        t0 = time.monotonic()
        with pytest.raises(NotReplicated) as err:
            board.publish(res)
        assert time.monotonic() - t0 < 3
        assert isinstance(err.value, BOARD_DOWN)  # the agent keeps it in its outbox and backs off
        assert "not stored yet" in str(err.value)
        with pytest.raises(NotReplicated):  # the retry too, while the replica is stuck
            board.publish(res)
    finally:
        _thawed(replica)
    again = board.publish(res)
    assert not again.stored and not again.stale  # the first write was there: kept, not duplicated
    assert [r.result_id for r in board.results()].count(res.result_id) == 1


def test_an_unacknowledged_leader_move_raises_and_the_retry_reports_it_made(
    group: SentinelGroup, swarm_name: str
) -> None:
    board = Board.connect(group.url, swarm_name)
    res = _result(1.0)
    assert board.publish(res).stored
    replica = next(s for s in group.servers if s is not group.primary())
    _frozen(replica)
    try:
        with pytest.raises(NotReplicated):
            board.move_leader(TRACK, 0, 1.0, "0" * 64, None, "a", res.result_id)
        # the retry finds its own move made, and it is still on the primary only
        with pytest.raises(NotReplicated):
            board.move_leader(TRACK, 0, 1.0, "0" * 64, None, "a", res.result_id)
    finally:
        _thawed(replica)
    out = board.move_leader(TRACK, 0, 1.0, "0" * 64, None, "a", res.result_id)
    assert out.reason == "stale_generation" and out.leader is not None and out.leader.result_id == res.result_id
    other = _result(2.0)
    board.publish(other)
    _frozen(replica)
    try:  # a refusal that is not about the caller's own move needs nothing from the replica
        refused = board.move_leader(TRACK, 1, 2.0, "0" * 64, None, "a", other.result_id)
        assert refused.reason == "not_better"
    finally:
        _thawed(replica)


# --- failover ----------------------------------------------------------------------------------------------


def test_kill_9_of_the_primary_loses_nothing_acknowledged(group: SentinelGroup, swarm_name: str) -> None:
    board = Board.connect(group.url, swarm_name)
    hid, _ = board.post(HypothesisIn(text="survive the failover", track=TRACK))
    claim = board.claim("a", TRACK)
    assert claim is not None and claim.hypothesis.id == hid
    acked = [_result(1.0 - i / 100) for i in range(20)]
    for res in acked:
        assert board.publish(res).stored
    assert board.move_leader(TRACK, 0, acked[0].metric or 0, "0" * 64, None, "a", acked[0].result_id).accepted
    old = group.kill_primary()
    t0 = time.monotonic()
    after = _result(0.5)
    while True:  # as the agent's loop does: a BOARD_DOWN error is retried after a pause
        try:
            assert board.publish(after).stored
            break
        except BOARD_DOWN:
            assert time.monotonic() - t0 < 30, "the client never reached the promoted replica"
            time.sleep(0.2)
    new = group.primary()
    assert new is not old and new.client().info("replication")["role"] == "master"
    stored = {r.result_id for r in board.results(limit=100)}
    assert {r.result_id for r in acked} | {after.result_id} <= stored
    leader = board.leader(TRACK)
    assert leader is not None and leader.result_id == acked[0].result_id
    assert board.get(hid).state == "claimed"
    assert board.complete(hid, claim.token, "done")  # the lease and its token came through too
    # the old primary comes back as a replica of the new one (as the sentinels would make it, only
    # sooner), and writes wait for it again
    old.replica_of = new.port
    old.start()
    wait_for(lambda: new.client().info("replication")["connected_slaves"] == 1, 20, "the old primary to rejoin")
    board.replication.refresh()
    last = _result(0.4)
    assert board.publish(last).stored
    assert old.client().hexists(board.k.results, last.result_id)


def test_an_agent_rides_out_a_failover(
    tmp_path: Path, swarm_name: str, connect_board: Callable[[str, str], Board]
) -> None:
    """The primary is declared dead after 3 s, so the failover outlasts the client's own retries
    (~3 s): the agent meets BOARD_DOWN, backs off with its result in the outbox, and goes on."""
    with ha_group(tmp_path / "ha", down_after_ms=3000) as group:
        init(group.url, swarm_name)
        board = connect_board(group.url, swarm_name)
        proc = spawn(group.url, swarm_name, tmp_path / "a", "--max-experiments", "8", "--budget", "0.3")
        log = tmp_path / "a" / "agent.log"
        try:
            wait_for(lambda: len(board.results(limit=50)) >= 2, 60, "two results before the failover")
            before = {r.result_id for r in board.results(limit=50)}
            group.kill_primary()
            assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        check_agent_after_failover(board, before, tmp_path / "a")


def check_agent_after_failover(board: Board, before: set[str], workdir: Path) -> None:
    text = (workdir / "agent.log").read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "Redis trouble" in text and "Redis answers again" in text, text[-3000:]
    results = board.results(limit=100, track=AGENT_TRACK)
    assert before <= {r.result_id for r in results}  # nothing published before the failover was lost
    assert len(results) >= 8
    assert not (workdir / "outbox.jsonl").exists()
    assert board.leader(AGENT_TRACK) is not None


def test_connect_rides_out_a_failover_in_progress(group: SentinelGroup) -> None:
    """A process that starts while the primary is down waits for the promotion instead of failing."""
    group.kill_primary()
    r = connect(group.url)  # 5 retries over ~6 s; the failover takes ~2 s
    assert r.ping() and r.info("replication")["role"] == "master"
    r.close()
