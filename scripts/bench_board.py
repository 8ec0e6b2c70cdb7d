"""Board benchmark: claim -> complete cycles and claim latency, against raw Redis on the same server.

For each concurrency level (default 1, 16, 64 client processes, one connection each), in one run on
the same Redis:
  ping       closed loop: every client sends PING as fast as it can through redis-py's client
             (`r.ping()`) -> PING/s and PING p50/p99 (what a Python program gets from this Redis)
  saturated  closed loop: every client runs claim -> complete as fast as it can (two Lua scripts per
             cycle, sent through redis-py like the PINGs) -> cycles/s, ratio = cycles/s / PING/s,
             claim p50/p99, server us per script call
  paced      open loop: the same clients together offer --paced-rate cycles/s (each on a fixed
             schedule, spread evenly) -> claim p50/p99 under a load the host can carry; max_lag_ms
             says how late the worst cycle started against its schedule (large: the host could not
             keep the pace and the figure is not an open-loop one)
then, with one client, the server time of each script alone (INFO commandstats deltas over
--calib-calls claims, then as many completes, then PINGs).

A cycle is two round trips, so the ratio cannot exceed 0.5 against PING. When the clients and the
server share few cores, the saturated runs measure the host's CPU: by Little's law the mean latency
of N closed-loop clients is N / throughput, whatever the board does. The paced run is the figure an
agent sees in a real swarm (64 agents claim far below 1/s).

    .venv/bin/python scripts/bench_board.py                 # starts its own redis-server
    .venv/bin/python scripts/bench_board.py --redis URL --clients 1 16 64 --seconds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from swarm.board import Board, HypothesisIn
from swarm.board.embedded import RedisProcess
from swarm.board.hypotheses import hypothesis_id
from swarm.models import pack

TRACK = "cpu:bench"
START_DELAY_S = 0.2  # every worker is connected and waiting; this lets the last one see the start time
LINGER_S = 0.2  # workers exit this long after the timed window, so exits never overlap timed work
LATE_MS = 1.0  # a paced cycle that starts more than this after its schedule counts as late
CALIB_ROUNDS = 5  # the server-time calibration is split in rounds; the lowest is the least disturbed


def _sync(ready: Any, go: Any, start: Any) -> float:
    """Report ready, wait until every worker is, return the common start time (time.time())."""
    ready.put(1)
    go.wait()
    t = float(start.value)
    while time.time() < t:
        time.sleep(0.0005)
    return t


def _linger(end: float) -> None:
    """Stay until every worker's window is over: a paced worker done early would otherwise exit (and
    tear its interpreter down, ~tens of ms of CPU) while others still time their last cycles."""
    wait = end + LINGER_S - time.time()
    if wait > 0:
        time.sleep(wait)


def _ping_worker(url: str, wid: int, nw: int, sync: tuple, seconds: float, rate: float, q: Any) -> None:
    """PING in a closed loop through redis-py's client."""
    r = redis.Redis.from_url(url)
    r.ping()
    start = _sync(*sync)
    lat: list[float] = []
    end = start + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        r.ping()
        lat.append(time.perf_counter() - t0)
    _linger(end)
    q.put({"n": len(lat), "lat": lat})


def _board_worker(url: str, wid: int, nw: int, sync: tuple, seconds: float, rate: float, q: Any, swarm: str) -> None:
    """Claim -> complete in a closed loop (rate 0) or on a fixed schedule of `rate` cycles/s.

    Worker `wid` of `nw` starts its schedule `wid / nw` of an interval late, so the offered load is even.
    """
    b = Board(redis.Redis.from_url(url), swarm)
    agent = f"bench-{wid}"

    def claim() -> tuple[str, int] | None:
        c = b.claim(agent, TRACK)
        return None if c is None else (c.hypothesis.id, c.token)

    # One untimed cycle first: a process's first claim pays one-off costs (pydantic builds its
    # validators lazily, the connection is opened) that would otherwise be 1 in every few paced samples.
    warm = claim()
    if warm is not None:
        b.complete(*warm)
    start = _sync(*sync)
    end = start + seconds
    lat: list[float] = []
    lags: list[float] = []
    n = 0
    dry = False
    interval = 1.0 / rate if rate > 0 else 0.0
    due = start + interval * wid / nw
    while True:
        if rate > 0:
            if due >= end:
                break
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            lags.append(max(0.0, time.time() - due))
            due += interval
        elif time.time() >= end:
            break
        t0 = time.perf_counter()
        c = claim()
        lat.append(time.perf_counter() - t0)
        if c is None:
            dry = True
            break
        b.complete(*c)
        n += 1
    _linger(end)
    q.put({"n": n, "lat": lat, "lags": lags, "dry": dry})


