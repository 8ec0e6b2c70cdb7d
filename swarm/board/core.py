"""What every part of the board shares: the Redis client, the swarm's keys and scripts, the server clock.

`swarm.board.Board` is assembled from one mixin per concept (swarmdef, hypotheses, claims, results,
patches, leaders, registry, events); each mixin derives from `BoardCore` so it can reach `r`, `k`
and `scripts` without knowing about the others.
"""

from __future__ import annotations

from typing import Any

import redis

from swarm.board.keys import Keys
from swarm.board.lua import Scripts


class BoardCore:
    """The client (`r`, bytes responses), the swarm name, its `Keys` and its `Scripts`."""

    def __init__(self, r: redis.Redis, swarm: str) -> None:
        # Typed Any: redis-py types replies as unions (bytes | str | None, sync | async) that only
        # decode_responses decides at runtime; this client always returns bytes.
        self.r: Any = r
        self.swarm = swarm
        self.k = Keys(swarm)
        self.scripts = Scripts(r)

    def server_ms(self) -> int:
        """Milliseconds on the Redis server's clock (the only clock leases and liveness use)."""
        sec, usec = self.r.time()
        return int(sec) * 1000 + int(usec) // 1000


def s(v: bytes | str | None) -> str | None:
    """A hash/stream value as str (None stays None)."""
    if v is None:
        return None
    return v.decode("utf-8") if isinstance(v, bytes) else v


def pairs(flat: Any) -> dict[str, bytes]:
    """HGETALL as a dict, whether it came back as a dict (redis-py) or a flat list (a Lua reply)."""
    if isinstance(flat, dict):
        return {str(s(k)): v for k, v in flat.items()}
    return {str(s(flat[i])): flat[i + 1] for i in range(0, len(flat), 2)}
