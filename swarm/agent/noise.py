"""The noise rule: when a result is a candidate, and when a candidate may become the leader. Pure.

The published single-agent session changed only the random seed and moved val_bpb by 0.0007, yet it
kept several "improvements" smaller than 0.0001: it promoted noise. The swarm measures each track's
seed noise and promotes only what survives it (`swarm.agent.promoter` applies the rule):

- Seed noise, pooled. Every group of runs of one code on the track (the baseline's `NOISE_SEEDS`
  seeds, each candidate's run and its confirmations, any other repeat) says how far seeds alone move
  the metric. `pooled` combines them: the pooled variance sum((x - group mean)^2) / sum(n - 1), with
  sum(n - 1) degrees of freedom. A new track starts from the baseline's 3 runs (2 degrees of freedom)
  and gains 2 with every candidate confirmed.
- Thresholds from the t distribution for those degrees of freedom, so the error rate holds from the
  first candidate on (a normal quantile with a sigma from 3 runs promotes ~3 times too often; a track
  whose first runs happen to agree would keep small thresholds for good):
  - Screening. An exploration run built on the leader is a *candidate* when its gain over the leader
    (mean of `n_leader` runs) is more than `max(min_delta, t(1 - SCREEN_ALPHA, df) * s * sqrt(1 +
    1/n_leader))`. Anything less is discarded without spending confirmation runs.
  - Confirmation. A candidate is re-run with seeds 1..CONFIRM_RUNS-1. It is promoted only when the
    mean of its CONFIRM_RUNS runs beats the leader's mean by more than `max(min_delta, t(1 -
    PROMOTE_ALPHA, df) * s * sqrt(1/CONFIRM_RUNS + 1/n_leader))`.
  The candidate's first run, selected by screening, is part of that mean, so the rate at which a
  no-effect change is promoted is not PROMOTE_ALPHA: it is measured, with the power at several true
  effects, by `scripts/bench_promotion.py` (docs/agent.md has the figures at the defaults).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from functools import lru_cache

from swarm import defaults
from swarm.models import Direction


def sigma(samples: list[float]) -> float:
    """Sample standard deviation of one group of runs (0 with fewer than two)."""
    return statistics.stdev(samples) if len(samples) >= 2 else 0.0


def pooled(groups: Iterable[list[float]]) -> tuple[float, int]:
    """(pooled standard deviation, degrees of freedom) of groups of runs of one code each."""
    ss, df = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            m = statistics.fmean(g)
            ss += sum((x - m) ** 2 for x in g)
            df += len(g) - 1
    return (math.sqrt(ss / df), df) if df else (0.0, 0)


# --- Student's t -------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@lru_cache(maxsize=1024)
def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p (0.5 < p < 1) for `df` >= 1 degrees of freedom (bisection on t_cdf);
    the normal quantile beyond 1,000 degrees of freedom."""
    if df > 1000:
        return statistics.NormalDist().inv_cdf(p)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


# --- the rule -------------------------------------------------------------------------------------------


def screen_threshold(noise_sigma: float, df: int, min_delta: float, n_leader: int) -> float:
    """The gain a single exploration run needs over the leader's mean of `n_leader` runs."""
    if df < 1:
        return min_delta
    se = noise_sigma * math.sqrt(1.0 + 1.0 / max(n_leader, 1))
    return max(min_delta, t_quantile(1.0 - defaults.SCREEN_ALPHA, df) * se)


def promote_threshold(noise_sigma: float, df: int, min_delta: float, n: int, n_leader: int) -> float:
    """The gain a candidate's mean of `n` runs needs over a leader measured with `n_leader` runs."""
    if df < 1:
        return min_delta
    se = noise_sigma * math.sqrt(1.0 / max(n, 1) + 1.0 / max(n_leader, 1))
    return max(min_delta, t_quantile(1.0 - defaults.PROMOTE_ALPHA, df) * se)


def is_candidate(
    leader_metric: float,
    metric: float,
    direction: Direction,
    noise_sigma: float,
    df: int,
    min_delta: float,
    n_leader: int,
) -> bool:
    g = direction.gain(leader_metric, metric)
    return g > screen_threshold(noise_sigma, df, min_delta, n_leader) and g > 0


def should_promote(
    leader_metric: float,
    runs: list[float],
    direction: Direction,
    noise_sigma: float,
    df: int,
    min_delta: float,
    n_leader: int,
) -> tuple[bool, float, float]:
    """(promote?, mean of the runs, threshold) for a candidate's confirmed runs."""
    mean = statistics.fmean(runs)
    threshold = promote_threshold(noise_sigma, df, min_delta, len(runs), n_leader)
    g = direction.gain(leader_metric, mean)
    return (g > threshold and g > 0), mean, threshold
