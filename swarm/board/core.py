"""What every part of the board shares: the Redis client, the swarm's keys and scripts, the server clock.

`swarm.board.Board` (facade.py, where the whole contract is stated) is assembled from one mixin per
concept, each in its own module and each deriving from `BoardCore` to reach `r`, `k` and `scripts`:

    arena_pin   the pinned arena and the swarm's settings (init, settings, arena files)
    brief       the program.md every LLM proposer reads, versioned
    hypotheses  post (deduplicated by identity), get, list, cancel, counts
    claims      leases with fencing tokens: claim (reaping first), renew, release, complete, reap
    results     the append-only results, idempotent by id, flagged stale when their lease was lost
    patches     content-addressed diffs
    leaders     one leader per track, moved by compare-and-set; its history, moves and noise samples
    registry    agents and their heartbeats
    events      the capped human-readable log

Below them: keys.py (every key name), lua/ (the scripts and their loader), connection.py (connect,
retry policy, TLS). Beside them: embedded.py (a redis-server of our own) and snapshot.py (export and
import a whole swarm).
"""

from __future__ import annotations

from typing import Any, Self

import redis

from swarm.board.connection import Replication, close
from swarm.board.keys import Keys
from swarm.board.lua import Scripts


class BoardCore:
    """The client (`r`, bytes responses), the swarm name, its `Keys`, its `Scripts` and its `Replication`."""

    def __init__(self, r: redis.Redis, swarm: str) -> None:
        # Typed Any: redis-py types replies as unions (bytes | str | None, sync | async) that only
        # decode_responses decides at runtime; this client always returns bytes.
        self.r: Any = r
        self.swarm = swarm
        self.k = Keys(swarm)
        self.scripts = Scripts(r)
        # publish and move_leader go through it: with replicas, a write counts once one has it (WAIT)
        self.replication = Replication(r, barrier_key=self.k.seq_hyp)

    def close(self) -> None:
        """Close the client's sockets (the board owns the client it was given). `with Board.connect(...)`
        closes on leaving the block; a board left to the garbage collector leaks its sockets until then."""
        close(self.r)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
