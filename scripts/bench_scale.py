"""One board at scale: 1,000 simulated agents and 100,000 results on one private redis-server.

What it does, in order, on a redis-server of its own (a free port, AOF `everysec` as docker compose
runs it; never 6379):
  1. registers --agents agents (two GPU tracks) and posts the hypotheses the run will claim;
  2. fills the board to each of --sizes results through the board's real calls (post, claim,
     publish, complete; a leader move every MOVE_EVERY results), from FILL_PROCS processes;
     after each size it times what observers do, each in its own process as users run them:
     `swarm status --json` (STATUS_REPS runs), one GET /metrics on a real `swarm exporter`
     (SCRAPE_REPS), `swarm report` (once);
  3. runs the agents at each --rates step (claim -> publish -> complete cycles per second, all agents
     together; 1,000 GPUs on 5-minute runs make 3.3/s) for its seconds: every agent heartbeats every
     AGENT_HEARTBEAT_S and then asks who else is alive on its track, as `swarm agent` does; every agent
     holds a pub/sub subscription to the leader channel; a leader move is made every MOVE_EVERY_S,
     and the exporter is scraped every SCRAPE_EVERY_S as Prometheus would.

Reported per step: claim, publish, complete and heartbeat p50/p99 (ms, send to reply, on the client),
a bare TIME round trip after each claim from the same thread (`time_rt`: what any call pays on this
host with no script behind it, the floor under the others),
leader-move propagation p50/p99/max to every agent (move_leader sent -> the message read by each
agent's subscriber; same host, same clock) and the deliveries missed, Redis CPU (cores, from
/proc/<pid>/stat of the redis-server over the step), Redis memory (INFO used_memory), and the load
generator's own CPU (cores: its processes' CPU time over the step), since it shares the host with Redis.

The simulated agents are light: WORKER_PROCS processes, each holding its share of the agents, with
a few threads making the timed calls on a fixed schedule (open loop) and one thread reading every
subscription with select(). The heartbeat's peer check is the real agent's call
(`swarm.agent.peers.Peers`) when the board answers it without reading the registry; on a board that
only has `agents()`, the bench sends the same reads `agents()` sends (one pipeline) without building
the 1,000 records, which a real agent does in its own process.

    .venv/bin/python scripts/bench_scale.py                          # 1,000 agents, 1k/10k/100k results
    .venv/bin/python scripts/bench_scale.py --agents 200 --sizes 1000 --rates 3.3:20 --json out.json
    .venv/bin/python scripts/bench_scale.py --sizes 100000 --rates   # the observers at 100,000 results only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

if __name__ == "__main__" and "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

import swarm
from swarm import defaults
from swarm.board import Board, HypothesisIn, ResultIn
from swarm.board.embedded import RedisProcess, free_port
from swarm.board.leaders import parse_leader_message
from swarm.board.lua import LuaScript
from swarm.models import AgentInfo, Kind, Status

TRACKS = ("gpu:NVIDIA-H100-80GB-HBM3", "gpu:NVIDIA-H200")
PROPOSERS = ("classical", "human", "llm:anthropic/claude-sonnet-4-5", "llm:openai/gpt-5")
FILL_PROCS = 2  # the host has 2 cores
WORKER_PROCS = 4  # processes holding the simulated agents
CALL_THREADS = 6  # per worker process: threads making timed calls (a slow reply does not hold the others)
MOVE_EVERY = 500  # a leader move per this many results during the fill
MOVE_EVERY_S = 5.0  # a leader move this often while the agents run
SCRAPE_EVERY_S = 15.0  # Prometheus' default scrape interval
STATUS_REPS = 3
SCRAPE_REPS = 3
START_DELAY_S = 2.0
# The CLI and the exporter run from the tree this script imports `swarm` from: `python -m swarm` puts its
# working directory first on sys.path, so run from another checkout it would import that one instead
# (a before/after run with PYTHONPATH on a worktree would time the current tree's CLI).
TREE = Path(swarm.__file__).resolve().parents[1]


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms_summary(xs: list[float]) -> dict[str, Any]:
    return {
        "n": len(xs),
        "p50_ms": None if not xs else round(pct(xs, 0.5) * 1000, 3),  # type: ignore[operator]
        "p99_ms": None if not xs else round(pct(xs, 0.99) * 1000, 3),  # type: ignore[operator]
        "max_ms": None if not xs else round(max(xs) * 1000, 3),
    }


def agent_id(i: int) -> str:
    return f"node{i // 8:03d}-gpu{i % 8}"


def track_of(i: int) -> str:
    return TRACKS[i % len(TRACKS)]


def result_in(
    i: int, agent: str, track: str, hid: str | None, token: int | None, metric: float, now_ms: int
) -> ResultIn:
    """A result as an LLM agent on an H100 fills it in; proposer, kind and status vary with `i`."""
    status = ("discard", "discard", "discard", "keep", "crash", "discard", "timeout", "discard")[i % 8]
    kind = "confirm" if i % 10 == 9 else "explore"
    failed = status in ("crash", "timeout")
    llm = PROPOSERS[i % len(PROPOSERS)].startswith("llm:")
    return ResultIn(
        result_id=f"r-{uuid.uuid4().hex}",
        hypothesis_id=hid,
        token=token,
        agent_id=agent,
        proposer=PROPOSERS[i % len(PROPOSERS)],
        track=track,
        parent_generation=12,
        parent_patch_hash="a" * 64,
        patch_hash="b" * 64,
        status=status,
        metric=None if failed else metric,
        metric_name="val_bpb",
        seed=i,
        training_s=300.1,
        steps=1200,
        tokens=500_000_000,
        peak_mem_mb=44000.5,
        error="CUDA out of memory" if failed else "",
        llm_input_tokens=12000 if llm else 0,
        llm_output_tokens=900 if llm else 0,
        llm_cost_usd=0.05 if llm else 0.0,
        llm_latency_s=8.2 if llm else 0.0,
        started_ms=now_ms - 300_000,
        finished_ms=now_ms,
        kind=kind,
    )


def post_hypotheses(b: Board, n: int, tag: str) -> None:
    for i in range(n):
        b.post(HypothesisIn(text=f"Raise the matrix LR to 0.0{i % 9 + 1} with warmup {i} ({tag})", priority=i % 5))


def post_worker(url: str, swarm_name: str, n: int, tag: str) -> None:
    post_hypotheses(Board(redis.Redis.from_url(url), swarm_name), n, tag)


# --- 2. fill ----------------------------------------------------------------------------------------


def fill_worker(url: str, swarm_name: str, wid: int, start: int, n: int, q: Any) -> None:
    """`n` results through the agent's own sequence: post, claim, publish, complete; a move now and then."""
    b = Board(redis.Redis.from_url(url), swarm_name)
    track = TRACKS[wid % len(TRACKS)]
    agent = agent_id(wid)
    moves = 0
    for j in range(n):
        i = start + j
        b.post(HypothesisIn(text=f"Fill idea {i}: change the schedule by {i} steps", track=track))
        c = b.claim(agent, track)
        assert c is not None
        now = b.server_ms()
        res = result_in(i, agent, track, c.hypothesis.id, c.token, 1.0 + 1e-7 * (i % 1000), now)
        b.publish(res)
        b.complete(c.hypothesis.id, c.token)
        if i % MOVE_EVERY == wid:
            moves += move_once(b, track, agent, i)
    q.put(moves)


