"""Web view benchmark: how long each page of `swarm web` takes on a board with many results.

    .venv/bin/python scripts/bench_web.py                      # 100,000 results, its own redis-server
    .venv/bin/python scripts/bench_web.py --redis URL --results 20000 --repeat 3 --json out.json

Builds a swarm: a tiny arena pinned, --agents agents registered, --hypotheses hypotheses posted, then
--results results published through `board.publish` from --threads threads (each names one of the
hypotheses, round robin, with a noisy downward metric and 5% failed runs; every tenth of the way a
baseline result moves the leader). Then it serves the web view on a free port, as `swarm web` does,
and loads each page over real HTTP:

  build_s     publishing the board (not part of the view)
  index_s     the view's first index of the results (what `swarm web` does once before serving)
  cold_ms     each page's first load (the overview also draws and caches its chart)
  warm_ms     each page's median over --repeat more loads (nothing new published)
  fresh_ms    the overview after --fresh new results (the index tops up, the chart is redrawn)
  kbytes      each page's size

Prints `key: value` lines; --json writes them. With --redis the swarm's keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm.board import EMPTY_PATCH, Board  # after the path: the script runs from a checkout
from swarm.board.embedded import RedisProcess, free_port
from swarm.models import AgentInfo, HypothesisIn, ResultIn
from swarm.observe.web import WebView, make_server

TRACK = "gpu:NVIDIA-H100-80GB-HBM3"
TOML = """[arena]
name = "bench"
editable = ["train.py"]

[metric]
name = "val_bpb"
direction = "minimize"

[run]
command = ["{python}", "train.py"]

