"""The classical proposer: offline hyperparameter search over the editable file's constants.

It needs no API key, so it is the default proposer and what lets the whole swarm run and test
offline. It reads the *tunable constants* of the leader's editable files: top-level UPPER_CASE
assignments on one line whose value is a numeric literal, or a per-profile dict of numeric literals
(only the entry of the agent's profile is tuned):

    MATRIX_LR = 0.04                       # Muon learning rate
    WARMDOWN_RATIO = 0.5                   # fraction of the budget spent decaying the LR
    TOTAL_BATCH_SIZE = 2**19               # tokens per optimizer step
    DEPTH = {"cpu": 4, "gpu": 8}           # transformer blocks
    SOFTCAP = 15.0                         # [10, 30] linear   <- optional hint: range and scale
    SEED = 42                              # never tuned (a seed is noise, not a hyperparameter)

Each constant gets a search space derived from its current value; an inline
`# [lo, hi] log|linear|int|pow2` hint overrides it and `# [fixed]` excludes the constant. Booleans and
strings are never tuned. Parsing, spaces and editing values live in `swarm.proposers.constants`
(rules in docs/classical.md).

`ideate` replays the board's history into an in-memory Optuna study (classical results carry the
point they tried in `meta`; the current leader is one more observation), asks the TPE sampler for new
points, and keeps only 1-3 of the sampled changes per idea (those TPE moved furthest from the
leader), so every idea is a local move around the leader: under a noisy metric a small move is
attributable, and it composes with whatever other agents change meanwhile. Two kinds of idea come
before TPE's: the model step (swarm.proposers.surrogate) once the observations support one, and,
while some constant's curvature is still unknown to it, probes (one constant a quarter of its space up
or down; `_probes`). Crashes and timeouts are
told as the worst value seen (TPE ignores failed trials, and an out-of-memory region must look bad);
`invalid` results and results without a metric are skipped (a patch that did not apply says nothing
about the point). Each idea carries a unified diff that edits only the value text of the chosen lines,
so comments and alignment survive. Output is deterministic given `seed` and the sequence of contexts.

    proposer = ClassicalProposer(seed=7)
    ideas, usage = proposer.ideate(ctx, n=3)
"""

from __future__ import annotations

import json
import logging
import math
import random
import warnings

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from swarm import defaults
from swarm.code.diff import make_patch
from swarm.errors import ProposerError
from swarm.models import Direction, Status
from swarm.proposers.base import Idea, ProposalContext, Usage
from swarm.proposers.constants import Constant, Space, apply_values, format_value, parse_constants, search_space
from swarm.proposers.surrogate import Point, Step, model_step, value_at, varied_keys

log = logging.getLogger(__name__)

META_CHANGED = "changed"  # comma-separated keys this idea changed; marks a result as classical
META_PROFILE = "profile"  # the profile whose per-profile entries the values belong to
META_BASIS = "basis"  # "model" on a model step (the surrogate's jump), "probe" on a probe; absent on a TPE move
FAILED_STATUSES = (Status.CRASH, Status.TIMEOUT)  # told as the worst value seen
SCORED_STATUSES = (Status.KEEP, Status.DISCARD)  # told with their metric


def _point_sig(point: dict[str, float | int]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in point.items()))


