"""After a result is on the board: judge it, ask for its confirmations, promote it, port it.

    promoter = Promoter(board, agent_id=..., track=..., settings=..., history=..., code=...)
    status = promoter.judge(parent_patch_hash, metric)    # keep (a candidate) or discard
    promoter.on_result(result)                            # baseline -> leader; candidate -> confirm;
                                                          # last confirmation -> promote

The rule itself is pure (`swarm.agent.noise`); this class reads what it needs from the board and
moves the leader only through the board's compare-and-set, which re-checks everything on the server.
A candidate whose parent is no longer the leader is judged against the new leader as it is when its
runs clear screening against it (`overtakes`), and promoted over it only if it beats it, the replaced
leader's edit then posted onto it (`reapply`); otherwise its edit is posted again on the new leader (a
3-way merge) and runs through screening again. A promotion is posted, with its
edit, as a `port` hypothesis for every other live track: a win on one hardware class is validated
on the others, never assumed.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from dataclasses import KW_ONLY, dataclass, field

from swarm import defaults
from swarm.agent.code_cache import CodeCache
from swarm.agent.history import TrackHistory
from swarm.agent.noise import is_candidate, pooled, should_promote, sigma
from swarm.board import Board
from swarm.board.hypotheses import hypothesis_id
from swarm.code.diff import EMPTY_PATCH, make_patch, patch_hash
from swarm.code.merge import merge3
from swarm.errors import NotFound, UserError
from swarm.models import (
    SOURCE_RE,
    Hypothesis,
    HypothesisIn,
    Kind,
    Leader,
    Result,
    ResultIn,
    State,
    Status,
    SwarmSettings,
)

log = logging.getLogger(__name__)


def baseline_retry_s(i: int) -> float:
    """The wait before the new seed that replaces the i-th (0-based) failed baseline run of a track."""
    return float(min(defaults.BASELINE_RETRY_MAX_S, defaults.BASELINE_RETRY_S * 2**i))


@dataclass(eq=False)
class Promoter:
    """Judging, confirming, promoting, rebasing and porting the candidates of one track."""

    board: Board
    _: KW_ONLY
    agent_id: str
    track: str
    settings: SwarmSettings
    history: TrackHistory
    code: CodeCache
    refreshes_posted: tuple[str, int] = field(default=("", 0), init=False)  # (leader result id, seeds posted)

    def judge(self, parent_patch_hash: str | None, metric: float | None) -> Status:
        """keep or discard, for an exploration run built on the leader whose code is `parent_patch_hash`:
        keep when it beats that leader beyond the screening threshold. Judged against the leader it
        started from, so a run whose parent was replaced while it ran is not thrown away for it (the
        promoter then rebases it onto the new leader instead of confirming it: `on_result`)."""
        reference = self.reference(parent_patch_hash)
        if metric is None or reference is None:
            return Status.DISCARD
        leader = self.board.leader(self.track)
        parent = leader if leader is not None and leader.patch_hash == parent_patch_hash else None
        noise, df = self.noise()
        n_leader = self.runs_behind(parent) if parent is not None else defaults.CONFIRM_RUNS
        ok = is_candidate(reference, metric, self.settings.direction, noise, df, self.settings.min_delta, n_leader)
        return Status.KEEP if ok else Status.DISCARD

    def noise(self) -> tuple[float, int]:
        """The track's seed noise, pooled over every group of runs of one code (baseline seeds, each
        candidate's runs), with its degrees of freedom (`noise.pooled`); the baseline's alone before
        the history has them."""
        groups: dict[str, list[float]] = {}
        for r in self.history.newest():
            if r.metric is not None and r.status in (Status.KEEP, Status.DISCARD) and r.kind != Kind.PORT:
                groups.setdefault(r.patch_hash or EMPTY_PATCH, []).append(float(r.metric))
        s, df = pooled(groups.values())
        if df == 0:
            base = self.board.noise(self.track)
            return sigma(base), max(0, len(base) - 1)
        return s, df

    @staticmethod
    def runs_behind(leader: Leader) -> int:
        """How many runs the leader's metric is the mean of (a board from before `runs`: the rule's)."""
        if leader.runs > 0:
            return leader.runs
        return defaults.NOISE_SEEDS if leader.patch_hash == EMPTY_PATCH else defaults.CONFIRM_RUNS

    def reference(self, parent_patch_hash: str | None) -> float | None:
        """The metric of the leader an exploration started from (None: no leader, or never led here)."""
        leader = self.board.leader(self.track)
        if leader is None or parent_patch_hash is None:
            return None
        return leader.metric if leader.patch_hash == parent_patch_hash else self.metric_of(parent_patch_hash)

    def gain(self, parent_patch_hash: str | None, metric: float | None) -> float | None:
        """How much better than the leader it started from `metric` is (negative: worse)."""
        reference = self.reference(parent_patch_hash)
        if metric is None or reference is None:
            return None
        return self.settings.direction.gain(reference, metric)

    def metric_of(self, patch_hash: str) -> float | None:
        """The metric of the track's most recent leader with that code (None: it never led here)."""
        for move in reversed(self.board.leader_history(self.track)):
            if move.patch_hash == patch_hash:
                return move.metric
        return None

    def on_result(self, result: ResultIn) -> None:
        """Baseline runs set the track's noise and first leader; a candidate gets its confirmations (or,
        when the leader moved while it ran, its edit is posted on the new leader); the last
        confirmation decides the promotion."""
        if result.kind == Kind.BASELINE:
            if result.status.failed:
                self.baseline_failed(result)
            self.finalize_baseline()
        elif result.kind == Kind.EXPLORE and result.status == Status.KEEP:
            leader = self.board.leader(self.track)
            runs = [float(result.metric)] if result.metric is not None else []
            moved = leader is not None and leader.patch_hash != result.parent_patch_hash
            if leader is not None and moved and not self.overtakes(runs, leader):
                self.rebase_candidate(result.result_id, leader)  # it beat the leader it started from, not this one
            else:
                self.confirm(result)
        elif result.kind == Kind.CONFIRM and result.candidate_of and result.meta.get("refresh"):
            self.refresh(result.candidate_of)
        elif result.kind == Kind.CONFIRM and result.candidate_of:
            self.promote(result.candidate_of)
        if result.kind == Kind.EXPLORE:
            self.post_refreshes()

    # --- baseline ------------------------------------------------------------------------------------
    def finalize_baseline(self) -> None:
        """When NOISE_SEEDS baseline runs have finished: record the track's noise (from those runs only)
        and make their mean the first leader. A seed that crashed or timed out is not the end of the
        track: `baseline_seeds_due` adds a new seed for it once its back-off has passed."""
        if self.board.leader(self.track) is not None:
            return
        runs = [r for r in self.history.newest() if r.kind == Kind.BASELINE and not r.stale]
        by_seed = {r.seed: r for r in runs if r.status == Status.KEEP and r.metric is not None and r.seed is not None}
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

    def baseline_failures(self) -> list[Result]:
        """The track's baseline runs that crashed, timed out or were invalid, oldest first."""
        runs = [r for r in self.history.newest() if r.kind == Kind.BASELINE and r.status.failed and not r.stale]
        return sorted(runs, key=lambda r: r.published_ms)

    def baseline_seeds_due(self, now_ms: int) -> int:
        """How many baseline seeds the track should have by now: NOISE_SEEDS, plus a new seed for each
        failed run whose back-off has passed (the i-th failure waits BASELINE_RETRY_S * 2^i, capped).
        Every agent computes the same number from the board, and seeds are posted by a deduplicated
        text, so the agents of a track post each retry once."""
        due = sum(now_ms >= r.published_ms + 1000 * baseline_retry_s(i) for i, r in enumerate(self.baseline_failures()))
        return defaults.NOISE_SEEDS + due

    def baseline_failed(self, result: ResultIn) -> None:
        """Say that a baseline seed failed and when it is retried; loudly once it keeps failing."""
        failures = len(self.baseline_failures())
        wait_s = baseline_retry_s(max(0, failures - 1))
        what = f"{result.status}: {result.error.strip().splitlines()[-1][:200] if result.error.strip() else '?'}"
        text = (
            f"{self.track}: baseline seed {result.seed} failed ({what}); failure {failures}, "
            f"a new seed runs in {wait_s:g} s"
        )
        if failures >= defaults.BASELINE_FAILURES_LOUD:
            log.error("the baseline keeps failing on this track: %s (agents keep retrying; see the run logs)", text)
            self.board.event("baseline_failing", text, track=self.track, failures=str(failures))
        else:
            log.warning("%s", text)

    # --- confirm -------------------------------------------------------------------------------------
    def confirm(self, result: ResultIn) -> None:
        """A candidate's code is posted as CONFIRM_RUNS - 1 jobs with other seeds, first in the queue."""
        hyp = self.board.get(result.hypothesis_id or "")
        for job in self.confirm_jobs(result, hyp):
            self.board.post(job)
        self.board.event(
            "candidate", f"{self.track}: candidate {result.metric} from {hyp.title}", result_id=result.result_id
        )
        if defaults.CONFIRM_RUNS <= 1:
            self.promote(result.result_id)

    def confirm_jobs(self, result: ResultIn, hyp: Hypothesis) -> list[HypothesisIn]:
        """The confirmation jobs of a candidate (their ids follow from their content: see `carry_over`)."""
        patch = self.board.get_patch(result.patch_hash or EMPTY_PATCH) or None
        return [self.rerun_job(result.result_id, hyp, patch, seed) for seed in range(1, defaults.CONFIRM_RUNS)]

    def rerun_job(self, of: str, hyp: Hypothesis, patch: str | None, seed: int, refresh: bool = False) -> HypothesisIn:
        """A run of the code of result `of` (made for `hyp`) with another seed: one of a candidate's
        confirmations, or (`refresh`) a re-measure of the leader it became (`post_refreshes`)."""
        return HypothesisIn(
            text=f"{'re-measure leader' if refresh else 'confirm'} {of[:8]} with seed {seed}: {hyp.title}"[:500],
            source=hyp.source,  # a run of that proposer's code, as its candidate's was
            author=self.agent_id,
            priority=defaults.PRIORITY_REFRESH if refresh else defaults.PRIORITY_CONFIRM,
            patch=patch,
            track=self.track,
            kind=Kind.CONFIRM,
            parent=of,
            seed=seed,
            tags=["refresh" if refresh else "confirm"],
            meta={"refresh": True} if refresh else {},
        )

    def confirms_of(self, candidate_id: str) -> list[Result]:
        """The candidate's confirmation results published so far (not stale), from the track's history."""
        return [
            r
            for r in self.history.newest()
            if r.kind == Kind.CONFIRM and r.candidate_of == candidate_id and not r.stale
        ]

    def runs_so_far(self, cand: Result, confirms: list[Result] | None = None) -> list[float]:
        """The metrics of a candidate's screening run and its confirmations published so far."""
        confirms = self.confirms_of(cand.result_id) if confirms is None else confirms
        return [float(v) for v in (cand.metric, *(c.metric for c in confirms)) if v is not None]

    # --- re-measure the standing leader ------------------------------------------------------------
    def post_refreshes(self) -> None:
        """A promoted leader gets one run of its code with a new seed for each LEADER_REFRESH_EVERY
        explorations judged against it, LEADER_REFRESH_RUNS at most: it was chosen for looking good
        (the winner's curse), runs made after the choice are not. Every agent of the track posts the
        same jobs (ids from their content), so each is posted once."""
        leader = self.board.leader(self.track)
        if leader is None or leader.patch_hash == EMPTY_PATCH or not leader.hypothesis_id:
            return
        stood = sum(
            1 for r in self.history.newest()
            if r.kind == Kind.EXPLORE and r.parent_patch_hash == leader.patch_hash and not r.stale
        )  # fmt: skip
        due = min(defaults.LEADER_REFRESH_RUNS, stood // max(1, defaults.LEADER_REFRESH_EVERY))
        posted = self.refreshes_posted[1] if self.refreshes_posted[0] == leader.result_id else 0
        if due <= posted:
            return  # this agent posted them already (another may have too: one job either way)
        hyp = self.board.get(leader.hypothesis_id)
        patch = self.board.get_patch(leader.patch_hash) or None
        for seed in range(defaults.CONFIRM_RUNS + posted, defaults.CONFIRM_RUNS + due):
            self.board.post(self.rerun_job(leader.result_id, hyp, patch, seed, refresh=True))
        self.refreshes_posted = (leader.result_id, due)

    def refresh(self, leader_result_id: str) -> None:
        """A new-seed run of the leader is in: its metric becomes the mean of all the runs of its code
        (the promotion's and the new ones). A run of a leader already replaced changes nothing."""
        leader = self.board.leader(self.track)
        if leader is None or leader.result_id != leader_result_id:
            return
        first = self.board.result(leader_result_id)
        runs = [first, *(r for r in self.confirms_of(leader_result_id) if r.status == Status.KEEP)]
        runs = [r for r in runs if r.metric is not None and (r.patch_hash or EMPTY_PATCH) == leader.patch_hash]
        if len(runs) <= self.runs_behind(leader):
            return
        mean = statistics.fmean(float(r.metric) for r in runs if r.metric is not None)
        new = self.board.refresh_leader(self.track, leader.generation, mean, [r.result_id for r in runs])
        if new is not None:
            log.info("track %s leader gen %d re-measured: %.6f over %d runs (was %.6f over %d)", self.track,
                     leader.generation, mean, len(runs), leader.metric, self.runs_behind(leader))  # fmt: skip

    # --- promote -------------------------------------------------------------------------------------
    def promote(self, candidate_id: str) -> None:
        """Promote a candidate whose confirmations are all in, if its mean beats the leader beyond noise."""
        cand = self.board.result(candidate_id)
        if cand.track != self.track:
            return  # each track's agents finalize its own candidates
        confirms = self.confirms_of(candidate_id)
        if len({r.seed for r in confirms}) < defaults.CONFIRM_RUNS - 1:
            return
        leader = self.board.leader(cand.track)
        if leader is None or leader.result_id == candidate_id:
            return  # already promoted by another agent
        kept = [r for r in confirms if r.status == Status.KEEP and r.metric is not None]
        values = [float(v) for v in [cand.metric, *(r.metric for r in kept)] if v is not None]
        complete = len(values) >= defaults.CONFIRM_RUNS
        ok, mean, threshold = self.beats_leader(leader, values) if complete else (False, 0.0, 0.0)
        moved = leader.patch_hash != cand.parent_patch_hash  # another candidate was promoted meanwhile
        if moved and not (defaults.OVERTAKE and ok):
            self.rebase_candidate(cand.result_id, leader)  # its edit may still help on the new leader
            return
        if not complete:
            self.board.event("rejected", f"{cand.track}: candidate {candidate_id[:8]} crashed in confirmation")
            return
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
            self.port_to_other_tracks(candidate_id, cand.track)
            new = self.board.leader(cand.track)
            if moved and new is not None and new.result_id == candidate_id:
                self.reapply(leader, cand, new)
            if defaults.CARRY_OVER and new is not None and new.result_id == candidate_id:
                self.carry_over(leader, new)
        elif out.reason == "stale_generation" and out.leader is not None and out.leader.result_id != candidate_id:
            self.rebase_candidate(candidate_id, out.leader)

    def beats_leader(self, leader: Leader, values: list[float]) -> tuple[bool, float, float]:
        """(promote?, mean, threshold) of a candidate's runs against `leader` under the track's noise."""
        noise, df = self.noise()
        return should_promote(
            leader.metric, values, self.settings.direction, noise, df, self.settings.min_delta, self.runs_behind(leader)
        )

    def overtakes(self, runs: list[float], leader: Leader) -> bool:
        """Whether a candidate built on another code than `leader`'s is judged against `leader` as it is
        (`defaults.OVERTAKE`): its runs so far (their mean) clear the screening threshold against it. Its
        confirmations then run, and it is promoted over `leader` if it beats it (`promote`); else its
        edit is posted onto `leader` (a rebase: one more screening run before its confirmations)."""
        if not defaults.OVERTAKE or not runs:
            return False
        noise, df = self.noise()
        return is_candidate(
            leader.metric,
            statistics.fmean(runs),
            self.settings.direction,
            noise,
            df,
            self.settings.min_delta,
            self.runs_behind(leader),
        )

    def reapply(self, old: Leader, cand: Result, new: Leader) -> None:
        """`cand`, built on another code than `old`'s, replaced `old`: what `old` changed from that code
        (its own edit, and those of the leaders between) is posted onto the new leader, so a gain it held
        is not dropped with it (a 3-way merge; a conflicting line stays as the candidate has it)."""
        self.post_edit(
            old.result_id,
            f"reapply gen {old.generation} onto gen {new.generation}",
            self.track,
            Kind.EXPLORE,
            defaults.PRIORITY_PORT,
            base=cand.parent_patch_hash or EMPTY_PATCH,
        )

    def speculative_leader(self, running: Hypothesis) -> Leader | None:
        """The leader `running` will make if it is a candidate's last confirmation and the candidate's runs
        so far clear the promotion threshold; None otherwise. The next job is built on that code, so an
        agent that promotes its own candidate (always so when it is alone on its track) does not then
        wait for its proposer: a wrong guess costs what a right one saves, once."""
        if running.kind != Kind.CONFIRM or not running.parent:
            return None
        leader = self.board.leader(self.track)
        cand = self.board.result(running.parent)
        if leader is None or cand.metric is None:
            return None
        if cand.parent_patch_hash != leader.patch_hash and not defaults.OVERTAKE:
            return None  # it will be rebased, whatever its runs
        confirms = self.confirms_of(cand.result_id)
        if len({r.seed for r in confirms} | {running.seed}) < defaults.CONFIRM_RUNS - 1:
            return None  # other confirmations are still to come: this run does not decide
        kept = [float(r.metric) for r in confirms if r.status == Status.KEEP and r.metric is not None]
        ok, mean, _ = self.beats_leader(leader, [float(cand.metric), *kept])
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

    def carry_over(self, old: Leader, new: Leader) -> None:
        """The other candidates of the leader just replaced, still waiting for confirmations: those not yet
        claimed are cancelled (each would only end in a rebase) and their edits posted on the new leader
        now, each alone and, when there are several, all merged into one edit first in the queue (edits
        of different lines merge; found by different agents at once, they would otherwise reach the
        leader one promotion at a time). A candidate whose runs so far no longer beat the old leader
        is dropped."""
        pending: list[Result] = []
        for r in self.history.newest():
            if r.kind != Kind.EXPLORE or r.status != Status.KEEP or r.stale or r.result_id == new.result_id:
                continue
            if r.parent_patch_hash != old.patch_hash or r.metric is None:
                continue
            confirms = self.confirms_of(r.result_id)
            if len({c.seed for c in confirms}) >= defaults.CONFIRM_RUNS - 1:
                continue  # judged already (rejected): nothing to carry
            runs = self.runs_so_far(r, confirms)
            if self.settings.direction.gain(old.metric, statistics.fmean(runs)) <= 0:
                continue
            if self.overtakes(runs, new):
                continue  # it may beat the new leader as it is: its confirmations go on (`promote`)
            pending.append(r)
        if not pending:
            return
        for r in pending:
            hyp = self.board.get(r.hypothesis_id) if r.hypothesis_id else None
            if hyp is not None:
                for job in self.confirm_jobs(r, hyp):
                    self.cancel_open(job)
            self.rebase_candidate(r.result_id, new)
        if len(pending) < 2:
            return
        # the best first: when two edits conflict (the same line), the one that did better goes in
        pending.sort(key=lambda r: self.settings.direction.gain(old.metric, float(r.metric or 0.0)), reverse=True)
        parent, target = self.code.files_of(old.patch_hash), self.code.files_of(new.patch_hash)
        merged, titles = target, []
        for r in pending:
            attempt = merge3(parent, merged, self.code.files_of(r.patch_hash or EMPTY_PATCH))
            if attempt is not None:
                merged = attempt
                titles.append(self.board.get(r.hypothesis_id).title if r.hypothesis_id else r.result_id)
        delta = make_patch(target, merged)
        if len(titles) < 2 or not delta.strip():
            return
        sources = {r.proposer for r in pending}
        source = sources.pop() if len(sources) == 1 else "human"
        self.board.post(
            HypothesisIn(
                text=f"combine {len(titles)} candidates of gen {old.generation} onto gen {new.generation}: "
                f"{'; '.join(titles)}"[:500],
                source=source if SOURCE_RE.match(source) else "human",
                author=self.agent_id,
                priority=defaults.PRIORITY_PORT + 1,
                patch=delta,
                track=self.track,
                kind=Kind.EXPLORE,
                meta={"base": new.patch_hash},
                tags=["combine"],
            )
        )

    def superseded(self, hyp: Hypothesis, leader: Leader) -> bool:
        """Whether `hyp` is a confirmation of a candidate built on a leader that `leader` has replaced, and
        whose runs so far do not overtake `leader` (`overtakes`): it can only end in a rebase, so the job
        is dropped instead of run, and the candidate's edit is posted on `leader` (`carry_over` has posted
        it already, or, when another confirmation lowered its mean since, posts are deduplicated by edit).
        A re-measure of a leader (`post_refreshes`) is dropped once that leader is replaced, nothing else."""
        if hyp.kind == Kind.CONFIRM and hyp.meta.get("refresh"):
            return hyp.parent != leader.result_id  # a re-measure of a leader since replaced: nothing to learn
        if not defaults.CARRY_OVER or hyp.kind != Kind.CONFIRM or not hyp.parent:
            return False
        try:
            cand = self.board.result(hyp.parent)
        except NotFound:
            return False
        if cand.track != self.track or cand.parent_patch_hash == leader.patch_hash or cand.metric is None:
            return False
        if self.overtakes(self.runs_so_far(cand), leader):
            return False
        self.rebase_candidate(cand.result_id, leader)
        return True

    def cancel_open(self, job: HypothesisIn) -> None:
        """Cancel the hypothesis `job` was posted as, if it is still open (a claimed one runs on)."""
        hid = hypothesis_id(job, patch_hash(job.patch) if job.patch else None)
        found = self.board.get_many([hid])
        if found and found[0].state == State.OPEN:
            with contextlib.suppress(UserError):  # claimed since the read: it runs, and ends in a rebase
                self.board.cancel(hid)

    # --- rebase and port -----------------------------------------------------------------------------
    def rebase_candidate(self, candidate_id: str, leader: Leader) -> None:
        """A candidate built on an old leader that does not overtake the new one: its edit is posted on it."""
        self.post_edit(
            candidate_id, f"rebase onto gen {leader.generation}", leader.track, Kind.EXPLORE, defaults.PRIORITY_PORT
        )

    def port_to_other_tracks(self, candidate_id: str, track: str) -> None:
        """A win on one hardware class is posted, with its edit, for every other live track."""
        tracks = {a.track for a in self.board.agents() if a.alive and a.track != track}
        for other in sorted(tracks):
            self.post_edit(candidate_id, f"port from {track}", other, Kind.PORT, defaults.PRIORITY_PORT)

    def post_edit(
        self, candidate_id: str, text: str, track: str, kind: Kind, priority: int, base: str | None = None
    ) -> None:
        """Post a candidate's edit (the diff from its parent's code, or from `base`'s; `meta.base` = that
        code) as a new hypothesis, under the proposer that made it, so it is merged 3-way onto `track`'s
        leader."""
        cand = self.board.result(candidate_id)
        parent = base if base is not None else cand.parent_patch_hash or EMPTY_PATCH
        delta = make_patch(self.code.files_of(parent), self.code.files_of(cand.patch_hash or EMPTY_PATCH))
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
                tags=["rebase" if kind == Kind.EXPLORE else str(kind)],
            )
        )
