"""Choosing a proposer per experiment (fixed weights or a cost-aware bandit), and each proposer's health.

    sel = Selector(proposers, weights=[s.weight for s in specs], bandit=False, seed=agent_seed)
    p = sel.choose(need_implement=True, avoid={"openai:x"})   # healthy, can implement, not one that failed
    ...
    sel.succeeded(p.name, IMPLEMENT) / sel.failed(p.name, reason, IMPLEMENT)   # health (health.py)
    sel.record(p.name, improved=kept, delta=gain, cost_usd=...)  # a finished experiment, for the bandit
    sel.charge(p.name, cost_usd)                                 # a failed call's cost, for the bandit

Weights: a seeded weighted draw among the eligible proposers: weight > 0, healthy in the role asked
(not backing off or paused: `Health.ready`; health is kept per role, ideation and implementation, and an
implementer that may not implement now is not asked for ideas either), able to implement free text when
`need_implement`. `avoid` (the proposers that
already failed to implement this hypothesis) is honoured when another eligible proposer exists.

Bandit (`bandit=True`): Thompson sampling on improvement per dollar. Each arm keeps a Beta posterior
on its improvement rate (results kept, i.e. better than the leader they started from by the screening
threshold, over experiments run); a draw from it is divided by the arm's mean cost per experiment plus
`cost_floor_usd`, the GPU time every experiment burns whatever proposed it (without it the free
classical arm would always win). While any eligible arm has fewer than `min_obs` experiments the
configured weights decide, so thin data never overrides the user's choice. The counts live in an
`ArmStore`: in memory by default; the agent gives the board's, shared by every agent of its track and
kept across restarts.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from swarm.defaults import PROPOSER_BANDIT_COST_FLOOR_USD, PROPOSER_BANDIT_MIN_OBS
from swarm.errors import ProposerError, UserError
from swarm.proposers.base import Proposer, source_label
from swarm.proposers.health import BACKOFF, HEALTHY, PAUSED, Health, HealthPolicy, HealthState

IDEATE, IMPLEMENT = "ideate", "implement"  # the roles a proposer's health is kept for (repair: implement)
ROLES = (IDEATE, IMPLEMENT)


@dataclass
class ArmStats:
    runs: int = 0
    improved: int = 0
    delta_sum: float = 0.0
    cost_usd: float = 0.0

    @property
    def mean_cost_usd(self) -> float:
        return self.cost_usd / self.runs if self.runs else self.cost_usd


class ArmStore(Protocol):
    """Where the bandit's counts live (the agent's: the board's `arms:t=<track>`)."""

    def load(self) -> dict[str, ArmStats]: ...

    def add(self, name: str, runs: int, improved: int, delta: float, cost_usd: float) -> None: ...


class MemoryArms:
    def __init__(self) -> None:
        self.stats: dict[str, ArmStats] = {}
        self._lock = threading.Lock()

    def load(self) -> dict[str, ArmStats]:
        with self._lock:
            return {n: ArmStats(s.runs, s.improved, s.delta_sum, s.cost_usd) for n, s in self.stats.items()}

    def add(self, name: str, runs: int, improved: int, delta: float, cost_usd: float) -> None:
        with self._lock:
            s = self.stats.setdefault(name, ArmStats())
            s.runs += runs
            s.improved += improved
            s.delta_sum += delta
            s.cost_usd += cost_usd


