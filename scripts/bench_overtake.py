"""The promotion rule's false-promotion rate on the overtaking path, by Monte Carlo of the rule itself.

scripts/bench_promotion.py measures the rule's error rates through a real agent, one candidate at a
time: it never sees a candidate whose parent was replaced while it was pending, which since `OVERTAKE`
(docs/agent.md) is judged against the new leader as it is and may be promoted over it. This script
measures that path with the rule's own functions (`swarm.agent.noise`, pure; the same calls
`Promoter.judge`, `Promoter.overtakes` and `Promoter.beats_leader` make), in noise-SD units:

- the track's baseline: `NOISE_SEEDS` runs of true value 0 (the leader L0, their mean);
- a candidate A of L0 with a true gain of `effect` SDs: screened against L0, confirmed, promoted over it
  (trials where it is not are dropped): the leader L1, the mean of its `CONFIRM_RUNS` runs;
- **overtake**: a candidate C of L0 with no effect relative to A (the same true value), screened
  against L0, whose parent was then replaced by A: its confirmations run only if its run clears
  screening against L1 (`overtakes`), and it is promoted over L1 if its runs beat L1 by the
  promotion rule. A promotion of C is a false promotion: it is no better than L1;
- **child** (the path bench_promotion.py measures, after a promotion): a no-effect change built on L1,
  screened against L1, confirmed, promoted if it beats it. The same false promotion, for comparison;
- and, last, bench_promotion.py's own setup in this model (5 candidates one after another on a fresh track,
  no-effect ones and 2-SD gains), to set the model beside that script's measurement through the real
  agent; `--rule NAME=VALUE` evaluates another setting of the rule in seconds, and `--remeasure K` folds
  K new-seed runs of A's code into L1 before C and the child are judged (a re-measured leader,
  `LEADER_REFRESH_RUNS`).

The noise is pooled as the promoter pools it (every group of runs of one code: the baseline, A's runs,
the candidate's runs so far; `--history` adds earlier candidates' groups). Reported per row: trials,
screened, promoted, the promotion rate of each path with its Wilson 95% interval.

    .venv/bin/python scripts/bench_overtake.py                     # 200,000 trials per row, ~2 minutes
    .venv/bin/python scripts/bench_overtake.py --effects 3 --history 0 --trials 20000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm import defaults
from swarm.agent.noise import is_candidate, pooled, should_promote
from swarm.models import Direction

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_promotion import RULE, set_rule, wilson  # the same rule settings and interval as the agent's measurement

LOWER = Direction.MINIMIZE  # val_bpb: lower is better


def candidate(rng: random.Random, true: float, ref: float, n_ref: int, groups: list[list[float]]) -> list[float] | None:
    """A candidate's first run if it clears screening against `ref` (the mean of `n_ref` runs), else None."""
    run = rng.gauss(true, 1.0)
    sd, df = pooled(groups)
    return [run] if is_candidate(ref, run, LOWER, sd, df, 0.0, n_ref) else None


def confirmed(rng: random.Random, true: float, runs: list[float]) -> list[float]:
    return runs + [rng.gauss(true, 1.0) for _ in range(defaults.CONFIRM_RUNS - len(runs))]


def beats(ref: float, n_ref: int, runs: list[float], groups: list[list[float]]) -> bool:
    sd, df = pooled(groups)
    return should_promote(ref, runs, LOWER, sd, df, 0.0, n_ref)[0]


def trial(rng: random.Random, effect: float, history: int, remeasure: int = 0) -> dict[str, Any] | None:
    """One track: L0, A promoted over it, then C (overtake) and a child of L1. None: A not promoted.
    `history`: groups of CONFIRM_RUNS runs of earlier candidates, pooled into the noise with the baseline
    (0: a young track, the fewest degrees of freedom and the widest t tails). `remeasure`: runs of A's code
    with new seeds folded into L1 before C and the child are judged (`LEADER_REFRESH_RUNS`: a leader that
    stood while its re-measures came in)."""
    past = [[rng.gauss(0.0, 1.0) for _ in range(defaults.CONFIRM_RUNS)] for _ in range(history)]
    base = [rng.gauss(0.0, 1.0) for _ in range(defaults.NOISE_SEEDS)]
    l0, n0 = statistics.fmean(base), defaults.NOISE_SEEDS
    a = candidate(rng, -effect, l0, n0, [*past, base])
    if a is None:
        return None
    a = confirmed(rng, -effect, a)
    if not beats(l0, n0, a, [*past, base, a]):
        return None
    a = a + [rng.gauss(-effect, 1.0) for _ in range(remeasure)]
    l1, n1 = statistics.fmean(a), len(a)
    out: dict[str, Any] = {}
    # C: a candidate of L0 (screened against it), true value A's, judged against L1 as it is.
    c = candidate(rng, -effect, l0, n0, [*past, base, a])
    out["c_screened"] = c is not None
    out["c_overtakes"] = c is not None and is_candidate(l1, c[0], LOWER, *pooled([*past, base, a]), 0.0, n1)
    out["c_promoted"] = False
    if c is not None and out["c_overtakes"]:
        c = confirmed(rng, -effect, c)
        out["c_promoted"] = beats(l1, n1, c, [*past, base, a, c])
    # A child of L1 with no effect: the ordinary path, after the same promotion.
    k = candidate(rng, -effect, l1, n1, [*past, base, a])
    out["k_screened"] = k is not None
    out["k_promoted"] = False
    if k is not None:
        k = confirmed(rng, -effect, k)
        out["k_promoted"] = beats(l1, n1, k, [*past, base, a, k])
    return out


def bench_promotion_model(rng: random.Random, tracks: int, effect: float = 0.0, per_track: int = 5) -> dict[str, Any]:
    """bench_promotion.py's setup in this model: `per_track` candidates of a true gain of `effect` SDs over
    their parent, one after another on a fresh track, each screened candidate's runs pooled into the
    noise, a promoted one the new leader (the next candidate is `effect` better than it)."""
    screened = promoted = first = 0
    for _ in range(tracks):
        base = [rng.gauss(0.0, 1.0) for _ in range(defaults.NOISE_SEEDS)]
        groups, lead, n_lead, level = [base], statistics.fmean(base), defaults.NOISE_SEEDS, 0.0
        for i in range(per_track):
            runs = candidate(rng, level - effect, lead, n_lead, groups)
            if runs is None:
                continue
            screened += 1
            runs = confirmed(rng, level - effect, runs)
            groups.append(runs)
            if beats(lead, n_lead, runs, groups):
                promoted += 1
                first += i == 0
                lead, n_lead, level = statistics.fmean(runs), defaults.CONFIRM_RUNS, level - effect
    n = tracks * per_track
    return {"effect": effect, "candidates": n, "screened": screened / n, "promoted": promoted / n,
            "ci": wilson(promoted, n), "first_promoted": first / tracks}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--effects", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="A's true gain, noise SDs")
    ap.add_argument("--trials", type=int, default=200_000, help="tracks per effect (those where A is promoted count)")
    ap.add_argument("--history", type=int, nargs="+", default=[0, 10],
                    help="earlier candidates' groups of runs pooled into the noise (0: a young track)")
    ap.add_argument("--remeasure", type=int, default=0,
                    help="re-measure runs folded into L1 before C and the child are judged (LEADER_REFRESH_RUNS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rule", action="append", default=[], metavar="NAME=VALUE",
                    help="another setting of the rule (NOISE_SEEDS, CONFIRM_RUNS, SCREEN_ALPHA, PROMOTE_ALPHA)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.trials < 1 or any(e < 0 for e in args.effects) or any(h < 0 for h in args.history) or args.remeasure < 0:
        print("error: --trials must be >= 1, --effects, --history and --remeasure >= 0", file=sys.stderr)
        return 2
    for item in args.rule:
        try:
            set_rule(item)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    rng = random.Random(args.seed)
    rows = []
    print("| earlier groups | A's true gain (SDs) | tracks with A promoted | C screened on L0 / overtakes L1 "
          "| C promoted over L1 (95% CI) | child of L1 screened | child promoted (95% CI) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for history, effect in ((h, e) for h in args.history for e in args.effects):
        outs = [o for o in (trial(rng, effect, history, args.remeasure) for _ in range(args.trials)) if o is not None]
        n = len(outs)
        cs, co, cp = (sum(o[k] for o in outs) for k in ("c_screened", "c_overtakes", "c_promoted"))
        ks, kp = sum(o["k_screened"] for o in outs), sum(o["k_promoted"] for o in outs)
        row = {"history": history, "effect": effect, "tracks": n, "c_screened": cs, "c_overtakes": co, "c_promoted": cp,
               "k_screened": ks, "k_promoted": kp, "c_rate": cp / max(1, n), "c_ci": wilson(cp, n),
               "k_rate": kp / max(1, n), "k_ci": wilson(kp, n)}  # fmt: skip
        rows.append(row)
        lo, hi = row["c_ci"]
        klo, khi = row["k_ci"]
        print(f"| {history} | {effect:g} | {n:,} | {cs / n:.1%} / {co / n:.1%} | {cp / n:.2%} ({lo:.2%}-{hi:.2%}) "
              f"| {ks / n:.1%} | {kp / n:.2%} ({klo:.2%}-{khi:.2%}) |", flush=True)  # fmt: skip
    models = [bench_promotion_model(rng, max(1, args.trials // 5), e) for e in (0.0, 2.0)]
    for m in models:
        lo, hi = m["ci"]
        what = "no-effect" if m["effect"] == 0 else f"{m['effect']:g}-SD"
        print(f"bench_promotion.py's setup, {what} candidates (5 per fresh track, {m['candidates']:,} in all): "
              f"screened {m['screened']:.1%}, promoted {m['promoted']:.2%} ({lo:.2%}-{hi:.2%}), "
              f"a track's first {m['first_promoted']:.2%}")
    if args.json:
        rule = {k: getattr(defaults, k) for k in RULE}
        doc = {"rule": rule, "trials": args.trials, "seed": args.seed, "remeasure": args.remeasure, "rows": rows,
               "bench_promotion_model": models}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
