"""The board's Lua scripts, loaded once per connection, and the line they travel on.

Each `swarm/lua/<name>.lua` is one read-then-write operation (claim, renew, compare-and-set, ...)
with a header saying what its KEYS and ARGV hold. `_lib.lua` (server clock, event append, lease
reaping) is prepended to each. A script runs by one EVALSHA; on NOSCRIPT (a server restart, failover
or SCRIPT FLUSH emptied the script cache) it loads its source and retries once, so callers never see
the cache.

Transport: a script call is packed once (hiredis) and sent on the board's own `HotLine`, a connection
it keeps out of the client's pool, as one write and one read. redis-py's per-command path (pool
checkout with a readiness probe, retry wrapper, observability hooks, per-argument encoding) costs
~15 us of client CPU per call on top of the ~23 us that the round trip's system calls cost, and the
claim -> complete cycle pays it twice (`docs/benchmarks.md`, Board). What that path gives is kept:
the client's retry policy (backoff on connection errors and timeouts), reconnect with AUTH/SELECT,
health checks, and a connection that failed mid-reply is closed, never reused with a stale reply in
it. A second thread that finds the line busy borrows a pool connection for that call instead.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
from hiredis import pack_command as _hiredis_pack  # installed with redis[hiredis] (pyproject.toml)
from redis.client import Pipeline
from redis.exceptions import DataError, NoScriptError

NAMES = (
    "post",
    "claim",
    "reap",
    "renew",
    "release",
    "complete",
    "cancel",
    "publish",
    "move_leader",
    "heartbeat",
    "set_brief",
    "init",
)


@cache
def source(name: str) -> str:
    """The full text of script `name`: the shared library followed by the script."""
    lua = resources.files("swarm.board.lua")
    return (
        (lua / "_lib.lua").read_text(encoding="utf-8")
        + "\n"
        + (lua / f"{name}.lua").read_text(encoding="utf-8")
    )


def _arg(a: Any) -> Any:
    """One command argument as redis-py's Encoder would send it (floats by repr, bools refused)."""
    t = type(a)
    if t is str or t is bytes or t is int:
        return a
    if t is float:
        return repr(a)
    if isinstance(a, bool) or not isinstance(a, (str, bytes, int, float, memoryview, bytearray)):
        raise DataError(f"invalid command argument {a!r}: expected bytes, str, int or float")
    return bytes(a) if isinstance(a, (memoryview, bytearray)) else a


def pack(*args: Any) -> bytes:
    """A command as RESP bytes, ready for `HotLine.call`."""
    out: bytes = _hiredis_pack(tuple(_arg(a) for a in args))
    return out


def _roundtrip(conn: Any, packed: bytes) -> Any:
    """Send one packed command on `conn`, read its reply, under the connection's retry policy (every
    redis-py connection has one; `connect()` gives the board's its backoff). An error reply is raised
    after it was read (the connection stays clean); any other failure in the send or the read closes
    the connection (redis-py's send_packed_command and read_response both do), so no later call reads
    this reply."""

    def once() -> Any:
        conn.send_packed_command([packed], check_health=True)
        return conn.read_response()

    return conn.retry.call_with_retry(once, lambda _err: conn.disconnect())


class HotLine:
    """The board's own connection: `call(packed)` -> the reply, with the client's retry policy.

    One thread at a time uses the line; a caller that finds it busy (the agent's keeper or preparer
    thread at the same moment as its main loop) takes a connection from the client's pool for that
    call. The line is opened on first use, reopened after a failure or in a forked child, and closed
    with the client's pool (it is checked out of that pool, so `r.close()` closes it).
    """

    def __init__(self, r: redis.Redis) -> None:
        self._r = r
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

    def call(self, packed: bytes) -> Any:
        if not self._lock.acquire(blocking=False):
            return self._pooled(packed)
        try:
            conn = self._conn
            if conn is None or self._pid != os.getpid():
                conn = self._conn = self._r.connection_pool.get_connection()
                self._pid = os.getpid()
            return _roundtrip(conn, packed)
        finally:
            self._lock.release()

    def _pooled(self, packed: bytes) -> Any:
        pool = self._r.connection_pool
        conn = pool.get_connection()
        try:
            return _roundtrip(conn, packed)
        finally:
            pool.release(conn)


def hot_line_for(r: Any) -> HotLine | None:
    """A HotLine for a plain client; None for what it cannot serve, which keeps redis-py's own path: a
    single-connection client, a cluster client, a pipeline, or a pool too small to give one of its
    connections to the line for good (`?max_connections=N` below 4, a blocking pool)."""
    if type(r) is not redis.Redis or getattr(r, "connection", None) is not None:
        return None
    pool = r.connection_pool
    if type(pool) is not redis.ConnectionPool or pool.max_connections < 4:
        return None
    return HotLine(r)


class LuaScript:
    """One board script bound to a client: `script(keys=[...], args=[...])` -> the script's reply.

    `script` (the source) and `sha` are the attribute names redis-py's `Pipeline` reads to load the
    scripts queued on it before it runs them, so `client=pipeline` works as with redis-py's `Script`.
    """

    def __init__(self, r: redis.Redis, name: str, line: HotLine | None = None) -> None:
        self.name = name
        self.script = source(name)
        self.sha = hashlib.sha1(self.script.encode("utf-8")).hexdigest()
        self._r = r
        self._line = line

    def pack(self, keys: Sequence[str], args: Sequence[Any] = ()) -> bytes:
        """This script's EVALSHA with `keys` and `args`, packed (cacheable when they do not change)."""
        return pack("EVALSHA", self.sha, len(keys), *keys, *args)

    def run_packed(self, packed: bytes) -> Any:
        """Run a command made by `pack` on the hot line (a client without one: use `__call__`)."""
        line = self._line
        assert line is not None, "run_packed needs a plain redis.Redis client"
        try:
            return line.call(packed)
        except NoScriptError:
            # The server's script cache was emptied (restart, failover, SCRIPT FLUSH): load and retry
            # once. A script is atomic, so a NOSCRIPT reply means it did not run: the retry is safe.
            line.call(pack("SCRIPT", "LOAD", self.script))
            return line.call(packed)

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = (), client: Any = None) -> Any:
        if client is None and self._line is not None:
            return self.run_packed(self.pack(keys, args))
        c: Any = self._r if client is None else client
        if isinstance(c, Pipeline):
            # The pipeline checks SCRIPT EXISTS and loads it before executing (it reads .sha, .script).
            c.scripts.add(self)  # type: ignore[arg-type]
            return c.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return c.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # The server's script cache was emptied (restart, failover, SCRIPT FLUSH): load and retry
            # once. A script is atomic, so a NOSCRIPT reply means it did not run: the retry is safe.
            c.execute_command("SCRIPT LOAD", self.script)
            return c.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


class Scripts:
    """One `LuaScript` per name, bound to a client: `Scripts(r).claim(keys=..., args=...)`."""

    def __init__(self, r: redis.Redis, hot_line: bool = True) -> None:
        self.line = hot_line_for(r) if hot_line else None  # False: redis-py's path (the bench's A/B)
        self._scripts: dict[str, LuaScript] = {n: LuaScript(r, n, self.line) for n in NAMES}

    def __getattr__(self, name: str) -> LuaScript:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc
