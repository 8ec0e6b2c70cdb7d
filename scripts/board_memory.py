"""How much Redis memory one result costs: publish N realistic results, read INFO used_memory.

Each result goes through the agent's own sequence (claim, publish, complete) with the fields an LLM
agent on an H100 fills in, on a private redis-server (or --redis, into a throwaway swarm that is
deleted afterwards). Prints bytes per result overall and per key (MEMORY USAGE).

    .venv/bin/python scripts/board_memory.py --results 5000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from swarm.board import Board, HypothesisIn, ResultIn
from swarm.board.embedded import RedisProcess

TRACK = "gpu:NVIDIA-H100-80GB-HBM3"


def measure(url: str, n: int) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    b = Board(r, f"mem-{uuid.uuid4().hex[:8]}")
    try:
        for i in range(n):
            b.post(HypothesisIn(text=f"Raise the matrix LR to 0.0{i % 9 + 1} and warm up for {i} steps"))
        before = int(r.info("memory")["used_memory"])
        now = int(time.time() * 1000)
        for i in range(n):
            c = b.claim("agent-7f3a", TRACK)
            assert c is not None
            b.publish(
                ResultIn(
                    result_id=f"r-{uuid.uuid4().hex}",
                    hypothesis_id=c.hypothesis.id,
                    token=c.token,
                    agent_id="agent-7f3a",
                    proposer="llm:anthropic/claude-sonnet-4",
                    track=TRACK,
                    parent_generation=12,
                    parent_patch_hash="a" * 64,
                    patch_hash="b" * 64,
                    status="discard",
                    metric=0.9712 + i * 1e-6,
                    metric_name="val_bpb",
                    seed=i,
                    training_s=300.1,
                    steps=1200,
                    tokens=500_000_000,
                    peak_mem_mb=44000.5,
                    llm_input_tokens=12000,
                    llm_output_tokens=900,
                    llm_cost_usd=0.05,
                    llm_latency_s=8.2,
                    started_ms=now,
                    finished_ms=now + 300_000,
                )
            )
            b.complete(c.hypothesis.id, c.token)
        after = int(r.info("memory")["used_memory"])
        out = {"bytes_per_result": (after - before) / n}
        for name, key in (("results", b.k.results), ("results_meta", b.k.results_meta), ("stream", b.k.results_stream)):
            out[name] = (r.memory_usage(key, samples=0) or 0) / n
        return out
    finally:
        keys = list(r.scan_iter(match=f"swarm:{{{b.swarm}}}:*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", help="Redis URL (default: a private redis-server on a free port)")
    ap.add_argument("--results", type=int, default=5000)
    args = ap.parse_args()
    if args.results < 1:
        ap.error("--results must be >= 1")
    server = None
    url = args.redis
    if url is None:
        server = RedisProcess(tempfile.mkdtemp(prefix="mem-redis-"))
        server.start()
        url = server.url
    try:
        for k, v in measure(url, args.results).items():
            print(f"{k}: {v:.0f} bytes")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