def move_once(b: Board, track: str, agent: str, i: int) -> int:
    """Publish a baseline result better than the leader and move the leader to it; 1 when accepted."""
    lead = b.leader(track)
    metric = 1.0 if lead is None else lead.metric - 1e-3
    res = result_in(3, agent, track, None, None, metric, b.server_ms())
    res = res.model_copy(update={"status": Status.KEEP, "metric": metric, "kind": Kind.BASELINE})
    b.publish(res)
    out = b.move_leader(track, 0 if lead is None else lead.generation, metric, "b" * 64, None, agent, res.result_id)
    return int(out.accepted)


def fill(url: str, swarm_name: str, have: int, want: int) -> dict[str, Any]:
    t0 = time.monotonic()
    q: Any = mp.Queue()
    per = (want - have) // FILL_PROCS
    procs = [
        mp.Process(target=fill_worker, args=(url, swarm_name, w, have + w * per, per, q)) for w in range(FILL_PROCS)
    ]
    for p in procs:
        p.start()
    moves = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return {"results": have + per * FILL_PROCS, "fill_s": round(time.monotonic() - t0, 1), "moves": moves}


# --- observers ----------------------------------------------------------------------------------------


def cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "swarm", *args], env=env, cwd=TREE, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def scrape(port: int) -> tuple[float, float]:
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as resp:
        body = resp.read().decode()
    wall = time.monotonic() - t0
    inner = next(
        (
            float(line.split()[-1])
            for line in body.splitlines()
            if line.startswith("swarm_board_scrape_duration_seconds")
        ),
        -1.0,
    )
    return wall, inner


