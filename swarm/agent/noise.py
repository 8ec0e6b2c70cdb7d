"""The noise rule: when a result is a candidate, and when a candidate may become the leader. Pure.

The published single-agent session changed only the random seed and moved val_bpb by 0.0007, yet it
kept several "improvements" smaller than 0.0001: it promoted noise. The swarm measures each track's
seed noise and promotes only what survives it (`swarm.agent.promoter` applies the rule):

- Seed noise. When a track gets its first leader, `NOISE_SEEDS` baseline runs with seeds 0..K-1 are
  made; `sigma` is their sample standard deviation, and the baseline leader's metric is their mean.
- Screening. An exploration run (seed 0) built on the current leader is a *candidate* when its gain
  over the leader is more than `max(min_delta, SCREEN_Z * sigma)` (`Direction.gain`). Anything less
  is discarded without spending confirmation runs.
- Confirmation. A candidate is re-run with seeds 1..CONFIRM_RUNS-1. It is promoted only when the mean
  of its CONFIRM_RUNS runs beats the leader's mean (itself a mean of n_leader runs) by more than
  `max(min_delta, NOISE_Z * sigma * sqrt(1/n + 1/n_leader))`: the standard error of a difference of
  two means. With NOISE_Z = 2 and a known sigma, a change with no true effect is promoted ~2.3% of
  the time.
"""

from __future__ import annotations

import math
import statistics

from swarm import defaults
from swarm.models import Direction

SCREEN_Z = 1.0  # a null change passes screening ~16% of the time: cheap to confirm, rarely misses a real gain


def sigma(samples: list[float]) -> float:
    """Sample standard deviation of the seed-noise runs (0 with fewer than two)."""
    return statistics.stdev(samples) if len(samples) >= 2 else 0.0


def screen_threshold(noise_sigma: float, min_delta: float) -> float:
    """The gain a single exploration run needs to become a candidate."""
    return max(min_delta, SCREEN_Z * noise_sigma)


def promote_threshold(
    noise_sigma: float, min_delta: float, n: int, n_leader: int, z: float = defaults.NOISE_Z
) -> float:
    """The gain a candidate's mean of `n` runs needs over a leader measured with `n_leader` runs."""
    se = noise_sigma * math.sqrt(1.0 / max(n, 1) + 1.0 / max(n_leader, 1))
    return max(min_delta, z * se)


def is_candidate(
    leader_metric: float, metric: float, direction: Direction, noise_sigma: float, min_delta: float
) -> bool:
    g = direction.gain(leader_metric, metric)
    return g > screen_threshold(noise_sigma, min_delta) and g > 0


def should_promote(
    leader_metric: float,
    runs: list[float],
    direction: Direction,
    noise_sigma: float,
    min_delta: float,
    n_leader: int = defaults.CONFIRM_RUNS,
) -> tuple[bool, float, float]:
    """(promote?, mean of the runs, threshold) for a candidate's confirmed runs."""
    mean = statistics.fmean(runs)
    threshold = promote_threshold(noise_sigma, min_delta, len(runs), n_leader)
    g = direction.gain(leader_metric, mean)
    return (g > threshold and g > 0), mean, threshold
