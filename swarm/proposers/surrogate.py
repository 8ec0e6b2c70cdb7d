"""The model step of the classical proposer: one confident jump fitted to every agent's results.

A local move changes 1-3 constants and gains a little, often less than the seed noise, so a swarm that
only makes local moves climbs one small confirmed step at a time however many agents it has. But N
agents make N times the observations, and a model that pools them can see what no single run shows.
`model_step` fits an additive quadratic response surface to the observations around the leader

    loss(point) ~ c + sum_k b_k * d_k + a_k * d_k**2,    d_k = (u_k(point) - u_k(leader)) / span_k

where u_k is the constant's natural coordinate (log for log spaces, the exponent for powers of two,
the value for linear ones) and span_k the width of its search space in that coordinate. It is a ridge
least-squares fit on a bootstrap resample of the observations (so agents asking at the same moment
get different, equally plausible steps: Thompson sampling in spirit), weighted by nearness to the
leader. Each constant whose fitted curve promises a gain (by `CLASSICAL_MODEL_MOVE_Z` standard errors
of that gain, so a constant with no effect stays put) moves to the curve's minimum, within a trust
region of `radius` spans; the step is the sum of those moves. It is proposed only when the fit has
enough observations for its parameters and promises a gain of at least `min_gain_sds` times the
fit's residual sd (about the seed noise when the model fits). The noise rule then judges it like any
other candidate: the model only decides what to try, never what to keep.

    step = model_step(observations, spaces, leader, rng, minimize=True)   # {key: value} or None
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from swarm import defaults
from swarm.proposers.constants import Space

Point = dict[str, float | int]


def coordinate(space: Space, value: float | int) -> float | None:
    """The natural coordinate of a constant value (log for log spaces), or None if it has none."""
    v = abs(float(value)) if space.negative else float(value)
    if space.kind == "pow2":
        return math.log2(v) if v > 0 else None
    if space.log:
        return math.log(v) if v > 0 else None
    return v


def _span(space: Space) -> float:
    if space.kind == "pow2":
        return float(space.high - space.low)  # bounds are exponents already
    if space.log:
        return math.log(space.high / space.low)
    return float(space.high - space.low)


def _value(space: Space, coord: float) -> float | int:
    """The rounded constant value at a natural coordinate, clipped to the space."""
    if space.kind == "pow2":
        x: float = min(max(round(coord), space.low), space.high)
    elif space.log:
        x = min(max(math.exp(coord), space.low), space.high)
    else:
        x = min(max(coord, space.low), space.high)
    return space.to_value(x)


@dataclass(frozen=True)
class Step:
    """A proposed jump: the new values of the constants it moves and the loss decrease it predicts."""

    values: Point
    predicted_gain: float  # in metric units, positive = better
    n_obs: int


def model_step(
    observations: list[tuple[Point, float]],
    spaces: dict[str, Space],
    leader: Point,
    rng: random.Random,
    *,
    minimize: bool = True,
    min_gain_sds: float = defaults.CLASSICAL_MODEL_MIN_GAIN_SDS,
    radius: float = defaults.CLASSICAL_MODEL_RADIUS,
    ridge: float = defaults.CLASSICAL_MODEL_RIDGE,
) -> Step | None:
    """The model step from `observations` ((point, metric) pairs, the leader's own included), or None
    when too few observations vary the constants or the step promises less than `min_gain_sds` times
    the fit's residual sd (about the seed noise when the model fits: a smaller gain would not pass
    the noise rule anyway)."""
    keys = [k for k in spaces if coordinate(spaces[k], leader[k]) is not None]
    rows: list[list[float]] = []
    ys: list[float] = []
    origin = {k: coordinate(spaces[k], leader[k]) or 0.0 for k in keys}
    for point, value in observations:
        row = []
        for k in keys:
            c = coordinate(spaces[k], point.get(k, leader[k]))
            row.append(math.nan if c is None else (c - origin[k]) / _span(spaces[k]))
        if any(math.isnan(x) for x in row) or not math.isfinite(value):
            continue
        rows.append(row)
        ys.append(value if minimize else -value)
    if not rows:
        return None
    d_all = np.array(rows)
    varied = [j for j in range(len(keys)) if len({round(x, 9) for x in d_all[:, j]}) >= 3]
    # 2 parameters per varied constant and an intercept; ask for twice that many observations, so
    # the fit averages the noise instead of threading through it.
    if not varied or len(rows) < defaults.CLASSICAL_MODEL_OBS_PER_PARAM * (2 * len(varied) + 1):
        return None
    idx = [rng.randrange(len(rows)) for _ in rows]  # bootstrap resample
    d = d_all[idx][:, varied]
    y = np.array(ys)[idx]
    w = np.exp(-0.5 * (d**2).sum(axis=1) / defaults.CLASSICAL_MODEL_WIDTH**2)
    x = np.hstack([np.ones((len(d), 1)), d, d**2])
    sw = np.sqrt(w)[:, None]
    xw, yw = x * sw, y * sw[:, 0]
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    try:
        inv = np.linalg.inv(xw.T @ xw + penalty * w.sum())
    except np.linalg.LinAlgError:
        return None
    beta = inv @ (xw.T @ yw)
    resid = yw - xw @ beta
    resid_sd = math.sqrt(float(resid @ resid) / max(1.0, float(w.sum()) - x.shape[1]))
    cov = resid_sd**2 * inv  # of the coefficients (ridge makes it slightly optimistic; z covers that)
    m = len(varied)
    values: Point = {}
    gain = 0.0
    for i, j in enumerate(varied):
        k = keys[j]
        b, a = float(beta[1 + i]), float(beta[1 + m + i])
        if a > 1e-12:
            t = -b / (2 * a)
        elif b != 0:
            t = -math.copysign(radius, b)  # no curvature seen: walk downhill to the trust radius
        else:
            continue
        t = max(-radius, min(radius, t))
        lead_c = origin[k]
        new = _value(spaces[k], lead_c + t * _span(spaces[k]))
        if new == leader[k]:
            continue
        new_c = coordinate(spaces[k], new)
        assert new_c is not None
        t = (new_c - lead_c) / _span(spaces[k])  # the move actually made, after rounding and clipping
        g = -(b * t + a * t * t)
        ia, ib = 1 + m + i, 1 + i
        se = t * math.sqrt(max(0.0, cov[ib, ib] + 2 * t * cov[ib, ia] + t * t * cov[ia, ia]))
        if g >= defaults.CLASSICAL_MODEL_MOVE_Z * abs(se):  # a constant moves on evidence, not on a noisy slope
            values[k] = new
            gain += g
    if not values or gain < min_gain_sds * resid_sd:
        return None
    return Step(values=values, predicted_gain=gain, n_obs=len(rows))