def observers(env: dict[str, str], port: int, results: int, out_dir: Path) -> dict[str, Any]:
    status = [cli(["status", "--json"], env) for _ in range(STATUS_REPS)]
    scrapes = [scrape(port) for _ in range(SCRAPE_REPS)]
    report = cli(["report", "--out", str(out_dir / f"report-{results}")], env)
    return {
        "results": results,
        "status_json_s": [round(x, 3) for x in status],
        "scrape_s": [round(w, 3) for w, _ in scrapes],
        "scrape_board_read_s": [round(i, 3) for _, i in scrapes],
        "report_s": round(report, 2),
    }


# --- 3. the agents --------------------------------------------------------------------------------------


def peers_call(b: Board, me: str, track: str) -> Any:
    """What `swarm agent` asks after each heartbeat: is another agent alive on my track?"""
    from swarm.agent.peers import Peers

    if hasattr(b, "others_alive"):
        return Peers(b, me, track).others_on_track
    k = b.k

    def same_reads_as_agents() -> bool:
        pipe = b.r.pipeline(transaction=False)
        pipe.hgetall(k.agents)
        pipe.hgetall(k.agents_status)
        pipe.zrange(k.agents_expiry, 0, -1, withscores=True)
        pipe.hgetall(k.agents_health)
        pipe.time()
        pipe.execute()
        return True

    return same_reads_as_agents


