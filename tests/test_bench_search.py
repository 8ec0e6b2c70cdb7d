"""The building blocks of scripts/bench_search.py, without its minutes-long sweep: the search arena's
objective (its pin, its known start and optimum, its noise), the seeded copies, the Optuna space being
the classical proposer's, and the table's speed-up and censoring."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from swarm.experiment.manifest import harness_mismatches
from swarm.proposers.constants import parse_constants, search_space

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_search", REPO / "scripts" / "bench_search.py")
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_search"] = bench  # its dataclasses look their module up
spec.loader.exec_module(bench)


def test_objective_start_optimum_and_noise(tmp_path: Path) -> None:
    obj = bench.OBJ
    shipped = (bench.ARENA / "train.py").read_text(encoding="utf-8")
    assert abs(bench.true_of(shipped) - obj.START) < 1e-12
    assert abs(obj.true_value(obj.OPTIMUM) - obj.FLOOR) < 1e-12
    arena = bench.seeded_arena(3, tmp_path / "arena")
    assert harness_mismatches(arena) == []  # objective.py is pinned
    code = (arena / "train.py").read_text(encoding="utf-8")
    assert "NOISE_SEED = 3 " in code and bench.true_of(code) == bench.true_of(shipped)
    scores = []
    for seed in (0, 1):
        out = tmp_path / f"r{seed}.json"
        cmd = [sys.executable, "objective.py", "--budget", "0", "--seed", str(seed), "--out", str(out)]
        subprocess.run(cmd, cwd=arena, check=True, capture_output=True, timeout=30)
        scores.append(json.loads(out.read_text())["val_bpb"])
    assert scores[0] != scores[1] and all(abs(s - obj.START) < 6 * obj.NOISE_SD for s in scores)


def test_optuna_searches_the_classical_space() -> None:
    shipped = (bench.ARENA / "train.py").read_text(encoding="utf-8")
    _, spaces = bench.optuna_space(shipped)
    classical = {c.key: search_space(c) for c in parse_constants({"train.py": shipped}, "cpu")}
    assert spaces == {k: s for k, s in classical.items() if s is not None}
    assert len(spaces) == 9 and "NOISE_SEED" not in spaces


def test_table_speedup_and_censoring() -> None:
    def row(n: int, seed: int, t: float | None) -> dict[str, object]:
        return {"contender": "swarm", "variant": "current", "n": n, "seed": seed, "final_true": 0.98,
                "curse_sd": 0.2, "time_to_target_s": t, "experiments": 10, "confirm_share": 0.3,
                "baseline_share": 0.1, "cores": 0.1}  # fmt: skip

    text, summary = bench.table([row(1, 0, 100.0), row(1, 1, None), row(4, 0, 30.0), row(4, 1, 20.0)], 200.0)
    one, four = summary
    assert one["time_to_target_s"] == 150.0 and one["reached"] == 1  # a miss counts as the budget
    assert four["speedup"] == 6.0 and "≥150" in text


def test_a_sweep_run_in_parts_makes_one_table(tmp_path: Path, capsys: object) -> None:
    def report(n: int, budget: float) -> dict[str, object]:
        row = {"contender": "swarm", "variant": "current", "n": n, "seed": 0, "final_true": 0.98, "curse_sd": 0.2,
               "time_to_target_s": 50.0 / n, "experiments": 10, "confirm_share": 0.3, "baseline_share": 0.1,
               "cores": 0.1}  # fmt: skip
        return {"config": {"duration": 4.0, "budget_s": budget, "target": 0.985}, "runs": [row]}

    paths = []
    for n, budget in ((1, 300.0), (16, 300.0), (2, 200.0)):
        paths.append(tmp_path / f"{n}.json")
        paths[-1].write_text(json.dumps(report(n, budget)), encoding="utf-8")
    assert bench.main(["--from-json", str(paths[0]), str(paths[1])]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "| swarm | 1 |" in out and "| swarm | 16 | " in out and "16.00x" in out
    assert bench.main(["--from-json", str(paths[0]), str(paths[2])]) == 2
