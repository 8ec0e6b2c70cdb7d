"""Claims follow their agent's life: a claim held by an agent whose heartbeat expired is reaped by the
next claim and by every read that reports states, long before its lease; a live agent keeps its
claims; a reaped agent's late result is stale; an agent that leaves with claims hands them back; the
reaper reads only what is due, however many agents hold claims. Then with real processes: an agent
killed with kill -9 while holding two claims has both back on the board within the swarm's heartbeat
TTL, and another agent finishes them.

Heartbeat TTLs here are fractions of a second (board level) or 3 s (real agents), so the file runs in
seconds; leases stay long (15 minutes, or 60 s) so only the heartbeat can free a claim.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from cli_run import one_line_error, swarm_cli
from test_agent import SYNTH, TRACK, claimed_by, init, spawn, wait_for

from swarm import defaults
from swarm.board import AgentInfo, Board, HypothesisIn, ResultIn, State
from swarm.board.registry import beat_every_s

SHORT_TTL_S = 0.3  # a board-level agent is dead this long after its last beat
LONG_LEASE_S = 60.0  # far beyond every test here: a claim freed in time was freed by the heartbeat


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Board:
    return Board(redis.Redis.from_url(redis_url), swarm_name)


def join(board: Board, agent_id: str, ttl_s: float | None = None) -> None:
    board.register(AgentInfo(agent_id=agent_id, track=TRACK), ttl_s=ttl_s)


def post(board: Board, n: int, tag: str = "idea") -> list[str]:
    return [board.post(HypothesisIn(text=f"{tag} {i} {uuid.uuid4().hex[:6]}"))[0] for i in range(n)]


def claim(board: Board, agent_id: str) -> tuple[str, int]:
    c = board.claim(agent_id, TRACK, lease_s=LONG_LEASE_S)
    assert c is not None
    return c.hypothesis.id, c.token


def result(hid: str, token: int, agent_id: str, metric: float = 0.5) -> ResultIn:
    return ResultIn(
        result_id=uuid.uuid4().hex, hypothesis_id=hid, token=token, agent_id=agent_id, track=TRACK,
        status="keep", metric=metric, metric_name="score",
    )  # fmt: skip


def test_a_dead_agents_claims_are_reaped_by_the_next_claim(board: Board) -> None:
    join(board, "dead", ttl_s=SHORT_TTL_S)
    join(board, "live")
    ids = post(board, 3)
    held = [claim(board, "dead") for _ in range(2)]
    assert board.r.zscore(board.k.claimants, "dead") is not None
    time.sleep(SHORT_TTL_S + 0.1)
    hid, _ = claim(board, "live")  # reaps first: the oldest of the two comes back and is taken at once
    assert hid == held[0][0]
    h = board.get(held[1][0])
    assert h.state == State.OPEN and h.attempts == 1 and h.claimed_by is None and h.token is None
    assert board.get(hid).attempts == 1
    assert board.get(ids[2]).state == State.OPEN and board.get(ids[2]).attempts == 0
    reasons = [e for e in board.events(50) if e.kind == "requeue"]
    assert len(reasons) == 2 and all("dead's heartbeat expired" in e.text for e in reasons), reasons
    assert all(e.fields["cause"] == "heartbeat" and e.fields["agent"] == "dead" for e in reasons)
    # the dead agent's bookkeeping is gone; the live one is a claimant holding what it claimed
    assert not board.r.exists(board.k.claims("dead")) and board.r.zscore(board.k.claimants, "dead") is None
    assert board.r.smembers(board.k.claims("live")) == {hid.encode()}


def test_reads_that_report_states_reap(board: Board, swarm_name: str, redis_url: str, tmp_path: Path) -> None:
    board.r.hset(board.k.settings, "max_attempts", 10)  # the same claim is reaped up to 3 times here
    join(board, "dead", ttl_s=SHORT_TTL_S)
    post(board, 4)
    for _ in range(2):
        claim(board, "dead")
    assert board.counts()["claimed"] == 2  # alive: counted as claimed
    time.sleep(SHORT_TTL_S + 0.1)
    assert board.counts()["claimed"] == 0 and board.counts()["open"] == 4
    # the same through `swarm hypotheses` and `swarm status`, as a user reads them: each claim of the
    # (still dead) agent is reaped by the next read
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    cli = ["--redis", redis_url, "--swarm", swarm_name]
    claim(board, "dead")
    out = swarm_cli([*cli, "hypotheses", "--state", "claimed", "--json"], env, tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stdout + out.stderr
    claim(board, "dead")
    out = swarm_cli([*cli, "status", "--json"], env, tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["counts"]["claimed"] == 0, out.stdout + out.stderr
    claim(board, "dead")
    assert board.list_hypotheses(state="claimed") == [] and board.status()["counts"]["claimed"] == 0
    assert sum(h.attempts for h in board.list_hypotheses(state="open")) == 5  # 2 + one per read after


def test_a_live_agent_keeps_its_claims_across_its_ttl(board: Board) -> None:
    join(board, "slow", ttl_s=SHORT_TTL_S)
    post(board, 2)
    held = [claim(board, "slow") for _ in range(2)]
    end = time.monotonic() + 3 * SHORT_TTL_S
    while time.monotonic() < end:  # it beats in time, readers and claimers keep coming
        board.heartbeat("slow", "running", held[0][0], ttl_s=SHORT_TTL_S)
        assert board.counts()["claimed"] == 2
        assert board.claim("other", TRACK) is None
        time.sleep(SHORT_TTL_S / 4)
    for hid, token in held:
        assert board.renew(hid, token) and board.complete(hid, token)
    assert not board.r.exists(board.k.claims("slow")) and board.r.zscore(board.k.claimants, "slow") is None


def test_a_reaped_agents_late_result_is_stale_and_its_lease_is_lost(board: Board) -> None:
    join(board, "paused", ttl_s=SHORT_TTL_S)
    join(board, "next")
    post(board, 1)
    hid, old = claim(board, "paused")
    time.sleep(SHORT_TTL_S + 0.1)
    again, new = claim(board, "next")  # reaped, then claimed again by the live agent
    assert again == hid and new > old
    board.heartbeat("paused", "running", hid, ttl_s=SHORT_TTL_S)  # it wakes up: too late for that claim
    assert board.renew(hid, old) is False and board.complete(hid, old) is False
    late = result(hid, old, "paused", metric=0.1)
    assert board.publish(late).stale
    mv = board.move_leader(TRACK, 0, 0.1, "0" * 64, hid, "paused", late.result_id)
    assert not mv.accepted and mv.reason == "stale_result"
    fresh = result(hid, new, "next")
    assert board.publish(fresh).stale is False and board.complete(hid, new)
    assert board.r.zscore(board.k.claimants, "paused") is None  # beating again does not make it a claimant


def test_dead_agent_reaped_to_failed_at_max_attempts(board: Board) -> None:
    board.r.hset(board.k.settings, "max_attempts", 1)  # as `swarm init --max-attempts 1` would
    join(board, "dead", ttl_s=SHORT_TTL_S)
    (hid,) = post(board, 1)
    claim(board, "dead")
    time.sleep(SHORT_TTL_S + 0.1)
    assert board.reap() == 1
    h = board.get(hid)
    assert h.state == State.FAILED and h.attempts == 1
    assert "dead's heartbeat expired" in board.events(5)[-1].text and board.events(5)[-1].fields["to"] == "failed"


def test_deregister_hands_back_the_claims_left(board: Board) -> None:
    join(board, "leaving")
    post(board, 3)
    held = [claim(board, "leaving") for _ in range(3)]
    assert board.release(*held[2])  # a clean give-back: attempts unchanged
    assert board.deregister("leaving") == 2  # the two it never released
    for hid, token in held:
        h = board.get(hid)
        assert h.state == State.OPEN and h.claimed_by is None, h
        assert board.complete(hid, token) is False
    assert sorted(board.get(hid).attempts for hid, _ in held) == [0, 1, 1]
    assert sum("leaving left holding" in e.text for e in board.events(20)) == 2
    assert not board.r.exists(board.k.claims("leaving")) and board.r.zscore(board.k.claimants, "leaving") is None
    assert [a.agent_id for a in board.agents()] == []


def test_an_agent_that_never_beat_is_held_by_its_lease_only(board: Board) -> None:
    post(board, 1)
    hid, token = claim(board, "script")  # a script or a test, never registered
    assert board.r.zscore(board.k.claimants, "script") is None
    board.heartbeat("other", "idle", None, ttl_s=0.001)  # other agents dying changes nothing for it
    time.sleep(0.05)
    assert board.counts()["claimed"] == 1
    board.heartbeat("script", "running", hid, ttl_s=SHORT_TTL_S)  # once it beats, it is judged by its beats
    assert board.r.zscore(board.k.claimants, "script") is not None
    time.sleep(SHORT_TTL_S + 0.1)
    assert board.counts()["claimed"] == 0 and board.complete(hid, token) is False


def test_complete_release_and_cancel_keep_the_claimants_exact(board: Board) -> None:
    join(board, "a")
    a, b, c = post(board, 3)
    held = dict(claim(board, "a") for _ in range(3))
    assert board.complete(a, held[a])
    board.cancel(b)
    assert board.r.smembers(board.k.claims("a")) == {c.encode()}
    assert board.r.zscore(board.k.claimants, "a") is not None
    assert board.release(c, held[c])
    assert not board.r.exists(board.k.claims("a")) and board.r.zscore(board.k.claimants, "a") is None


def test_the_reaper_reads_only_what_is_due(board: Board) -> None:
    # 1,000 live agents holding a claim each, one dead one: a claim must not read every lease or agent.
    n = 1000
    post(board, n)
    for i in range(n):
        board.heartbeat(f"a{i}", "running", None, ttl_s=3600)
    for i in range(n):
        claim(board, f"a{i}")
    post(board, 1, tag="last")
    join(board, "dead", ttl_s=SHORT_TTL_S)
    dead_hid, _ = claim(board, "dead")
    assert board.r.zcard(board.k.claimants) == n + 1
    time.sleep(SHORT_TTL_S + 0.1)

    def calls() -> dict[str, int]:
        stats = board.r.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}

    before = calls()
    hid, _ = claim(board, "taker")
    after = calls()
    assert hid == dead_hid  # reaped and taken
    ran = {c: n - before.get(c, 0) for c, n in after.items() if n != before.get(c, 0)}
    ran.pop("info")
    # every command of the claim script, each run a handful of times: nothing over the 1,001 claimants
    assert sum(ran.values()) < 50 and max(ran.values()) <= 8, ran  # 33 and 6 (zrem) when written
    assert ran.get("smembers", 0) == 0 and ran["spop"] == 1 and ran["zrangebyscore"] == 2, ran


def test_heartbeat_ttl_is_a_swarm_setting(board: Board, redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    base = ["--redis", redis_url, "--swarm", swarm_name, "init", "--arena", str(SYNTH)]
    for bad in ("0", "0.5", "nan", "inf"):
        line = one_line_error(swarm_cli([*base, "--heartbeat-ttl-s", bad], env, tmp_path))
        assert "--heartbeat-ttl-s" in line
    assert board.settings() is None  # nothing written
    out = swarm_cli([*base, "--heartbeat-ttl-s", "5"], env, tmp_path)
    assert out.returncode == 0 and "heartbeat_ttl_s 5.0" in out.stdout, out.stderr
    st = board.settings()
    assert st is not None and st.heartbeat_ttl_s == 5.0
    now = board.server_ms()
    assert 5000 <= board.heartbeat("a", "idle") - now < 5500  # no ttl given: the swarm's
    assert 2000 <= board.heartbeat("a", "idle", ttl_s=2) - now < 2500
    assert beat_every_s(5.0) == pytest.approx(5.0 / defaults.HEARTBEATS_PER_TTL)
    assert beat_every_s(defaults.HEARTBEAT_TTL_S) == defaults.AGENT_HEARTBEAT_S


# --- real agents ------------------------------------------------------------------------------------
AGENT_TTL_S = 3.0


def test_kill_9_frees_both_claims_within_the_heartbeat_ttl(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Callable[[str, str], Board]
) -> None:
    init(redis_url, swarm_name, "--heartbeat-ttl-s", str(AGENT_TTL_S))  # the default 15-minute lease
    board = connect_board(redis_url, swarm_name)
    slow = spawn(redis_url, swarm_name, tmp_path / "slow", "--budget", "60")
    fast: subprocess.Popen[bytes] | None = None
    try:
        held = wait_for(lambda: len(ids := claimed_by(board, slow.pid)) == 2 and ids, 40, "running + prepared claims")
        assert isinstance(held, list)
        # alive past its TTL while this test reads states (each read reaps): it keeps both claims
        alive_until = time.monotonic() + AGENT_TTL_S + 1
        while time.monotonic() < alive_until:
            assert board.counts()["claimed"] == 2
            time.sleep(0.2)
        assert sorted(claimed_by(board, slow.pid)) == sorted(held)
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=10)
        killed = time.monotonic()
        wait_for(lambda: board.counts()["claimed"] == 0, AGENT_TTL_S + 2, "both claims back on the board")
        freed_s = time.monotonic() - killed
        print(f"freed_s: {freed_s:.2f}")
        assert freed_s <= AGENT_TTL_S + 1, freed_s  # expiry = last beat + TTL, and the last beat came before the kill
        for hid in held:
            h = board.get(hid)
            assert h.state == State.OPEN and h.attempts == 1, h
        assert sum("heartbeat expired" in e.text for e in board.events(200)) == 2
        fast = spawn(redis_url, swarm_name, tmp_path / "fast", "--max-experiments", "3")
        assert fast.wait(timeout=60) == 0, (tmp_path / "fast" / "agent.log").read_text()[-2000:]
    finally:
        for p in (slow, fast):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    for hid in held:
        assert board.get(hid).state == State.DONE
        mine = [r for r in board.results(limit=100) if r.hypothesis_id == hid and not r.stale]
        assert len(mine) == 1 and f"-{fast.pid}-" in mine[0].agent_id
    assert "Traceback" not in (tmp_path / "fast" / "agent.log").read_text()


def test_after_a_redis_restart_live_agents_get_one_ttl_to_beat_again(tmp_path: Path, swarm_name: str) -> None:
    """While Redis was down no agent could beat: a restart must not make every claimant look dead."""
    from conftest import RedisServer, free_port

    server = RedisServer(free_port(), str(tmp_path / "redis"), persist=True)
    server.start()
    try:
        swarm_cli(["--redis", server.url, "--swarm", swarm_name, "init", "--arena", str(SYNTH),
                   "--heartbeat-ttl-s", "2"], dict(os.environ), tmp_path).check_returncode()
        board = Board.connect(server.url, swarm_name)
        join(board, "alive")
        post(board, 2)
        hid, _ = claim(board, "alive")
        time.sleep(2.5)  # the server has been up for over one TTL: the grace is over
        board.heartbeat("alive", "running", hid)
        server.stop()
        time.sleep(3.0)  # down longer than the TTL: "alive" could not beat
        server.start()
        board = Board.connect(server.url, swarm_name)
        other, _ = claim(board, "other")  # the first claim after the restart: no reaping of "alive" yet
        assert other != hid and board.get(hid).claimed_by == "alive"
        for _ in range(6):  # it beats again, as a live agent does: its claim stays past the grace
            board.heartbeat("alive", "running", hid)
            time.sleep(0.5)
        assert board.counts()["claimed"] == 2 and board.get(hid).claimed_by == "alive"
        time.sleep(2.5)  # now silent for over a TTL while the server is up: a dead agent
        assert board.counts()["claimed"] == 1 and board.get(hid).state == State.OPEN
    finally:
        server.stop()
