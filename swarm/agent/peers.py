"""Who else is on this agent's track: while another live agent shares it, that agent (not this one)
confirms this one's candidates, so a promotion rests on runs its author did not make."""

from __future__ import annotations

import time

from swarm.board import Board


class Peers:
    """`others_on_track(max_age_s)`: whether another live agent is registered on the track."""

    def __init__(self, board: Board, agent_id: str, track: str) -> None:
        self.board = board
        self.agent_id = agent_id
        self.track = track
        self._others = False
        self._looked_at = 0.0

    def others_on_track(self, max_age_s: float = 0.0) -> bool:
        """A yes is kept for `max_age_s`; a no is checked again each time (agents that started with this
        one may register a moment after it, and an agent alone reads a small registry)."""
        now = time.monotonic()
        if not (max_age_s and self._others and now - self._looked_at < max_age_s):
            self._looked_at = now
            self._others = self.board.others_alive(self.track, self.agent_id)
        return self._others
