"""`swarm export` / `swarm import`: a recorded board, exported and loaded into another Redis, is the same;
imported `--as` another name beside the original on the same Redis, it is a working copy of it."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import redis
from cli_run import one_line_error, swarm_cli
from conftest import RedisServer, free_port
from test_report import TRAIN, _edit, record_board

from swarm.board import Board
from swarm.board.keys import Keys
from swarm.board.snapshot import (
    Snapshot,
    export_swarm,
    import_swarm,
    read_snapshot,
    rename_snapshot,
    snapshot_swarm,
    temporary_board,
)
from swarm.errors import Conflict, UserError
from swarm.models import HypothesisIn, ProposerHealth, ResultIn, State

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def other_server() -> Iterator[RedisServer]:
    """A second redis-server (with a password), the destination of a move."""
    workdir = tempfile.mkdtemp(prefix="swarm-test-redis2-")
    server = RedisServer(free_port(), workdir, password="pw-for-the-move")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def comparable(board: Board) -> dict[str, object]:
    """What a user sees of a board, through the board API."""
    tracks = sorted(board.leaders())
    return {
        "settings": board.settings(),
        "counts": board.counts(),
        "leaders": board.leaders(),
        "history": {t: board.leader_history(t) for t in tracks},
        "results": board.results(limit=1000),
        "hypotheses": board.list_hypotheses(limit=1000),
        "events": [(e.id, e.kind, e.text) for e in board.events(limit=1000)],
        "agents": [(a.agent_id, a.track, a.host, a.gpu, a.state, a.expires_ms) for a in board.agents()],
        "arena": board.arena_files(),
        "brief": board.brief(),
        "noise": {t: board.noise(t) for t in tracks},
        "patches": {m.patch_hash: board.get_patch(m.patch_hash) for h in board.leaders().values() for m in [h]},
    }


def test_export_then_import_reproduces_the_board(
    redis_url: str, swarm_name: str, tmp_path: Path, other_server: RedisServer
) -> None:
    src = Board.connect(redis_url, swarm_name)
    record_board(src, tmp_path)
    # a key with a TTL keeps (about) its remaining time
    src.r.set(Keys(swarm_name).prefix + "probe:ttl", b"x", px=600_000)
    path = tmp_path / "board.swarm.gz"
    snap = export_swarm(src.r, swarm_name, path)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    types = {e.type for e in snap.keys}
    assert {"string", "hash", "zset", "stream"} <= types

    dst = Board.connect(other_server.url, swarm_name)
    assert import_swarm(dst.r, read_snapshot(path)) == len(snap.keys)
    assert comparable(dst) == comparable(src)
    # byte-for-byte: every key, type and value; TTLs within the time the test took
    again = snapshot_swarm(dst.r, swarm_name)
    assert [(e.key, e.type, e.value, e.last_id) for e in again.keys] == [
        (e.key, e.type, e.value, e.last_id) for e in snap.keys
    ]
    ttl = dst.r.pttl(Keys(swarm_name).prefix + "probe:ttl")
    assert 0 < ttl <= 600_000

    # the imported board is live: post, claim, publish-free leader check, and streams keep growing
    hid, created = dst.post(HypothesisIn(text="After the move: try LR 0.07", track="gpu:H100"))
    assert created
    claim = dst.claim("new-agent", "gpu:H100")
    assert claim is not None and claim.hypothesis.id == hid

    def sid(stream_id: str) -> tuple[int, int]:
        ms, seq = stream_id.split("-")
        return int(ms), int(seq)

    newest = max(sid(e.id) for e in dst.events(limit=5))
    exported = snap.entry("events")
    assert exported is not None and newest > sid(exported.value[-1][0])  # new ids follow the imported ones


def test_import_refuses_an_existing_swarm(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    path = tmp_path / "s.swarm.gz"
    export_swarm(board.r, swarm_name, path)
    before = snapshot_swarm(board.r, swarm_name)
    with pytest.raises(Conflict, match="already exists"):
        import_swarm(board.r, read_snapshot(path))
    assert snapshot_swarm(board.r, swarm_name).keys == before.keys  # nothing was touched


def test_export_of_a_missing_swarm_and_bad_files(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    with pytest.raises(UserError, match="no keys"):
        snapshot_swarm(r, swarm_name)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"not msgpack at all \xc1"))
    with pytest.raises(UserError):
        read_snapshot(bad)
    other = tmp_path / "other.gz"
    other.write_bytes(gzip.compress(msgpack.packb({"format": "something-else"})))
    with pytest.raises(UserError, match="not a swarm snapshot"):
        read_snapshot(other)
    future = tmp_path / "future.gz"
    future.write_bytes(gzip.compress(msgpack.packb({"format": "swarm-snapshot", "version": 99})))
    with pytest.raises(UserError, match="version 99"):
        read_snapshot(future)
    with pytest.raises(UserError, match="cannot read"):
        read_snapshot(tmp_path / "missing.gz")


WRITER = """
import sys
from swarm.board import Board
from swarm.models import HypothesisIn
board = Board.connect(sys.argv[1], sys.argv[2])
for i in range(100000):
    board.post(HypothesisIn(text=f"idea number {i}", priority=i % 7))
    if i == 10:
        print("ready", flush=True)
