"""Board benchmark: claim -> complete cycles per second and claim latency, against raw Redis.

For each concurrency level (default 1, 16, 64 client processes, one connection each) it measures,
on the same Redis in the same run:
  raw    PING round trips per second (the ceiling any client-side protocol could reach)
  board  claim -> complete cycles per second (two Lua scripts per cycle) and p50/p99 claim latency
and reports cycles/s divided by PING/s. Hypotheses are pre-posted so workers never run dry.

    .venv/bin/python scripts/bench_board.py                 # starts its own redis-server
    .venv/bin/python scripts/bench_board.py --redis URL --clients 1 16 64 --seconds 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from swarm.board import Board, HypothesisIn
from swarm.embedded import RedisProcess
from swarm.models import pack

TRACK = "cpu:bench"


def _sync(ready: mp.Queue, go: mp.Event, start: mp.Value) -> float:  # type: ignore[type-arg, valid-type]
    """Report ready, wait until every worker is, return the common start time."""
    ready.put(1)
    go.wait()  # type: ignore[attr-defined]
    t = float(start.value)  # type: ignore[attr-defined]
    while time.time() < t:
        time.sleep(0.0005)
    return t


def _raw_worker(url: str, sync: tuple, seconds: float, q: mp.Queue) -> None:  # type: ignore[type-arg]
    r = redis.Redis.from_url(url)
    r.ping()
    start = _sync(*sync)
    n = 0
    end = start + seconds
    while time.time() < end:
        r.ping()
        n += 1
    q.put(("raw", n, []))


def _board_worker(url: str, swarm: str, wid: int, sync: tuple, seconds: float, q: mp.Queue) -> None:  # type: ignore[type-arg]
    b = Board(redis.Redis.from_url(url), swarm)
    b.r.ping()
    start = _sync(*sync)
    n = 0
    lat: list[float] = []
    end = start + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        c = b.claim(f"bench-{wid}", TRACK)
        lat.append(time.perf_counter() - t0)
        if c is None:
            q.put(("dry", n, lat))
            return
        b.complete(c.hypothesis.id, c.token)
        n += 1
    q.put(("board", n, lat))


def _prefill(url: str, swarm: str, n: int) -> None:
    b = Board(redis.Redis.from_url(url), swarm)
    pipe = b.r.pipeline(transaction=False)
    for i in range(n):
        h = HypothesisIn(text=f"bench idea {i}", priority=i % 5)
        from swarm.hypotheses import hypothesis_id

        hid = hypothesis_id(h, None)
        data = h.model_dump(exclude={"patch"})
        data["patch_hash"] = None
        k = b.k
        b.scripts.post(
            keys=[k.hyp(hid), k.open_queue(None, False), k.state("open"), k.seq_hyp, k.events],
            args=[hid, pack(data), h.priority, "bench post", 10_000],
            client=pipe,
        )
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def _run(target, args_for, n: int, seconds: float) -> list[tuple[str, int, list[float]]]:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    go = ctx.Event()
    start = ctx.Value("d", 0.0)
    sync = (ready, go, start)
    procs = [ctx.Process(target=target, args=(*args_for(i), sync, seconds, q)) for i in range(n)]
    for p in procs:
        p.start()
    for _ in procs:  # every process imported, connected and waiting: start the clock together
        ready.get(timeout=300)
    start.value = time.time() + 0.2
    go.set()
    out = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", help="Redis URL (default: start a private redis-server on a free port)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--prefill", type=int, default=20_000, help="hypotheses posted per level before timing")
    args = ap.parse_args()
    server = None
    workdir = None
    url = args.redis
    if url is None:
        workdir = tempfile.mkdtemp(prefix="bench-redis-")
        server = RedisProcess(workdir)
        server.start()
        url = server.url
    try:
        print("clients  ping_per_s  cycles_per_s  ratio  claim_p50_ms  claim_p99_ms")
        for n in args.clients:
            raw = _run(_raw_worker, lambda i: (url,), n, args.seconds)
            pings = sum(c for _, c, _ in raw) / args.seconds
            swarm = f"bench-{uuid.uuid4().hex[:8]}"
            _prefill(url, swarm, args.prefill)
            res = _run(_board_worker, lambda i, s=swarm: (url, s, i), n, args.seconds)
            if any(kind == "dry" for kind, _, _ in res):
                print(f"warning: the queue ran dry at {n} clients; raise --prefill", file=sys.stderr)
            cycles = sum(c for _, c, _ in res) / args.seconds
            lat = sorted(x for _, _, ls in res for x in ls)
            p50 = statistics.median(lat) * 1000
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000
            print(
                f"{n:7d}  {pings:10.0f}  {cycles:12.0f}  {cycles / pings:5.2f}  {p50:12.2f}  {p99:12.2f}",
                flush=True,
            )
            redis.Redis.from_url(url).delete(*[f"swarm:{{{swarm}}}:{k}" for k in ("events",)])
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(workdir or "", ignore_errors=True)


if __name__ == "__main__":
    main()
