"""The board's Lua scripts: one file per read-then-write step, each run by one EVALSHA through redis-py.

Each `swarm/board/lua/<name>.lua` is one operation (claim, renew, compare-and-set, ...) with a header
saying what its KEYS and ARGV hold; `_lib.lua` (server clock, event append, lease reaping, the check of
a run behind a leader) is prepended to each. `Scripts(r).claim(keys=[...], args=[...])` sends the
EVALSHA with the client's `execute_command`, so a script call takes the same path as any other command:
the connection pool, the retry policy `swarm.board.connection.connect` sets (backoff on connection
errors and timeouts, reconnect with AUTH, SELECT and TLS), and a connection that failed mid-reply is
closed, never reused with a late reply in it.

Two things redis-py's bare EVALSHA does not do, done here:
- NOSCRIPT: a server restart, a failover or SCRIPT FLUSH empties the script cache; the script is
  loaded and run once more, so callers never see the cache. A script is atomic, so a NOSCRIPT reply
  means it did not run and the retry cannot run it twice.
- Pipelines: `script(keys, args, client=pipe)` queues the EVALSHA and registers the script with the
  pipeline, which loads the ones the server lacks before it executes (redis-py reads `.sha` and
  `.script`, the names its own `Script` uses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

NAMES = (
    "post",
    "claim",
    "reap",
    "renew",
    "release",
    "complete",
    "cancel",
    "giveback",
    "reopen",
    "publish",
    "move_leader",
    "refresh_leader",
    "heartbeat",
    "deregister",
    "set_brief",
    "init",
)


@cache
def source(name: str) -> str:
    """The full text of script `name`: the shared library followed by the script."""
    lua = resources.files("swarm.board.lua")
    return (lua / "_lib.lua").read_text(encoding="utf-8") + "\n" + (lua / f"{name}.lua").read_text(encoding="utf-8")


class LuaScript:
    """One board script bound to a client: `script(keys=[...], args=[...])` -> the script's reply."""

    def __init__(self, r: redis.Redis, name: str) -> None:
        self.name = name
        self.script = source(name)
        self.sha = hashlib.sha1(self.script.encode("utf-8")).hexdigest()
        self._r = r

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = (), client: Any = None) -> Any:
        c: Any = self._r if client is None else client
        if isinstance(c, Pipeline):
            c.scripts.add(self)  # type: ignore[arg-type]  # duck-typed like redis-py's Script
            return c.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return c.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            c.execute_command("SCRIPT LOAD", self.script)
            return c.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


class Scripts:
    """One `LuaScript` per name, bound to a client: `Scripts(r).claim(keys=..., args=...)`."""

    def __init__(self, r: redis.Redis) -> None:
        self._scripts: dict[str, LuaScript] = {n: LuaScript(r, n) for n in NAMES}

    def __getattr__(self, name: str) -> LuaScript:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc
