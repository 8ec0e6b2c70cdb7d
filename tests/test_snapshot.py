"""`swarm export` / `swarm import`: a recorded board, exported and loaded into another Redis, is the same."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import redis
from conftest import RedisServer, free_port
from test_report import record_board

from swarm.board import Board
from swarm.board.keys import Keys
from swarm.board.snapshot import export_swarm, import_swarm, read_snapshot, snapshot_swarm, temporary_board
from swarm.errors import Conflict, UserError
from swarm.models import HypothesisIn

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
