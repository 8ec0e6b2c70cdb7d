"""The agents registry: who is in the swarm, on which hardware, doing what, and whether alive.

`register` stores an agent's static info; `heartbeat` records its state and current claim and
pushes its expiry on the server clock. An agent whose expiry passed is listed with `alive=False`
(dead agents stay visible until they `deregister`, so a crashed machine shows up as dead).

The heartbeat TTL is the swarm's `heartbeat_ttl_s` setting (`swarm init --heartbeat-ttl-s`, default
HEARTBEAT_TTL_S) unless a caller passes its own; agents beat every `beat_every_s(ttl)`. Claims follow
the heartbeat: a heartbeat also moves the agent's score in `claimants`, so the claims it holds stay its
own while it beats and are reaped once its expiry passes (claims.py). `deregister` hands back any claim
the agent still holds, so an agent that leaves never leaves work claimed behind it.

`others_alive(track, agent_id)` answers what every agent asks on each beat (is another agent alive on
my track?) from a per-track index the heartbeat keeps, so it costs the same with 1,000 agents as with
two; `agents()` reads the whole registry and is for observers.
"""

from __future__ import annotations

import json

from swarm import defaults
from swarm.board.core import pairs, s
from swarm.board.events import EventsMixin
from swarm.models import AgentInfo, AgentRecord, State, check_track, pack, unpack


def beat_every_s(ttl_s: float) -> float:
    """How often an agent beats for a heartbeat TTL of `ttl_s`: every AGENT_HEARTBEAT_S, or often
    enough that HEARTBEATS_PER_TTL beats fit in a shorter TTL (a test's or a small swarm's)."""
    return min(defaults.AGENT_HEARTBEAT_S, ttl_s / defaults.HEARTBEATS_PER_TTL)


class RegistryMixin(EventsMixin):
    def register(self, info: AgentInfo, ttl_s: float | None = None) -> None:
        """Add or refresh an agent, with a first heartbeat (state "registered")."""
        self.r.hset(self.k.agents, info.agent_id, pack(info.model_dump()))
        self.heartbeat(info.agent_id, "registered", None, ttl_s)
        self.event(
            "join",
            f"{info.agent_id} joined on {info.track} ({info.host} {info.gpu})".strip(),
            agent=info.agent_id,
        )

    def heartbeat(self, agent_id: str, state: str, current: str | None = None, ttl_s: float | None = None) -> int:
        """Record state and current claim; the agent counts as alive, and keeps its claims, for `ttl_s`
        (None: the swarm's heartbeat_ttl_s). Returns the expiry (ms)."""
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        ttl_ms = 0 if ttl_s is None else max(1, int(ttl_s * 1000))  # 0: the script reads the setting
        k = self.k
        return int(
            self.scripts.heartbeat(
                keys=[k.agents_status, k.agents_expiry, k.claimants, k.claims(agent_id), k.settings, k.agents],
                args=[agent_id, state[:64], current or "", ttl_ms, int(defaults.HEARTBEAT_TTL_S * 1000), k.prefix],
            )
        )

    def deregister(self, agent_id: str) -> int:
        """Leave the registry, handing back every claim still held (open with attempts+1, as an expired
        lease; a clean stop has released them already). Returns how many were handed back."""
        k = self.k
        return int(
            self.scripts.deregister(
                keys=[
                    k.agents,
                    k.agents_status,
                    k.agents_expiry,
                    k.claimants,
                    k.claims(agent_id),
                    k.leases,
                    k.state(State.OPEN),
                    k.state(State.CLAIMED),
                    k.state(State.FAILED),
                    k.events,
                    k.settings,
                    k.agents_health,
                ],
                args=[k.prefix, agent_id, defaults.MAX_ATTEMPTS, defaults.EVENTS_MAXLEN],
            )
        )

    def others_alive(self, track: str, agent_id: str) -> bool:
        """Whether an agent other than `agent_id` is alive on `track` (server clock): two entries of the
        track's expiry index, not the whole registry, so every agent may ask on every beat."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrevrange(self.k.agents_live(check_track(track)), 0, 1, withscores=True)
        pipe.time()
        top, (sec, usec) = pipe.execute()
        now = int(sec) * 1000 + int(usec) // 1000
        return any(str(s(a)) != agent_id and score > now for a, score in top)

    def agents(self) -> list[AgentRecord]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.k.agents)
        pipe.hgetall(self.k.agents_status)
        pipe.zrange(self.k.agents_expiry, 0, -1, withscores=True)
        pipe.hgetall(self.k.agents_health)
        pipe.time()
        infos, status, expiry, health, (sec, usec) = pipe.execute()
        hl = pairs(health)
        now = int(sec) * 1000 + int(usec) // 1000
        st = pairs(status)
        exp = {str(s(a)): int(score) for a, score in expiry}
        out = []
        for aid, blob in sorted(pairs(infos).items()):
            rec = dict(unpack(blob))
            if aid in st:
                hb = unpack(st[aid])
                rec.update(
                    state=hb.get("state", ""),
                    current=hb.get("current") or None,
                    last_ms=int(hb.get("last_ms", 0)),
                )
            if aid in hl:
                rec["health"] = json.loads(hl[aid])
            rec["expires_ms"] = exp.get(aid, 0)
            rec["alive"] = exp.get(aid, 0) > now
            out.append(AgentRecord.model_validate(rec))
        return out
