"""scripts/bench_overtake.py: the rule's false promotions on the overtaking path against the ordinary one
(a Monte Carlo of swarm.agent.noise), and its one-line error on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_overtake.py"


def test_the_overtaking_path_promotes_no_effect_changes_as_often_as_the_ordinary_one(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--trials", "4000", "--effects", "4", "--history", "0", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["tracks"] > 3900  # a 4-SD gain is almost always promoted
    assert 0.2 < row["c_overtakes"] / row["tracks"] < 0.4  # screening against L1 passes ~30% of them
    # no-effect changes are promoted a few % of the time, on either path, alike (seeded: deterministic)
    assert 0.01 < row["c_rate"] < 0.08 and 0.01 < row["k_rate"] < 0.08
    assert abs(row["c_rate"] - row["k_rate"]) < 0.02
    assert "| 0 | 4 |" in done.stdout


def test_bad_input_is_one_line_and_exit_2() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--trials", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:")


def test_a_re_measured_leader_is_modelled_and_a_negative_count_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--trials", "3000", "--effects", "4", "--history", "0", "--remeasure", "4",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    (row,) = doc["rows"]
    assert doc["remeasure"] == 4 and row["tracks"] > 2900
    assert 0.01 < row["k_rate"] < 0.08  # the rule's rate against an honest leader: a few %
    bad = subprocess.run([sys.executable, str(SCRIPT), "--remeasure", "-1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and bad.stderr.strip().count("\n") == 0