def agents_worker(
    url: str, swarm_name: str, wid: int, ids: list[int], steps: list[tuple[float, float]], start: float, q: Any
) -> None:
    """Agents `ids`: heartbeats + peer checks, their share of the cycles, and a subscription each."""
    b = Board(redis.Redis.from_url(url, max_connections=64), swarm_name)
    sub_client = redis.Redis.from_url(url, max_connections=10_000)  # one connection per subscription, as each agent
    nw = WORKER_PROCS
    subs = []
    for i in ids:
        ps = sub_client.pubsub(ignore_subscribe_messages=True)
        ps.subscribe(b.leader_channel())
        subs.append((i, ps))
    peers = {i: peers_call(b, agent_id(i), track_of(i)) for i in ids}
    end = start + sum(s for _, s in steps)
    bounds = []
    t = start
    for _, secs in steps:
        bounds.append((t, t + secs))
        t += secs

    def step_of(ts: float) -> int:
        for n, (a, z) in enumerate(bounds):
            if a <= ts < z:
                return n
        return -1

    lat: dict[str, list[list[float]]] = {
        k: [[] for _ in steps] for k in ("claim", "publish", "complete", "heartbeat", "peers", "time")
    }
    lags: list[list[float]] = [[] for _ in steps]
    received: list[tuple[int, str, float]] = []
    lock = threading.Lock()

    # The schedule: heartbeats every AGENT_HEARTBEAT_S per agent, spread evenly; cycles at each step's
    # rate / nw for this process, spread over agents round-robin.
    jobs: list[tuple[float, str, int]] = []
    beat = defaults.AGENT_HEARTBEAT_S
    for n, i in enumerate(ids):
        ts = start + beat * n / len(ids)
        while ts < end:
            jobs.append((ts, "beat", i))
            ts += beat
    k = 0
    for (rate, _secs), (a, z) in zip(steps, bounds, strict=True):
        interval = nw / rate
        ts = a + interval * wid / nw
        while ts < z:
            jobs.append((ts, "cycle", ids[k % len(ids)]))
            k += 1
            ts += interval
    jobs.sort()
    nxt = [0]

    def caller() -> None:
        seq = 0
        while True:
            with lock:
                if nxt[0] >= len(jobs):
                    return
                ts, what, i = jobs[nxt[0]]
                nxt[0] += 1
            wait = ts - time.time()
            if wait > 0:
                time.sleep(wait)
            st = step_of(ts)
            me, track = agent_id(i), track_of(i)
            lags[st].append(time.time() - ts)
            if what == "beat":
                t0 = time.perf_counter()
                b.heartbeat(me, "running")
                t1 = time.perf_counter()
                peers[i]()
                t2 = time.perf_counter()
                lat["heartbeat"][st].append(t1 - t0)
                lat["peers"][st].append(t2 - t1)
                continue
            t0 = time.perf_counter()
            c = b.claim(me, track)
            t1 = time.perf_counter()
            lat["claim"][st].append(t1 - t0)
            if c is None:
                continue
            seq += 1
            t0 = time.perf_counter()
            now_ms = b.server_ms()  # a bare TIME: the round trip any call pays on this host, no script
            lat["time"][st].append(time.perf_counter() - t0)
            res = result_in(seq + wid, me, track, c.hypothesis.id, c.token, 2.0, now_ms)
            t0 = time.perf_counter()
            b.publish(res)
            t1 = time.perf_counter()
            b.complete(c.hypothesis.id, c.token)
            t2 = time.perf_counter()
            lat["publish"][st].append(t1 - t0)
            lat["complete"][st].append(t2 - t1)

    def listener() -> None:
        socks = {ps.connection._sock: (i, ps) for i, ps in subs}  # type: ignore[union-attr]
        while time.time() < end + 3.0:
            ready, _, _ = select.select(list(socks), [], [], 0.2)
            for sock in ready:
                i, ps = socks[sock]
                while True:
                    msg = ps.get_message(timeout=0)
                    if msg is None:
                        break
                    received.append((i, parse_leader_message(msg["data"]).result_id, time.time()))

    cpu0 = [0.0] * len(steps)
    cpu1 = [0.0] * len(steps)

    def cpu_clock() -> None:
        for n, (a, z) in enumerate(bounds):
            time.sleep(max(0.0, a - time.time()))
            cpu0[n] = time.process_time()
            time.sleep(max(0.0, z - time.time()))
            cpu1[n] = time.process_time()

    threads = [threading.Thread(target=caller) for _ in range(CALL_THREADS)]
    threads += [threading.Thread(target=listener), threading.Thread(target=cpu_clock)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    q.put(
        {
            "lat": lat,
            "lags": lags,
            "received": received,
            "cpu_s": [z - a for a, z in zip(cpu0, cpu1, strict=True)],
        }
    )


def redis_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVER_SCRIPTS = ("claim", "publish", "complete", "heartbeat")  # --server-times: the scripts timed in Redis
SLOWLOG_MAX = 1_000_000  # entries kept per step (a step at 1,000 cycles/s for 20 s logs ~90,000 commands)


def server_times_start(r: redis.Redis) -> None:
    """Log every command's own execution time in Redis (SLOWLOG at 0 us), from an empty log."""
    r.config_set("slowlog-max-len", SLOWLOG_MAX)
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()


def server_times_read(r: redis.Redis) -> dict[str, Any]:
    """Per board script, its execution time inside Redis over the step (us: p50, p99, max, count): what
    a call costs the server, apart from the client's and the host's scheduling."""
    entries = r.execute_command("SLOWLOG", "GET", -1)
    r.config_set("slowlog-log-slower-than", -1)
    by_sha = {LuaScript(r, n).sha: n for n in SERVER_SCRIPTS}
    us: dict[str, list[float]] = {n: [] for n in SERVER_SCRIPTS}
    for e in entries:
        args = e[3]
        if len(args) > 1 and args[0].upper() == b"EVALSHA":
            name = by_sha.get(args[1].decode())
            if name is not None:
                us[name].append(float(e[2]))
    out = {}
    for n, xs in us.items():
        xs.sort()
        out[n] = {"p50_us": pct(xs, 0.5), "p99_us": pct(xs, 0.99), "max_us": xs[-1] if xs else None, "n": len(xs)}
    return out


def run_agents(
    url: str,
    swarm_name: str,
    n_agents: int,
    steps: list[tuple[float, float]],
    redis_pid: int,
    port: int,
    server_times: bool = False,
) -> list[dict[str, Any]]:
    r = redis.Redis.from_url(url)
    b = Board(r, swarm_name)
    need = int(sum(rate * secs for rate, secs in steps) * 1.2) + 100
    posters = [
        mp.Process(target=post_worker, args=(url, swarm_name, need // FILL_PROCS + 1, f"{w}-{uuid.uuid4().hex[:6]}"))
        for w in range(FILL_PROCS)
    ]
    for p in posters:
        p.start()
    for p in posters:
        p.join()
    start = time.time() + START_DELAY_S + n_agents / 400  # time to subscribe every agent
    q: Any = mp.Queue()
    shares = [list(range(w, n_agents, WORKER_PROCS)) for w in range(WORKER_PROCS)]
    procs = [
        mp.Process(target=agents_worker, args=(url, swarm_name, w, shares[w], steps, start, q))
        for w in range(WORKER_PROCS)
    ]
    for p in procs:
        p.start()
    # The main process: Redis CPU and memory per step, a leader move every MOVE_EVERY_S, scrapes.
    sent: dict[str, tuple[float, int]] = {}
    redis_cpu: list[float] = []
    mem: list[int] = []
    scrapes: list[list[float]] = []
    t = start
    time.sleep(max(0.0, t - time.time()))
    timed: list[dict[str, Any]] = []
    for n, (_rate, secs) in enumerate(steps):
        if server_times:
            server_times_start(r)
        c0 = redis_cpu_s(redis_pid)
        z = t + secs
        next_move, next_scrape = t + 1.0, t + 2.0
        sc: list[float] = []
        while time.time() < z:
            now = time.time()
            if now >= next_move:
                lead = b.leader(TRACKS[0])
                metric = 1.0 if lead is None else lead.metric - 1e-3
                res = result_in(3, "mover", TRACKS[0], None, None, metric, b.server_ms())
                res = res.model_copy(update={"status": Status.KEEP, "metric": metric, "kind": Kind.BASELINE})
                b.publish(res)
                t0 = time.time()
                out = b.move_leader(
                    TRACKS[0], lead.generation if lead else 0, metric, "b" * 64, None, "mover", res.result_id
                )
                if out.accepted:
                    sent[res.result_id] = (t0, n)
                next_move += MOVE_EVERY_S
            elif now >= next_scrape:
                sc.append(scrape(port)[0])
                next_scrape += SCRAPE_EVERY_S
            else:
                time.sleep(min(0.05, max(0.0, min(next_move, next_scrape, z) - now)))
        redis_cpu.append((redis_cpu_s(redis_pid) - c0) / secs)
        timed.append(server_times_read(r) if server_times else {})
        mem.append(int(r.info("memory")["used_memory"]))
        scrapes.append(sc)
        t = z
    outs = [q.get(timeout=60 + n_agents / 10) for _ in procs]  # a worker that died: Empty, not a hang
    for p in procs:
        p.join()
    rows = []
    for n, (rate, secs) in enumerate(steps):

        def merged(key: str, n: int = n) -> list[float]:
            return [x for o in outs for x in o["lat"][key][n]]

        prop: list[float] = []
        missed = 0
        for rid, (t0, st) in sent.items():
            if st != n:
                continue
            got = [ts - t0 for o in outs for (_i, r_id, ts) in o["received"] if r_id == rid]
            prop += got
            missed += n_agents - len(got)
        lags = [x for o in outs for x in o["lags"][n]]
        rows.append(
            {
                "rate_cycles_s": rate,
                "seconds": secs,
                "claim": ms_summary(merged("claim")),
                "publish": ms_summary(merged("publish")),
                "complete": ms_summary(merged("complete")),
                "heartbeat": ms_summary(merged("heartbeat")),
                "peer_check": ms_summary(merged("peers")),
                "time_rt": ms_summary(merged("time")),
                "moves": sum(1 for _, st in sent.values() if st == n),
                "propagation": {**ms_summary(prop), "missed": missed},
                "schedule_lag_p99_ms": round((pct(lags, 0.99) or 0) * 1000, 1),
                "redis_cpu_cores": round(redis_cpu[n], 3),
                "redis_used_memory_mb": round(mem[n] / 2**20, 1),
                "loadgen_cpu_cores": round(sum(o["cpu_s"][n] for o in outs) / secs, 3),
                "scrape_s": [round(x, 3) for x in scrapes[n]],
                **({"server_us": timed[n]} if server_times else {}),
            }
        )
    return rows


# --- main -----------------------------------------------------------------------------------------------


def parse_steps(vals: list[str]) -> list[tuple[float, float]]:
    steps = []
    for v in vals:
        rate, _, secs = v.partition(":")
        try:
            steps.append((float(rate), float(secs)))
        except ValueError:
            raise SystemExit(f"error: bad --rates step {v!r}: RATE:SECONDS, e.g. 3.3:60") from None
        if steps[-1][0] <= 0 or steps[-1][1] <= 0:
            raise SystemExit(f"error: bad --rates step {v!r}: rate and seconds must be > 0")
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000], help="results to fill to")
    ap.add_argument("--rates", nargs="*", default=["3.3:60", "10:20", "30:20", "100:20", "300:20"], help="RATE:SECONDS")
    ap.add_argument("--json", type=Path, help="write every figure here too")
    ap.add_argument(
        "--server-times",
        action="store_true",
        help="also time each board script inside Redis (SLOWLOG at 0 us; adds ~1 us per command)",
    )
    args = ap.parse_args()
    if args.agents < WORKER_PROCS or any(s < FILL_PROCS for s in args.sizes) or args.sizes != sorted(args.sizes):
        raise SystemExit("error: --agents must be >= 4 and --sizes ascending, each >= 2")
    steps = parse_steps(args.rates)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stop still stops the exporter and redis-server
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server = RedisProcess(work / "redis", persist=True, extra_args=["--appendfsync", "everysec"])
    server.start()
    assert server.proc is not None
    swarm_name = f"scale-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_REDIS_URL=server.url, SWARM_NAME=swarm_name)
    where = subprocess.run(
        [sys.executable, "-c", "import swarm; print(swarm.__file__)"],
        env=env,
        cwd=TREE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(where).resolve() != Path(swarm.__file__).resolve():
        raise SystemExit(f"error: the CLI imports {where}, this script {swarm.__file__}")
    out: dict[str, Any] = {"swarm_module": swarm.__file__, "cli_swarm_module": where, "agents": args.agents}
    print(f"swarm: {swarm.__file__} (CLI: {where})", flush=True)
    exporter = None
    try:
        b = Board(server.client(), swarm_name)
        for i in range(args.agents):
            b.register(
                AgentInfo(
                    agent_id=agent_id(i),
                    host=f"node{i // 8:03d}",
                    gpu="H100",
                    track=track_of(i),
                    proposers=["classical", "anthropic:claude-sonnet-4-5"],
                    metrics_addr=f"10.0.{i // 250}.{i % 250}:9410",
                )
            )
        port = free_port()
        exporter = subprocess.Popen(
            [sys.executable, "-m", "swarm", "exporter", "--port", str(port)],
            env=env,
            cwd=TREE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t_end = time.monotonic() + 30
        while True:
            try:
                scrape(port)
                break
            except OSError:
                if time.monotonic() > t_end:
                    raise
                time.sleep(0.2)
        out["cli_startup_s"] = round(min(cli(["--help"], env) for _ in range(3)), 3)
        print(f"cli_startup_s: {out['cli_startup_s']}", flush=True)
        have = 0
        out["sizes"] = []
        for size in args.sizes:
            f = fill(server.url, swarm_name, have, size)
            have = f["results"]
            row = {
                **f,
                **observers(env, port, have, work),
                "redis_used_memory_mb": round(int(b.r.info("memory")["used_memory"]) / 2**20, 1),
            }
            out["sizes"].append(row)
            print(json.dumps(row), flush=True)
        out["steps"] = (  # `--rates` with no steps: the observers only
            run_agents(server.url, swarm_name, args.agents, steps, server.proc.pid, port, args.server_times)
            if steps
            else []
        )
        for row in out["steps"]:
            print(json.dumps(row), flush=True)
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
