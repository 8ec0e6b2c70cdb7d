"""The board's own transport (swarm.scripts.HotLine): same replies as redis-py's path, same safety.

Each test that breaks the connection on purpose (a restart, a paused server) uses a private
redis-server, so the session's shared one is never disturbed.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.connection import PythonRespSerializer
from redis.retry import Retry

from swarm.board import Board, HypothesisIn
from swarm.board.embedded import RedisProcess
from swarm.board.lua import pack

TRACK = "cpu:2c"


@pytest.fixture()
def private_redis() -> Iterator[RedisProcess]:
    server = RedisProcess(tempfile.mkdtemp(prefix="swarm-hotline-"), persist=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def _redis_py_bytes(*args: object) -> bytes:
    enc = redis.Redis().get_encoder()
    return b"".join(PythonRespSerializer(6000, enc.encode).pack(*args))


def test_pack_sends_what_redis_py_sends() -> None:
    args = ("EVALSHA", "ab" * 20, 2, "k1", "k:{s}:2", b"\x00\xffraw", 17, -3, 0.1, 1e-300, "ünïcode")
    assert pack(*args) == _redis_py_bytes(*args)
    for bad in (None, True, object()):
        with pytest.raises(redis.exceptions.DataError):
            pack("SET", "k", bad)


def test_line_and_redis_py_path_give_the_same_board(redis_url: str, swarm_name: str) -> None:
    # The same sequence through the hot line and through redis-py's path: same claims, same states.
    boards = []
    for i, hot in enumerate((True, False)):
        b = Board(redis.Redis.from_url(redis_url), f"{swarm_name}-{i}")
        if not hot:
            from swarm.board.lua import Scripts

            b.scripts = Scripts(b.r, hot_line=False)
        assert (b.scripts.line is not None) is hot
        for n in range(3):
            b.post(HypothesisIn(text=f"idea {n}", priority=n))
        boards.append(b)
    seen = []
    for b in boards:
        got = []
        while (c := b.claim("a", TRACK)) is not None:
            assert b.complete(c.hypothesis.id, c.token)
            assert not b.complete(c.hypothesis.id, c.token)  # a second complete is refused either way
            got.append((c.hypothesis.id, c.hypothesis.text, c.hypothesis.state, c.token))
        seen.append(got)
        assert b.counts()["done"] == 3
    assert seen[0] == seen[1] and len(seen[0]) == 3


def test_clients_the_line_cannot_serve_keep_redis_py_path(redis_url: str, swarm_name: str) -> None:
    small = redis.Redis.from_url(redis_url + "?max_connections=1")
    single = redis.Redis.from_url(redis_url, single_connection_client=True)
    blocking = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(redis_url, max_connections=8))
    for r in (small, single, blocking):
        b = Board(r, swarm_name)
        assert b.scripts.line is None
        hid, _ = b.post(HypothesisIn(text=f"idea for {id(r)}"))
        c = b.claim("a", TRACK)
        assert c is not None and c.hypothesis.id == hid and b.complete(hid, c.token)
    assert Board(redis.Redis.from_url(redis_url), swarm_name).scripts.line is not None


def test_line_survives_a_server_restart_and_an_empty_script_cache(private_redis: RedisProcess) -> None:
    board = Board.connect(private_redis.url, "restart")
    for n in range(2):
        board.post(HypothesisIn(text=f"idea {n}"))
    c = board.claim("a", TRACK)
    assert c is not None
    private_redis.stop()
    private_redis.start()  # same port, data from the AOF, script cache empty, the line's socket dead
    assert board.complete(c.hypothesis.id, c.token)  # reconnects (the client's retry), reloads the script
    c2 = board.claim("a", TRACK)
    assert c2 is not None and c2.hypothesis.id != c.hypothesis.id and c2.token > c.token
    assert board.complete(c2.hypothesis.id, c2.token)


def test_a_call_that_times_out_leaves_no_late_reply_on_the_line(private_redis: RedisProcess) -> None:
    # A reply that arrives after its caller gave up must never be read as the next call's reply.
    r = redis.Redis.from_url(private_redis.url, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
    board = Board(r, "late")
    for n in range(3):
        board.post(HypothesisIn(text=f"idea {n}"))
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("CLIENT", "PAUSE", "800", "WRITE")  # scripts wait; PING does not
    t0 = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        board.claim("a", TRACK)
    time.sleep(max(0.0, 0.9 - (time.monotonic() - t0)))  # the paused claim now runs; its reply is late
    assert board.scripts.line is not None
    assert board.scripts.line.call(pack("PING")) == b"PONG"
    c = board.claim("a", TRACK)
    assert c is not None and c.hypothesis.state == "claimed"
    assert board.complete(c.hypothesis.id, c.token)


def test_threads_sharing_one_board_each_get_their_own_replies(redis_url: str, swarm_name: str) -> None:
    # The agent's threads share one Board: whoever finds the line busy borrows a pool connection.
    board = Board(redis.Redis.from_url(redis_url), swarm_name)
    n = 300
    for i in range(n):
        board.post(HypothesisIn(text=f"idea {i}"))
    got: list[list[tuple[str, int]]] = [[] for _ in range(6)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            while (c := board.claim(f"t{slot}", TRACK)) is not None:
                assert c.hypothesis.claimed_by == f"t{slot}"
                assert board.complete(c.hypothesis.id, c.token)
                got[slot].append((c.hypothesis.id, c.token))
        except BaseException as exc:  # reported below: an assertion in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ids = [h for g in got for h, _ in g]
    tokens = [t for g in got for _, t in g]
    assert len(ids) == n and len(set(ids)) == n and len(set(tokens)) == n
    assert board.counts()["done"] == n
    # the line was busy at times, so other connections of the pool served some calls
    assert len(board.r.connection_pool._available_connections) >= 1