def _prefill(url: str, swarm: str, n: int) -> None:
    """Post `n` text hypotheses for the bench track, pipelined (the post script, as Board.post runs it)."""
    b = Board(redis.Redis.from_url(url), swarm)
    k = b.k
    pipe = b.r.pipeline(transaction=False)
    for i in range(n):
        h = HypothesisIn(text=f"bench idea {i}", priority=i % 5)
        hid = hypothesis_id(h, None)
        data = h.model_dump(exclude={"patch"})
        data["patch_hash"] = None
        b.scripts.post(
            keys=[k.hyp(hid), k.open_queue(None, False), k.state("open"), k.seq_hyp, k.events],
            args=[hid, pack(data), h.priority, "bench post", 10_000],
            client=pipe,
        )
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def _drop(url: str, swarm: str) -> None:
    """Delete every key of a bench swarm (so a run against a shared server leaves nothing behind)."""
    r = redis.Redis.from_url(url)
    batch = []
    for key in r.scan_iter(match=f"swarm:{{{swarm}}}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            r.delete(*batch)
            batch = []
    if batch:
        r.delete(*batch)


def _run(target: Any, n: int, url: str, seconds: float, rate: float, *extra: Any) -> list[dict[str, Any]]:
    """Start `n` worker processes, start their clocks together, collect one report from each."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ready = ctx.Queue()
    go = ctx.Event()
    start = ctx.Value("d", 0.0)
    sync = (ready, go, start)
    procs = [ctx.Process(target=target, args=(url, i, n, sync, seconds, rate, q, *extra)) for i in range(n)]
    for p in procs:
        p.start()
    for _ in procs:  # every process imported, connected and waiting: start the clock together
        ready.get(timeout=300)
    start.value = time.time() + START_DELAY_S
    go.set()
    out = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return out


def _pct_ms(lat: list[float], p: float) -> float:
    """The p-quantile of `lat` (seconds) in ms: the smallest sample with at least p of them at or below."""
    if not lat:
        return float("nan")
    xs = sorted(lat)
    return xs[min(len(xs) - 1, max(0, int(p * len(xs) + 0.999_999) - 1))] * 1000


def _cmd_us(r: redis.Redis, name: str) -> tuple[int, int]:
    """(calls, usec) of command `name` so far on the server (deltas: no CONFIG RESETSTAT needed)."""
    e = r.info("commandstats").get(f"cmdstat_{name}", {})
    return int(e.get("calls", 0)), int(e.get("usec", 0))


def _per_call(before: tuple[int, int], after: tuple[int, int]) -> float:
    calls = after[0] - before[0]
    return (after[1] - before[1]) / calls if calls else float("nan")


def _calibrate(url: str, calls: int, rounds: int = CALIB_ROUNDS) -> dict[str, float]:
    """Server us per call of claim, complete and PING alone: one client, INFO commandstats deltas.

    `calls` claims, then as many completes, then PINGs, split into `rounds` rounds; each figure is the
    lowest round's (interference from other work on the host only ever adds time) and the median's.
    """
    swarm = f"bboard-{uuid.uuid4().hex[:8]}"
    _prefill(url, swarm, calls)
    b = Board(redis.Redis.from_url(url), swarm)
    r = b.r
    per = max(1, calls // rounds)
    got: dict[str, list[float]] = {"claim_us": [], "complete_us": [], "ping_us": []}
    for _ in range(rounds):
        before = _cmd_us(r, "evalsha")
        claims = [b.claim("calib", TRACK) for _ in range(per)]
        mid = _cmd_us(r, "evalsha")
        for c in claims:
            assert c is not None and b.complete(c.hypothesis.id, c.token)
        after = _cmd_us(r, "evalsha")
        p0 = _cmd_us(r, "ping")
        for _ in range(per):
            r.ping()
        p1 = _cmd_us(r, "ping")
        got["claim_us"].append(_per_call(before, mid))
        got["complete_us"].append(_per_call(mid, after))
        got["ping_us"].append(_per_call(p0, p1))
    _drop(url, swarm)
    out: dict[str, float] = {}
    for k, xs in got.items():
        out[k] = min(xs)
        out[k.replace("_us", "_median_us")] = statistics.median(xs)
    return out


def _cycles(
    r: redis.Redis, url: str, n: int, seconds: float, rate: float, posts: int
) -> tuple[list[dict[str, Any]], float]:
    """One phase of `n` claim -> complete workers (`_board_worker`) on a fresh bench swarm holding
    `posts` hypotheses, deleted afterwards: the workers' reports and the server us per script call
    during the phase (warns when the queue ran dry, which caps the rate)."""
    swarm = f"bboard-{uuid.uuid4().hex[:8]}"
    _prefill(url, swarm, posts)
    try:
        ev0 = _cmd_us(r, "evalsha")
        out = _run(_board_worker, n, url, seconds, rate, swarm)
        ev1 = _cmd_us(r, "evalsha")
    finally:
        _drop(url, swarm)
    if any(w["dry"] for w in out):
        print(f"warning: the queue ran dry at {n} clients; raise --prefill", file=sys.stderr)
    return out, _per_call(ev0, ev1)


def measure(
    url: str, clients: list[int], seconds: float, prefill: int, paced_rate: float, calib_calls: int
) -> dict[str, Any]:
    """Every level's figures and the calibration, as one JSON-ready dict."""
    r = redis.Redis.from_url(url)
    levels = []
    for n in clients:
        ping = _run(_ping_worker, n, url, seconds, 0.0)
        ping_lat = [x for w in ping for x in w["lat"]]
        pings = sum(w["n"] for w in ping) / seconds
        sat, script_us = _cycles(r, url, n, seconds, 0.0, prefill + n)
        cycles = sum(w["n"] for w in sat) / seconds
        sat_lat = [x for w in sat for x in w["lat"]]
        paced, _ = _cycles(r, url, n, seconds, paced_rate / n, int(paced_rate * seconds * 1.2) + 100 + n)
        paced_lat = [x for w in paced for x in w["lat"]]
        lags = [x for w in paced for x in w["lags"]]
        levels.append(
            {
                "clients": n,
                "ping_per_s": pings,
                "ping_p50_ms": _pct_ms(ping_lat, 0.5),
                "ping_p99_ms": _pct_ms(ping_lat, 0.99),
                "cycles_per_s": cycles,
                "ratio": cycles / pings if pings else float("nan"),
                "claim_p50_ms": _pct_ms(sat_lat, 0.5),
                "claim_p99_ms": _pct_ms(sat_lat, 0.99),
                "script_us": script_us,
                "paced_rate": paced_rate,
                "paced_cycles_per_s": sum(w["n"] for w in paced) / seconds,
                "paced_claims": len(paced_lat),
                "paced_claim_p50_ms": _pct_ms(paced_lat, 0.5),
                "paced_claim_p99_ms": _pct_ms(paced_lat, 0.99),
                "paced_late_frac": sum(x * 1000 > LATE_MS for x in lags) / len(lags) if lags else float("nan"),
                "paced_max_lag_ms": max(lags, default=0.0) * 1000,
            }
        )
        print(f"measured {n} clients", file=sys.stderr, flush=True)
    calib = _calibrate(url, calib_calls)
    return {"seconds": seconds, "prefill": prefill, "levels": levels, "server_us_per_call": calib}


def _no_nan(obj: Any) -> Any:
    """NaN (a figure with no samples) as JSON null."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def report(res: dict[str, Any]) -> str:
    lines = ["saturated (closed loop: every client as fast as it can)"]
    lines.append(
        "clients  ping_per_s  ping_p50_ms  ping_p99_ms  cycles_per_s  ratio  claim_p50_ms  claim_p99_ms  script_us"
    )
    for lv in res["levels"]:
        lines.append(
            f"{lv['clients']:7d}  {lv['ping_per_s']:10.0f}  {lv['ping_p50_ms']:11.2f}  {lv['ping_p99_ms']:11.2f}"
            f"  {lv['cycles_per_s']:12.0f}  {lv['ratio']:5.2f}"
            f"  {lv['claim_p50_ms']:12.2f}  {lv['claim_p99_ms']:12.2f}  {lv['script_us']:9.1f}"
        )
    rate = res["levels"][0]["paced_rate"] if res["levels"] else 0
    lines.append(f"paced (open loop: {rate:g} cycles/s offered in total, spread over the clients)")
    lines.append("clients  cycles_per_s  claims  claim_p50_ms  claim_p99_ms  late_frac  max_lag_ms")
    for lv in res["levels"]:
        lines.append(
            f"{lv['clients']:7d}  {lv['paced_cycles_per_s']:12.0f}  {lv['paced_claims']:6d}"
            f"  {lv['paced_claim_p50_ms']:12.2f}  {lv['paced_claim_p99_ms']:12.2f}"
            f"  {lv['paced_late_frac']:9.3f}  {lv['paced_max_lag_ms']:10.2f}"
        )
    c = res["server_us_per_call"]
    lines.append(f"server time per call (one client, INFO commandstats; lowest of {CALIB_ROUNDS} rounds, median)")
    lines.append(
        f"claim_us: {c['claim_us']:.1f} ({c['claim_median_us']:.1f})  complete_us: {c['complete_us']:.1f}"
        f" ({c['complete_median_us']:.1f})  ping_us: {c['ping_us']:.2f} ({c['ping_median_us']:.2f})"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", help="Redis URL (default: start a private redis-server on a free port)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each timed phase")
    ap.add_argument(
        "--prefill", type=int, default=80_000, help="hypotheses posted per saturated level (more than it can claim)"
    )
    ap.add_argument(
        "--paced-rate",
        type=float,
        default=200.0,
        help="cycles/s offered in total in the paced phase (default 200: ~10%% of the saturated rate "
        "at 64 clients on a 2-core host, and hundreds of times what 64 real agents ask)",
    )
    ap.add_argument("--calib-calls", type=int, default=2000, help="claims (and completes) timed alone on the server")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    if args.paced_rate <= 0:
        ap.error("--paced-rate must be > 0")
    server = None
    workdir = None
    url = args.redis
    if url is None:
        workdir = tempfile.mkdtemp(prefix="bench-redis-")
        server = RedisProcess(workdir)
        server.start()
        url = server.url
    try:
        res = measure(url, args.clients, args.seconds, args.prefill, args.paced_rate, args.calib_calls)
        print(report(res), flush=True)
        if args.json:
            args.json.write_text(json.dumps(_no_nan(res), indent=2) + "\n", encoding="utf-8")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(workdir or "", ignore_errors=True)


if __name__ == "__main__":
    main()