class Selector:
    def __init__(
        self,
        proposers: Sequence[Proposer],
        weights: Sequence[float],
        bandit: bool = False,
        seed: int | None = None,
        min_obs: int = PROPOSER_BANDIT_MIN_OBS,
        cost_floor_usd: float = PROPOSER_BANDIT_COST_FLOOR_USD,
        health: HealthPolicy | None = None,
    ) -> None:
        if not proposers:
            raise UserError("at least one proposer is needed")
        if len(weights) != len(proposers):
            raise UserError(f"{len(proposers)} proposers but {len(weights)} weights")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise UserError("proposer weights must be >= 0 and not all zero")
        self.proposers = list(proposers)
        self.weights = [float(w) for w in weights]
        self.bandit = bandit
        self.min_obs = min_obs
        self.cost_floor_usd = cost_floor_usd
        self.rng = random.Random(seed)
        # one Health per role: a model that ideates well but whose edits never apply must not have its
        # implementation failures wiped by every good ideation (it would be tried forever)
        self.health = {
            p.name: {role: Health(p.name, health, rng=random.Random(self.rng.random())) for role in ROLES}
            for p in self.proposers
        }
        self.arms: ArmStore = MemoryArms()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.proposers]

    def name_of(self, label: str) -> str | None:
        """Our proposer behind a result's or hypothesis' source label (`llm:anthropic/x` or its name)."""
        for p in self.proposers:
            if label in (p.name, source_label(p.name)):
                return p.name
        return None

    def _eligible(self, need_implement: bool) -> list[int]:
        return [i for i, p in enumerate(self.proposers) if self.weights[i] > 0 and self._ready(p, need_implement)]

    def _ready(self, p: Proposer, need_implement: bool) -> bool:
        impl = self.health[p.name][IMPLEMENT]
        if need_implement:
            return p.can_implement and impl.ready()
        # an implementer that may not implement now is not asked for ideas either: its ideas are text
        # that needs an implementation (asked anyway, a model whose edits fail but whose ideas parse
        # would be called every few seconds for ideas nobody here can run)
        return self.health[p.name][IDEATE].ready() and not (p.can_implement and not impl.ready())

    def can_implement_now(self) -> bool:
        """Whether some proposer could implement a free-text hypothesis now (a paused LLM claims none)."""
        return bool(self._eligible(need_implement=True))

    def choose(self, need_implement: bool, avoid: Iterable[str] = ()) -> Proposer:
        """A proposer for the next call; ProposerError when none is eligible right now."""
        idx = self._eligible(need_implement)
        if not idx:
            what = "that can implement a hypothesis " if need_implement else ""
            raise ProposerError(f"no proposer {what}is available now (backing off, paused, or none configured)")
        avoid = set(avoid)
        fresh = [i for i in idx if self.proposers[i].name not in avoid]
        idx = fresh or idx
        if self.bandit:
            stats = self.arms.load()
            if all(stats.get(self.proposers[i].name, ArmStats()).runs >= self.min_obs for i in idx):
                return self.proposers[max(idx, key=lambda i: self._sample(stats[self.proposers[i].name]))]
        return self.proposers[self.rng.choices(idx, weights=[self.weights[i] for i in idx])[0]]

    def _sample(self, s: ArmStats) -> float:
        rate = self.rng.betavariate(1 + s.improved, 1 + max(0, s.runs - s.improved))
        return rate / (s.mean_cost_usd + self.cost_floor_usd)

    # --- what happened -------------------------------------------------------------------------------
    def succeeded(self, name: str, role: str) -> bool:
        """A call of `name` in `role` (IDEATE, IMPLEMENT: repairs too) worked; True when that ended a run
        of failures in that role."""
        roles = self.health.get(name)
        return roles[role].ok() if roles is not None else False

    def failed(self, name: str, reason: str, role: str) -> HealthState | None:
        """A call of `name` in `role` failed for reasons of the proposer; its health (None: not ours)."""
        roles = self.health.get(name)
        if roles is None:
            return None
        roles[role].failed(f"{role}: {reason}")
        return self.state(name)

    def state(self, name: str) -> HealthState:
        """The worse of the proposer's roles (paused over backoff over healthy; the later try on a tie)."""
        states = [h.state() for h in self.health[name].values()]
        rank = {HEALTHY: 0, BACKOFF: 1, PAUSED: 2}
        return max(states, key=lambda s: (rank[s.state], s.until))

    def record(self, name: str, improved: bool, delta: float, cost_usd: float) -> None:
        """One finished experiment of proposer `name` (unknown names are ignored: a proposer removed
        since the experiment started)."""
        if name in self.health:
            self.arms.add(name, 1, int(improved), delta, max(0.0, cost_usd))

    def charge(self, name: str, cost_usd: float) -> None:
        """The cost of calls that produced no experiment (failed ideation or implementation)."""
        if name in self.health and cost_usd > 0:
            self.arms.add(name, 0, 0, 0.0, cost_usd)
