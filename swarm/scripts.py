"""The board's Lua scripts, loaded once per connection.

Each `swarm/lua/<name>.lua` is one read-then-write operation (claim, renew, compare-and-set, ...)
with a header saying what its KEYS and ARGV hold. `_lib.lua` (server clock, event append, lease
reaping) is prepended to each. A script runs by one EVALSHA; on NOSCRIPT (a server restart, failover
or SCRIPT FLUSH emptied the script cache) it loads its source and retries once, so callers never see
the cache. This is what redis-py's `Script` does, minus its per-call wrapping (~5 us of client CPU
per call, measured: `docs/benchmarks.md`, Board), which the claim -> complete cycle pays twice.
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
    "publish",
    "move_leader",
    "heartbeat",
    "set_brief",
    "init",
)


@cache
def source(name: str) -> str:
    """The full text of script `name`: the shared library followed by the script."""
    lua = resources.files("swarm") / "lua"
    return (
        (lua / "_lib.lua").read_text(encoding="utf-8")
        + "\n"
        + (lua / f"{name}.lua").read_text(encoding="utf-8")
    )


class LuaScript:
    """One board script bound to a client: `script(keys=[...], args=[...])` -> the script's reply.

    `script` (the source) and `sha` are the attribute names redis-py's `Pipeline` reads to load the
    scripts queued on it before it runs them, so `client=pipeline` works as with redis-py's `Script`.
    """

    def __init__(self, r: redis.Redis, name: str) -> None:
        self.name = name
        self.script = source(name)
        self.sha = hashlib.sha1(self.script.encode("utf-8")).hexdigest()
        self._r = r

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = (), client: Any = None) -> Any:
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

    def __init__(self, r: redis.Redis) -> None:
        self._scripts: dict[str, LuaScript] = {n: LuaScript(r, n) for n in NAMES}

    def __getattr__(self, name: str) -> LuaScript:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc
