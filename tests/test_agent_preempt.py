"""Urgent work takes a run that has just started (swarm/agent/preempt.py): the board announces urgent
posts on its urgent channel, an agent whose exploration is young claims the urgent job and only then
stops its run, the urgent job runs first and the stopped exploration right after, on the same claim.
A real board, a real arena subprocess, and real Agents with their watcher threads."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest
from agent_parts import SYNTH, TRACK, Parts, establish_baseline, make_parts, publish

from swarm import defaults
from swarm.agent.executor import PREEMPTED, Executor
from swarm.agent.job import Job
from swarm.agent.loop import Agent, AgentOptions
from swarm.agent.preempt import Preemptor
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, make_patch
from swarm.experiment.runner import Cancel, RunOutcome
from swarm.models import HypothesisIn, Kind, State
from swarm.proposers.classical import ClassicalProposer
from swarm.proposers.select import Selector


def executor(parts: Parts, tmp_path: Path, budget_s: float) -> Executor:
    seat = parts.seat
    return Executor(seat.ws, seat.manifest, profile=seat.profile, budget_s=budget_s, device="cpu", gpu="cpu",
                    runs_dir=tmp_path / "runs", editable=seat.settings.editable, stop=parts.stop,
                    context=parts.source.context, ledger=parts.ledger)


def post_confirmation(parts: Parts, of: str, x: float, seed: int) -> str:
    """A confirmation of the candidate `of` (code X = x) with `seed`, as its author's promoter posts it."""
    patch = make_patch(parts.baseline_files(), parts.edited(x))
    hid, _ = parts.board.post(HypothesisIn(text=f"confirm {of[:8]} with seed {seed}", track=TRACK, kind=Kind.CONFIRM,
                                           patch=patch, parent=of, seed=seed, author="agent-b",
                                           priority=defaults.PRIORITY_CONFIRM))
    return hid


def run_in_thread(ex: Executor, job: Job) -> tuple[threading.Thread, list[RunOutcome]]:
    out: list[RunOutcome] = []
    t = threading.Thread(target=lambda: out.append(ex.run(job)))
    t.start()
    deadline = time.monotonic() + 10
    while ex.running is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ex.running is not None and ex.running.job is job
    return t, out


def test_urgent_posts_are_announced_on_the_urgent_channel(redis_url: str, swarm_name: str) -> None:
    board = Board.connect(redis_url, swarm_name)
    with board.r.pubsub(ignore_subscribe_messages=True) as ps:
        ps.subscribe(board.urgent_channel())
        time.sleep(0.1)
        board.post(HypothesisIn(text="a guess", track=TRACK, priority=50))  # not urgent: nothing said
        board.post(HypothesisIn(text="a confirmation", track=TRACK, priority=defaults.PRIORITY_CONFIRM))
        board.post(HypothesisIn(text="a confirmation", track=TRACK, priority=defaults.PRIORITY_CONFIRM))  # a dup
        board.post(HypothesisIn(text="a human's urgent idea", priority=defaults.PRIORITY_BASELINE))  # any track
        heard = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            msg = ps.get_message(timeout=0.2)
            if msg is not None:
                heard.append(msg["data"])
    assert heard == [TRACK.encode(), b""]


