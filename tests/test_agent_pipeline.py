"""The Pipeline alone, on a real board: a job prepared by the preparer thread while another "runs",
the waiting job re-applied onto a new leader at once (or retired when it is a machine idea that no
longer merges), and the job left waiting handed back on close."""

from __future__ import annotations

import time
from pathlib import Path

from agent_parts import AGENT, TRACK, Parts, establish_baseline, make_parts, move_leader_to

from swarm.agent.job import Job
from swarm.code.diff import make_patch, patch_hash
from swarm.models import HypothesisIn, State


def waiting_job(parts: Parts, files: dict[str, str], source: str) -> Job:
    """Claim a patch-carrying idea made on the current leader, implemented: a prepared job."""
    board = parts.board
    leader = board.leader(TRACK)
    assert leader is not None
    patch = make_patch(parts.code.files_of(leader.patch_hash), files)
    board.post(HypothesisIn(text=f"idea {source} {patch_hash(patch)[:8]}", track=TRACK, source=source,
                            patch=patch, meta={"base": leader.patch_hash}, priority=998))
    claim = parts.source.claim()
    assert claim is not None
    job = parts.source.implement(Job(claim.hypothesis, claim.token, leader))
    assert not job.invalid
    return job


def test_a_prepared_job_follows_the_leader_while_the_gpu_is_busy(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    pipeline = parts.pipeline()
    establish_baseline(parts)
    base = parts.baseline_files()["train.py"]
    # A prepared edit of X; then the leader moves to a change of Y: the slot is re-applied at once.
    job = waiting_job(parts, {"train.py": base.replace("X = 0.2 ", "X = 0.5 ")}, "human")
    pipeline.put(job)
    gen2 = move_leader_to(parts, {"train.py": base.replace("Y = 0.8 ", "Y = 0.4 ")}, 1.05)
    pipeline.refresh()
    again = pipeline.waiting()
    assert again is not None and again.hyp.id == job.hyp.id
    assert again.parent == gen2 and not again.invalid
    assert "X = 0.5 " in again.files["train.py"] and "Y = 0.4 " in again.files["train.py"]
    assert pipeline.close() is again  # what was waiting goes back to the caller (to release its claim)
    # A machine idea that now conflicts (the leader changed the same line) is retired, not run as invalid.
    idea = waiting_job(parts, {"train.py": base.replace("Y = 0.8 ", "Y = 0.45")}, "classical")
    pipeline.put(idea)
    move_leader_to(parts, {"train.py": base.replace("Y = 0.8 ", "Y = 0.35")}, 1.0)
    pipeline.refresh()
    assert pipeline.waiting() is None
    assert parts.board.get(idea.hyp.id).state == State.CANCELLED
    assert idea.hyp.id not in parts.leases.held()


def test_the_preparer_thread_fills_the_slot_while_a_job_runs(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    establish_baseline(parts)
    for i in range(3):
        parts.board.post(HypothesisIn(text=f"human idea {i}: set X to 0.{i + 3}", track=TRACK, priority=10,
                                      patch=make_patch(parts.baseline_files(), parts.edited(0.3 + i / 10))))
    pipeline = parts.pipeline()
    pipeline.start()
    try:
        first = pipeline.take()  # waits for the preparer
        assert first is not None and not first.invalid
        deadline = time.monotonic() + 10
        while pipeline.waiting() is None and time.monotonic() < deadline:  # the next one, while "running"
            time.sleep(0.05)
        second = pipeline.waiting()
        assert second is not None and second.hyp.id != first.hyp.id
        held = parts.leases.held()
        assert {first.hyp.id, second.hyp.id} <= set(held)  # both claims are held and renewed
        claimed = {h.id: h.claimed_by for h in parts.board.list_hypotheses(state="claimed", limit=10)}
        assert claimed[first.hyp.id] == claimed[second.hyp.id] == AGENT
    finally:
        left = pipeline.close()
    assert pipeline.thread is not None and not pipeline.thread.is_alive()
    assert left is not None and left.hyp.id == second.hyp.id


def test_without_a_pipeline_take_prepares_inline(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    pipeline = parts.pipeline(enabled=False)
    pipeline.start()  # no thread
    assert pipeline.thread is None
    job = pipeline.take()  # a fresh track: a baseline seed
    assert job is not None and job.kind == "baseline" and job.parent is None
