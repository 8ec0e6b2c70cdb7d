"""Choosing a proposer per experiment: fixed weights, or a cost-aware bandit.

    sel = Selector(proposers, weights=[s.weight for s in specs], bandit=False, seed=agent_seed)
    p = sel.choose(need_implement=True)     # a proposer that can implement free-text hypotheses
    ...
    sel.record(p.name, improved=promoted, delta=delta, cost_usd=usage.cost_usd)

Weights: a seeded weighted draw among the eligible proposers (paused ones, whose `available()` is
False, and, when `need_implement`, those with `can_implement = False` are skipped).

Bandit (`bandit=True`): Thompson sampling on improvement per dollar. Each arm keeps a Beta posterior
on its improvement rate (promoted / run); a draw from it is divided by the arm's mean cost per
experiment plus `cost_floor_usd`, the GPU time every experiment burns whatever proposed it (without
it the free classical arm would always win). While any eligible arm has fewer than `min_obs`
observations the configured weights decide, so thin data never overrides the user's choice.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from swarm.defaults import PROPOSER_BANDIT_COST_FLOOR_USD, PROPOSER_BANDIT_MIN_OBS
from swarm.errors import ProposerError, UserError
from swarm.proposers.base import Proposer


@dataclass
class ArmStats:
    runs: int = 0
    improved: int = 0
    delta_sum: float = 0.0
    cost_usd: float = 0.0

    @property
    def mean_cost_usd(self) -> float:
        return self.cost_usd / self.runs if self.runs else 0.0


def _available(p: Proposer) -> bool:
    check = getattr(p, "available", None)
    return bool(check()) if callable(check) else True


class Selector:
    def __init__(
        self,
        proposers: Sequence[Proposer],
        weights: Sequence[float],
        bandit: bool = False,
        seed: int | None = None,
        min_obs: int = PROPOSER_BANDIT_MIN_OBS,
        cost_floor_usd: float = PROPOSER_BANDIT_COST_FLOOR_USD,
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
        self.stats = {p.name: ArmStats() for p in self.proposers}

    def _eligible(self, need_implement: bool) -> list[int]:
        return [
            i
            for i, p in enumerate(self.proposers)
            if self.weights[i] > 0 and (p.can_implement or not need_implement) and _available(p)
        ]

    def choose(self, need_implement: bool) -> Proposer:
        """A proposer for the next experiment; ProposerError when none is eligible right now."""
        idx = self._eligible(need_implement)
        if not idx:
            what = "that can implement a hypothesis " if need_implement else ""
            raise ProposerError(f"no proposer {what}is available (all paused or none configured)")
        if self.bandit and all(self.stats[self.proposers[i].name].runs >= self.min_obs for i in idx):
            return self.proposers[max(idx, key=self._sample)]
        return self.proposers[self.rng.choices(idx, weights=[self.weights[i] for i in idx])[0]]

    def _sample(self, i: int) -> float:
        s = self.stats[self.proposers[i].name]
        rate = self.rng.betavariate(1 + s.improved, 1 + s.runs - s.improved)
        return rate / (s.mean_cost_usd + self.cost_floor_usd)

    def record(self, name: str, improved: bool, delta: float, cost_usd: float) -> None:
        """One finished experiment of proposer `name` (unknown names are ignored: a proposer removed
        since the experiment started)."""
        s = self.stats.get(name)
        if s is None:
            return
        s.runs += 1
        s.improved += int(improved)
        s.delta_sum += delta
        s.cost_usd += max(0.0, cost_usd)