def test_a_young_exploration_gives_its_gpu_to_a_confirmation_and_runs_right_after(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    leader = establish_baseline(parts)
    patch = make_patch(parts.baseline_files(), parts.edited(0.5))
    parts.board.post(HypothesisIn(text="X to 0.5", track=TRACK, priority=5, patch=patch, meta={"base": EMPTY_PATCH}))
    pipeline = parts.pipeline(enabled=False)
    job = parts.source.prepare()
    assert job is not None and job.kind == Kind.EXPLORE and job.parent == leader
    ex = executor(parts, tmp_path, budget_s=20.0)  # a real arena run that would take 20 s
    preemptor = Preemptor(pipeline, ex, parts.metrics)
    t, out = run_in_thread(ex, job)

    assert preemptor.urgent_posted() is None  # nothing urgent is open: the run goes on
    cand = publish(parts, parts.edited(0.6), 1.40, parent=leader.patch_hash)
    confirm_id = post_confirmation(parts, cand, 0.6, seed=1)
    urgent = preemptor.urgent_posted()
    assert urgent is not None and urgent.hyp.id == confirm_id and urgent.kind == Kind.CONFIRM
    t.join(timeout=10)  # killed, not run for 20 s
    assert not t.is_alive() and out == [PREEMPTED]
    assert parts.metrics.registry.get_sample_value("swarm_preemptions_total", {"track": TRACK}) == 1
    # the exploration keeps its claim (and its code): nothing of it was published
    assert job.hyp.id in parts.leases.held() and parts.board.get(job.hyp.id).state == State.CLAIMED
    assert not any(r.hypothesis_id == job.hyp.id for r in parts.board.results(limit=50))
    pipeline.put_front(job)  # what the agent's loop does with PREEMPTED
    assert pipeline.take() is urgent and pipeline.take() is job  # the confirmation first, then the exploration
    # With the preparer's pipeline, urgent work still open goes before the stopped exploration too, and
    # the exploration stays first in line behind it (not in the slot, where the prepared job waits).
    piped = parts.pipeline()
    piped.put_front(job)
    second = post_confirmation(parts, cand, 0.6, seed=2)
    assert (u := piped.take()) is not None and u.hyp.id == second
    assert piped.take() is job


def test_an_old_run_or_an_urgent_one_is_not_preempted(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    leader = establish_baseline(parts)
    cand = publish(parts, parts.edited(0.6), 1.40, parent=leader.patch_hash)
    first = post_confirmation(parts, cand, 0.6, seed=1)
    ex = executor(parts, tmp_path, budget_s=20.0)
    preemptor = Preemptor(parts.pipeline(enabled=False), ex, parts.metrics)
    confirm = parts.source.urgent()  # a confirmation running is never stopped
    assert confirm is not None and confirm.hyp.id == first
    t, out = run_in_thread(ex, confirm)
    post_confirmation(parts, cand, 0.6, seed=2)
    assert preemptor.urgent_posted() is None
    monkeypatch.setattr(defaults, "PREEMPT_WITHIN", 0.0)  # off: an exploration is not stopped either
    ex.running.job.hyp.kind = Kind.EXPLORE  # type: ignore[union-attr]
    assert preemptor.urgent_posted() is None
    monkeypatch.setattr(defaults, "PREEMPT_WITHIN", 0.001)  # 20 ms of a 20 s budget: the run is past it
    time.sleep(0.1)
    assert preemptor.urgent_posted() is None
    assert [h.seed for h in parts.board.list_hypotheses(state=State.OPEN, limit=10)] == [2]  # nothing claimed
    parts.stop.set()
    t.join(timeout=10)
    assert out and out[0] is not PREEMPTED  # stopped by the agent's stop: not a preemption


def slow_sim(arena_dir: Path, files: dict[str, str], seed: int, budget_s: float, cancel: Cancel) -> RunOutcome:
    """The synthetic bowl of X and Y with seeded noise, in `budget_s`; a cancelled run has no metric."""
    code = files["train.py"]
    x, y = (float(re.search(rf"^{n} = ([0-9.]+)", code, re.M).group(1)) for n in ("X", "Y"))  # type: ignore[union-attr]
    if cancel.wait(budget_s):
        return RunOutcome("crash", None, budget_s, {}, "cancelled")
    noise = (hash((seed, code)) % 1000 - 500) / 500 * 0.002
    return RunOutcome("ok", (x - 0.7) ** 2 + (y - 0.3) ** 2 + 1.0 + noise, budget_s, {})


def test_agents_preempt_young_explorations_for_confirmations_and_lose_nothing(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two real Agents (their watchers hear the urgent channel): a candidate's confirmations stop the
    other agent's exploration that has just started; that exploration runs again, and no stopped run is
    ever published."""
    monkeypatch.setattr(defaults, "PREEMPT_WITHIN", 0.5)  # the first half of a 1 s run
    caplog.set_level(logging.INFO, logger="swarm.agent.preempt")
    board = Board.connect(redis_url, swarm_name)
    agents = []
    for i in range(2):
        props = [ClassicalProposer(seed=i)]
        opts = AgentOptions(workdir=tmp_path / f"a{i}", arena=SYNTH, track=TRACK, runner=slow_sim, budget_s=1.0,
                            max_experiments=16)
        agents.append(Agent(board, opts, props, Selector(props, [1.0])))
    threads = [threading.Thread(target=a.run) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    stopped = re.findall(r"stopped (\w+) [0-9.]+ s into its run for confirm", caplog.text)
    counted = sum(a.metrics.registry.get_sample_value("swarm_preemptions_total", {"track": TRACK}) or 0
                  for a in agents)
    assert stopped and counted == len(stopped)
    results = board.results(limit=500)
    assert not any(r.error == "cancelled" or "preempted" in r.error for r in results)  # never published
    assert len(results) == sum(a.ran for a in agents)
    for hid in stopped:  # ran again (published once), or back on the board (its agent stopped first), or
        # retired (a classical idea that no longer merges onto the leader its run's confirmation made)
        runs = [r for r in results if r.hypothesis_id == hid]
        assert len(runs) == 1 or (not runs and board.get(hid).state in (State.OPEN, State.CANCELLED)), (hid, runs)
    leader = board.leader(TRACK)
    assert leader is not None and leader.generation >= 2  # confirmed moves happened
