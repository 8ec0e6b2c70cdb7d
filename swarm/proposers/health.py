"""Proposer health: back-off and pause per proposer, so an outage or a model that ignores the format
costs a few calls, not one every few seconds.

    health = Health("anthropic:claude-x", HealthPolicy())
    if health.ready():            # not backing off or paused now
        ...call the proposer...
        health.ok()               # or health.failed("malformed ideation reply: ...")

Every failure of a proposer counts the same: a transport error or an HTTP error after the SDK's own
retries, a reply in prose where JSON was asked, edits that never apply. After the k-th failure in a row
the proposer waits `backoff_s * 2**(k-1)` (with jitter); from the `pause_after`-th on it is *paused*:
the next call is a probe after `pause_s`, doubling per failed probe up to `pause_max_s`. One success
makes it healthy again. `state()` says which (healthy, backoff, paused) with the reason; the agent shows
it in its log (once per change), on the board (`swarm agents`, `swarm status`) and in /metrics.
Thread-safe: the preparer thread ideates and implements while the main thread repairs.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from swarm.defaults import (
    PROPOSER_BACKOFF_S,
    PROPOSER_JITTER,
    PROPOSER_PAUSE_AFTER,
    PROPOSER_PAUSE_MAX_S,
    PROPOSER_PAUSE_S,
)

HEALTHY, BACKOFF, PAUSED = "healthy", "backoff", "paused"


@dataclass(frozen=True)
class HealthPolicy:
    backoff_s: float = PROPOSER_BACKOFF_S
    pause_after: int = PROPOSER_PAUSE_AFTER
    pause_s: float = PROPOSER_PAUSE_S
    pause_max_s: float = PROPOSER_PAUSE_MAX_S
    jitter: float = PROPOSER_JITTER

    def wait_s(self, failures: int) -> float:
        """The wait after `failures` failures in a row (before jitter)."""
        if failures < self.pause_after:
            return self.backoff_s * 2 ** (failures - 1)
        return min(self.pause_max_s, self.pause_s * 2 ** (failures - self.pause_after))


@dataclass(frozen=True)
class HealthState:
    state: str  # healthy | backoff | paused
    failures: int  # in a row
    reason: str  # the last failure's
    until: float  # clock time of the next try (0 when healthy)


class Health:
    def __init__(
        self,
        name: str,
        policy: HealthPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.policy = policy or HealthPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._failures = 0
        self._reason = ""
        self._until = 0.0

    def ready(self) -> bool:
        """Whether the proposer may be called now (healthy, or its wait is over: the next call probes)."""
        with self._lock:
            return self.clock() >= self._until

    def ok(self) -> bool:
        """A call succeeded; returns True when that ended a run of failures (the proposer recovered)."""
        with self._lock:
            recovered = self._failures > 0
            self._failures, self._reason, self._until = 0, "", 0.0
            return recovered

    def failed(self, reason: str) -> HealthState:
        """A call failed for reasons of the proposer; returns the new state."""
        with self._lock:
            self._failures += 1
            self._reason = " ".join(reason.split())[:300]
            spread = 1 + self.policy.jitter * (2 * self.rng.random() - 1)
            self._until = self.clock() + self.policy.wait_s(self._failures) * spread
            return self._state()

    def state(self) -> HealthState:
        with self._lock:
            return self._state()

    def _state(self) -> HealthState:
        if self._failures == 0:
            return HealthState(HEALTHY, 0, "", 0.0)
        st = PAUSED if self._failures >= self.policy.pause_after else BACKOFF
        return HealthState(st, self._failures, self._reason, self._until)
