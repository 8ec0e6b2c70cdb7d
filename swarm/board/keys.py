"""Every Redis key of a swarm, built in one place.

All keys live under `swarm:{NAME}:` -- the braces are a Redis Cluster hash tag, so one swarm stays in
one slot (multi-key Lua scripts work on a cluster) and several swarms share one server. Scripts that
reach a key by a name stored in data (a hypothesis' `queue`, `hyp:<id>` members popped from a queue,
`claims:<agent>` of an agent read from `claimants` or a hypothesis' `claimed_by`) only ever build names
under the same prefix, hence the same slot.

| key                           | type   | holds                                                     | TTL |
|-------------------------------|--------|-----------------------------------------------------------|-----|
| settings                      | hash   | SwarmSettings as string fields (Lua reads lease_s,        | -   |
|                               |        | max_attempts, heartbeat_ttl_s, direction, min_delta);     |     |
|                               |        | written once by init                                      |     |
| arena:files                   | hash   | relative path -> sha256 of the pinned arena file          | -   |
| arena:blobs                   | hash   | sha256 -> file bytes (content-addressed)                  | -   |
| brief                         | hash   | version (int), text                                       | -   |
| seq:hyp / seq:token           | string | counters: hypothesis age order; fencing tokens            | -   |
|                               |        | (seq:hyp also takes `INCRBY 0` as the replication barrier |     |
|                               |        | before WAIT: swarm.board.connection.Replication)          |     |
| hyp:<id>                      | hash   | data (msgpack HypothesisIn), state, attempts, created_ms, | -   |
|                               |        | score, queue, claimed_by, token, deadline_ms, failures    |     |
|                               |        | (JSON list of implementation failures: giveback.lua)      |     |
| open:<any|t=TRACK>:<p|t>      | zset   | open hypothesis ids by (priority desc, age); p = has a   | -   |
|                               |        | patch, t = text only                                      |     |
| state:<state>                 | zset   | ids in that state (`models.State`), by creation order     | -   |
| leases                        | zset   | claimed ids scored by lease deadline (server ms)          | -   |
| claims:<agent>                | set    | ids that agent holds claimed: added by claim; removed by  | -   |
|                               |        | complete, release, cancel, reap, deregister               |     |
| claimants                     | zset   | agents holding >= 1 claim, scored by heartbeat expiry     | -   |
|                               |        | (server ms); moved by heartbeat (agents that never beat:  |     |
|                               |        | absent, only their leases expire)                         |     |
| patches                       | hash   | sha256 -> unified diff text                               | -   |
| results                       | hash   | result id -> msgpack Result                               | -   |
| results:meta                  | hash   | result id -> "stale|track|metric" (read by move_leader)  | -   |
| results:stream                | stream | append-only: one entry {id, track} per stored result      | -   |
| results:tally                 | hash   | running sums publish.lua adds each result to, so status   | -   |
|                               |        | and the exporter never read every result: `n` (results    |     |
|                               |        | counted; trusted while = HLEN results);                   |     |
|                               |        | `o|<kind>|<status>|<track>|<proposer>` -> results;        |     |
|                               |        | `s|<in|out|cost|llm_n|llm_s>|<proposer>` -> LLM tokens,   |     |
|                               |        | cost, results with an LLM call, their latency (s);        |     |
|                               |        | proposer "" = none                                        |     |
| results:minutes               | hash   | "<minute>|<track>" -> results published in that minute    | -   |
|                               |        | (stream id ms // 60000); the last RESULTS_MINUTES_KEPT    |     |
|                               |        | minutes, older fields dropped by publish.lua              |     |
| leader:t=<track>              | hash   | the current Leader as string fields                       | -   |
| history:t=<track>             | stream | every accepted move of that track (append-only)           | -   |
| leader:tracks                 | set    | tracks that have a leader                                 | -   |
| leader:moves                  | stream | every move of every track (catch-up for offline agents)   | -   |
| leader:channel                | pubsub | msgpack Leader published on each move                     | -   |
| urgent:channel                | pubsub | a track's name, published by post.lua when work of a      | -   |
|                               |        | confirmation's priority or above is posted on it (an      |     |
|                               |        | agent whose exploration just started runs it instead)     |     |
| noise:t=<track>               | string | msgpack list of baseline seed-noise samples (SET NX)      | -   |
| agents                        | hash   | agent id -> msgpack AgentInfo                             | -   |
| agents:status                 | hash   | agent id -> msgpack {state, current, last_ms}             | -   |
| agents:expiry                 | zset   | agent id scored by heartbeat expiry (server ms)           | -   |
| agents:live:t=<track>         | zset   | agent id scored by heartbeat expiry, per track: "is       | -   |
|                               |        | another agent alive on my track" without reading every    |     |
|                               |        | agent; heartbeat.lua adds (track read from `agents`),     |     |
|                               |        | deregister.lua removes                                    |     |
| agents:health                 | hash   | agent id -> JSON {proposer: {state, reason, until_ms}} of | -   |
|                               |        | its proposers that are backing off or paused              |     |
| proposers:usage               | hash   | "<proposer>|<calls|failures|input_tokens|output_tokens|   | -   |
|                               |        | cost_usd>" -> running total, every call (failed too)      |     |
| proposers:implemented         | hash   | proposer -> hypotheses it turned into code (giveback.lua  | -   |
|                               |        | counts a failure once this grew)                          |     |
| arms:t=<track>                | hash   | "<proposer>|<runs|improved|delta|cost_usd>" -> the bandit | -   |
|                               |        | state the track's agents share                            |     |
| events                        | stream | human-readable log, capped at EVENTS_MAXLEN (approx.)     | -   |
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from swarm.errors import UserError
from swarm.models import State

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# "state:<value>" per State; a member and its plain value find the same entry (a StrEnum hashes as its value)
_STATE_KEYS = {st.value: f"state:{st.value}" for st in State}


@dataclass(frozen=True)
class Keys:
    """Key names of one swarm. `Keys("demo").hyp("h1")` -> `swarm:{demo}:hyp:h1`."""

    swarm: str

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.swarm):
            raise UserError(f"bad swarm name {self.swarm!r}: 1-64 of letters, digits, _ . -")

    @property
    def prefix(self) -> str:
        return f"swarm:{{{self.swarm}}}:"

    def _k(self, rest: str) -> str:
        return self.prefix + rest

    settings = property(lambda self: self._k("settings"))
    arena_files = property(lambda self: self._k("arena:files"))
    arena_blobs = property(lambda self: self._k("arena:blobs"))
    brief = property(lambda self: self._k("brief"))
    seq_hyp = property(lambda self: self._k("seq:hyp"))
    seq_token = property(lambda self: self._k("seq:token"))
    leases = property(lambda self: self._k("leases"))
    claimants = property(lambda self: self._k("claimants"))
    patches = property(lambda self: self._k("patches"))
    results = property(lambda self: self._k("results"))
    results_meta = property(lambda self: self._k("results:meta"))
    results_stream = property(lambda self: self._k("results:stream"))
    results_tally = property(lambda self: self._k("results:tally"))
    results_minutes = property(lambda self: self._k("results:minutes"))
    leader_moves = property(lambda self: self._k("leader:moves"))
    leader_channel = property(lambda self: self._k("leader:channel"))
    urgent_channel = property(lambda self: self._k("urgent:channel"))
    leader_tracks = property(lambda self: self._k("leader:tracks"))
    agents = property(lambda self: self._k("agents"))
    agents_status = property(lambda self: self._k("agents:status"))
    agents_expiry = property(lambda self: self._k("agents:expiry"))
    agents_health = property(lambda self: self._k("agents:health"))
    proposers_usage = property(lambda self: self._k("proposers:usage"))
    proposers_implemented = property(lambda self: self._k("proposers:implemented"))
    events = property(lambda self: self._k("events"))

    def hyp(self, hid: str) -> str:
        return self._k(f"hyp:{hid}")

    def claims(self, agent_id: str) -> str:
        """The ids `agent_id` holds claimed (the scripts build the same name from the prefix)."""
        return self._k(f"claims:{agent_id}")

    def state(self, state: str) -> str:
        """The ids in `state`: a `State` or its value (a typo raises ValueError here, not a new key)."""
        if state not in _STATE_KEYS:
            raise ValueError(f"unknown state {state!r}")
        return self._k(_STATE_KEYS[state])

    def open_queue(self, track: str | None, has_patch: bool) -> str:
        """The open queue of hypotheses for `track` (None = any track) with or without a patch."""
        t = "any" if track is None else f"t={track}"
        return self._k(f"open:{t}:{'p' if has_patch else 't'}")

    def claim_queues(self, track: str, need_patch: bool) -> list[str]:
        """The queues an agent on `track` may claim from; text-only ones only if it can implement text."""
        qs = [self.open_queue(None, True), self.open_queue(track, True)]
        if not need_patch:
            qs += [self.open_queue(None, False), self.open_queue(track, False)]
        return qs

    def leader(self, track: str) -> str:
        return self._k(f"leader:t={track}")

    def leader_history(self, track: str) -> str:
        return self._k(f"history:t={track}")

    def agents_live(self, track: str) -> str:
        """Agents of `track` by heartbeat expiry (heartbeat.lua builds the same name from the prefix)."""
        return self._k(f"agents:live:t={track}")

    def noise(self, track: str) -> str:
        return self._k(f"noise:t={track}")

    def arms(self, track: str) -> str:
        return self._k(f"arms:t={track}")
