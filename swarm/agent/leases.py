"""The claims an agent holds (the running job's and the prepared one's), renewed together.

A claim is a lease with a fencing token (`swarm.board.claims`). The agent's keeper thread calls
`renew()` every `min(RENEW_EVERY_S, lease_s / 3)`; a lease the board refuses to renew (it expired,
or the hypothesis was cancelled) is dropped and reported, and the result of its run will be stored
as stale. On SIGTERM every held claim is released back to open with its attempts unchanged.
"""

from __future__ import annotations

import logging
import threading

from swarm.board import Board

log = logging.getLogger(__name__)


class Leases:
    """hypothesis id -> lease token for every claim held; thread-safe."""

    def __init__(self, board: Board, lease_s: float) -> None:
        self.board = board
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def hold(self, hid: str, token: int) -> None:
        with self._lock:
            self._held[hid] = token

    def drop(self, hid: str) -> None:
        """Stop renewing `hid` (its claim was completed, cancelled or released)."""
        with self._lock:
            self._held.pop(hid, None)

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def renew(self) -> list[str]:
        """Extend every lease held; returns the ids whose lease was lost (and no longer held)."""
        lost = [hid for hid, token in self.held().items() if not self.board.renew(hid, token, self.lease_s)]
        for hid in lost:
            log.warning("lease on %s lost: its result will be stored as stale", hid)
            self.drop(hid)
        return lost

    def release(self, hid: str, token: int) -> None:
        """Give one claim back to open (attempts unchanged)."""
        self.board.release(hid, token)
        self.drop(hid)

    def release_all(self) -> int:
        """On the way out: give every claim held back; returns how many."""
        held = self.held()
        for hid, token in held.items():
            self.release(hid, token)
        return len(held)
