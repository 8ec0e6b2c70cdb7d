"""The model step of the classical proposer: one confident jump fitted to every agent's results.

A local move changes 1-3 constants and gains a little, often less than the seed noise, so a swarm that
only makes local moves climbs one small confirmed step at a time however many agents it has. But N
agents make N times the observations, and a model that pools them can see what no single run shows.
`model_step` fits an additive quadratic response surface to the observations around the leader

    loss(point) ~ c + sum_k b_k * d_k + a_k * d_k**2,    d_k = (u_k(point) - u_k(leader)) / span_k

where u_k is the constant's natural coordinate (`Space.coordinate`: log for log spaces, the exponent
for powers of two, the value for linear ones) and span_k the width of its search space in that
coordinate (`Space.span`). It is a ridge least-squares fit weighted by nearness to the leader and made
robust with Huber weights (points the additive surface cannot explain, such as two interacting
constants moved together, weigh less), and the step goes to the minimum of a surface drawn from the
fit's uncertainty (Thompson sampling), so agents asking at the same moment try different, equally
plausible steps. Each constant moves to its drawn curve's minimum, within a trust region
(`CLASSICAL_MODEL_RADIUS` spans), when the fit expects that move to gain by `CLASSICAL_MODEL_MOVE_Z`
standard errors of the gain (so a constant with no effect stays put); the step is the sum of those
moves. It is proposed only when the fit has enough observations for its parameters and promises a
gain of at least `CLASSICAL_MODEL_MIN_GAIN_SDS` times the fit's residual sd (about the seed noise when
the model fits). The noise rule then judges it like any other candidate: the model only decides what
to try, never what to keep.

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


def value_at(space: Space, coord: float) -> float | int:
    """The rounded constant value at a natural coordinate, clipped to the space."""
    if space.kind == "pow2":
        x: float = min(max(round(coord), space.low), space.high)
    elif space.log:
        x = min(max(math.exp(coord), space.low), space.high)
    else:
        x = min(max(coord, space.low), space.high)
    return space.to_value(x)


def _robust_fit(
    x: np.ndarray, y: np.ndarray, near: np.ndarray, ridge: float, noise_sd: float | None = None
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Ridge least squares weighted by `near`, made robust by Huber weights (a few iterations): the
    points an additive surface cannot explain (two interacting constants moved together) weigh less
    instead of blurring every curvature. Returns (coefficients, their covariance, the residual sd
    (MAD-based)), or None when the system is singular. `noise_sd`, the track's seed noise measured from
    repeated runs, is a floor on that sd: with barely more observations than parameters the residuals
    are near zero whatever the noise, and standard errors from them alone would be no errors at all."""
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    huber = np.ones(len(y))
    floor = noise_sd if noise_sd is not None and noise_sd > 0 else 0.0
    for _ in range(defaults.CLASSICAL_MODEL_IRLS_ROUNDS):
        w = near * huber
        xw, yw = x * np.sqrt(w)[:, None], y * np.sqrt(w)
        try:
            inv = np.linalg.inv(xw.T @ xw + penalty * w.sum())
        except np.linalg.LinAlgError:
            return None
        beta = inv @ (xw.T @ yw)
        resid = y - x @ beta
        scale = 1.4826 * float(np.median(np.abs(resid[near > 0.1]))) if (near > 0.1).any() else 0.0
        scale = max(scale, floor)  # residuals within the known noise are never down-weighted
        if scale <= 0.0:
            break
        huber = np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(resid), 1e-300))
    dof = max(1.0, float(len(y)) - x.shape[1])
    scale = max(scale, math.sqrt(float(((resid**2) * w).sum()) / dof) / 10)  # never zero on exact data
    scale = max(scale, floor)
    return beta, scale**2 * inv, scale


def obs_per_param(noise_sd: float | None) -> float:
    """Observations per fitted parameter the fit needs: fewer when the seed noise is known."""
    if noise_sd is not None and noise_sd > 0:
        return defaults.CLASSICAL_MODEL_OBS_KNOWN_NOISE
    return defaults.CLASSICAL_MODEL_OBS_PER_PARAM