"""


def test_export_during_writes_is_a_consistent_cut(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, redis_url, swarm_name], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        snaps = []
        for _ in range(3):
            snaps.append(snapshot_swarm(board.r, swarm_name))
            # let the writer add keys before the next cut (it may be slow on a loaded machine)
            seen = board.r.zcard(Keys(swarm_name).state("open"))
            deadline = time.monotonic() + 20
            while board.r.zcard(Keys(swarm_name).state("open")) == seen and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        writer.terminate()
        writer.wait(timeout=10)
        if writer.stdout is not None:
            writer.stdout.close()
    for snap in snaps:
        hyp_keys = {e.key for e in snap.keys if e.key.startswith("hyp:")}
        opened = snap.entry("state:open")
        assert opened is not None
        members = {m.decode() for m, _ in opened.value}
        # every queued id has its hypothesis hash in the same cut, and every hypothesis is in a state set
        assert {f"hyp:{m}" for m in members} <= hyp_keys
        states = [e for e in snap.keys if e.key.startswith("state:")]
        in_states = {f"hyp:{m.decode()}" for e in states for m, _ in e.value}
        assert in_states == hyp_keys
    assert len(snaps[-1].keys) > len(snaps[0].keys)  # the writer really wrote between the cuts


def test_temporary_board_serves_a_snapshot(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_url, swarm_name)
    rec = record_board(board, tmp_path)
    path = tmp_path / "t.swarm.gz"
    export_swarm(board.r, swarm_name, path)
    with temporary_board(path) as tb:
        assert tb.swarm == swarm_name
        assert len(tb.results(limit=1000)) == len(rec.results)
        assert tb.leaders() == board.leaders()
        port = tb.r.connection_pool.connection_kwargs["port"]
    with pytest.raises(redis.exceptions.ConnectionError):  # the private server is gone
        redis.Redis(port=port, socket_connect_timeout=1).ping()


def test_cli_export_import(
    redis_url: str, swarm_name: str, tmp_path: Path, other_server: RedisServer, clean_env: dict[str, str]
) -> None:
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    cli = [sys.executable, "-c", "from swarm.cli import main; main()"]
    path = tmp_path / "cli.swarm.gz"
    env = {**clean_env, "SWARM_REDIS_URL": redis_url, "SWARM_NAME": swarm_name}
    out = subprocess.run(
        [*cli, "export", "--out", str(path)], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert f"swarm={swarm_name}" in out.stdout
    env2 = {**clean_env, "SWARM_REDIS_URL": other_server.url}
    imp = subprocess.run([*cli, "import", str(path)], env=env2, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert imp.returncode == 0, imp.stderr
    assert comparable(Board.connect(other_server.url, swarm_name)) == comparable(board)
    # a second import into the same server is refused with the Conflict exit code and one line
    again = subprocess.run([*cli, "import", str(path)], env=env2, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == Conflict.exit_code
    assert again.stderr.startswith("error: ") and len(again.stderr.strip().splitlines()) == 1
    assert "pw-for-the-move" not in again.stderr + imp.stdout + imp.stderr


# Every key family of swarm/board/keys.py's table. `populate_every_key` writes each of them, and the
# `--as` test fails on a key it does not know: a new key must be checked for the swarm's name or
# prefix stored inside its values (swarm.board.snapshot.rename_snapshot rewrites those) and added here.
KEY_FAMILIES = (
    "settings", "arena:files", "arena:blobs", "brief", "seq:hyp", "seq:token", "hyp:", "open:",
    "state:open", "state:claimed", "state:done", "state:failed", "state:cancelled", "leases", "claims:",
    "claimants", "patches", "results", "results:meta", "results:stream", "results:tally", "results:minutes",
    "leader:t=", "history:t=", "leader:tracks", "leader:moves", "noise:t=", "agents", "agents:status",
    "agents:expiry", "agents:live:t=",
    "agents:health", "proposers:usage", "proposers:implemented", "arms:t=", "events",
)  # fmt: skip
GPU = "gpu:H100"


def family(key: str) -> str | None:
    return next((f for f in KEY_FAMILIES if key == f or (f.endswith((":", "=")) and key.startswith(f))), None)


def populate_every_key(board: Board, tmp_path: Path) -> tuple[str, int]:
    """record_board plus hypotheses in every state, a claim held, proposer health, usage and arms.
    Returns the held claim's hypothesis id and token."""
    record_board(board, tmp_path)
    given, _ = board.post(HypothesisIn(text="Given back: the edit did not apply", priority=5, track=GPU))
    claim = board.claim("node1-gpu0", GPU)
    assert claim is not None and claim.hypothesis.id == given
    board.implemented("claude")
    assert board.give_back(given, claim.token, "claude", "edit did not apply")[0] == State.OPEN
    cancelled, _ = board.post(HypothesisIn(text="Cancelled before anyone ran it"))
    board.cancel(cancelled)
    held, _ = board.post(HypothesisIn(text="Held: a claim in flight at export", priority=9, track=GPU))
    claim = board.claim("node1-gpu0", GPU)
    assert claim is not None and claim.hypothesis.id == held
    board.heartbeat("node1-gpu0", "running", held)
    board.post(HypothesisIn(text="Open, any track, text only"))
    board.post(HypothesisIn(text="Open, any track, with a patch", patch=_edit(TRAIN.replace("= 4", "= 5"))))
    board.add_usage("claude", calls=7, failures=2, input_tokens=7000, output_tokens=700, cost_usd=0.21)
    board.set_health("node1-gpu0", {"claude": ProposerHealth(state="backoff", reason="429", failures=2)})
    board.add_arm(GPU, "claude", runs=3, improved=2, delta=0.05, cost_usd=0.15)
    return held, claim.token


