"""TrackHistory: an agent's incremental view of its track's results reads each result once."""

from __future__ import annotations

from swarm.agent.history import TrackHistory
from swarm.board import Board
from swarm.models import HypothesisIn, ResultIn

TRACK = "cpu:hist"


def publish(board: Board, i: int, track: str = TRACK) -> str:
    hid, _ = board.post(HypothesisIn(text=f"idea number {i} on {track}", track=track))
    rid = f"r{i:04d}{track[-2:]}"
    board.publish(ResultIn(result_id=rid, hypothesis_id=hid, agent_id="t", track=track, status="discard",
                           metric=1.0 + i, kind="explore"))  # type: ignore[arg-type]
    return rid


def test_refresh_reads_only_what_is_new_and_keeps_the_newest(redis_url: str, swarm_name: str) -> None:
    board = Board.connect(redis_url, swarm_name)
    first = [publish(board, i) for i in range(5)]
    publish(board, 99, track="cpu:xx")  # another track's results are not kept
    hist = TrackHistory(board, TRACK, keep=8)
    assert [r.result_id for r in hist.newest()] == first[::-1]
    more = [publish(board, i) for i in range(5, 12)]
    reads: list[int] = []
    original = board.r.hmget

    def counting(key: str, ids: list[str]) -> object:
        reads.append(len(ids))
        return original(key, ids)

    board.r.hmget = counting  # type: ignore[method-assign]
    newest = hist.newest()
    board.r.hmget = original  # type: ignore[method-assign]
    assert [r.result_id for r in newest] == (first + more)[::-1][:8]  # capped at keep, newest first
    assert reads == [7, 7]  # results and their meta, for the 7 new ones only
    assert hist.newest(3) == newest[:3]
    assert hist.newest() == newest  # nothing new: nothing read


def test_titles_are_read_once(redis_url: str, swarm_name: str) -> None:
    board = Board.connect(redis_url, swarm_name)
    publish(board, 1)
    hist = TrackHistory(board, TRACK)
    hid = hist.newest()[0].hypothesis_id
    assert hid is not None
    assert hist.titles([hid]) == {hid: board.get(hid).title}
    board.r.delete(board.k.hyp(hid))  # a cached title does not go back to the board
    assert hist.titles([hid]) == {hid: "idea number 1 on cpu:hist"}