def varied_keys(observations: list[tuple[Point, float]], spaces: dict[str, Space], leader: Point) -> set[str]:
    """The constants the observations vary enough for a curvature: at least 3 distinct values."""
    seen: dict[str, set[float]] = {k: set() for k in spaces}
    for point, _ in observations:
        for k, s in spaces.items():
            c = s.coordinate(point.get(k, leader[k]))
            if c is not None:
                seen[k].add(round(c, 9))
    return {k for k, v in seen.items() if len(v) >= 3}


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
    noise_sd: float | None = None,
) -> Step | None:
    """The model step from `observations` ((point, metric) pairs, the leader's own included), or None
    when too few observations vary the constants or the step promises less than
    CLASSICAL_MODEL_MIN_GAIN_SDS times the fit's residual sd (about the seed noise when the model fits:
    a smaller gain would not pass the noise rule anyway). With `noise_sd` (the track's measured seed
    noise) the fit needs CLASSICAL_MODEL_OBS_KNOWN_NOISE observations per parameter instead of
    CLASSICAL_MODEL_OBS_PER_PARAM: its standard errors no longer rest on its own residuals."""
    radius, ridge = defaults.CLASSICAL_MODEL_RADIUS, defaults.CLASSICAL_MODEL_RIDGE  # read per call: settings
    keys = [k for k in spaces if spaces[k].coordinate(leader[k]) is not None]
    rows: list[list[float]] = []
    ys: list[float] = []
    kept: list[tuple[Point, float]] = []
    origin = {k: spaces[k].coordinate(leader[k]) or 0.0 for k in keys}
    for point, value in observations:
        row = []
        for k in keys:
            c = spaces[k].coordinate(point.get(k, leader[k]))
            row.append(math.nan if c is None else (c - origin[k]) / spaces[k].span)
        if any(math.isnan(x) for x in row) or not math.isfinite(value):
            continue
        rows.append(row)
        ys.append(value if minimize else -value)
        kept.append((point, value))
    if not rows:
        return None
    d_all = np.array(rows)
    curved = varied_keys(kept, spaces, leader)  # the same test that ends the proposer's probes
    varied = [j for j, k in enumerate(keys) if k in curved]
    # 2 parameters per varied constant and an intercept; ask for more observations than that, so the
    # fit averages the noise instead of threading through it.
    if not varied or len(rows) < obs_per_param(noise_sd) * (2 * len(varied) + 1):
        return None
    d = d_all[:, varied]
    m = len(varied)
    x = np.hstack([np.ones((len(d), 1)), d, d**2])
    near = np.exp(-0.5 * (d**2).sum(axis=1) / defaults.CLASSICAL_MODEL_WIDTH**2)
    fit = _robust_fit(x, np.array(ys), near, ridge, noise_sd)
    if fit is None:
        return None
    beta, cov, resid_sd = fit
    # Thompson sampling: the step goes to the minimum of a surface drawn from the fit's uncertainty,
    # so agents asking at the same moment try different, equally plausible steps.
    try:
        chol = np.linalg.cholesky(cov + 1e-18 * np.eye(len(beta)))
    except np.linalg.LinAlgError:
        return None
    draw = beta + chol @ np.array([rng.gauss(0.0, 1.0) for _ in beta])
    values: Point = {}
    gain = 0.0
    for i, j in enumerate(varied):
        k = keys[j]
        b, a = float(draw[1 + i]), float(draw[1 + m + i])
        if a > 1e-12:
            t = -b / (2 * a)
        elif b != 0:
            t = -math.copysign(radius, b)  # no curvature: downhill to the edge of the trust region
        else:
            continue
        t = max(-radius, min(radius, t))
        new = value_at(spaces[k], origin[k] + t * spaces[k].span)
        c = spaces[k].coordinate(new)
        if new == leader[k] or c is None:
            continue
        t = (c - origin[k]) / spaces[k].span  # the move as made: rounded, clipped to the space
        # The gain the fit (not the draw) expects from this move, and its standard error: a constant
        # moves on evidence, not on a noisy slope.
        ib, ia = 1 + i, 1 + m + i
        g = -(float(beta[ib]) * t + float(beta[ia]) * t * t)
        se = abs(t) * math.sqrt(max(0.0, cov[ib, ib] + 2 * t * cov[ib, ia] + t * t * cov[ia, ia]))
        if g >= defaults.CLASSICAL_MODEL_MOVE_Z * se:
            values[k] = new
            gain += g
    if not values or gain < defaults.CLASSICAL_MODEL_MIN_GAIN_SDS * resid_sd:
        return None
    return Step(values=values, predicted_gain=gain, n_obs=len(rows))
