"""Choosing a proposer per experiment: weights and the cost-aware bandit (swarm.proposers.select)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from swarm.errors import ProposerError, UserError
from swarm.proposers.health import Health, HealthPolicy
from swarm.proposers.select import IDEATE, IMPLEMENT, Selector


@dataclass
class Arm:
    name: str
    can_implement: bool = True


def picks(sel: Selector, n: int, need_implement: bool = False) -> Counter[str]:
    return Counter(sel.choose(need_implement).name for _ in range(n))


def test_weights_shape_the_draw_and_seed_repeats() -> None:
    arms = [Arm("classical", can_implement=False), Arm("llm")]
    got = picks(Selector(arms, [0.7, 0.3], seed=5), 2000)  # type: ignore[arg-type]
    assert 0.65 < got["classical"] / 2000 < 0.75
    again = picks(Selector(arms, [0.7, 0.3], seed=5), 2000)  # type: ignore[arg-type]
    assert got == again


def test_need_implement_backing_off_and_avoid() -> None:
    arms = [Arm("classical", can_implement=False), Arm("a"), Arm("b")]
    sel = Selector(arms, [10, 1, 1], seed=0)  # type: ignore[arg-type]
    assert sel.failed("b", "HTTP 500", IMPLEMENT).state == "backoff"  # type: ignore[union-attr]
    assert set(picks(sel, 50, need_implement=True)) == {"a"}
    assert sel.can_implement_now()
    sel.failed("a", "connection refused", IMPLEMENT)
    with pytest.raises(ProposerError, match="no proposer that can implement"):
        sel.choose(need_implement=True)
    assert not sel.can_implement_now()
    # an implementer that may not implement now is asked for no ideas either (they would be its text)
    assert set(picks(sel, 200)) == {"classical"}
    for _ in range(2):
        sel.failed("a", "edits never apply", IMPLEMENT)
    assert sel.state("a").state == "paused" and "implement: edits never apply" in sel.state("a").reason
    sel.succeeded("b", IMPLEMENT)
    assert set(picks(sel, 200)) == {"classical", "b"}
    sel.failed("b", "prose", IDEATE)  # its ideas fail, its edits do not: it still implements
    assert set(picks(sel, 50)) == {"classical"} and sel.choose(True).name == "b"
    assert sel.succeeded("a", IMPLEMENT) and not sel.succeeded("a", IMPLEMENT)  # recovered once
    assert sel.state("a").state == "healthy"
    # a proposer that failed on a hypothesis is avoided for it while another can take it
    assert {sel.choose(True, avoid={"a"}).name for _ in range(30)} == {"b"}
    sel.failed("b", "x", IMPLEMENT)
    assert sel.choose(True, avoid={"a"}).name == "a"  # the only one left
    assert sel.name_of("llm:z/z") is None and sel.name_of("llm:a/a") == sel.name_of("a") == "a"
    assert sel.name_of("classical") == "classical"


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
    assert "ghost" not in sel.arms.load()


def test_health_backs_off_then_pauses_then_probes() -> None:
    now = [0.0]
    policy = HealthPolicy(backoff_s=10, pause_after=3, pause_s=300, pause_max_s=1200, jitter=0.0)
    h = Health("x", policy, clock=lambda: now[0])
    tries = []
    while now[0] < 3600:  # a proposer that fails every call, tried whenever it is ready
        if h.ready():
            tries.append(now[0])
            h.failed("HTTP 500")
        now[0] += 1
    assert tries[:4] == [0, 10, 30, 330] and h.state().state == "paused"
    assert [b - a for a, b in itertools.pairwise(tries[3:])] == [600, 1200, 1200]
    assert len([t for t in tries if t < 300]) == 3
    assert h.ok() and h.state().state == "healthy" and h.ready()


def test_jitter_spreads_agents() -> None:
    waits = set()
    for seed in range(5):
        h = Health("x", HealthPolicy(backoff_s=10), clock=lambda: 0.0, rng=random.Random(seed))
        waits.add(round(h.failed("down").until, 3))
    assert len(waits) == 5 and all(8 <= w <= 12 for w in waits)


def test_bad_selector_arguments() -> None:
    with pytest.raises(UserError):
        Selector([], [])
    with pytest.raises(UserError):
        Selector([Arm("a")], [1, 2])  # type: ignore[list-item]
    with pytest.raises(UserError):
        Selector([Arm("a")], [0])  # type: ignore[list-item]