class ClassicalProposer:
    """Optuna-TPE local search over the editable files' numeric constants (see module docstring).

    `seed`: makes the sequence of ideate calls reproducible (give each agent its own seed, or agents
    sharing a leader propose the same points and rely on board dedup). `sampler`: "tpe" (default) or
    "random" (same local moves, uniform draws: the baseline of scripts/bench_classical.py).
    `max_changes`: constants changed per idea (1..max_changes). `model_step`: the first idea of a call
    is the surrogate's jump (swarm.proposers.surrogate) whenever the observations support one.
    `probes`: while the model lacks a constant's curvature, ideas probe it first (`_probes`).
    `replicates`: a candidate's confirmation runs count as observations of its point (benchmarks turn
    it off to measure what it brings)."""

    name = "classical"
    can_implement = False

    def __init__(
        self,
        seed: int | None = None,
        *,
        sampler: str = "tpe",
        max_changes: int = defaults.CLASSICAL_MAX_CHANGES,
        n_startup_trials: int = defaults.CLASSICAL_STARTUP_TRIALS,
        model_step: bool = defaults.CLASSICAL_MODEL_STEP,
        probes: bool = defaults.CLASSICAL_PROBES,
        replicates: bool = True,
    ) -> None:
        if sampler not in ("tpe", "random"):
            raise ProposerError(f"classical: unknown sampler {sampler!r} (tpe or random)")
        if max_changes < 1:
            raise ProposerError("classical: max_changes must be >= 1")
        self.seed = seed
        self.sampler = sampler
        self.max_changes = max_changes
        self.n_startup_trials = n_startup_trials
        self.model_step = model_step
        self.probes = probes
        self.replicates = replicates
        self._rng = random.Random(seed)

    # --- the Proposer protocol -------------------------------------------------------------------
    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        constants = [c for c in parse_constants(ctx.files, ctx.profile) if search_space(c) is not None]
        if not constants:
            raise ProposerError(
                "classical: no tunable constants in the editable files (top-level UPPER_CASE numeric "
                "literals, one per line)"
            )
        spaces = {c.key: s for c in constants if (s := search_space(c)) is not None}
        leader = {c.key: c.value for c in constants}
        call_seed = self._rng.randrange(2**31)
        with warnings.catch_warnings():
            # TPE's options are marked experimental in some Optuna versions; the warning is noise
            # here and pytest turns warnings into errors.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            ideas = self._ideate(ctx, n, constants, spaces, leader, call_seed)
        return ideas, Usage()

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        raise ProposerError(
            "the classical proposer cannot implement free text: it only claims hypotheses that carry a patch"
        )

    def repair(
        self, hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str
    ) -> tuple[dict[str, str] | None, Usage]:
        return None, Usage()

    # --- internals -------------------------------------------------------------------------------
    def _ideate(
        self,
        ctx: ProposalContext,
        n: int,
        constants: list[Constant],
        spaces: dict[str, Space],
        leader: dict[str, float | int],
        call_seed: int,
    ) -> list[Idea]:
        dists = {k: s.distribution() for k, s in spaces.items()}
        sampler: optuna.samplers.BaseSampler
        if self.sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=call_seed, n_startup_trials=self.n_startup_trials)
        else:
            sampler = optuna.samplers.RandomSampler(seed=call_seed)
        direction = StudyDirection.MAXIMIZE if ctx.direction is Direction.MAXIMIZE else StudyDirection.MINIMIZE
        study = optuna.create_study(direction=direction, sampler=sampler)
        n_obs, tried, scored, failed = self._replay(study, ctx, spaces, leader)
        n_failed = len(failed)
        best = max(scored, key=lambda pv: ctx.direction.gain(0.0, pv[1])) if scored else None
        rng = random.Random(call_seed)
        by_key = {c.key: c for c in constants}
        ideas: list[Idea] = []
        seen = set(tried) | {_point_sig(leader)}
        step = self._model(ctx, spaces, leader, scored, rng) if n > 0 else None
        if step is not None and _point_sig(point := {**leader, **step.values}) not in seen:
            seen.add(_point_sig(point))
            self._add(study, spaces, point, None, TrialState.RUNNING)
            moved = [c for c in constants if c.key in step.values]
            ideas.append(self._idea(ctx, moved, point, n_obs, n_failed, best, step))
        for point, key in self._probes(spaces, leader, scored, failed, seen, rng):
            if len(ideas) >= n:
                break
            seen.add(_point_sig(point))
            self._add(study, spaces, point, None, TrialState.RUNNING)
            ideas.append(self._idea(ctx, [by_key[key]], point, n_obs, n_failed, best, probe=True))
        for _ in range(max(1, n) * defaults.CLASSICAL_TRIES_PER_IDEA):
            if len(ideas) >= n:
                break
            trial = study.ask(dists)
            proposal = {k: spaces[k].to_value(trial.params[k]) for k in spaces}
            study.tell(trial, state=TrialState.FAIL)  # only the chosen local move stays in the study
            chosen = self._choose(proposal, leader, spaces, rng)
            if not chosen:
                continue
            point = {**leader, **{k: proposal[k] for k in chosen}}
            sig = _point_sig(point)
            if sig in seen:
                continue
            seen.add(sig)
            # Pending (constant liar): the next ask in this batch steers away from this point.
            self._add(study, spaces, point, None, TrialState.RUNNING)
            ideas.append(self._idea(ctx, [by_key[k] for k in chosen], point, n_obs, n_failed, best))
        return ideas

    def _replay(
        self,
        study: optuna.Study,
        ctx: ProposalContext,
        spaces: dict[str, Space],
        leader: dict[str, float | int],
    ) -> tuple[int, set[tuple[tuple[str, float], ...]], list[tuple[Point, float]], list[Point]]:
        """Tell the study every observation: the leader and each classical result of this profile.
        Returns (#observations, points tried on the current leader, the scored (point, value) pairs, the
        points that crashed or timed out)."""
        obs: list[tuple[dict[str, float | int], float | None]] = []
        tried: set[tuple[tuple[str, float], ...]] = set()
        if ctx.leader_metric is not None and math.isfinite(ctx.leader_metric):
            obs.append((dict(leader), ctx.leader_metric))
        for r in ctx.history:
            if META_CHANGED not in r.meta or r.meta.get(META_PROFILE, ctx.profile) != ctx.profile:
                continue
            point = {**leader, **{k: v for k, v in r.meta.items() if k in spaces and not isinstance(v, str)}}
            if r.on_current_leader:
                tried.add(_point_sig(point))  # whatever its outcome, it was tried here
            if r.status in SCORED_STATUSES and r.metric is not None and math.isfinite(r.metric):
                obs.append((point, r.metric))
                if self.replicates:  # its confirmation runs: more observations of the same point
                    obs.extend((point, v) for v in r.replicates if math.isfinite(v))
            elif r.status in FAILED_STATUSES:
                obs.append((point, None))
        values = [v for _, v in obs if v is not None]
        failed = [p for p, v in obs if v is None]
        if not values:
            return 0, tried, [], failed
        worst = min(values, key=lambda v: ctx.direction.gain(0.0, v))
        for point, value in obs:
            self._add(study, spaces, point, worst if value is None else value, TrialState.COMPLETE)
        return len(obs), tried, [(p, v) for p, v in obs if v is not None], failed

    def _model(
        self,
        ctx: ProposalContext,
        spaces: dict[str, Space],
        leader: dict[str, float | int],
        scored: list[tuple[dict[str, float | int], float]],
        rng: random.Random,
    ) -> Step | None:
        if not self.model_step or self.sampler != "tpe":
            return None
        minimize = ctx.direction is Direction.MINIMIZE
        return model_step(scored, spaces, leader, rng, minimize=minimize, noise_sd=ctx.noise_sd)

    def _probes(
        self,
        spaces: dict[str, Space],
        leader: dict[str, float | int],
        scored: list[tuple[dict[str, float | int], float]],
        failed: list[dict[str, float | int]],
        seen: set[tuple[tuple[str, float], ...]],
        rng: random.Random,
    ) -> list[tuple[dict[str, float | int], str]]:
        """Probes, in random order: one constant moved CLASSICAL_PROBE_STEP of its space up or down from
        the leader, for each constant whose curvature the model step cannot fit yet (fewer than 3
        distinct values observed), to a value not observed yet (nor crashed or timed out). Random local
        moves far out along a few constants are mostly worse on a bowl and leave most curvatures unknown;
        these few one-constant moves give the model step each curvature it needs (a parabola through
        three points per constant), so N agents that run them at once reach a model step after a round
        or two, each probe's effect attributable on its own."""
        if not (self.model_step and self.probes) or self.sampler != "tpe":
            return []
        varied = varied_keys(scored, spaces, leader)
        points = [p for p, _ in scored] + failed
        probes: list[tuple[dict[str, float | int], str]] = []
        for k, s in spaces.items():
            origin = s.coordinate(leader[k])
            if k in varied or origin is None:
                continue
            observed = {round(c, 9) for p in points if (c := s.coordinate(p.get(k, leader[k]))) is not None}
            for sign in (1.0, -1.0):
                value = value_at(s, origin + sign * defaults.CLASSICAL_PROBE_STEP * s.span)
                c = s.coordinate(value)
                if value == leader[k] or c is None or round(c, 9) in observed:
                    continue
                point = {**leader, k: value}
                if _point_sig(point) not in seen:
                    probes.append((point, k))
        rng.shuffle(probes)
        return probes

    @staticmethod
    def _add(
        study: optuna.Study,
        spaces: dict[str, Space],
        point: dict[str, float | int],
        value: float | None,
        state: TrialState,
    ) -> None:
        params: dict[str, float | int] = {}
        dists: dict[str, BaseDistribution] = {}
        for k, s in spaces.items():
            x = s.to_internal(point[k]) if k in point else None
            if x is not None:  # a value outside today's space (the leader moved) informs nothing here
                params[k] = x
                dists[k] = s.distribution()
        if params:
            study.add_trial(create_trial(state=state, value=value, params=params, distributions=dists))

    def _choose(
        self,
        proposal: dict[str, float | int],
        leader: dict[str, float | int],
        spaces: dict[str, Space],
        rng: random.Random,
    ) -> list[str]:
        """1..max_changes keys to change, drawn with weight = how far the sampler moved each one
        (normalised on its own scale): TPE moves a constant far when its good region lies away from the
        leader's value, so those moves are the informative ones."""
        weights: dict[str, float] = {}
        for k, s in spaces.items():
            if proposal[k] == leader[k]:
                continue
            a, b = s.to_internal(proposal[k]), s.to_internal(leader[k])
            if a is None:
                continue
            if b is None:
                weights[k] = 1.0
                continue
            pa, pb = s.coordinate(proposal[k]), s.coordinate(leader[k])
            assert pa is not None and pb is not None  # both lie in the space
            weights[k] = 0.05 + abs(pa - pb) / s.span
        if not weights:
            return []
        size = min(len(weights), rng.randint(1, self.max_changes))
        keys = sorted(weights)
        chosen: list[str] = []
        for _ in range(size):
            k = rng.choices(keys, weights=[weights[x] for x in keys])[0]
            chosen.append(k)
            keys.remove(k)
        return sorted(chosen, key=list(spaces).index)

    def _idea(
        self,
        ctx: ProposalContext,
        chosen: list[Constant],
        point: dict[str, float | int],
        n_obs: int,
        n_failed: int,
        best: tuple[dict[str, float | int], float] | None,
        step: Step | None = None,
        probe: bool = False,
    ) -> Idea:
        new_text = {c: format_value(c, point[c.key]) for c in chosen}
        after = apply_values(ctx.files, new_text)
        before = {p: ctx.files[p] for p in sorted({c.path for c in chosen})}
        patch = make_patch(before, {p: after[p] for p in before})
        moves = ", ".join(f"{c.label} {c.text} -> {new_text[c]}" for c in chosen)
        sampler = "Optuna TPE" if self.sampler == "tpe" else "uniform random"
        if step is not None:
            basis = (
                f"an additive quadratic fit to {step.n_obs} observations (every agent's runs of this track) "
                f"puts each moved constant's minimum here, within the trust region, and predicts "
                f"{ctx.metric_name} {'-' if ctx.direction is Direction.MINIMIZE else '+'}{step.predicted_gain:.3g}"
            )
        elif probe:
            basis = (
                f"the model step needs each constant's curvature and no observation yet moves "
                f"{chosen[0].label} this far this way: a probe of a quarter of its range, alone"
            )
        elif self.sampler == "tpe" and n_obs - n_failed < self.n_startup_trials:
            basis = (
                f"{n_obs - n_failed} scored observations on this track are fewer than the "
                f"{self.n_startup_trials} TPE needs, so this is a random draw around the leader"
            )
        elif self.sampler == "tpe":
            basis = f"TPE's model of the {n_obs} observations ranks this region among the promising ones"
        else:
            basis = f"a uniform draw over the search space ({n_obs} observations ignored)"
        if best is not None:
            leader = {**point, **{c.key: c.value for c in chosen}}
            diff = [f"{k}={v:g}" for k, v in best[0].items() if v != leader.get(k)]
            leader_best = ctx.leader_metric is not None and best[1] == ctx.leader_metric
            basis += (
                f"; the leader is the best observation ({ctx.metric_name} {best[1]:.6g})"
                if leader_best or not diff
                else f"; best observed {ctx.metric_name} {best[1]:.6g} had {', '.join(diff[:6])}"
            )
        if n_failed:
            basis += f"; {n_failed} crashed/timed-out points were told as the worst value"
        rationale = (
            f"{sampler} sampler over {len(point)} tunable constants: {basis}. "
            f"Changes {len(chosen)} constant(s) and keeps the rest at the leader's values: a local move "
            "whose effect stays attributable under seed noise."
            if step is None
            else f"Model step over {len(point)} tunable constants: {basis}. Changes {len(chosen)} "
            "constant(s) at once; the noise rule judges it like any other candidate."
        )
        meta: dict[str, float | int | str] = {
            META_CHANGED: ",".join(c.key for c in chosen),
            META_PROFILE: ctx.profile,
            **point,
        }
        if len(json.dumps(meta)) > defaults.META_MAX_BYTES:  # keep only what changed
            meta = {
                META_CHANGED: meta[META_CHANGED],
                META_PROFILE: ctx.profile,
                **{c.key: point[c.key] for c in chosen},
            }
        if step is not None or probe:
            meta[META_BASIS] = "model" if step is not None else "probe"
        title = f"classical{' model step' if step else ' probe' if probe else ''}: {moves}"
        return Idea(title=title, rationale=rationale, patch=patch, tags=["classical"], meta=meta)
