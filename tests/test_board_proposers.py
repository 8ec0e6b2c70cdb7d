"""The board's proposer records: a failed implementation gives the hypothesis back (counted only once
the failing proposer implemented other work since), reopen, usage totals with failed calls, health per
agent, and the bandit's shared arms."""

from __future__ import annotations

import pytest
import redis

from swarm.board import Board, HypothesisIn, State
from swarm.errors import NotFound, UserError
from swarm.models import AgentInfo, ProposerHealth

TRACK = "cpu:2c"


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Board:
    return Board(redis.Redis.from_url(redis_url), swarm_name)


def post(board: Board, text: str) -> str:
    hid, _ = board.post(HypothesisIn(text=text, source="human", author="me", track=TRACK))
    return hid


def test_an_outage_never_uses_a_hypothesis_up(board: Board) -> None:
    hid = post(board, "Halve the batch size")
    for i in range(10):  # a proposer that fails on everything: nothing counts
        c = board.claim("a1", TRACK)
        assert c is not None and c.hypothesis.id == hid
        assert c.hypothesis.failed_proposers == ({"llm:x"} if i else set())
        assert board.give_back(hid, c.token, "llm:x", f"connection refused {i}") == (State.OPEN, 0)
    h = board.get(hid)
    assert h.state == State.OPEN and h.attempts == 0 and len(h.failures) == 10
    assert h.failures[-1].reason == "connection refused 9" and not any(f.counted for f in h.failures)


def test_failures_count_once_the_proposer_implemented_other_work(board: Board) -> None:
    hid = post(board, "A bad idea")
    results = []
    for i in range(4):
        c = board.claim("a1", TRACK)
        assert c is not None
        results.append(board.give_back(hid, c.token, f"llm:{i % 2}", "edits never applied"))
        board.implemented(f"llm:{i % 2}")  # each proposer implements something else meanwhile
    # each giveback counts the earlier failures whose proposer implemented something since; the 4th
    # sees 3 counted = max_attempts
    assert results == [(State.OPEN, 0), (State.OPEN, 1), (State.OPEN, 2), (State.FAILED, 3)]
    h = board.get(hid)
    assert h.state == State.FAILED and [f.counted for f in h.failures] == [True, True, True, False]
    assert board.claim("a1", TRACK) is None
    assert any(e.kind == "giveback" and "failed" in e.text for e in board.events(50))


def test_a_given_back_hypothesis_goes_behind_the_others_of_its_priority(board: Board) -> None:
    first, second = post(board, "first"), post(board, "second")
    urgent = board.post(HypothesisIn(text="urgent", source="human", author="me", track=TRACK, priority=5))[0]
    c = board.claim("a1", TRACK)
    assert c is not None and c.hypothesis.id == urgent
    board.give_back(urgent, c.token, "llm:x", "down")
    c = board.claim("a1", TRACK)  # still first: its priority is higher
    assert c is not None and c.hypothesis.id == urgent
    board.give_back(urgent, c.token, "llm:x", "down")
    board.cancel(urgent)
    c = board.claim("a1", TRACK)
    assert c is not None and c.hypothesis.id == first
    board.give_back(first, c.token, "llm:x", "down")
    order = []
    while (c := board.claim("a1", TRACK)) is not None:
        order.append(c.hypothesis.id)
    assert order == [second, first]


def test_give_back_needs_the_current_token(board: Board) -> None:
    hid = post(board, "x")
    c = board.claim("a1", TRACK)
    assert c is not None
    assert board.give_back(hid, c.token + 1, "llm:x", "r") == (None, 0)
    assert board.get(hid).state == State.CLAIMED


def test_reopen_puts_failed_and_done_work_back(board: Board) -> None:
    hid = post(board, "y")
    for _ in range(4):  # the 4th giveback counts the 3 before it
        c = board.claim("a1", TRACK)
        assert c is not None
        board.give_back(hid, c.token, "llm:x", "bad")
        board.implemented("llm:x")
    assert board.get(hid).state == State.FAILED
    assert board.reopen(hid) == State.FAILED
    h = board.get(hid)
    assert h.state == State.OPEN and h.attempts == 0 and all(f.reopened for f in h.failures)
    assert h.failed_proposers == set()
    c = board.claim("a1", TRACK)
    assert c is not None and board.complete(hid, c.token)
    assert board.reopen(hid) == State.DONE and board.get(hid).state == State.OPEN
    with pytest.raises(UserError, match="is open"):
        board.reopen(hid)
    with pytest.raises(NotFound):
        board.reopen("h0000000000000000")


def test_usage_health_and_arms(board: Board) -> None:
    board.add_usage("anthropic:x", calls=2, failures=1, input_tokens=100, output_tokens=10, cost_usd=0.25)
    board.add_usage("anthropic:x", calls=1, failures=0, input_tokens=50, output_tokens=5, cost_usd=0.5)
    u = board.proposer_usage()["anthropic:x"]
    assert (u.calls, u.failures, u.input_tokens, u.output_tokens) == (3, 1, 150, 15)
    assert u.cost_usd == pytest.approx(0.75)

    board.register(AgentInfo(agent_id="a1", track=TRACK, proposers=["anthropic:x"]))
    board.set_health("a1", {"anthropic:x": ProposerHealth(state="paused", reason="HTTP 500", failures=3)})
    (rec,) = board.agents()
    assert rec.health["anthropic:x"].state == "paused" and rec.health["anthropic:x"].reason == "HTTP 500"
    board.set_health("a1", {})
    assert board.agents()[0].health == {}
    board.set_health("a1", {"anthropic:x": ProposerHealth(state="backoff")})
    board.deregister("a1")
    assert board.health() == {}

    board.add_arm(TRACK, "classical", runs=1, improved=1, delta=0.01, cost_usd=0.0)
    board.add_arm(TRACK, "classical", runs=1, improved=0, delta=-0.02, cost_usd=0.0)
    board.add_arm(TRACK, "anthropic:x", runs=0, improved=0, delta=0.0, cost_usd=0.3)
    arms = board.arms(TRACK)
    assert arms["classical"] == {"runs": 2, "improved": 1, "delta": pytest.approx(-0.01), "cost_usd": 0}
    assert arms["anthropic:x"]["cost_usd"] == pytest.approx(0.3) and board.arms("cpu:9c") == {}