[profiles.cpu]
budget_s = 5
timeout_s = 20
"""


def _publish_range(board: Board, hids: list[str], names: list[str], total: int, idx: range) -> None:
    rng = random.Random(idx.start)
    for i in idx:
        metric = 1.0 - 0.05 * i / total + rng.gauss(0, 0.01)
        failed = rng.random() < 0.05
        llm = i % 2  # every other result from the LLM proposer
        board.publish(
            ResultIn(
                result_id=uuid.uuid4().hex, hypothesis_id=hids[i % len(hids)], agent_id=names[i % len(names)],
                proposer=("classical", "llm:anthropic/claude-sonnet-4-5")[llm], track=TRACK,
                status="crash" if failed else ("keep" if rng.random() < 0.1 else "discard"),  # type: ignore[arg-type]
                metric=None if failed else metric, metric_name="val_bpb", seed=i,
                llm_input_tokens=800 * llm, llm_output_tokens=150 * llm, llm_cost_usd=0.008 * llm,
            )
        )  # fmt: skip


def _parallel(threads: int, fn: Any, chunk: range) -> None:
    pool = [threading.Thread(target=fn, args=(chunk[s::threads],)) for s in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def build(board: Board, results: int, hypotheses: int, agents: int, threads: int) -> list[str]:
    """The board described in the module docstring; returns the hypothesis ids."""
    arena = Path(tempfile.mkdtemp(prefix="bench-web-arena-"))
    (arena / "arena.toml").write_text(TOML)
    (arena / "train.py").write_text("LR = 0.01\n")
    board.init(arena)
    names = [f"node{i // 8}-gpu{i % 8}" for i in range(agents)]
    for name in names:
        board.register(AgentInfo(agent_id=name, host=name.split("-")[0], gpu="H100", track=TRACK,
                                 proposers=["classical", "anthropic:claude-sonnet-4-5"]))  # fmt: skip
    hids: list[str] = [""] * hypotheses

    def post(idx: range) -> None:
        for i in idx:
            hids[i] = board.post(HypothesisIn(text=f"idea {i}: change constant {i % 97}", track=TRACK))[0]

    _parallel(threads, post, range(hypotheses))
    board.add_usage("anthropic:claude-sonnet-4-5", calls=results // 2, failures=results // 50,
                    input_tokens=results * 400, output_tokens=results * 75, cost_usd=results * 0.004)  # fmt: skip
    gen = 0
    for step in range(10):  # ten stretches, each ending with a leader move (a baseline result: never stale)
        chunk = range(step * results // 10, (step + 1) * results // 10)
        _parallel(threads, lambda idx: _publish_range(board, hids, names, results, idx), chunk)
        rid = uuid.uuid4().hex
        metric = 1.0 - 0.05 * (step + 1) / 10 - 0.01
        board.publish(ResultIn(result_id=rid, agent_id=names[0], track=TRACK, status="keep", metric=metric,  # type: ignore[arg-type]
                               kind="baseline", metric_name="val_bpb", patch_hash=EMPTY_PATCH))  # fmt: skip
        out = board.move_leader(TRACK, gen, metric, EMPTY_PATCH, hids[step], names[0], rid)
        assert out.accepted and out.leader is not None, out
        gen = out.leader.generation
    return hids


SIZES: dict[str, int] = {}  # path -> bytes of its last load


def load(base: str, path: str) -> float:
    """One page over HTTP: its time in ms (raises unless 200)."""
    host, port = base.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        SIZES[path] = len(resp.read())
        ms = 1000 * (time.perf_counter() - t0)
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}")
    return ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", help="a Redis URL (default: start a redis-server of our own)")
    ap.add_argument("--results", type=int, default=100_000)
    ap.add_argument("--hypotheses", type=int, default=0, help="default: one per 10 results")
    ap.add_argument("--agents", type=int, default=64)
    ap.add_argument("--threads", type=int, default=4, help="publishing threads (the board is thread-safe)")
    ap.add_argument("--repeat", type=int, default=5, help="warm loads per page (the median is reported)")
    ap.add_argument("--fresh", type=int, default=100, help="results published before the fresh load")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    if args.redis and args.redis.rstrip("/").split("/")[2].endswith(":6379"):
        ap.error("refusing port 6379: give a Redis that holds nothing of value (or none: one is started)")
    server_proc = None
    url = args.redis
    if url is None:
        server_proc = RedisProcess(tempfile.mkdtemp(prefix="bench-web-redis-"), port=free_port())
        server_proc.start()
        url = server_proc.url
    swarm = f"bench-web-{uuid.uuid4().hex[:8]}"
    board = Board.connect(url, swarm)
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        hids = build(board, args.results, args.hypotheses or max(1, args.results // 10), args.agents, args.threads)
        out["build_s"] = round(time.perf_counter() - t0, 2)
        out["results"] = int(board.r.xlen(board.k.results_stream))  # with the 10 baselines that moved the leader
        view = WebView(board)
        t0 = time.perf_counter()
        out["indexed"] = view.index.refresh(board)
        out["index_s"] = round(time.perf_counter() - t0, 2)
        http_server = make_server(view, "127.0.0.1", 0)
        threading.Thread(target=http_server.serve_forever, daemon=True).start()
        base = f"127.0.0.1:{http_server.server_port}"
        pages = {
            "overview": "/",
            "overview_page_100": "/?page=100",
            "hypothesis": f"/h/{hids[len(hids) // 2]}",
            "hypotheses_open": "/hypotheses?state=open&page=2",
            "agents": "/agents",
            "proposers": "/proposers",
        }
        out["cold_ms"] = {name: round(load(base, path), 1) for name, path in pages.items()}
        out["warm_ms"] = {
            name: round(statistics.median(load(base, path) for _ in range(args.repeat)), 1)
            for name, path in pages.items()
        }
        _publish_range(board, hids, [f"node0-gpu{i}" for i in range(8)], args.results, range(args.fresh))
        out["fresh_ms"] = {"overview": round(load(base, "/"), 1)}
        out["kbytes"] = {name: round(SIZES[path] / 1024) for name, path in pages.items()}
        http_server.shutdown()
        http_server.server_close()
    finally:
        if args.redis:
            keys = list(board.r.scan_iter(match=f"swarm:{{{swarm}}}:*", count=1000))
            for i in range(0, len(keys), 1000):
                board.r.unlink(*keys[i : i + 1000])
        board.r.close()
        if server_proc is not None:
            server_proc.stop()
    for key, value in out.items():
        if isinstance(value, dict):
            for name, v in value.items():
                print(f"{key}.{name}: {v}")
        else:
            print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
