"""Claims: exactly-once under a multi-process race and across threads sharing one Board, ordering,
lease expiry/requeue/failed, fencing, and the transport under faults (a server restart that empties the
script cache, a claim that times out under CLIENT PAUSE). Each fault test uses a private redis-server,
so the session's shared one is never disturbed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from swarm.board import Board, HypothesisIn, ResultIn, State
from swarm.board.embedded import RedisProcess

REPO = Path(__file__).resolve().parents[1]
TRACK = "cpu:2c"

CLAIMER = """
import json, sys
from swarm.board import Board
b = Board.connect(sys.argv[1], sys.argv[2])
got = []
while True:
    c = b.claim(sys.argv[3], "cpu:2c")
    if c is None:
        break
    got.append([c.hypothesis.id, c.token])
    assert b.complete(c.hypothesis.id, c.token)
print(json.dumps(got))
"""


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Board:
    return Board(redis.Redis.from_url(redis_url), swarm_name)


@pytest.fixture()
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, with an append-only file so a restart keeps the board."""
    server = RedisProcess(tempfile.mkdtemp(prefix="swarm-claims-"), persist=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def test_claim_race_exactly_once_across_processes(board: Board, redis_url: str, swarm_name: str) -> None:
    ids = {board.post(HypothesisIn(text=f"idea {i}", priority=i % 7))[0] for i in range(200)}
    assert len(ids) == 200
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, redis_url, swarm_name, f"agent-{n}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    claimed: list[list[object]] = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        claimed.extend(json.loads(out))
    hids = [h for h, _ in claimed]
    tokens = [t for _, t in claimed]
    assert sorted(hids) == sorted(ids)  # every hypothesis claimed, none twice
    assert len(set(tokens)) == 200  # fencing tokens are unique
    assert board.counts()["done"] == 200 and board.counts()["open"] == 0


def test_order_priority_then_age_and_track_and_patch_eligibility(board: Board) -> None:
    low, _ = board.post(HypothesisIn(text="low", priority=-5))
    old, _ = board.post(HypothesisIn(text="old", priority=3))
    new, _ = board.post(HypothesisIn(text="new", priority=3))
    top, _ = board.post(HypothesisIn(text="top", priority=9, track="gpu:H100"))
    patched, _ = board.post(HypothesisIn(text="patched", priority=-100, patch=""))
    # a classical-only agent only sees hypotheses that carry a patch
    c = board.claim("classical", TRACK, need_patch=True)
    assert c is not None and c.hypothesis.id == patched
    assert board.claim("classical", TRACK, need_patch=True) is None
    order = []
    while (c := board.claim("llm", TRACK)) is not None:
        order.append(c.hypothesis.id)
    assert order == [old, new, low]  # the gpu-only one is not eligible on cpu:2c
    c = board.claim("gpu-agent", "gpu:H100")
    assert c is not None and c.hypothesis.id == top


def test_tokens_strictly_increase(board: Board) -> None:
    for i in range(5):
        board.post(HypothesisIn(text=f"t{i}"))
    tokens = []
    while (c := board.claim("a", TRACK)) is not None:
        tokens.append(c.token)
    assert tokens == sorted(tokens) and len(set(tokens)) == 5


def test_lease_expiry_requeues_counts_attempts_then_fails(board: Board) -> None:
    board.r.hset(board.k.settings, "max_attempts", 2)  # as `swarm init --max-attempts 2` would
    hid, _ = board.post(HypothesisIn(text="flaky"))
    c1 = board.claim("a1", TRACK, lease_s=0.2)
    assert c1 is not None
    time.sleep(0.3)
    assert board.renew(hid, c1.token) is False  # an expired lease is lost even before reaping
    c2 = board.claim("a2", TRACK, lease_s=0.2)  # reaps c1 first, then claims the same one again
    assert c2 is not None and c2.hypothesis.id == hid and c2.hypothesis.attempts == 1 and c2.token > c1.token
    assert board.complete(hid, c1.token) is False  # the old token is fenced off
    time.sleep(0.3)
    assert board.reap() == 1
    h = board.get(hid)
    assert h.state == State.FAILED and h.attempts == 2 and h.token is None
    kinds = [e.kind for e in board.events(100)]
    assert kinds.count("requeue") == 2


def test_renew_release_complete_need_current_token(board: Board) -> None:
    hid, _ = board.post(HypothesisIn(text="x"))
    c = board.claim("a", TRACK, lease_s=5)
    assert c is not None
    assert board.renew(hid, c.token + 1) is False
    assert board.release(hid, c.token + 1) is False
    assert board.complete(hid, c.token + 1) is False
    assert board.renew(hid, c.token, lease_s=60) is True
    assert board.get(hid).deadline_ms > c.deadline_ms  # type: ignore[operator]
    assert board.release(hid, c.token) is True
    h = board.get(hid)
    assert h.state == State.OPEN and h.attempts == 0 and h.token is None
    c2 = board.claim("b", TRACK)
    assert c2 is not None and c2.hypothesis.id == hid
    assert board.complete(hid, c.token) is False
    assert board.complete(hid, c2.token, state="failed") is True
    assert board.get(hid).state == State.FAILED
    assert board.complete(hid, c2.token) is False  # final states are final


def _result(hid: str | None, token: int | None, metric: float, **kw: object) -> ResultIn:
    return ResultIn(
        result_id=uuid.uuid4().hex,
        hypothesis_id=hid,
        token=token,
        agent_id="a",
        track=TRACK,
        status="keep",
        metric=metric,
        metric_name="val_bpb",
        **{"patch_hash": "0" * 64, **kw},  # type: ignore[arg-type]
    )


def test_stale_result_is_stored_flagged_and_cannot_move_leader(board: Board) -> None:
    hid, _ = board.post(HypothesisIn(text="x"))
    c1 = board.claim("a1", TRACK, lease_s=0.2)
    assert c1 is not None
    time.sleep(0.3)
    c2 = board.claim("a2", TRACK)  # reaps and reclaims: c1's token is no longer current
    assert c2 is not None
    old = _result(hid, c1.token, 0.5)
    out = board.publish(old)
    assert out.stored and out.stale
    assert board.result(old.result_id).stale
    mv = board.move_leader(TRACK, 0, 0.5, "0" * 64, hid, "a1", old.result_id)
    assert not mv.accepted and mv.reason == "stale_result"
    fresh = _result(hid, c2.token, 0.6)
    assert board.publish(fresh).stale is False
    assert board.complete(hid, c2.token)
    late = _result(hid, c2.token, 0.6)  # published after complete: same token, still valid
    assert board.publish(late).stale is False
    assert board.move_leader(TRACK, 0, 0.6, "0" * 64, hid, "a2", fresh.result_id).accepted


def test_cancel_open_and_claimed(board: Board) -> None:
    a, _ = board.post(HypothesisIn(text="a"))
    b, _ = board.post(HypothesisIn(text="b"))
    board.cancel(a)
    c = board.claim("x", TRACK)
    assert c is not None and c.hypothesis.id == b
    board.cancel(b)
    assert board.complete(b, c.token) is False
    assert board.publish(_result(b, c.token, 1.0)).stale
    assert board.counts()["cancelled"] == 2
    assert board.claim("x", TRACK) is None


def test_claim_reply_decodes_to_the_stored_hypothesis(board: Board) -> None:
    # The claim script returns only data/attempts/created_ms; the rest is filled in from what the
    # claimer knows. The result must be what a fresh read of the hash says.
    hid, _ = board.post(
        HypothesisIn(text="Raise LR\n\nbecause", priority=4, tags=["lr", "opt"], track=TRACK, meta={"k": 1.5}, seed=7)
    )
    c = board.claim("agent-x", TRACK)
    assert c is not None
    stored = board.get(hid)
    assert c.hypothesis == stored
    assert stored.state == State.CLAIMED and stored.claimed_by == "agent-x"
    assert (stored.token, stored.deadline_ms) == (c.token, c.deadline_ms)
    assert stored.created_ms > 0 and stored.tags == ["lr", "opt"] and stored.meta == {"k": 1.5}


def test_claim_uses_the_swarms_lease_and_max_attempts_settings(board: Board) -> None:
    board.r.hset(board.k.settings, mapping={"lease_s": 0.25, "max_attempts": 1})  # as `swarm init` writes them
    hid, _ = board.post(HypothesisIn(text="x"))
    c = board.claim("a", TRACK)
    assert c is not None
    assert 200 <= c.deadline_ms - board.server_ms() <= 250
    time.sleep(0.35)
    assert board.claim("b", TRACK) is None  # reaped straight to failed at max_attempts=1
    assert board.get(hid).state == State.FAILED


def test_claim_and_complete_write_their_events(board: Board) -> None:
    hid, _ = board.post(HypothesisIn(text="x"))
    c = board.claim("a", TRACK)
    assert c is not None and board.complete(hid, c.token, state="failed")
    evs = [(e.kind, e.fields.get("hid"), e.fields.get("agent")) for e in board.events(100)]
    assert ("claim", hid, "a") in evs and ("failed", hid, "a") in evs
    assert board.counts() == {"open": 0, "claimed": 0, "done": 0, "failed": 1, "cancelled": 0}


def test_scripts_reload_after_the_server_script_cache_is_flushed(board: Board) -> None:
    # A restart or failover empties the script cache: the next EVALSHA gets NOSCRIPT, the script is
    # loaded and run once more, and the caller never notices. Pipelined calls load before executing.
    board.r.script_flush()
    hid, _ = board.post(HypothesisIn(text="after flush"))
    board.r.script_flush()
    c = board.claim("a", TRACK)
    assert c is not None and c.hypothesis.id == hid
    board.r.script_flush()
    assert board.complete(hid, c.token)
    board.r.script_flush()
    pipe = board.r.pipeline(transaction=False)
    board.scripts.renew(keys=[board.k.hyp(hid), board.k.leases, board.k.settings], args=[hid, 1, 0, 1000], client=pipe)
    assert pipe.execute() == [0]  # ran (and refused: the hypothesis is done), after a reload
    assert board.r.script_exists(board.scripts.renew.sha) == [True]


def test_an_author_leaves_its_candidates_confirmations_to_others_while_it_can(board: Board) -> None:
    confirms = [
        board.post(HypothesisIn(text=f"confirm c1 seed {s}", track=TRACK, kind="confirm", author="alice",
                                parent="c1", seed=s, priority=900))[0]
        for s in (1, 2)
    ]
    idea, _ = board.post(HypothesisIn(text="another idea", track=TRACK, priority=0))
    # alice, with another live agent on her track, passes over her own confirmations to the next work
    c = board.claim("alice", TRACK, avoid_own=True)
    assert c is not None and c.hypothesis.id == idea
    # bob takes them, in order
    got = [board.claim("bob", TRACK, avoid_own=True) for _ in range(2)]
    assert [x.hypothesis.id for x in got if x is not None] == confirms
    # alone on her track, alice runs her own
    more, _ = board.post(HypothesisIn(text="confirm c2 seed 1", track=TRACK, kind="confirm", author="alice",
                                      parent="c2", seed=1, priority=900))
    assert board.claim("alice", TRACK, avoid_own=True) is None
    mine = board.claim("alice", TRACK, avoid_own=False)
    assert mine is not None and mine.hypothesis.id == more


def test_threads_sharing_one_board_each_claim_exactly_once(board: Board) -> None:
    # The agent's threads (main loop, lease keeper, preparer) share one Board and its connection pool:
    # every thread must get the replies to its own calls.
    n = 300
    for i in range(n):
        board.post(HypothesisIn(text=f"idea {i}"))
    got: list[list[tuple[str, int]]] = [[] for _ in range(6)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            while (c := board.claim(f"t{slot}", TRACK)) is not None:
                assert c.hypothesis.claimed_by == f"t{slot}"
                assert board.complete(c.hypothesis.id, c.token)
                got[slot].append((c.hypothesis.id, c.token))
        except BaseException as exc:  # reported below: an assertion in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ids = [h for g in got for h, _ in g]
    tokens = [t for g in got for _, t in g]
    assert len(ids) == n and len(set(ids)) == n and len(set(tokens)) == n
    assert board.counts()["done"] == n


def test_claims_go_on_across_a_server_restart_that_empties_the_script_cache(private_redis: RedisProcess) -> None:
    board = Board.connect(private_redis.url, "restart")
    for n in range(2):
        board.post(HypothesisIn(text=f"idea {n}"))
    c = board.claim("a", TRACK)
    assert c is not None
    private_redis.stop()
    private_redis.start()  # same port, data from the AOF, script cache empty, the pool's sockets dead
    assert board.r.script_exists(board.scripts.complete.sha) == [False]
    assert board.complete(c.hypothesis.id, c.token)  # reconnects (the client's retry), reloads the script
    c2 = board.claim("a", TRACK)
    assert c2 is not None and c2.hypothesis.id != c.hypothesis.id and c2.token > c.token
    assert board.complete(c2.hypothesis.id, c2.token)


def test_a_claim_that_times_out_leaves_no_late_reply_for_the_next_call(private_redis: RedisProcess) -> None:
    # A reply that arrives after its caller gave up must never be read as the next call's reply.
    r = redis.Redis.from_url(private_redis.url, socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
    board = Board(r, "late")
    for n in range(3):
        board.post(HypothesisIn(text=f"idea {n}"))
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("CLIENT", "PAUSE", "800", "WRITE")  # scripts wait; PING does not
    t0 = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        board.claim("a", TRACK)
    time.sleep(max(0.0, 0.9 - (time.monotonic() - t0)))  # the paused claim may run now; its reply is late
    assert board.r.ping() is True  # a PONG, not the late claim reply (7 items)
    c = board.claim("a", TRACK)
    assert c is not None and c.hypothesis.state == "claimed"
    assert board.complete(c.hypothesis.id, c.token)
    admin.close()


def test_min_priority_leases_only_urgent_work(board: Board) -> None:
    """An agent with its next job ready asks only for urgent work; the rest stays open for others."""
    normal, _ = board.post(HypothesisIn(text="an idea", priority=899, patch=""))
    confirm, _ = board.post(HypothesisIn(text="a confirmation", priority=900, patch=""))
    seed, _ = board.post(HypothesisIn(text="a baseline seed", priority=1000, patch=""))
    got = [board.claim("a", TRACK, min_priority=900) for _ in range(3)]
    assert [c.hypothesis.id if c else None for c in got] == [seed, confirm, None]
    assert board.get(normal).state == State.OPEN
    c = board.claim("a", TRACK, min_priority=-1000)
    assert c is not None and c.hypothesis.id == normal
    with pytest.raises(ValueError):
        board.claim("a", TRACK, min_priority=1001)


@pytest.mark.parametrize("avoid_own", [False, True])
def test_below_priority_leaves_urgent_work_open(board: Board, avoid_own: bool) -> None:
    """A preparer filling its slot leaves urgent work (higher priorities) open for a free GPU, with or
    without the avoid-own scan, and takes the best of what is below."""
    seed, _ = board.post(HypothesisIn(text="a baseline seed", priority=1000, patch=""))
    confirm, _ = board.post(HypothesisIn(text="a confirmation", priority=900, patch=""))
    port, _ = board.post(HypothesisIn(text="a port", priority=899, patch=""))
    idea, _ = board.post(HypothesisIn(text="an idea", priority=0, patch=""))
    got = [board.claim("a", TRACK, below_priority=900, avoid_own=avoid_own) for _ in range(3)]
    assert [c.hypothesis.id if c else None for c in got] == [port, idea, None]
    assert board.get(seed).state == State.OPEN and board.get(confirm).state == State.OPEN
    c = board.claim("a", TRACK, min_priority=900, below_priority=1000)  # both bounds: the confirmation only
    assert c is not None and c.hypothesis.id == confirm
    with pytest.raises(ValueError):
        board.claim("a", TRACK, below_priority=-1001)
