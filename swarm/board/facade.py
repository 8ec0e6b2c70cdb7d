"""The board: the one object every agent and the CLI coordinate through.

    from swarm.board import Board
    board = Board.connect("redis://:pw@host:6379/0", "demo")   # BoardUnavailable if unreachable
    board.init("arena/")                                       # pin the arena (once per swarm)
    hid, created = board.post(HypothesisIn(text="Raise the LR to 0.06", priority=5))
    claim = board.claim("agent-1", "cpu:2c")                   # Lua: reap, then lease the best
    board.publish(ResultIn(result_id=uuid4().hex, hypothesis_id=hid, token=claim.token, ...))
    board.move_leader("cpu:2c", expected_generation=0, metric=0.97, ...)   # Lua compare-and-set
    board.complete(hid, claim.token)

`Board` is assembled from one mixin per concept; each module's docstring states its part of the
contract: `swarmdef` (settings, pinned arena, brief), `hypotheses` (post/dedup/list/cancel),
`claims` (leases, fencing tokens, reaping), `results` (idempotent, stale-flagged), `patches`
(content-addressed diffs), `leaders` (per-track compare-and-set, history, moves, noise),
`registry` (agents, heartbeats), `events` (the human log). Key layout: `swarm.keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from swarm.board.arena_pin import SwarmDefMixin, write_files
from swarm.board.claims import ClaimsMixin
from swarm.board.connection import connect
from swarm.board.events import EventsMixin
from swarm.board.hypotheses import HypothesesMixin
from swarm.board.leaders import LeadersMixin, parse_leader_message
from swarm.board.patches import PatchStoreMixin
from swarm.board.registry import RegistryMixin
from swarm.board.results import ResultsMixin
from swarm.code.diff import EMPTY_PATCH, apply_patch
from swarm.errors import NotFound
from swarm.models import (
    AgentInfo,
    AgentRecord,
    Claim,
    Event,
    Hypothesis,
    HypothesisIn,
    Leader,
    MoveOutcome,
    PublishOutcome,
    Result,
    ResultIn,
    State,
    SwarmSettings,
)

__all__ = [
    "EMPTY_PATCH",
    "AgentInfo",
    "AgentRecord",
    "Board",
    "Claim",
    "Event",
    "Hypothesis",
    "HypothesisIn",
    "Leader",
    "MoveOutcome",
    "PublishOutcome",
    "Result",
    "ResultIn",
    "State",
    "SwarmSettings",
    "parse_leader_message",
]

HOUR_MS = 3_600_000


class Board(
    SwarmDefMixin,
    HypothesesMixin,
    ClaimsMixin,
    ResultsMixin,
    PatchStoreMixin,
    LeadersMixin,
    RegistryMixin,
    EventsMixin,
):
    """A swarm's board on one Redis. `Board(r, swarm)` for an existing client, `Board.connect(url, swarm)`."""

    def __init__(self, r: redis.Redis, swarm: str) -> None:
        super().__init__(r, swarm)

    @classmethod
    def connect(cls, url: str, swarm: str) -> Board:
        """Connect (retrying with backoff); BoardUnavailable names the URL with its password masked."""
        return cls(connect(url), swarm)

    def best_files(self, track: str | None = None) -> tuple[dict[str, bytes], Leader | None]:
        """The pinned arena with the leader's patch applied (the baseline when the track has no leader).

        Without `track`: the only track's leader; NotFound when several tracks have one.
        """
        if track is None:
            all_leaders = self.leaders()
            if len(all_leaders) > 1:
                raise NotFound(f"several tracks have leaders ({', '.join(all_leaders)}): pass --track")
            lead = next(iter(all_leaders.values()), None)
        else:
            lead = self.leader(track)
        files = self.arena_files()
        if lead is None or lead.patch_hash == EMPTY_PATCH:
            return files, lead
        patch = self.get_patch(lead.patch_hash)
        texts: dict[str, str] = {}
        for p, b in files.items():
            try:
                texts[p] = b.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary files (a compressed corpus) are never patched
        patched = apply_patch(texts, patch)
        out = {p: b for p, b in files.items() if p in patched or p not in texts}
        out.update({p: t.encode("utf-8") for p, t in patched.items()})
        return out, lead

    def export_best(self, dest_dir: str | Path, track: str | None = None) -> tuple[list[str], Leader | None]:
        files, lead = self.best_files(track)
        return write_files(dest_dir, files), lead

    def status(self) -> dict[str, Any]:
        """Counts by state, live agents, leaders per track, experiments in the last hour."""
        now = self.server_ms()
        agents = self.agents()
        return {
            "swarm": self.swarm,
            "counts": self.counts(),
            "agents_alive": sum(a.alive for a in agents),
            "agents_dead": sum(not a.alive for a in agents),
            "leaders": {t: ld.model_dump() for t, ld in self.leaders().items()},
            "experiments_last_hour": self.results_since(now - HOUR_MS),
            "server_ms": now,
        }
