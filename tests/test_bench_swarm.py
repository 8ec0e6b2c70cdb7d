"""A tiny smoke run of scripts/bench_swarm.py: 2 simulated agents (real Agents, the session's real
redis-server) for a few seconds, pipelined and sequential; checks the JSON report's shape and that
the agents really ran experiments. Never asserts on speed (the build machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from swarm import defaults

REPO = Path(__file__).resolve().parents[1]


def test_bench_swarm_smoke(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_swarm.py"),
            "--redis",
            redis_url,
            "--agents",
            "2",
            "--sequential",
            "2",
            "--seconds",
            "6",
            "--duration",
            "0.3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"]["latency"] == 0.3 * 0.2
    runs = report["runs"]
    assert [(r["agents"], r["pipeline"]) for r in runs] == [(2, True), (2, False)]
    for r in runs:
        assert r["errors"] == []
        # the 3 seeded baseline runs count as experiments; the swarm then explored on its leader
        assert r["results"]["by_kind"].get("baseline") == defaults.NOISE_SEEDS
        assert r["results"]["by_kind"].get("explore", 0) >= 1
        assert r["results"]["duplicates"] == 0
        assert r["whole"]["experiments"] >= 4
        for window in ("steady", "whole"):
            w = r[window]
            assert w["window_s"] > 0 and w["ideal"] > 0
            assert 0 < w["fraction_of_linear"] <= 1.2  # finished-in-window counts can beat the ideal by an edge run
            assert 0 < w["duty_cycle_mean"] <= 1.0 and w["duty_cycle_min"] <= w["duty_cycle_mean"]
        assert set(r["loop_ms_per_experiment"]) >= {"wait_for_job", "sync", "workspace", "publish"}
        assert r["promotions"]["total"] == len(r["promotions"]["moves"]) >= r["promotions"]["false"]
        assert r["cpu"]["bench_process_cores"] >= 0 and r["cpu"]["redis_cores"] >= 0
        assert {"p50", "p99", "samples"} <= set(r["propagation_ms"])
    assert "| agents | loop |" in proc.stderr  # the markdown table
