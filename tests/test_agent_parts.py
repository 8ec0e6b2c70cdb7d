"""The agent's small parts alone, on a real board: Leases (held, renewed, lost, released), the Outbox
(kept on disk first, delivered in order, kept through a Redis outage, a bad line set aside), the
Publisher (a result through the outbox to the board and on to the promoter), the CodeCache and Peers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from agent_parts import AGENT, TRACK, establish_baseline, make_parts

from swarm import defaults
from swarm.agent.code_cache import CodeCache
from swarm.agent.job import Job
from swarm.agent.leases import Leases
from swarm.agent.outbox import Outbox
from swarm.agent.peers import Peers
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, make_patch, patch_hash
from swarm.experiment.runner import RunOutcome
from swarm.models import AgentInfo, HypothesisIn, Kind, State, Status


def test_leases_renew_what_is_held_and_report_what_was_lost(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board = parts.board
    for i in range(3):
        board.post(HypothesisIn(text=f"idea {i}", track=TRACK))
    leases = Leases(board, lease_s=2.0)
    claims = [board.claim(AGENT, TRACK, lease_s=2.0) for _ in range(3)]
    for c in claims:
        assert c is not None
        leases.hold(c.hypothesis.id, c.token)
    lost_one = claims[2]
    assert lost_one is not None
    board.cancel(lost_one.hypothesis.id)  # its token is revoked: renewing it must fail
    time.sleep(1.2)
    assert leases.renew() == [lost_one.hypothesis.id]
    assert set(leases.held()) == {c.hypothesis.id for c in claims[:2] if c}
    time.sleep(1.0)  # past the first deadline (2 s), before the renewed one (3.2 s)
    assert board.reap() == 0
    assert leases.release_all() == 2 and leases.held() == {}
    assert {board.get(c.hypothesis.id).state for c in claims[:2] if c} == {State.OPEN}


def test_outbox_keeps_results_through_a_board_outage_and_sets_bad_lines_aside(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    delivered: list[int] = []
    down_at = {2}

    def deliver(entry: dict[str, Any]) -> None:
        if entry["n"] in down_at:
            raise redis.exceptions.ConnectionError("Connection refused")
        delivered.append(entry["n"])

    for n in range(4):
        outbox.keep({"n": n})
    with (tmp_path / "outbox.jsonl").open("a") as f:
        f.write('{"n": 4, "torn\n')  # a torn last write
    with pytest.raises(redis.exceptions.ConnectionError):
        outbox.flush(deliver)
    assert delivered == [0, 1] and outbox.pending() == 3  # 2, 3 and the torn line stay, in order
    down_at.clear()
    assert outbox.flush(deliver) == 2
    assert delivered == [0, 1, 2, 3] and outbox.pending() == 0 and not outbox.path.exists()
    assert outbox.rejected.read_text() == '{"n": 4, "torn\n'  # set aside, not deleted
    assert outbox.flush(deliver) == 0


def test_publisher_delivers_through_the_outbox_and_hands_the_result_on(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board = parts.board
    leader = establish_baseline(parts)
    files = parts.edited(0.6)
    board.post(HypothesisIn(text="X to 0.6", track=TRACK, priority=5,
                            patch=make_patch(parts.baseline_files(), files)))
    job = parts.source.prepare()
    assert job is not None and job.files == files and job.hyp.id in parts.leases.held()
    outbox = Outbox(tmp_path / "a" / "outbox.jsonl")
    publisher = parts.publisher(outbox)
    entry = publisher.record(job, RunOutcome("ok", 1.0, 2.0, {"training_s": 1.9, "steps": 40}))
    assert entry["judge"] and entry["result"]["status"] == "keep"
    publisher.publish(entry)
    assert not outbox.path.exists()
    result = board.result(entry["result"]["result_id"])
    assert result.status == Status.KEEP and result.patch_hash == patch_hash(entry["patch_text"])
    assert result.parent_patch_hash == leader.patch_hash and result.training_s == 1.9 and result.steps == 40
    assert board.get(job.hyp.id).state == State.DONE and job.hyp.id not in parts.leases.held()
    confirms = [h for h in board.list_hypotheses(state=State.OPEN, limit=20) if h.kind == Kind.CONFIRM]
    assert len(confirms) == defaults.CONFIRM_RUNS - 1  # the promoter took it: a candidate gets its confirmations
    publisher.deliver(entry)  # delivered twice (a crash halfway): nothing changes
    assert len([r for r in board.results(limit=50) if r.hypothesis_id == job.hyp.id]) == 1
    again = [h for h in board.list_hypotheses(state=State.OPEN, limit=20) if h.kind == Kind.CONFIRM]
    assert len(again) == len(confirms)
    # a crash is published as a crash, with its error, and never judged
    crash = Job(board.get(confirms[0].id), 0, leader, files)
    failed = publisher.record(crash, RunOutcome("crash", None, 1.0, {}, "Traceback ...\nValueError: boom"))
    assert not failed["judge"] and failed["result"]["status"] == "crash" and failed["result"]["kind"] == "confirm"


def test_code_cache_reads_each_patch_once_and_stays_bounded(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    reads: list[str] = []

    class Counting(Board):
        def get_patch(self, sha: str) -> str:
            reads.append(sha)
            return super().get_patch(sha)

    board = Counting(parts.board.r, parts.board.swarm)
    cache = CodeCache(board, parts.seat.ws, size=2)
    hashes = [board.put_patch(make_patch(parts.baseline_files(), parts.edited(0.3 + i / 10))) for i in range(3)]
    assert cache.files_of(EMPTY_PATCH) == parts.baseline_files() and reads == []
    got = cache.files_of(hashes[0])
    got["train.py"] = "changed by the caller"
    assert "X = 0.3" in cache.files_of(hashes[0])["train.py"]  # callers get their own copy
    assert reads == [hashes[0]]
    threads = [threading.Thread(target=cache.files_of, args=(h,)) for h in hashes[1:] for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 2 and set(reads) == set(hashes)


def test_peers_see_another_live_agent_on_the_track(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_url, swarm_name)
    peers = Peers(board, AGENT, TRACK)
    board.register(AgentInfo(agent_id=AGENT, track=TRACK))
    board.register(AgentInfo(agent_id="elsewhere", track="gpu:H100"))
    assert not peers.others_on_track(60)  # a no is never kept: the next call looks again
    board.register(AgentInfo(agent_id="neighbour", track=TRACK))
    assert peers.others_on_track(60)
    board.deregister("neighbour")
    assert peers.others_on_track(60)  # a yes is kept for max_age_s
    assert not peers.others_on_track(0)


def test_outbox_entries_are_plain_json(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.jsonl")
    outbox.keep({"result": {"status": Status.KEEP}})
    assert json.loads(outbox.path.read_text()) == {"result": {"status": "keep"}}


def test_patch_hash_of_results_matches_board_patches(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    files = parts.edited(0.3)
    text = parts.seat.ws.patch_of(files)
    assert parts.board.put_patch(text) == patch_hash(text)
    assert parts.seat.ws.files_for(text) == files


def run_ahead_of_the_baseline(redis_url: str, swarm_name: str, tmp_path: Path) -> tuple[Any, Job, Any]:
    """A fresh track with no baseline yet, and a job claimed to run on the pristine code ahead of it."""
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    files = parts.edited(0.6)
    parts.board.post(HypothesisIn(text="X to 0.6", track=TRACK, priority=5,
                                  patch=make_patch(parts.baseline_files(), files)))
    claim = parts.source.claim()
    assert claim is not None
    job = Job(claim.hypothesis, claim.token, parts.source.pristine_leader(), files)
    return parts, job, parts.publisher(Outbox(tmp_path / "a" / "outbox.jsonl"))


def test_a_result_run_ahead_of_the_baseline_is_judged_once_the_baseline_lands(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts, job, publisher = run_ahead_of_the_baseline(redis_url, swarm_name, tmp_path)
    board = parts.board
    entry = publisher.record(job, RunOutcome("ok", 1.30, 0.2, {}))  # far better than the baseline's 1.50
    assert entry["judge"] and entry["result"]["parent_patch_hash"] == EMPTY_PATCH
    landing = threading.Timer(0.5, establish_baseline, args=(parts,))
    landing.start()
    t0 = time.monotonic()
    publisher.publish(entry)  # waits for the baseline, then judges against it
    landing.join()
    assert 0.4 < time.monotonic() - t0 < 10
    result = board.result(entry["result"]["result_id"])
    assert result.status == Status.KEEP
    assert [h.kind for h in board.list_hypotheses(state=State.OPEN, limit=20)].count(Kind.CONFIRM) == 3


def test_a_result_run_ahead_of_a_baseline_that_never_lands_is_discarded_in_time(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "BASELINE_AWAIT_S", 0.5)
    parts, job, publisher = run_ahead_of_the_baseline(redis_url, swarm_name, tmp_path)
    board = parts.board
    t0 = time.monotonic()
    publisher.publish(publisher.record(job, RunOutcome("ok", 1.30, 0.2, {})))
    assert time.monotonic() - t0 < 5
    assert board.results(limit=5)[0].status == Status.DISCARD  # published, not lost; nothing to judge against
