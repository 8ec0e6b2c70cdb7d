"""Board basics: init/pinning, dedup, idempotent results, leaders (CAS under concurrent processes),
noise, registry, events, brief, connections (password URL, unreachable URL)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import redis
from conftest import RedisServer, free_port

from swarm.board import EMPTY_PATCH, AgentInfo, Board, HypothesisIn, ResultIn
from swarm.code.diff import make_patch
from swarm.errors import ArenaError, BoardUnavailable, Conflict, NotFound, UserError

REPO = Path(__file__).resolve().parents[1]
TRACK = "cpu:2c"
TOML = """[arena]
name = "tiny"
editable = ["train.py"]
brief = "program.md"

[metric]
name = "val_bpb"
direction = "minimize"

[run]
command = ["{python}", "train.py"]

[profiles.cpu]
budget_s = 5
timeout_s = 20
"""


def make_arena(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "arena.toml").write_text(TOML)
    (root / "train.py").write_text("LR = 0.01\nSTEPS = 10\nprint('val_bpb', 1.0)\n")
    (root / "program.md").write_text("# Brief\nMake val_bpb lower.\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "__pycache__").mkdir(exist_ok=True)
    (root / "__pycache__" / "x.pyc").write_bytes(b"\x00junk")
    return root


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Board:
    return Board(redis.Redis.from_url(redis_url), swarm_name)


def test_init_pins_arena_and_refuses_a_different_one(board: Board, tmp_path: Path) -> None:
    arena = make_arena(tmp_path / "arena")
    st = board.init(arena, min_delta=0.001, lease_s=30, max_attempts=2)
    assert (st.metric_name, st.direction, st.editable) == ("val_bpb", "minimize", ["train.py"])
    assert (st.min_delta, st.lease_s, st.max_attempts) == (0.001, 30.0, 2)
    assert board.init(arena) == st  # same arena: a no-op
    assert sorted(board.arena_files()) == ["arena.toml", "data.bin", "program.md", "train.py"]
    assert board.brief() == (1, "# Brief\nMake val_bpb lower.\n")
    assert board.arena_diff(arena) == []
    out = tmp_path / "copy"
    board.export_arena(out)
    assert (out / "data.bin").read_bytes() == (arena / "data.bin").read_bytes()
    (arena / "train.py").write_text("LR = 0.02\n")
    (arena / "extra.py").write_text("x = 1\n")
    assert board.arena_diff(arena) == ["extra.py", "train.py"]
    with pytest.raises(Conflict, match=r"differing files: extra\.py, train\.py"):
        board.init(arena)


def test_init_caps_file_size(board: Board, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm import defaults

    arena = make_arena(tmp_path / "arena")
    monkeypatch.setattr(defaults, "ARENA_FILE_MAX_BYTES", 1000)
    with pytest.raises(ArenaError, match=r"data\.bin is 1024 bytes, over the 1000-byte cap"):
        board.init(arena)
    assert board.settings() is None


def test_post_dedup_and_validation(board: Board) -> None:
    diff = make_patch({"train.py": "a\n"}, {"train.py": "b\n"})
    a, created = board.post(HypothesisIn(text="Raise the LR", patch=diff))
    assert created
    assert board.post(HypothesisIn(text="  raise   the lr ", patch=diff)) == (a, False)
    assert board.post(HypothesisIn(text="Raise the LR"))[1]  # no patch: a different idea
    c1, _ = board.post(HypothesisIn(text="confirm", kind="confirm", parent="r1", seed=1))
    c2, _ = board.post(HypothesisIn(text="confirm", kind="confirm", parent="r1", seed=2))
    assert c1 != c2
    h = board.get(a)
    assert h.patch_hash is not None and board.get_patch(h.patch_hash) == diff
    assert board.get_patch(EMPTY_PATCH) == ""
    assert board.counts()["open"] == 4
    for bad in [
        dict(text="  "),
        dict(text="x", priority=5000),
        dict(text="x", source="robot"),
        dict(text="x", tags=["t"] * 50),
        dict(text="x", meta={"k": "v" * 3000}),
    ]:
        with pytest.raises(ValueError):
            HypothesisIn(**bad)  # type: ignore[arg-type]
    with pytest.raises(UserError):
        board.post(HypothesisIn(text="bin", patch="@@ \x00"))
    with pytest.raises(NotFound):
        board.get("nope")
    with pytest.raises(UserError):
        board.list_hypotheses(state="bogus")
    assert [x.id for x in board.list_hypotheses(limit=2)] == [c2, c1]


def test_an_edit_on_the_same_code_is_one_experiment_whatever_its_words(board: Board) -> None:
    """Two agents' classical proposers reaching one point describe it with different counts: one
    hypothesis. The same edit on other code, on another track, or as a confirmation is not the same."""
    diff = make_patch({"train.py": "LR = 0.1\n"}, {"train.py": "LR = 0.2\n"})
    base = {"base": "a" * 64}
    a, created = board.post(HypothesisIn(text="classical: LR 0.1 -> 0.2\n\n12 observations", patch=diff, meta=base))
    assert created
    again = HypothesisIn(text="classical: LR 0.1 -> 0.2\n\n13 observations", patch=diff, meta=base, source="classical")
    assert board.post(again) == (a, False)
    assert board.post(HypothesisIn(text="classical: LR 0.1 -> 0.2", patch=diff, meta={"base": "b" * 64}))[1]
    assert board.post(HypothesisIn(text="classical: LR 0.1 -> 0.2", patch=diff, meta=base, track="other"))[1]
    assert board.post(HypothesisIn(text="port: LR 0.1 -> 0.2", patch=diff, meta=base, kind="port"))[1]
    assert board.post(HypothesisIn(text="port: LR", patch=diff, meta=base, kind="port"))[1] is False
    c1 = HypothesisIn(text="confirm r1 with seed 1", kind="confirm", parent="r1", seed=1, patch=diff)
    c2 = HypothesisIn(text="confirm r2 with seed 1", kind="confirm", parent="r1", seed=1, patch=diff)
    assert board.post(c1)[1] and board.post(c2)[1]  # confirmations keep their text in their identity
    assert (
        board.post(HypothesisIn(text="no edit 1", patch=""))[1]
        and board.post(HypothesisIn(text="no edit 2", patch=""))[1]
    )
    # a human's patch without a base keeps its words: a second post in other words is a second idea
    assert (
        board.post(HypothesisIn(text="my idea", patch=diff))[1]
        and board.post(HypothesisIn(text="again", patch=diff))[1]
    )


def _result(rid: str, metric: float, track: str = TRACK, patch: str = EMPTY_PATCH) -> ResultIn:
    return ResultIn(
        result_id=rid, agent_id="a", track=track, status="keep", metric=metric, kind="baseline", patch_hash=patch
    )


def test_results_idempotent_and_listed_newest_first(board: Board) -> None:
    r1 = _result("r1", 1.0)
    assert board.publish(r1).stored is True
    assert board.publish(r1).stored is False
    board.publish(_result("r2", 0.9, track="gpu:H100"))
    assert [r.result_id for r in board.results()] == ["r2", "r1"]
    assert [r.result_id for r in board.results(track=TRACK)] == ["r1"]
    assert board.result("r1").metric == 1.0 and board.result("r1").published_ms > 0
    assert board.status()["experiments_last_hour"] == 2


MOVER = """
import sys
from swarm.board import Board, ResultIn
b = Board.connect(sys.argv[1], sys.argv[2])
metric = float(sys.argv[3])
rid = "r" + sys.argv[4]
b.publish(ResultIn(result_id=rid, agent_id=rid, track="cpu:2c", status="keep", metric=metric, patch_hash="0" * 64))
for _ in range(200):  # retry on stale generation, as an agent rebasing onto the new leader would
    cur = b.leader("cpu:2c")
    if cur is not None and not cur.metric > metric:
        break
    out = b.move_leader("cpu:2c", cur.generation if cur else 0, metric, "0" * 64, None, rid, rid)
    if out.accepted or out.reason == "not_better":
        break
