"""How the model step's move threshold trades spurious moves against gain (docs/classical.md).

On the bowl of tests/test_surrogate.py (three constants with an effect, one without, seed noise 0.001)
it fits the model step to 40 noisy local moves around the leader, for 40 histories x 5 bootstrap draws
at each z (`CLASSICAL_MODEL_MOVE_Z`), and prints how often the constant without effect moved and what
share of the leader's gap to the optimum the steps took. Deterministic; runs in a second or two.

    .venv/bin/python scripts/bench_model_step.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import test_surrogate as bowl  # noqa: E402

from swarm import defaults  # noqa: E402
from swarm.proposers.surrogate import model_step  # noqa: E402


def main() -> None:
    spaces, leader = bowl.spaces_and_leader()
    start = bowl.true_value(leader)
    for z in (1.0, 2.0, 3.0):
        defaults.CLASSICAL_MODEL_MOVE_Z = z
        taken: list[float] = []
        moved = 0
        for h in range(40):
            obs = bowl.local_moves(40, seed=100 + h)
            for d in range(5):
                step = model_step(obs, spaces, leader, random.Random(d))
                if step is None:
                    taken.append(0.0)
                    continue
                moved += "SOFTCAP" in step.values
                taken.append((start - bowl.true_value({**leader, **step.values})) / (start - 0.970))
        taken.sort()
        n = len(taken)
        print(
            f"z = {z:g}: {n} fits, the constant without effect moved in {moved / n:.1%}; share of the gap taken: "
            f"median {taken[n // 2]:.0%}, 10th percentile {taken[n // 10]:.0%}, mean {sum(taken) / n:.0%}"
        )


if __name__ == "__main__":
    main()
