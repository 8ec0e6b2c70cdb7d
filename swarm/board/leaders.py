"""Leaders: one per track, moved only by a Lua compare-and-set; plus each track's seed-noise samples.

A track is a hardware class (`gpu:NVIDIA-H100-80GB-HBM3`, `cpu:2c`): with a wall-clock budget,
results compare only on the same hardware. `move_leader` is accepted only when the caller's
expected generation is current, the named result exists on this track with this metric and is not
stale, and the metric beats the current one by at least the swarm's min_delta. Every accepted move
is appended to the track's history and to a global moves stream and PUBLISHed on a channel, so
subscribers hear it at once and agents that were offline catch up with `leader_moves(after_id)`.

When the primary has replicas, an accepted move is returned only once one of them has it (WAIT, see
`swarm.board.connection.Replication`), else `NotReplicated` is raised. So is a refusal that finds the
caller's own move already made (a retry after a lost reply): it counts as stored only once a replica
has that move too.
"""

from __future__ import annotations

from typing import Any

import msgpack

from swarm import defaults
from swarm.board.core import BoardCore, pairs, s
from swarm.models import Direction, Leader, MoveOutcome, check_track, pack, unpack


def leader_from_fields(raw: dict[str, Any]) -> Leader:
    d = {k: s(v) if isinstance(v, bytes) else v for k, v in raw.items()}
    d["hypothesis_id"] = d.get("hypothesis_id") or None
    return Leader.model_validate(d)


def parse_leader_message(data: bytes) -> Leader:
    """Decode a message from `leader_channel()` (a msgpack list of field/value pairs)."""
    flat = msgpack.unpackb(data, raw=False)
    return leader_from_fields(pairs(flat))


class LeadersMixin(BoardCore):
    def leader(self, track: str) -> Leader | None:
        raw = pairs(self.r.hgetall(self.k.leader(check_track(track))))
        return leader_from_fields(raw) if raw else None

    def leaders(self) -> dict[str, Leader]:
        tracks = sorted(str(s(t)) for t in self.r.smembers(self.k.leader_tracks))
        pipe = self.r.pipeline(transaction=False)
        for t in tracks:
            pipe.hgetall(self.k.leader(t))
        return {
            t: leader_from_fields(pairs(raw)) for t, raw in zip(tracks, pipe.execute(), strict=True) if raw
        }

    def move_leader(
        self,
        track: str,
        expected_generation: int,
        metric: float,
        patch_hash: str,
        hypothesis_id: str | None,
        agent_id: str,
        result_id: str,
        support: list[str] | None = None,
    ) -> MoveOutcome:
        """Compare-and-set the leader of `track`; see the module docstring for the conditions."""
        k = self.k
        check_track(track)
        keys = [
            k.leader(track),
            k.leader_history(track),
            k.leader_moves,
            k.results_meta,
            k.settings,
            k.events,
            k.leader_tracks,
            k.results,
        ]
        args = [
            track,
            int(expected_generation),
            repr(float(metric)),
            patch_hash,
            hypothesis_id or "",
            agent_id,
            result_id,
            defaults.LEADER_MOVES_MAXLEN,
            defaults.EVENTS_MAXLEN,
            k.leader_channel,
            Direction.MINIMIZE.value,  # these two only when the settings hash lacks them (no init)
            repr(float(defaults.MIN_DELTA)),
            *(support or []),
        ]
        out, acked = self.replication.write(lambda c: self.scripts.move_leader(keys, args, client=c))
        reason = str(s(out[0]))
        what = f"leader move of {track} to result {result_id}"
        if reason == "ok":
            self.replication.require(acked, what)
            new = leader_from_fields(pairs(out[1]))
            return MoveOutcome(accepted=True, reason="ok", leader=new)
        now = self.leader(track)
        if now is not None and now.result_id == result_id:
            self.replication.require(acked, what)  # our own move, made by an earlier try
        return MoveOutcome(accepted=False, reason=reason, leader=now)

    def refresh_leader(self, track: str, generation: int, metric: float, result_ids: list[str]) -> Leader | None:
        """Make the leader's metric the mean of more runs of its own code (`result_ids`: the leader's
        result first, then its confirmations and new runs), checked on the server; not a move (no
        generation, history or PUBLISH). Returns the refreshed leader, or None when refused: another
        generation, a result not of this code or track, or no more runs than the leader holds now."""
        k = self.k
        keys = [k.leader(check_track(track)), k.results_meta, k.results, k.events]
        args = [track, int(generation), repr(float(metric)), defaults.EVENTS_MAXLEN, *result_ids]
        # Not required to reach a replica: a refresh lost in a failover is made again, with all the
        # runs, by the next one (the runs themselves are published results).
        out, _ = self.replication.write(lambda c: self.scripts.refresh_leader(keys, args, client=c))
        if str(s(out[0])) != "ok":
            return None
        return leader_from_fields(pairs(out[1]))

    def leader_history(self, track: str) -> list[Leader]:
        """Every accepted move of `track`, oldest first (generations 1, 2, ...)."""
        rows = self.r.xrange(self.k.leader_history(check_track(track)))
        return [leader_from_fields({str(s(a)): b for a, b in f.items()}) for _, f in rows]

    def leader_moves(self, after_id: str = "0", count: int | None = None) -> list[tuple[str, Leader]]:
        """Moves of every track after stream id `after_id` ("0": from the start), oldest first."""
        start = "-" if after_id in ("0", "0-0", "-") else "(" + after_id
        rows = self.r.xrange(self.k.leader_moves, min=start, max="+", count=count)
        return [(str(s(i)), leader_from_fields({str(s(a)): b for a, b in f.items()})) for i, f in rows]

    def leader_channel(self) -> str:
        """The pub/sub channel every move is published on (decode with `parse_leader_message`)."""
        return self.k.leader_channel

    def set_noise(self, track: str, values: list[float]) -> bool:
        """Record the baseline seed-noise samples of `track`; first writer wins (returns False after)."""
        vals = [float(v) for v in values]
        if not vals or len(vals) > 1000:
            raise ValueError("noise needs 1-1000 samples")
        return bool(self.r.set(self.k.noise(check_track(track)), pack(vals), nx=True))

    def noise(self, track: str) -> list[float]:
        raw = self.r.get(self.k.noise(check_track(track)))
        return [float(v) for v in unpack(raw)] if raw else []
