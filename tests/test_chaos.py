"""The chaos benchmark, short: real agent processes on a real Redis, kill -9 of random agents with
restarts (their claims back within the heartbeat TTL, the lease left at 15 minutes) and a graceful
Redis restart, then every invariant (scripts/chaos.py; docs/benchmarks.md has the long runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_chaos_short_run_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, "scripts/chaos.py", "--agents", "3", "--seconds", "30", "--kill-every", "6",
         "--redis-restarts", "1", "--hypotheses", "200", "--init", "--heartbeat-ttl-s 3", "--claims-within", "20",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["agent_kills"] >= 3 and report["redis_restarts"] == 1 and report["experiments"] >= 20
    for key in ("hypotheses_lost", "leases_left_after_stop", "results_lost", "duplicates", "tracebacks",
                "agents_died_unkilled"):
        assert report[key] == 0, (key, report)
    assert all(report["leader_histories_monotone"].values())
    assert report["killed_claims"] >= 2 and report["killed_claims_back"] == report["killed_claims"]
    assert report["killed_claims_back_s"]["max"] <= 20
    assert report["redis_recovered_s"][0] is not None and report["redis_recovered_s"][0] <= 15
    assert proc.returncode == 0, proc.stderr[-2000:]
