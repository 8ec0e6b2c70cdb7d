"""The agents registry: who is in the swarm, on which hardware, doing what, and whether alive.

`register` stores an agent's static info; `heartbeat` records its state and current claim and
pushes its expiry on the server clock. An agent whose expiry passed is listed with `alive=False`
(dead agents stay visible until they `deregister`, so a crashed machine shows up as dead).
"""

from __future__ import annotations

from swarm import defaults
from swarm.board.core import pairs, s
from swarm.board.events import EventsMixin
from swarm.models import AgentInfo, AgentRecord, pack, unpack


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

    def heartbeat(
        self, agent_id: str, state: str, current: str | None = None, ttl_s: float | None = None
    ) -> int:
        """Record state and current claim; the agent counts as alive for `ttl_s`. Returns the expiry (ms)."""
        ttl = defaults.HEARTBEAT_TTL_S if ttl_s is None else ttl_s
        return int(
            self.scripts.heartbeat(
                keys=[self.k.agents_status, self.k.agents_expiry],
                args=[agent_id, state[:64], current or "", int(ttl * 1000)],
            )
        )

    def deregister(self, agent_id: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self.k.agents, agent_id)
        pipe.hdel(self.k.agents_status, agent_id)
        pipe.zrem(self.k.agents_expiry, agent_id)
        pipe.execute()
        self.event("leave", f"{agent_id} left", agent=agent_id)

    def agents(self) -> list[AgentRecord]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.k.agents)
        pipe.hgetall(self.k.agents_status)
        pipe.zrange(self.k.agents_expiry, 0, -1, withscores=True)
        pipe.time()
        infos, status, expiry, (sec, usec) = pipe.execute()
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
            rec["expires_ms"] = exp.get(aid, 0)
            rec["alive"] = exp.get(aid, 0) > now
            out.append(AgentRecord.model_validate(rec))
        return out
