"""Publish latency under each durability setup: what `appendfsync always` and a replica's WAIT cost.

One client publishes --count results one after another (each a realistic ~0.5 KB record, through
`Board.publish`, so with the WAIT when there is a replica) on servers this script starts on loopback:

  memory        a single redis-server, no persistence (the test suite's and the demo's setup)
  aof-everysec  a single redis-server, AOF fsynced once a second (Redis' default AOF policy)
  aof-always    a single redis-server, AOF fsynced before each write is answered
  sentinel      primary + one replica + three sentinels, no persistence: each publish waits for the
                replica's acknowledgement (WAIT 1)
  sentinel-aof  the same with AOF `appendfsync always` on both servers (docs/operations.md's setup)

and prints `setup: p50_ms p99_ms mean_ms publishes/s` lines, then `--json` if asked. The servers' files
go to --dir (default: a temporary directory), so the fsync figures are those of that disk.

`--failover MS...` then times what a failover looks like to a publisher: for each sentinel
`down-after-milliseconds` given, a fresh group, kill -9 of the primary, and publishes retried the way
the agent's loop retries a BOARD_DOWN error (0.5 s, doubling, at most 15 s); it prints when each error
surfaced (after the client's own retries) and when a publish went through on the promoted replica.

    .venv/bin/python scripts/bench_publish.py --count 2000
    .venv/bin/python scripts/bench_publish.py --setups memory aof-always --dir /var/tmp/bench
    .venv/bin/python scripts/bench_publish.py --setups --failover 500 5000

`--setups memory` also runs on a tree from before Sentinel support (copy this file into its scripts/),
to compare a single Redis before and after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm import defaults
from swarm.board import Board, ResultIn
from swarm.board.connection import BOARD_DOWN
from swarm.board.embedded import RedisProcess

SETUPS = ("memory", "aof-everysec", "aof-always", "sentinel", "sentinel-aof")
WARMUP = 50  # publishes before timing: connections made, scripts loaded, the AOF file created


@contextmanager
def board_url(setup: str, root: Path) -> Iterator[str]:
    """A running server (or Sentinel group) for `setup`, as the URL agents would be given."""
    if setup.startswith("sentinel"):
        from swarm.board.embedded import SentinelGroup  # here, so `--setups memory` runs on older trees too

        aof = setup == "sentinel-aof"
        group = SentinelGroup(root, persist=aof, server_args=("--appendfsync", "always") if aof else ())
        group.start()
        try:
            yield group.url
        finally:
            group.stop()
        return
    fsync = {"memory": None, "aof-everysec": "everysec", "aof-always": "always"}[setup]
    fsync_args: dict[str, Any] = {"extra_args": ("--appendfsync", fsync)} if fsync else {}  # older trees lack it
    server = RedisProcess(root, persist=fsync is not None, **fsync_args)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def result(i: int) -> ResultIn:
    return ResultIn(
        result_id=uuid.uuid4().hex,
        agent_id=f"bench-host-gpu0-{i % 8}",
        proposer="classical",
        track="gpu:NVIDIA-H100-80GB-HBM3",
        status="discard",
        metric=0.98 + i * 1e-6,
        metric_name="val_bpb",
        training_s=300.0,
        steps=1234,
        tokens=400_000_000,
        peak_mem_mb=40_000.0,
        parent_patch_hash="0" * 64,
        patch_hash="1" * 64,
        seed=i,
        started_ms=1_700_000_000_000,
        finished_ms=1_700_000_300_000,
    )


def measure(url: str, count: int) -> dict[str, Any]:
    board = Board.connect(url, f"bench-{uuid.uuid4().hex[:8]}")
    for i in range(WARMUP):
        board.publish(result(i))
    lat_ms: list[float] = []
    t0 = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        board.publish(result(i))
        lat_ms.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    board.r.close()
    lat_ms.sort()
    return {
        "p50_ms": round(lat_ms[len(lat_ms) // 2], 3),
        "p99_ms": round(lat_ms[int(len(lat_ms) * 0.99)], 3),
        "mean_ms": round(statistics.fmean(lat_ms), 3),
        "publishes_per_s": round(count / wall, 1),
        "replicas": board.replication.replicas() if hasattr(board, "replication") else 0,
    }


def failover(root: Path, down_after_ms: int) -> dict[str, Any]:
    """kill -9 the primary; publish as the agent does until one goes through (see the module docstring)."""
    from swarm.board.embedded import SentinelGroup

    group = SentinelGroup(root, down_after_ms=down_after_ms)
    group.start()
    try:
        board = Board.connect(group.url, "bench-failover")
        board.publish(result(0))
        group.kill_primary()
        t0 = time.monotonic()
        errors: list[str] = []
        wait_s = 0.0
        while True:
            try:
                board.publish(result(1))
                break
            except BOARD_DOWN as exc:
                errors.append(f"{type(exc).__name__} at {time.monotonic() - t0:.2f} s")
                wait_s = min(defaults.BOARD_BACKOFF_MAX_S, max(defaults.BOARD_BACKOFF_S, 2 * wait_s))
                time.sleep(wait_s)
        ok_s = time.monotonic() - t0
        board.r.close()
    finally:
        group.stop()
    return {"down_after_ms": down_after_ms, "published_after_s": round(ok_s, 2), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000, help="timed publishes per setup")
    ap.add_argument("--setups", nargs="*", choices=SETUPS, default=list(SETUPS))
    ap.add_argument("--failover", nargs="*", type=int, default=[], metavar="MS", help="down-after-ms to time")
    ap.add_argument("--dir", type=Path, default=None, help="where the servers keep their files (the disk fsync hits)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="swarm-bench-publish-", dir=args.dir))
    out: dict[str, Any] = {"count": args.count}
    try:
        for setup in args.setups:
            with board_url(setup, base / setup) as url:
                fig = measure(url, args.count)
            out[setup] = fig
            print(
                f"{setup}: p50_ms {fig['p50_ms']} p99_ms {fig['p99_ms']} mean_ms {fig['mean_ms']} "
                f"publishes/s {fig['publishes_per_s']} replicas {fig['replicas']}",
                flush=True,
            )
        for ms in args.failover:
            fo = failover(base / f"failover-{ms}", ms)
            out[f"failover-{ms}"] = fo
            print(
                f"failover (down-after {ms} ms): publish ok after {fo['published_after_s']} s; "
                f"errors: {', '.join(fo['errors']) or 'none (the client rode it out)'}",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