"""


def test_leader_cas_under_concurrent_processes(board: Board, redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board.init(make_arena(tmp_path / "arena"))
    metrics = [1.0 - 0.01 * i for i in range(12)]
    procs = [
        subprocess.Popen([sys.executable, "-c", MOVER, redis_url, swarm_name, repr(m), str(i)], cwd=REPO)
        for i, m in enumerate(metrics)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lead = board.leader(TRACK)
    assert lead is not None and lead.metric == min(metrics)
    hist = board.leader_history(TRACK)
    assert [h.generation for h in hist] == list(range(1, len(hist) + 1))
    assert all(b.metric < a.metric for a, b in itertools.pairwise(hist))  # monotone
    assert [m.generation for _, m in board.leader_moves()] == [h.generation for h in hist]
    out = board.move_leader(TRACK, lead.generation - 1, 0.1, "0" * 64, None, "x", "r0")
    assert (out.accepted, out.reason) == (False, "stale_generation")


def test_move_leader_rules_min_delta_and_pubsub(board: Board, tmp_path: Path) -> None:
    board.init(make_arena(tmp_path / "arena"), min_delta=0.01)
    sub = board.r.pubsub()
    sub.subscribe(board.leader_channel())
    assert board.move_leader(TRACK, 0, 1.0, EMPTY_PATCH, None, "a", "missing").reason == "unknown_result"
    board.publish(_result("base", 1.0))
    assert board.move_leader(TRACK, 0, 0.5, EMPTY_PATCH, None, "a", "base").reason == "unknown_result"
    first = board.move_leader(TRACK, 0, 1.0, EMPTY_PATCH, None, "a", "base")
    assert first.accepted and first.leader is not None and first.leader.generation == 1
    board.publish(_result("tiny", 0.995))
    assert board.move_leader(TRACK, 1, 0.995, EMPTY_PATCH, None, "a", "tiny").reason == "not_better"
    board.publish(_result("good", 0.98))
    assert board.move_leader(TRACK, 1, 0.98, EMPTY_PATCH, None, "a", "good").accepted
    from swarm.board import parse_leader_message

    got = []
    for _ in range(50):
        msg = sub.get_message(timeout=0.1)
        if msg and msg["type"] == "message":
            got.append(parse_leader_message(msg["data"]).generation)
        if len(got) == 2:
            break
    assert got == [1, 2]
    assert board.leader_moves(after_id=board.leader_moves()[0][0])[0][1].metric == 0.98


def test_move_leader_checks_the_named_results_patch_with_or_without_support(board: Board, tmp_path: Path) -> None:
    board.init(make_arena(tmp_path / "arena"))
    other = "1" * 64
    board.publish(_result("base", 1.0))
    assert board.move_leader(TRACK, 0, 1.0, other, None, "a", "base").reason == "unknown_result"  # alone
    board.publish(_result("s1", 1.0))
    assert board.move_leader(TRACK, 0, 1.0, other, None, "a", "base", support=["s1"]).reason == "unknown_result"
    board.publish(_result("odd", 1.0, patch=other))  # a supporting run of other code
    assert board.move_leader(TRACK, 0, 1.0, EMPTY_PATCH, None, "a", "base", support=["odd"]).reason == "unknown_result"
    assert board.move_leader(TRACK, 0, 1.0, EMPTY_PATCH, None, "a", "base", support=["s1"]).accepted


def test_noise_first_writer_wins(board: Board) -> None:
    assert board.noise(TRACK) == []
    assert board.set_noise(TRACK, [0.97, 0.971]) is True
    assert board.set_noise(TRACK, [1.0]) is False
    assert board.noise(TRACK) == [0.97, 0.971]


def test_registry_alive_and_dead(board: Board) -> None:
    board.register(AgentInfo(agent_id="a1", host="h", gpu="cpu", track=TRACK, proposers=["classical"]))
    board.register(AgentInfo(agent_id="a2", track=TRACK), ttl_s=0.001)
    board.heartbeat("a1", "running", "h123")
    import time

    time.sleep(0.05)
    recs = {a.agent_id: a for a in board.agents()}
    assert recs["a1"].alive and recs["a1"].state == "running" and recs["a1"].current == "h123"
    assert not recs["a2"].alive  # dead agents stay listed as dead
    board.deregister("a2")
    assert [a.agent_id for a in board.agents()] == ["a1"]
    assert board.status()["agents_alive"] == 1


def test_events_and_follow(board: Board) -> None:
    board.event("note", "hello", x=1)
    evs = board.events()
    assert evs[-1].kind == "note" and evs[-1].fields == {"x": "1"}
    it = board.follow(after_id=evs[-1].id, block_ms=100, stop_after_idle=2)
    board.event("note", "second")
    assert next(it).text == "second"


def test_brief_versions(board: Board) -> None:
    assert board.brief() == (0, "")
    assert board.set_brief("v1") == 1
    assert board.set_brief("v1") == 1
    assert board.set_brief("v2") == 2
    assert board.brief() == (2, "v2")
    with pytest.raises(UserError):
        board.set_brief("   ")


def test_connect_password_and_unreachable() -> None:
    server = RedisServer(free_port(), tempfile.mkdtemp(), password="s3cret")
    server.start()
    try:
        b = Board.connect(server.url, "pw")
        assert b.post(HypothesisIn(text="x"))[1]
        b.r.close()
        wrong = server.url.replace("s3cret", "wrong")
        with pytest.raises(BoardUnavailable) as exc:
            Board.connect(wrong, "pw")
        assert "wrong" not in str(exc.value) and "***" in str(exc.value)
    finally:
        server.stop()
    from swarm.board.connection import connect

    with pytest.raises(BoardUnavailable, match=r"redis://:\*\*\*@127\.0\.0\.1:"):
        connect(f"redis://:pw@127.0.0.1:{free_port()}/0", retries=1, backoff_s=0.01)


def test_connect_acl_user_limited_to_its_swarm(redis_url: str, swarm_name: str) -> None:
    # An ACL user (redis://user:pass@host) that may only touch its own swarm's keys can run the whole
    # claim cycle: every key a script reaches is under the swarm's prefix. A wrong password is one line.
    admin = redis.Redis.from_url(redis_url)
    user = f"acl-{swarm_name}"
    admin.acl_setuser(
        user, enabled=True, passwords=["+p4ss"], keys=[f"swarm:{{{swarm_name}}}:*"], channels=["*"], commands=["+@all"]
    )
    host = redis_url.split("//", 1)[1].split("/", 1)[0]
    try:
        b = Board.connect(f"redis://{user}:p4ss@{host}/0", swarm_name)
        hid, created = b.post(HypothesisIn(text="acl idea"))
        c = b.claim("a", "cpu:2c")
        assert created and c is not None and c.hypothesis.id == hid and b.complete(hid, c.token)
        with pytest.raises(redis.exceptions.NoPermissionError):
            b.r.get("swarm:{another}:settings")  # another swarm's keys are off limits
        b.r.close()
        with pytest.raises(BoardUnavailable) as exc:
            Board.connect(f"redis://{user}:wrong@{host}/0", swarm_name)
        msg = str(exc.value)
        assert "\n" not in msg and "wrong" not in msg and f"redis://{user}:***@{host}/0" in msg
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_unknown_settings_defaults_allow_claims_without_init(board: Board) -> None:
    board.post(HypothesisIn(text="x"))
    c = board.claim("a", TRACK)
    assert c is not None and c.deadline_ms - board.server_ms() > 100_000  # default lease (900 s)
    assert json.loads(json.dumps(board.status()))["counts"]["claimed"] == 1


def test_refresh_leader_folds_new_runs_of_its_code_into_its_metric(board: Board, tmp_path: Path) -> None:
    board.init(make_arena(tmp_path / "arena"))
    for rid, metric in [("c", 0.90), ("s1", 0.92), ("s2", 0.91), ("s3", 0.93)]:
        board.publish(_result(rid, metric))
    moved = board.move_leader(TRACK, 0, 0.915, EMPTY_PATCH, None, "a", "c", support=["s1", "s2", "s3"])
    assert moved.accepted and moved.leader is not None and moved.leader.runs == 4
    board.publish(_result("n1", 0.95))
    board.publish(_result("odd", 0.95, patch="1" * 64))  # a run of other code
    runs = ["c", "s1", "s2", "s3", "n1"]
    mean = (0.90 + 0.92 + 0.91 + 0.93 + 0.95) / 5
    assert board.refresh_leader(TRACK, 2, mean, runs) is None  # another generation
    assert board.refresh_leader(TRACK, 1, mean, ["s1", "c", "s2", "s3", "n1"]) is None  # not the leader's first
    assert board.refresh_leader(TRACK, 1, 0.9, runs) is None  # not their mean
    assert board.refresh_leader(TRACK, 1, (4 * 0.915 + 0.95) / 5, [*runs[:4], "odd"]) is None  # other code
    assert board.refresh_leader(TRACK, 1, (4 * 0.915 + 0.93) / 5, [*runs[:4], "s3"]) is None  # a run twice
    assert board.refresh_leader(TRACK, 1, mean, runs) is not None
    lead = board.leader(TRACK)
    assert lead is not None and lead.runs == 5 and lead.metric == pytest.approx(mean) and lead.generation == 1
    assert board.refresh_leader(TRACK, 1, 0.915, runs[:4]) is None  # fewer runs never undo a fuller refresh
    assert board.refresh_leader(TRACK, 1, mean, runs) is None  # nor the same number
    assert [m.metric for m in board.leader_history(TRACK)] == [0.915]  # not a move: the history keeps the promotion
    assert len(board.leader_moves()) == 1
    # a move after it compares with the re-measured metric
    board.publish(_result("better", 0.92))
    assert board.move_leader(TRACK, 1, 0.92, EMPTY_PATCH, None, "a", "better").accepted  # 0.922 now, not 0.915
