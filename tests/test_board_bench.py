"""A tiny smoke run of scripts/bench_board.py against the session's redis-server: 1 and 2 clients for a
fraction of a second each; checks the JSON report's shape and that every phase really ran cycles.
Never asserts on speed (the build machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]


def test_bench_board_smoke(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_board.py"),
            "--redis",
            redis_url,
            "--clients",
            "1",
            "2",
            "--seconds",
            "0.3",
            "--prefill",
            "3000",
            "--paced-rate",
            "40",
            "--calib-calls",
            "50",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for part in ("claim_us:", "paced (open loop", "cycles_per_s  ratio"):
        assert part in proc.stdout, part
    res = json.loads(out.read_text())
    assert [lv["clients"] for lv in res["levels"]] == [1, 2]
    for lv in res["levels"]:
        assert lv["ping_per_s"] > 0 and lv["cycles_per_s"] > 0 and 0 < lv["ratio"] < 1
        assert 0 < lv["claim_p50_ms"] <= lv["claim_p99_ms"]
        assert lv["paced_cycles_per_s"] > 0 and lv["paced_claim_p50_ms"] <= lv["paced_claim_p99_ms"]
        assert lv["script_us"] > 0
    calib = res["server_us_per_call"]
    assert calib["claim_us"] > 0 and calib["complete_us"] > 0
    # every bench swarm's keys are deleted afterwards
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match="swarm:{bboard-*"))


def test_board_memory_script_reports_and_cleans_up(redis_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "board_memory.py"), "--redis", redis_url, "--results", "200"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = dict(line.split(": ") for line in proc.stdout.strip().splitlines())
    assert set(got) == {"bytes_per_result", "results", "results_meta", "stream"}
    assert all(int(v.split()[0]) > 0 for v in got.values())
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match="swarm:{mem-*"))
