"""The noise rule: when a result is a candidate, and when a candidate may become the leader.

The published single-agent session changed only the random seed and moved val_bpb by 0.0007, yet it
kept several "improvements" smaller than 0.0001: it promoted noise. The swarm measures each track's
seed noise and promotes only what survives it.

The rule (documented in docs/agent.md):
- Seed noise. When a track gets its first leader, `NOISE_SEEDS` baseline runs with seeds 0..K-1 are
  made; `sigma` is their sample standard deviation, and the baseline leader's metric is their mean.
- Screening. An exploration run (seed 0) built on the current leader is a *candidate* when its gain
  over the leader is more than `max(min_delta, SCREEN_Z * sigma)` (gain = leader - metric when
  minimizing). Anything less is discarded without spending confirmation runs.
- Confirmation. A candidate is re-run with seeds 1..CONFIRM_RUNS-1 (by whichever agent of the track
  claims the confirmation jobs first). It is promoted only when the mean of its CONFIRM_RUNS runs beats
  the leader's mean (itself a mean of n_leader runs) by more than
  `max(min_delta, NOISE_Z * sigma * sqrt(1/n + 1/n_leader))`: the standard error of a difference of
  two means. With NOISE_Z = 2 a change with no true effect is promoted ~2.3% of the time.
- A candidate whose parent is no longer the leader is never promoted as is: it is rebased onto the new
  leader (posted again as a hypothesis with its edit) and runs again from screening.
"""

from __future__ import annotations

import logging
import math
import statistics
from typing import TYPE_CHECKING

from swarm import defaults
from swarm.agent.history import TrackHistory
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, make_patch
from swarm.errors import ArenaError
from swarm.experiment.workspace import Workspace
from swarm.models import SOURCE_RE, Hypothesis, HypothesisIn, Leader, Result, ResultIn, SwarmSettings

log = logging.getLogger(__name__)

SCREEN_Z = 1.0  # a null change passes screening ~16% of the time: cheap to confirm, rarely misses a real gain


def sigma(samples: list[float]) -> float:
    """Sample standard deviation of the seed-noise runs (0 with fewer than two)."""
    return statistics.stdev(samples) if len(samples) >= 2 else 0.0


def gain(leader_metric: float, metric: float, direction: str) -> float:
    """How much better `metric` is than the leader's (positive = better), in the metric's units."""
    return leader_metric - metric if direction == "minimize" else metric - leader_metric


def screen_threshold(noise_sigma: float, min_delta: float) -> float:
    """The gain a single exploration run needs to become a candidate."""
    return max(min_delta, SCREEN_Z * noise_sigma)


def promote_threshold(
    noise_sigma: float, min_delta: float, n: int, n_leader: int, z: float = defaults.NOISE_Z
) -> float:
    """The gain a candidate's mean of `n` runs needs over a leader measured with `n_leader` runs."""
    se = noise_sigma * math.sqrt(1.0 / max(n, 1) + 1.0 / max(n_leader, 1))
    return max(min_delta, z * se)


def is_candidate(leader_metric: float, metric: float, direction: str, noise_sigma: float, min_delta: float) -> bool:
    g = gain(leader_metric, metric, direction)
    return g > screen_threshold(noise_sigma, min_delta) and g > 0


def should_promote(
    leader_metric: float,
    runs: list[float],
    direction: str,
    noise_sigma: float,
    min_delta: float,
    n_leader: int = defaults.CONFIRM_RUNS,
) -> tuple[bool, float, float]:
    """(promote?, mean of the runs, threshold) for a candidate's confirmed runs."""
    mean = statistics.fmean(runs)
    threshold = promote_threshold(noise_sigma, min_delta, len(runs), n_leader)
    g = gain(leader_metric, mean, direction)
    return (g > threshold and g > 0), mean, threshold