def values_of(snap: Snapshot) -> list[tuple[str, object, object]]:
    return [(e.key, e.type, e.value) for e in snap.keys]


def test_import_as_another_name_is_a_working_copy_beside_the_original(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    orig = Board.connect(redis_url, swarm_name)
    held, token = populate_every_key(orig, tmp_path)
    path = tmp_path / "orig.swarm.gz"
    snap = export_swarm(orig.r, swarm_name, path)
    unknown = [e.key for e in snap.keys if family(e.key) is None]
    assert not unknown, f"keys this test does not know (check them for stored key names, add them): {unknown}"
    assert {family(e.key) for e in snap.keys} == set(KEY_FAMILIES)  # the board really uses every key

    copy_name = f"copy-{uuid.uuid4().hex[:8]}"
    env = {**clean_env, "SWARM_REDIS_URL": redis_url}
    out = swarm_cli(["import", str(path), "--as", copy_name], env, REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"imported: swarm={copy_name} from={swarm_name} keys={len(snap.keys)}"
    copy = Board.connect(redis_url, copy_name)

    # the same board under the new name: same keys, and not one byte of the old name left anywhere
    copied = snapshot_swarm(copy.r, copy_name)
    assert [e.key for e in copied.keys] == [e.key for e in snap.keys]
    assert values_of(copied) == values_of(rename_snapshot(snap, copy_name))
    for e in copied.keys:
        blob = msgpack.packb([e.key, e.value, e.groups], use_bin_type=True)
        assert swarm_name.encode() not in blob, (e.key, e.value)
    mine, theirs = comparable(copy), comparable(orig)
    mine.pop("settings"), theirs.pop("settings")
    assert mine == theirs
    settings, orig_settings = copy.settings(), orig.settings()
    assert settings is not None and orig_settings is not None
    assert settings == orig_settings.model_copy(update={"name": copy_name})
    status = copy.status()
    assert status["swarm"] == copy_name and status["counts"] == orig.counts()
    assert status["leaders"] == {t: ld.model_dump() for t, ld in orig.leaders().items()}

    # fully usable: the claim held at export goes back to the copy's own queue (the `queue` stored in
    # the hypothesis was rewritten), is claimed from the copy and completed there
    assert copy.release(held, token)
    text_queue = Keys(copy_name).open_queue(GPU, has_patch=False)
    assert copy.r.zscore(text_queue, held) is not None
    assert orig.r.zscore(Keys(swarm_name).open_queue(GPU, has_patch=False), held) is None
    claim = copy.claim("copy-agent", GPU)
    assert claim is not None and claim.hypothesis.id == held
    assert copy.complete(held, claim.token, State.DONE)
    posted, created = copy.post(HypothesisIn(text="Only in the copy: LR 0.08", priority=8, track=GPU))
    assert created
    claim = copy.claim("copy-agent", GPU)
    assert claim is not None and claim.hypothesis.id == posted
    lead = copy.leader(GPU)
    assert lead is not None
    rid = uuid.uuid4().hex
    now = copy.server_ms()
    result = ResultIn(
        result_id=rid, hypothesis_id=posted, token=claim.token, agent_id="copy-agent", track=GPU,
        status="keep", metric=lead.metric - 0.1, metric_name="score", patch_hash=lead.patch_hash,
        training_s=1.0, started_ms=now - 2000, finished_ms=now,
    )  # fmt: skip
    assert copy.publish(result).stored
    moved = copy.move_leader(GPU, lead.generation, lead.metric - 0.1, lead.patch_hash, posted, "copy-agent", rid)
    assert moved.accepted
    assert copy.complete(posted, claim.token, State.DONE)
    counts = copy.counts()
    assert counts["done"] == orig.counts()["done"] + 2 and counts["claimed"] == 0
    copy_leader = copy.leader(GPU)
    assert copy_leader is not None and copy_leader.generation == lead.generation + 1

    # the original is untouched, byte for byte, and still holds its claim
    assert values_of(snapshot_swarm(orig.r, swarm_name)) == values_of(snap)
    assert orig.get(held).state == State.CLAIMED
    orig_leader = orig.leader(GPU)
    assert orig_leader is not None and orig_leader.generation == lead.generation


def test_import_refuses_swarm_without_as(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    path = tmp_path / "s.swarm.gz"
    export_swarm(board.r, swarm_name, path)
    env = {**clean_env, "SWARM_REDIS_URL": redis_url}
    other = f"other-{uuid.uuid4().hex[:8]}"

    # --swarm naming another swarm was once ignored; now it is one line pointing at --as, nothing written
    refused = swarm_cli(["--swarm", other, "import", str(path)], env, REPO)
    assert refused.returncode == UserError.exit_code
    line = one_line_error(refused)
    assert f"--as {other}" in line and repr(swarm_name) in line
    both = swarm_cli(["--swarm", other, "import", str(path), "--as", "third"], env, REPO)
    assert both.returncode == UserError.exit_code and "--as" in one_line_error(both)
    bad = swarm_cli(["import", str(path), "--as", "no spaces"], env, REPO)
    assert bad.returncode == UserError.exit_code and "bad swarm name" in one_line_error(bad)
    for name in (other, "third"):
        assert not list(board.r.scan_iter(match=Keys(name).prefix + "*"))
    # --as onto an existing swarm is refused like any import over one
    onto = swarm_cli(["import", str(path), "--as", swarm_name], env, REPO)
    assert onto.returncode == Conflict.exit_code and "already exists" in one_line_error(onto)
    # a --swarm that agrees with the snapshot (the documented move) or with --as is no refusal
    agrees = swarm_cli(["--swarm", swarm_name, "import", str(path)], env, REPO)
    assert agrees.returncode == Conflict.exit_code and "already exists" in one_line_error(agrees)
    same = swarm_cli(["--swarm", other, "import", str(path), "--as", other], env, REPO)
    assert same.returncode == 0, same.stderr
    assert Board.connect(redis_url, other).settings() is not None
