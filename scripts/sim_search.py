"""An offline, lockstep stand-in for the swarm's search: tune the classical proposer in seconds.

scripts/bench_search.py measures the real thing (real agents, a real board, real subprocess runs,
side by side with Optuna) and takes half an hour for a sweep. This script keeps only the search: N
classical proposers (the real `ClassicalProposer`, each with its own seed) take turns in rounds of one
run per agent on the search arena's objective (tests/arenas/search/objective.py, noise sd 0.001), with
the protocol approximated in a few lines: 5 baseline runs; a run that beats the leader's mean by 0.52
sd screens (the rule's SCREEN_ALPHA = 0.3 with the noise known); a screened candidate gets 3 more runs,
the most promising first, ahead of new ideas; a candidate whose 4-run mean beats the leader's mean
by 1.9 standard errors is promoted and the other pending candidates are dropped; an idea another
agent took in the same round is skipped (the board's dedup). There is no wall clock, no pipelining,
no rebase and no carry-over, so its figures are for comparing proposer settings with each other, never
for docs/benchmarks.md's comparisons with Optuna.

    .venv/bin/python scripts/sim_search.py --agents 4 --rounds 30 --seeds 8 --variant off on
    .venv/bin/python scripts/sim_search.py --agents 16 --rounds 15 --variant 'z=3={"CLASSICAL_MODEL_MOVE_Z": 3}'

A variant is `on` (the shipped defaults), `off` (no model step) or `name=JSON` (swarm.defaults to set).
Prints, per variant: the true value of the final leader (mean and each seed), the round the true
target 0.985 was reached, the leader moves and how many of them were model steps.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "arenas" / "search")]

import objective  # noqa: E402  (the search arena's pinned harness: true_value)

from swarm import defaults  # noqa: E402
from swarm.code.diff import apply_patch  # noqa: E402
from swarm.models import Direction, Status  # noqa: E402
from swarm.proposers.base import PastResult, ProposalContext  # noqa: E402
from swarm.proposers.classical import META_BASIS, ClassicalProposer  # noqa: E402
from swarm.proposers.constants import parse_constants  # noqa: E402

BASE = (ROOT / "tests" / "arenas" / "search" / "train.py").read_text()
SD = objective.NOISE_SD
TARGET = 0.985


def point(text: str) -> dict[str, float | int]:
    return {c.key: c.value for c in parse_constants({"train.py": text}, "cpu")}


def simulate(seed: int, agents: int, rounds: int, model_step: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    proposers = [ClassicalProposer(seed=seed * 1000 + i, model_step=model_step) for i in range(agents)]
    leader = BASE
    runs = [objective.true_value(point(leader)) + rng.gauss(0.0, SD) for _ in range(defaults.NOISE_SEEDS)]
    history: list[PastResult] = []  # oldest first
    pending: list[dict[str, Any]] = []  # screened candidates: text, point, runs, model
    reached, moves, model_moves = None, 0, 0
    for rnd in range(1, rounds + 1):
        mean = statistics.fmean(runs)
        jobs: list[tuple[str, Any]] = []
        for cand in sorted(pending, key=lambda c: statistics.fmean(c["runs"])):
            jobs += [("confirm", cand)] * (defaults.CONFIRM_RUNS - len(cand["runs"]))
        jobs = jobs[:agents]
        taken: set[str] = set()
        for proposer in proposers[: agents - len(jobs)]:
            ctx = ProposalContext(
                track="sim",
                profile="cpu",
                metric_name="val_bpb",
                direction=Direction.MINIMIZE,
                files={"train.py": leader},
                leader_metric=mean,
                leader_generation=moves,
                history=list(reversed(history[-defaults.PROPOSER_HISTORY_ITEMS * 10 :])),
            )
            for idea in proposer.ideate(ctx, defaults.IDEAS_PER_CALL)[0]:
                text = apply_patch({"train.py": leader}, idea.patch or "")["train.py"]
                if text not in taken:
                    taken.add(text)
                    jobs.append(("explore", (idea, text)))
                    break
        for kind, job in jobs:
            if kind == "confirm":
                job["runs"].append(objective.true_value(job["point"]) + rng.gauss(0.0, SD))
                continue
            idea, text = job
            p = point(text)
            value = objective.true_value(p) + rng.gauss(0.0, SD)
            screened = value < mean - 0.52 * SD * math.sqrt(1 + 1 / len(runs))
            status = Status.KEEP if screened else Status.DISCARD
            history.append(PastResult(idea.title, status, value, value - mean, True, "classical", meta=idea.meta))
            if screened:
                pending.append({"text": text, "point": p, "runs": [value], "model": META_BASIS in idea.meta})
        done = [c for c in pending if len(c["runs"]) >= defaults.CONFIRM_RUNS]
        pending = [c for c in pending if len(c["runs"]) < defaults.CONFIRM_RUNS]
        bar = mean - 1.9 * SD * math.sqrt(1 / defaults.CONFIRM_RUNS + 1 / len(runs))
        passed = sorted(
            (c for c in done if statistics.fmean(c["runs"]) < bar), key=lambda c: statistics.fmean(c["runs"])
        )
        if passed:
            best = passed[0]
            leader, runs, pending = best["text"], list(best["runs"]), []
            moves += 1
            model_moves += best["model"]
            history = [
                PastResult(h.title, h.status, h.metric, h.delta, False, h.proposer, meta=h.meta) for h in history
            ]
        if reached is None and objective.true_value(point(leader)) <= TARGET:
            reached = rnd
    return {"final": objective.true_value(point(leader)), "reached": reached, "moves": moves, "model": model_moves}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=30, help="runs per agent (a round is one run each)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--variant", nargs="+", default=["off", "on"])
    args = ap.parse_args()
    if args.agents < 1 or args.rounds < 1 or args.seeds < 1:
        print("error: --agents, --rounds and --seeds must be >= 1", file=sys.stderr)
        return 2
    shipped = {k: getattr(defaults, k) for k in dir(defaults) if k.isupper()}
    for variant in args.variant:
        settings: dict[str, Any] = {}
        if "=" in variant:
            name, _, text = variant.partition("=")
            try:
                settings = json.loads(text)
            except json.JSONDecodeError as e:
                print(f"error: variant {name!r}: {e}", file=sys.stderr)
                return 2
            unknown = [k for k in settings if k not in shipped]
            if unknown:
                print(f"error: variant {name!r}: swarm.defaults has no {', '.join(unknown)}", file=sys.stderr)
                return 2
        elif variant not in ("on", "off"):
            print(f"error: unknown variant {variant!r} (on, off or name=JSON)", file=sys.stderr)
            return 2
        for k, v in {**shipped, **settings}.items():
            setattr(defaults, k, v)
        out = [simulate(s, args.agents, args.rounds, variant != "off") for s in range(args.seeds)]
        finals = [r["final"] for r in out]
        print(
            f"{variant.partition('=')[0]}: N={args.agents}, {args.rounds} rounds: final true "
            f"{statistics.fmean(finals):.4f} ({' '.join(f'{f:.4f}' for f in finals)}); target reached at round "
            f"{[r['reached'] for r in out]}; moves {[r['moves'] for r in out]}, "
            f"model steps {[r['model'] for r in out]}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