class PromotionMixin:
    """Part of `swarm.agent.Agent`: judging, confirming, promoting, rebasing and porting candidates."""

    board: Board
    ws: Workspace
    settings: SwarmSettings
    track: str
    agent_id: str
    history: TrackHistory

    if TYPE_CHECKING:  # provided by swarm.agent.Agent; stubs here would shadow them in the MRO

        def record_win(self, proposer: str, delta: float) -> None: ...
        def files_of(self, patch_hash: str) -> dict[str, str]: ...

    def judge(self, parent_patch_hash: str | None, metric: float | None) -> str:
        """keep (a candidate worth confirming) or discard, for an exploration run on `parent_patch_hash`."""
        leader = self.board.leader(self.track)
        if metric is None or leader is None or leader.patch_hash != parent_patch_hash:
            return "discard"
        noise = sigma(self.board.noise(self.track))
        ok = is_candidate(leader.metric, metric, self.settings.direction, noise, self.settings.min_delta)
        return "keep" if ok else "discard"

    def promote(self, result: ResultIn) -> None:
        """Baseline runs set the track's noise and first leader; candidates get confirmations; the last
        confirmation decides the promotion through the leader compare-and-set."""
        if result.kind == "baseline":
            self.finalize_baseline()
        elif result.kind == "explore" and result.status == "keep":
            hyp = self.board.get(result.hypothesis_id or "")
            for seed in range(1, defaults.CONFIRM_RUNS):
                self.board.post(
                    HypothesisIn(
                        text=f"confirm {result.result_id[:8]} with seed {seed}: {hyp.title}"[:500],
                        source=hyp.source,
                        author=self.agent_id,
                        priority=defaults.PRIORITY_CONFIRM,
                        patch=self.board.get_patch(result.patch_hash or EMPTY_PATCH) or None,
                        track=self.track,
                        kind="confirm",
                        parent=result.result_id,
                        seed=seed,
                        tags=["confirm"],
                    )
                )
            self.board.event(
                "candidate",
                f"{self.track}: candidate {result.metric} from {hyp.title}",
                result_id=result.result_id,
            )
            if defaults.CONFIRM_RUNS <= 1:
                self.finalize_candidate(result.result_id)
        elif result.kind == "confirm" and result.candidate_of:
            self.finalize_candidate(result.candidate_of)

    def finalize_baseline(self) -> None:
        """When all baseline seeds are in: record the track's noise and make the baseline its leader."""
        if self.board.leader(self.track) is not None:
            return
        runs = [r for r in self.history.newest() if r.kind == "baseline"]
        bad = [r for r in runs if r.status != "keep"]
        if bad and not any(h.state in ("open", "claimed") for h in self.board_baseline_jobs()):
            raise ArenaError(f"the baseline does not run on track {self.track}: {bad[0].status}: {bad[0].error[-300:]}")
        by_seed = {r.seed: r for r in runs if r.status == "keep" and r.metric is not None and r.seed is not None}
        if len(by_seed) < defaults.NOISE_SEEDS:
            return
        chosen = [by_seed[s] for s in sorted(k for k in by_seed if k is not None)][: defaults.NOISE_SEEDS]
        values = [float(r.metric) for r in chosen if r.metric is not None]
        first = chosen[0]
        self.board.set_noise(self.track, values)
        mean = statistics.fmean(values)
        out = self.board.move_leader(
            self.track,
            0,
            mean,
            EMPTY_PATCH,
            first.hypothesis_id,
            first.agent_id,
            first.result_id,
            support=[r.result_id for r in chosen[1:]],
        )
        if out.accepted:
            log.info("track %s baseline %.6f (seed noise sigma %.6f)", self.track, mean, sigma(values))

    def board_baseline_jobs(self) -> list[Hypothesis]:
        return [h for h in self.board.list_hypotheses(limit=1000) if h.kind == "baseline" and h.track == self.track]

    def finalize_candidate(self, candidate_id: str) -> None:
        """Promote a candidate whose confirmations are all in, if its mean beats the leader beyond noise."""
        cand = self.board.result(candidate_id)
        if cand.track != self.track:
            return  # each track's agents finalize its own candidates
        confirms = self.confirms_of(candidate_id)
        if len({r.seed for r in confirms}) < defaults.CONFIRM_RUNS - 1:
            return
        leader = self.board.leader(cand.track)
        if leader is None or leader.result_id == candidate_id:
            return  # already promoted by another agent's finalize
        if leader.patch_hash != cand.parent_patch_hash:
            self.rebase_candidate(cand.result_id, leader)
            return
        kept = [r for r in confirms if r.status == "keep" and r.metric is not None]
        values = [float(v) for v in [cand.metric, *(r.metric for r in kept)] if v is not None]
        if len(values) < defaults.CONFIRM_RUNS:
            self.board.event("rejected", f"{cand.track}: candidate {candidate_id[:8]} crashed in confirmation")
            return
        ok, mean, threshold = self.beats_leader(leader, values)
        if not ok:
            self.board.event(
                "rejected",
                f"{cand.track}: candidate {candidate_id[:8]} mean {mean:.6f} vs leader "
                f"{leader.metric:.6f}: gain under the noise threshold {threshold:.6f}",
            )
            return
        out = self.board.move_leader(
            cand.track,
            leader.generation,
            mean,
            cand.patch_hash or EMPTY_PATCH,
            cand.hypothesis_id,
            cand.agent_id,
            candidate_id,
            support=[r.result_id for r in kept],
        )
        if out.accepted:
            self.record_win(cand.proposer, gain(leader.metric, mean, self.settings.direction))
            self.port_to_other_tracks(candidate_id, cand.track)
        elif out.reason == "stale_generation" and out.leader is not None and out.leader.result_id != candidate_id:
            self.rebase_candidate(candidate_id, out.leader)

    def confirms_of(self, candidate_id: str) -> list[Result]:
        """The candidate's confirmation results published so far (not stale), from the track's history."""
        return [
            r for r in self.history.newest() if r.kind == "confirm" and r.candidate_of == candidate_id and not r.stale
        ]

    def beats_leader(self, leader: Leader, values: list[float]) -> tuple[bool, float, float]:
        """(promote?, mean, threshold) of a candidate's runs against `leader` under the track's noise."""
        noise = sigma(self.board.noise(leader.track))
        n_leader = defaults.NOISE_SEEDS if leader.patch_hash == EMPTY_PATCH else defaults.CONFIRM_RUNS
        return should_promote(leader.metric, values, self.settings.direction, noise, self.settings.min_delta, n_leader)

    def speculative_leader(self, running: Hypothesis) -> Leader | None:
        """The leader `running` will make if it is a candidate's last confirmation and the candidate's runs
        so far clear the promotion threshold; None otherwise. The preparer builds the next job on that
        code, so an agent that promotes its own candidate (always so when it is alone on its track) does
        not then wait for its proposer: a wrong guess costs what a right one saves, once."""
        if running.kind != "confirm" or not running.parent:
            return None
        leader = self.board.leader(self.track)
        cand = self.board.result(running.parent)
        if leader is None or cand.parent_patch_hash != leader.patch_hash or cand.metric is None:
            return None
        confirms = self.confirms_of(cand.result_id)
        if len({r.seed for r in confirms} | {running.seed}) < defaults.CONFIRM_RUNS - 1:
            return None  # other confirmations are still to come: this run does not decide
        kept = [float(r.metric) for r in confirms if r.status == "keep" and r.metric is not None]
        values = [float(cand.metric), *kept]
        ok, mean, _ = self.beats_leader(leader, values)
        if not ok:
            return None
        return leader.model_copy(
            update={
                "generation": leader.generation + 1,
                "metric": mean,
                "patch_hash": cand.patch_hash or EMPTY_PATCH,
                "hypothesis_id": cand.hypothesis_id,
                "agent_id": cand.agent_id,
                "result_id": cand.result_id,
            }
        )

    def post_edit(self, candidate_id: str, text: str, track: str, kind: str, priority: int) -> None:
        """Post a candidate's edit (the diff from its parent's code, `meta.base` = that parent) as a new
        hypothesis, under the proposer that made it, so it is merged 3-way onto `track`'s leader."""
        cand = self.board.result(candidate_id)
        parent = cand.parent_patch_hash or EMPTY_PATCH
        base = self.files_of(parent)
        mine = self.files_of(cand.patch_hash or EMPTY_PATCH)
        delta = make_patch(base, mine)
        if not delta.strip():
            return
        title = self.board.get(cand.hypothesis_id).title if cand.hypothesis_id else candidate_id
        self.board.post(
            HypothesisIn(
                text=f"{text}: {title}"[:500],
                source=cand.proposer if SOURCE_RE.match(cand.proposer) else "human",
                author=self.agent_id,
                priority=priority,
                patch=delta,
                track=track,
                kind=kind,
                meta={"base": parent},
                tags=["rebase" if kind == "explore" else kind],
            )
        )

    def rebase_candidate(self, candidate_id: str, leader: Leader) -> None:
        """A candidate built on an old leader is never promoted as is: its edit is posted on the new one."""
        self.post_edit(
            candidate_id, f"rebase onto gen {leader.generation}", leader.track, "explore", defaults.PRIORITY_PORT
        )

    def port_to_other_tracks(self, candidate_id: str, track: str) -> None:
        """A win on one hardware class is posted, with its edit, for every other live track."""
        tracks = {a.track for a in self.board.agents() if a.alive and a.track != track}
        for other in sorted(tracks):
            self.post_edit(candidate_id, f"port from {track}", other, "port", defaults.PRIORITY_PORT)
