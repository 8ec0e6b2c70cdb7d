"""The board's Lua scripts, loaded once per connection.

Each `swarm/lua/<name>.lua` is one read-then-write operation (claim, renew, compare-and-set, ...)
with a header saying what its KEYS and ARGV hold. `_lib.lua` (server clock, event append, lease
reaping) is prepended to each. redis-py's `Script` runs them by EVALSHA and reloads on NOSCRIPT, so a
server restart or failover that flushed the script cache is invisible to callers.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

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


class Scripts:
    """One registered `Script` per name, bound to a client: `Scripts(r).claim(keys=..., args=...)`."""

    def __init__(self, r: redis.Redis) -> None:
        self._scripts: dict[str, Script] = {n: r.register_script(source(n)) for n in NAMES}

    def __getattr__(self, name: str) -> Script:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc
