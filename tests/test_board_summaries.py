"""The summaries observers read instead of every result or every agent (issue 16, 1,000 agents).

`board.tally()` (kept by publish.lua) must give exactly what reading every result gives, through
`proposer_stats`; the per-minute counts must give exactly the results published since a time; and
`others_alive` exactly what the registry says. Each against a real redis-server, each fast.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from swarm.board import Board
from swarm.models import AgentInfo, HypothesisIn, ResultIn, State, Status
from swarm.observe.accounting import ProposerStats, board_proposer_stats, proposer_stats

T, U = "cpu:2c", "gpu:H100"
CLAUDE = "llm:anthropic/claude-sonnet-4-5"


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Iterator[Board]:
    b = Board.connect(redis_url, swarm_name)
    yield b
    b.r.close()


def rows(stats: dict[str, ProposerStats]) -> dict[str, dict[str, object]]:
    """Every figure per proposer, floats rounded (a sum in another order differs in its last bits)."""
    return {
        p: {k: round(v, 9) if isinstance(v, float) else v for k, v in st.as_dict().items()} for p, st in stats.items()
    }


def publish(board: Board, i: int, track: str, proposer: str, status: str, kind: str, llm: bool) -> ResultIn:
    hid: str | None = None
    token: int | None = None
    if kind != "baseline":
        hid, _ = board.post(HypothesisIn(text=f"idea {i} {uuid.uuid4().hex}", track=track))
        c = board.claim("a1", track)
        assert c is not None
        token = c.token
    res = ResultIn(
        result_id=f"r{i}-{uuid.uuid4().hex[:8]}",
        hypothesis_id=hid,
        token=token,
        agent_id="a1",
        proposer=proposer,
        track=track,
        status=status,  # type: ignore[arg-type]
        metric=None if Status(status).failed else 1.0 - i / 1000,
        kind=kind,  # type: ignore[arg-type]
        llm_input_tokens=1000 + i if llm else 0,
        llm_output_tokens=100 if llm else 0,
        llm_cost_usd=0.013 * (i % 3) if llm else 0.0,
        llm_latency_s=1.5 if llm else 0.0,
        patch_hash="0" * 64,
    )
    assert board.publish(res).stored
    if hid is not None and token is not None:
        board.complete(hid, token, State.FAILED if Status(status).failed else State.DONE)
    return res


def fill(board: Board) -> list[ResultIn]:
    """30 results of every kind, status, track and proposer; a few leader moves; a re-publish and a
    stale result (counted once each, as results are)."""
    out = []
    kinds = ("explore", "explore", "confirm", "baseline")
    statuses = ("keep", "discard", "crash", "timeout", "invalid")
    proposers = ("classical", CLAUDE, "", "human")
    for i in range(30):
        p = proposers[i % 4]
        out.append(publish(board, i, (T, U)[i % 2], p, statuses[i % 5], kinds[i % 4], p == CLAUDE))
    assert not board.publish(out[3]).stored  # the same result again: no second count
    hid, _ = board.post(HypothesisIn(text="reaped before its result came", track=T))
    stale = ResultIn(result_id="stale-1", hypothesis_id=hid, token=999, agent_id="a1", proposer=CLAUDE,
                     track=T, status=Status.KEEP, metric=0.5, llm_input_tokens=7)  # fmt: skip
    assert board.publish(stale).stale
    out.append(stale)
    for track in (T, U):  # moves naming an explore, a baseline
        for r in out:
            if r.track == track and r.metric is not None and r.kind in ("explore", "baseline") and r is not stale:
                lead = board.leader(track)
                if lead is None or r.metric < lead.metric:
                    gen = lead.generation if lead else 0
                    mv = board.move_leader(track, gen, r.metric, "0" * 64, r.hypothesis_id, "a1", r.result_id)
                    assert mv.accepted, mv
    return out


def test_the_tally_gives_what_reading_every_result_gives(board: Board) -> None:
    fill(board)
    board.add_usage("anthropic:claude-sonnet-4-5", calls=5, failures=1, input_tokens=9, output_tokens=8, cost_usd=0.2)
    tally = board.tally()
    assert tally is not None and tally.results == 31
    histories = {t: board.leader_history(t) for t in board.leaders()}
    assert sum(len(h) for h in histories.values()) >= 4
    every = proposer_stats(board.results(limit=1000), histories, board.proposer_usage())
    summed, counted = board_proposer_stats(board)  # from the tally
    assert counted == 31
    assert rows(summed) == rows(every)
    by_outcome = Counter((r.track, r.proposer, r.status.value) for r in board.results(limit=1000))
    assert Counter({(tr, p, st): n for (_k, st, tr, p), n in tally.outcomes.items()}) == by_outcome
    window, n = board_proposer_stats(board, max_results=5)  # a window still reads the newest results
    assert n == 5 and sum(s.results for s in window.values()) == 5


def test_a_board_with_results_from_before_the_tally_reads_the_results(board: Board) -> None:
    fill(board)
    before = board_proposer_stats(board)[0]
    since = board.server_ms() - 3_600_000
    assert board.results_since(since) == 31
    board.r.hincrby(board.k.results_tally, "n", -1)  # as if one result had been published before it existed
    assert board.tally() is None
    after, counted = board_proposer_stats(board)
    assert counted == 31 and rows(after) == rows(before)
    assert board.results_since(since) == 31  # from the stream


def test_results_since_counts_exactly_from_the_per_minute_counts(board: Board) -> None:
    rs = fill(board)
    stored = {r.result_id: board.result(r.result_id) for r in rs}
    now = board.server_ms()
    assert board.results_since_by_track(now - 3_600_000) == dict(Counter(r.track for r in rs))
    for cut in sorted({s.published_ms for s in stored.values()}):  # inside the current minute: the stream part
        # what results_since counted before the per-minute counts: the stream from `cut`
        want = Counter(str(f[b"track"].decode()) for _, f in board.r.xrange(board.k.results_stream, min=f"{cut}-0"))
        assert board.results_since_by_track(cut) == dict(want)
    assert board.results_since(now + 60_000) == 0
    # Older minutes go: the first result of a minute on a track drops the fields past the kept span.
    board.r.hset(board.k.results_minutes, "5|" + T, 3)
    board.r.hset(board.k.results_minutes, f"{now // 60_000 - 5}|{T}", 2)  # in the span: counted, kept
    publish(board, 99, "cpu:new-track", "classical", "keep", "explore", False)
    fields = {f.decode() for f in board.r.hkeys(board.k.results_minutes)}
    assert "5|" + T not in fields and f"{now // 60_000 - 5}|{T}" in fields
    assert board.results_since_by_track(now - 3_600_000)[T] == Counter(r.track for r in rs)[T] + 2
    assert board.results_since(1) == 32  # further back than the counts: the whole stream


def test_others_alive_follows_heartbeats_and_deregister(board: Board) -> None:
    for aid, track in (("a1", T), ("a2", T), ("b1", U)):
        board.register(AgentInfo(agent_id=aid, track=track), ttl_s=30)
    assert board.others_alive(T, "a1") and board.others_alive(T, "a2")
    assert not board.others_alive(U, "b1") and board.others_alive(U, "a1")
    assert not board.others_alive("cpu:nobody", "a1")
    board.heartbeat("a2", "idle", ttl_s=0.2)
    time.sleep(0.3)
    assert not board.others_alive(T, "a1") and board.others_alive(T, "a2")  # a2 expired, a1 alive
    board.heartbeat("a2", "idle", ttl_s=30)
    assert board.others_alive(T, "a1")
    board.deregister("a2")
    assert not board.others_alive(T, "a1")
    assert board.r.zscore(board.k.agents_live(T), "a2") is None
    alive = {a.agent_id for a in board.agents() if a.alive and a.track == T}
    assert alive == {"a1"}  # the registry agrees
