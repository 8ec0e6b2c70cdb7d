"""The board: a swarm's shared state on one Redis, and the one object every agent and the CLI use.

    from swarm.board import Board
    board = Board.connect("redis://:pw@host:6379/0", "demo")   # BoardUnavailable if unreachable
    board.init("arena/")                                       # pin the arena (once per swarm)
    hid, created = board.post(HypothesisIn(text="Raise the LR to 0.06", priority=5))
    claim = board.claim("agent-1", "cpu:2c")                   # Lua: reap, then lease the best
    board.publish(ResultIn(result_id=uuid4().hex, hypothesis_id=hid, token=claim.token, ...))
    board.move_leader("cpu:2c", expected_generation=0, metric=0.97, ...)   # Lua compare-and-set
    board.complete(hid, claim.token)

The contract, by concept (each module's docstring has the detail; key layout in `swarm.board.keys`).

Everywhere
- Atomic: every read-then-write is one Lua script (`swarm.board.lua`), so no other client sees it
  half done: init's pin, set_brief, post, claim, renew, release, complete, reap (per batch of
  REAP_BATCH), cancel, give_back, reopen, publish, move_leader, heartbeat, deregister. Reads that span several keys
  (lists, counts, status, agents) are not one instant; `swarm.board.snapshot` exports one. The reads
  that report states (counts, list_hypotheses, status) reap first, so they write: see Claims.
- Server clock: lease deadlines, heartbeat expiry and `alive`, created_ms, published_ms, a leader's
  time_ms, event ids and `server_ms()` come from Redis' TIME, never from a client's clock.
- Errors: bad input raises `UserError` (and pydantic's ValidationError when building HypothesisIn or
  ResultIn); a missing swarm, hypothesis, result, patch or arena `NotFound`; init on a swarm pinned to
  another arena `Conflict`; a malformed arena or a harness that differs from its pins `ArenaError`.
  `Board.connect` takes any URL `swarm.board.connection.connect` does, a Sentinel's
  (`redis+sentinel://`) included, and raises `BoardUnavailable` (URL with its password masked) or
  `UserError` (bad URL).
  After connecting, Redis trouble surfaces as redis-py's ConnectionError / TimeoutError once the
  client's retries (exponential backoff, `swarm.board.connection`) are spent; `BOARD_DOWN` there is
  the tuple to catch. ValueError marks a caller's bug (lease_s <= 0, a complete state other than
  done or failed, 0 or over 1,000 noise samples). A refused lease step (a stale token, an expired
  lease) or a lost compare-and-set is not an exception: it is the False or reason returned.
- Retries: the client re-sends a command after a connection error or a timeout, so a script whose
  reply was lost may run twice. post, publish, put_patch, init, set_brief, register and heartbeat
  are idempotent. The others report the second run: a repeated claim leaves an extra lease that
  expires and is reaped (attempts+1); renew, release and complete return False, deregister 0,
  move_leader stale_generation, set_noise False, cancel raises UserError, each for a step that was
  done; event() (and register's join line) may be logged twice.
- Replicas: when the primary has replicas (`INFO replication`; a Sentinel URL follows a failover to
  the promoted one), publish and move_leader return only once a replica has acknowledged the write
  (WAIT, `swarm.board.connection.Replication`); otherwise they raise `NotReplicated`, a
  BoardUnavailable in BOARD_DOWN: the write may be on the primary alone, so it counts as not stored
  and the caller sends it again. That retry, after a failover that kept the first write, finds it
  (publish: stored False with the first outcome, nothing duplicated; move_leader: stale_generation
  with the caller's own move as leader) and waits for a replica again; after a failover that lost it,
  it is stored anew on the promoted replica (stale judged there). A replica cut off from the primary
  does not count: with none connected nothing waits, as on a single Redis. The other writes are
  acknowledged by the primary alone and, replication being asynchronous, a failover before one
  reached a replica loses it: a lost claim, renewal or heartbeat is redone or expires; a lost post is gone.
- Trimming: no key has a TTL. Hypotheses, results, patches, arena blobs, the agents registry and each
  track's leader history are never trimmed. Only the events stream (EVENTS_MAXLEN) and the moves
  stream of all tracks (LEADER_MOVES_MAXLEN) are capped, approximately.
- Threads may share one Board: each call takes a connection from the client's pool. Processes each
  connect their own.
- Closing: the board owns its client. `close()`, or leaving `with Board.connect(url, swarm) as board:`,
  closes every socket it opened (a Sentinel's included); an Agent never closes the board it was given.

Swarm and arena (`arena_pin`, `brief`):
- `init(arena_dir, min_delta, lease_s, max_attempts, heartbeat_ttl_s) -> SwarmSettings`: pins every
  arena file (size capped, content-addressed blobs) with the settings, in one script that never
  overwrites: the same arena again returns the existing settings, another arena raises Conflict
  naming the files. Settings never change afterwards. `settings()` (None before init), `require_settings()` (NotFound),
  `arena_files()`, `arena_diff(dir)` ([] when equal), `export_arena(dir)`.
- `set_brief(text) -> version` (the same text keeps its version), `brief() -> (version, text)`.
  `best_files(track)` / `export_best(dir, track)`: the pinned arena with the leader's patch applied.

Hypotheses (`hypotheses`):
- `post(HypothesisIn) -> (id, created)`: the id is derived from the identity (normalized text,
  patch hash, track, kind, parent, seed), so a duplicate returns the existing id and False.
  `get(id)` (NotFound), `get_many(ids)` (missing skipped), `list_hypotheses(state, limit)` newest
  first, `counts()` (both reap first), `cancel(id)` (open or claimed only, else UserError; a claim's
  token is revoked).
  States: open -> claimed -> done | failed | cancelled; claimed -> open by release, reaping or
  give_back; failed | done | cancelled -> open by `reopen(id)` (a human's; attempts 0).

Claims (`claims`): fencing:
- `claim(agent_id, track, need_patch, lease_s, avoid_own, min_priority, below_priority) -> Claim | None`
  reaps first, then leases the highest-priority, oldest eligible hypothesis (of at least
  `min_priority`, of less than `below_priority`). Reaping
  hands back (open with attempts+1, failed at max_attempts, an event each) every claim whose lease
  expired and every claim of an agent whose heartbeat expired; claim, counts, list_hypotheses and
  status reap, each reading only what is due.
  A claim is lost when it is reaped: an agent that beats again first keeps its claims; an agent that
  never heartbeat is held to its leases only. Exactly one claimer gets each lease; its token comes
  from one counter per swarm and strictly increases. `renew` and `complete(id, token,
  "done"|"failed")` need the current token and an unexpired lease (an expired lease is lost even
  before it is reaped); `release` needs the current token. Each returns False when refused.
  `reap()` returns how many it handled.

Results (`results`):
- `publish(ResultIn) -> PublishOutcome(stored, stale)`: stored once per result_id (again: stored
  False, the first outcome kept). Stale when the token is not the hypothesis' current one or its lease
  expired; a stale result is kept, never deleted, and can never move a leader. Baselines (no
  hypothesis) are never stale. `result(id)` (NotFound), `results(limit, track)` newest first,
  `results_by_id(ids)`, `results_since(ms)` / `results_since_by_track(ms)` (published at or after ms).
  The same script adds each stored result to a summary (`tally()`: results by kind, status, track and
  proposer, and each proposer's LLM sums; None on a board with results from before it) and to
  per-minute counts, so observers read neither every result nor the last hour's.

Patches (`patches`):
- `put_patch(text) -> sha256` (idempotent; UserError when not a text unified diff or over the cap),
  `get_patch(sha)` (NotFound; "" for EMPTY_PATCH).

Leaders (`leaders`): compare-and-set:
- `move_leader(track, expected_generation, metric, patch_hash, hypothesis_id, agent_id, result_id,
  support) -> MoveOutcome(accepted, reason, leader)`: accepted only when the generation is current
  (0: no leader yet), the named result exists on this track with `metric` as its metric and is not
  stale (with `support`, the confirmation runs: every one of them too, all run on `patch_hash`, and
  `metric` is their mean), and, unless it is the first leader, `metric` beats the leader's by more
  than 0 and at least min_delta in the swarm's direction.
  Reasons: ok, stale_generation, unknown_result, stale_result, not_better. Each move is appended to
  the track's history and the moves stream and PUBLISHed on `leader_channel()` (at most once, to
  whoever listens: `leader_moves(after_id)` is the catch-up). `leader(track)` (None before the first),
  `leaders()`, `leader_history(track)` oldest first, `parse_leader_message(data)`. A leader's `runs`
  is how many runs its metric is the mean of.
- `refresh_leader(track, generation, metric, result_ids) -> Leader | None`: the leader's metric
  becomes the mean of more runs of its own code (the leader's result first); checked like a move's
  support, and only with more runs than it holds. Not a move: no new generation, history entry or
  PUBLISH (nobody rebases on it); an event `refresh`.
- `set_noise(track, values)`: first writer wins (False after). `noise(track)` ([] when none).

Agents (`registry`):
- `register(AgentInfo)`, `heartbeat(agent_id, state, current, ttl_s) -> expiry_ms` (ttl_s None: the
  swarm's heartbeat_ttl_s), `deregister(agent_id) -> int` (hands back the claims still held, as
  reaping does, and returns how many), `agents()`: `alive` while the last heartbeat's expiry is ahead
  of the server clock; a dead agent stays listed until it deregisters; its claims are reaped.
  `others_alive(track, agent_id)`: another agent of `track` is alive (a per-track index the heartbeat
  keeps: what each agent asks on every beat, without reading the registry).

Proposers (`proposers`):
- `give_back(id, token, proposer, reason) -> (state, counted)`: a claim its implementer could not turn
  into code, back to open with the failure recorded on the hypothesis (`Hypothesis.failures`); it
  counts against the hypothesis only once that proposer has `implemented(proposer)` other hypotheses
  since; attempts + counted failures at max_attempts end it failed. (None, 0) for a stale token.
- `add_usage(proposer, calls, failures, tokens, cost)` / `proposer_usage()`: every call's totals, failed
  ones too. `set_health(agent, {...})` / `health()` (and `AgentRecord.health`): proposers backing off or
  paused. `add_arm(track, ...)` / `arms(track)`: the bandit's counts per track.

Events (`events`):
- `event(kind, text, **fields) -> id`, `events(limit)` oldest first, `follow(after_id)` (blocks).
  Scripts write their own events in the same atomic step as the change.

`status()`: counts (reaped first), live and dead agents, leaders, results in the last hour (server clock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from swarm.board.arena_pin import ArenaPinMixin, write_files
from swarm.board.brief import BriefMixin
from swarm.board.claims import ClaimsMixin
from swarm.board.connection import connect
from swarm.board.events import EventsMixin
from swarm.board.hypotheses import HypothesesMixin
from swarm.board.leaders import LeadersMixin
from swarm.board.patches import PatchStoreMixin
from swarm.board.proposers import ProposersMixin
from swarm.board.registry import RegistryMixin
from swarm.board.results import ResultsMixin
from swarm.code.diff import EMPTY_PATCH, apply_patch
from swarm.errors import NotFound
from swarm.models import (
    Leader,
)

HOUR_MS = 3_600_000


class Board(
    ArenaPinMixin,
    BriefMixin,
    HypothesesMixin,
    ClaimsMixin,
    ResultsMixin,
    PatchStoreMixin,
    LeadersMixin,
    RegistryMixin,
    ProposersMixin,
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
