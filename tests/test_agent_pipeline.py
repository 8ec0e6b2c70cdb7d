"""The Pipeline alone, on a real board: a job prepared by the preparer thread while another "runs",
the waiting job re-applied onto a new leader at once (or retired when it is a machine idea that no
longer merges), the job left waiting handed back on close, and urgent work (a candidate's
confirmations) run ahead of the prepared job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from agent_parts import AGENT, TRACK, Parts, establish_baseline, make_parts, move_leader_to, publish

from swarm import defaults
from swarm.agent.job import Job
from swarm.code.diff import make_patch, patch_hash
from swarm.models import HypothesisIn, Kind, State


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


def test_a_candidates_confirmation_runs_before_the_prepared_exploration(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run ends with an exploration prepared while a candidate's confirmations wait: the confirmation
    runs now (on exactly the candidate's code), the exploration waits in its slot for the next run."""
    monkeypatch.setattr(defaults, "URGENT_FIRST", True)
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    pipeline = parts.pipeline()
    leader = establish_baseline(parts)
    base = parts.baseline_files()["train.py"]
    prepared = waiting_job(parts, {"train.py": base.replace("Y = 0.8 ", "Y = 0.6 ")}, "classical")
    pipeline.put(prepared)
    cand_files = {"train.py": base.replace("X = 0.2 ", "X = 0.5 ")}
    cand = publish(parts, cand_files, 1.40, parent=leader.patch_hash)
    parts.promoter.on_result(parts.board.result(cand))  # its confirmations are posted
    job = pipeline.take()
    assert job is not None and job.kind == Kind.CONFIRM and job.hyp.parent == cand
    assert job.files == cand_files and not job.invalid and job.parent == leader
    assert pipeline.waiting() is prepared and {job.hyp.id, prepared.hyp.id} <= set(parts.leases.held())
    assert pipeline.running is job
    # The next run: another confirmation is still waiting, so it goes first again; with none left,
    # the prepared exploration runs.
    assert (second := pipeline.take()) is not None and second.kind == Kind.CONFIRM and second.hyp.id != job.hyp.id
    assert (third := pipeline.take()) is not None and third.kind == Kind.CONFIRM
    assert pipeline.take() is prepared
    # With the setting off (the default), the prepared job runs first.
    monkeypatch.setattr(defaults, "URGENT_FIRST", False)
    cand2 = publish(parts, {"train.py": base.replace("X = 0.2 ", "X = 0.6 ")}, 1.41, parent=leader.patch_hash)
    parts.promoter.on_result(parts.board.result(cand2))
    later = waiting_job(parts, {"train.py": base.replace("Y = 0.8 ", "Y = 0.7 ")}, "classical")
    pipeline.put(later)
    assert pipeline.take() is later


def test_the_preparer_leaves_a_confirmation_for_the_first_free_gpu(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preparer fills a slot that runs only after the current run: with urgent work first it claims
    no confirmation, so the first agent whose run ends takes it (even one whose slot is empty)."""
    monkeypatch.setattr(defaults, "URGENT_FIRST", True)
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    pipeline = parts.pipeline()
    leader = establish_baseline(parts)
    base = parts.baseline_files()["train.py"]
    cand = publish(parts, {"train.py": base.replace("X = 0.2 ", "X = 0.5 ")}, 1.40, parent=leader.patch_hash)
    parts.promoter.on_result(parts.board.result(cand))  # 3 confirmations, priority 900, open
    idea = make_patch(parts.baseline_files(), {"train.py": base.replace("Y = 0.8 ", "Y = 0.6 ")})
    parts.board.post(HypothesisIn(text="a human idea", track=TRACK, priority=10, patch=idea))
    prepared = pipeline.prepare()  # what the preparer thread does while a run goes on
    assert prepared is not None and prepared.kind == Kind.EXPLORE and prepared.hyp.text == "a human idea"
    open_confirms = [h for h in parts.board.list_hypotheses(state="open", limit=20) if h.kind == Kind.CONFIRM]
    assert len(open_confirms) == 3
    pipeline.put(prepared)
    first = pipeline.take()  # the run ended: the confirmation now, the idea in the slot
    assert first is not None and first.kind == Kind.CONFIRM and pipeline.waiting() is prepared
    assert pipeline.take() is not None and pipeline.take() is not None  # the other two confirmations
    assert pipeline.take() is prepared
    # An agent with nothing prepared (its preparer found nothing below urgent) still takes urgent work.
    cand2 = publish(parts, {"train.py": base.replace("X = 0.2 ", "X = 0.6 ")}, 1.41, parent=leader.patch_hash)
    parts.promoter.on_result(parts.board.result(cand2))
    assert pipeline.waiting() is None
    job = pipeline.take()
    assert job is not None and job.kind == Kind.CONFIRM and job.hyp.parent == cand2
    # With the setting off, the preparer takes the confirmation like anything else.
    monkeypatch.setattr(defaults, "URGENT_FIRST", False)
    again = pipeline.prepare()
    assert again is not None and again.kind == Kind.CONFIRM and again.hyp.parent == cand2


def test_a_board_error_while_asking_for_urgent_work_keeps_the_prepared_job(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "URGENT_FIRST", True)
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    pipeline = parts.pipeline()
    establish_baseline(parts)
    prepared = waiting_job(parts, parts.edited(0.4), "classical")
    pipeline.put(prepared)

    def down() -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(parts.source, "urgent", down)
    with pytest.raises(redis.ConnectionError):
        pipeline.take()
    assert pipeline.waiting() is prepared  # the main loop backs off; the job is taken at the next try
