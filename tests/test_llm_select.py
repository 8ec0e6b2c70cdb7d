"""Choosing a proposer per experiment: weights and the cost-aware bandit (swarm.proposers.select)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from swarm.errors import ProposerError, UserError
from swarm.proposers.select import Selector


@dataclass
class Arm:
    name: str
    can_implement: bool = True
    up: bool = True

    def available(self) -> bool:
        return self.up


def picks(sel: Selector, n: int, need_implement: bool = False) -> Counter[str]:
    return Counter(sel.choose(need_implement).name for _ in range(n))


def test_weights_shape_the_draw_and_seed_repeats() -> None:
    arms = [Arm("classical", can_implement=False), Arm("llm")]
    got = picks(Selector(arms, [0.7, 0.3], seed=5), 2000)  # type: ignore[arg-type]
    assert 0.65 < got["classical"] / 2000 < 0.75
    again = picks(Selector(arms, [0.7, 0.3], seed=5), 2000)  # type: ignore[arg-type]
    assert got == again


def test_need_implement_and_paused_are_skipped() -> None:
    arms = [Arm("classical", can_implement=False), Arm("a"), Arm("b", up=False)]
    sel = Selector(arms, [10, 1, 1], seed=0)  # type: ignore[arg-type]
    assert set(picks(sel, 50, need_implement=True)) == {"a"}
    arms[1].up = False
    with pytest.raises(ProposerError, match="no proposer that can implement"):
        sel.choose(need_implement=True)
    assert set(picks(sel, 20)) == {"classical"}


def test_bandit_falls_back_to_weights_while_data_is_thin() -> None:
    arms = [Arm("cheap"), Arm("pricey")]
    sel = Selector(arms, [0.0001, 1.0], bandit=True, seed=1, min_obs=5)  # type: ignore[arg-type]
    for _ in range(10):
        sel.record("pricey", improved=False, delta=0.0, cost_usd=1.0)
    for _ in range(4):  # "cheap" has 4 < 5 observations: weights still decide
        sel.record("cheap", improved=True, delta=-0.01, cost_usd=0.001)
    assert picks(sel, 200)["pricey"] > 190


def test_bandit_prefers_improvement_per_dollar() -> None:
    arms = [Arm("cheap_good"), Arm("pricey_bad"), Arm("pricey_good")]
    sel = Selector(arms, [1, 1, 1], bandit=True, seed=2, min_obs=5, cost_floor_usd=0.1)  # type: ignore[arg-type]
    for i in range(30):
        sel.record("cheap_good", improved=i % 3 == 0, delta=-0.01, cost_usd=0.01)
        sel.record("pricey_bad", improved=i % 10 == 0, delta=0.0, cost_usd=0.5)
        sel.record("pricey_good", improved=i % 3 == 0, delta=-0.01, cost_usd=2.0)
    got = picks(sel, 500)
    assert got["cheap_good"] > 400, got
    sel.record("ghost", improved=True, delta=-1.0, cost_usd=0.0)  # unknown names are ignored


def test_bad_selector_arguments() -> None:
    with pytest.raises(UserError):
        Selector([], [])
    with pytest.raises(UserError):
        Selector([Arm("a")], [1, 2])  # type: ignore[list-item]
    with pytest.raises(UserError):
        Selector([Arm("a")], [0])  # type: ignore[list-item]
