"""Where jobs come from: claim the best open hypothesis of the track, ask a proposer when none is
open, implement it on the leader's code, and keep it on the leader (3-way) when the leader moves.

    source = JobSource(board, agent_id=..., track=..., ...)
    job = source.prepare()          # claim (or baseline, or ideate + claim) -> implement
    job = source.sync(job)          # the workspace on the leader; the job rebased onto it
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import KW_ONLY, dataclass, field, replace

from swarm import defaults
from swarm.agent.code_cache import CodeCache
from swarm.agent.context import build_context
from swarm.agent.history import TrackHistory
from swarm.agent.job import Job
from swarm.agent.leases import Leases
from swarm.agent.ledger import Ledger
from swarm.agent.peers import Peers
from swarm.agent.promoter import Promoter
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, apply_patch
from swarm.code.merge import merge3
from swarm.code.validate import validate_edit
from swarm.errors import ProposerError, UserError
from swarm.experiment.workspace import Workspace
from swarm.models import Claim, HypothesisIn, Kind, Leader, SwarmSettings
from swarm.observe.metrics import AgentMetrics
from swarm.proposers.base import ProposalContext, Usage, source_label
from swarm.proposers.select import IDEATE, IMPLEMENT, Selector

log = logging.getLogger(__name__)


@dataclass(eq=False)
class JobSource:
    """prepare -> (baseline | claim | ideate + claim) -> implement; sync/rebase onto a moved leader."""

    board: Board
    _: KW_ONLY
    agent_id: str
    track: str
    profile: str
    settings: SwarmSettings
    ws: Workspace
    code: CodeCache
    leases: Leases
    peers: Peers
    promoter: Promoter
    selector: Selector
    history: TrackHistory
    metrics: AgentMetrics
    ledger: Ledger
    pre_ideated: bool = field(default=False, init=False)  # ideas posted while the track's baseline was measured

    @property
    def can_implement(self) -> bool:
        """Whether free-text hypotheses can be claimed now: some proposer turns text into an edit and is
        not backing off or paused (a paused LLM claims no human's text, so none is given back for it)."""
        return self.selector.can_implement_now()

    # --- claim -------------------------------------------------------------------------------------
    def prepare(self, on: Leader | None = None, leave_urgent: bool = False) -> Job | None:
        """Claim the best open hypothesis of the track (ask a proposer when none is open), implement it
        on the track's leader, or on `on` (the code a promotion about to happen will make the leader).
        `leave_urgent`: claim nothing of a confirmation's priority or above once the track has a leader
        (the preparer, filling a slot that runs only after the current run, leaves such work open for
        the first GPU that is free: `urgent`)."""
        below = defaults.PRIORITY_CONFIRM if leave_urgent else None
        leader = on or self.board.leader(self.track)
        if leader is None:
            job = self.baseline()
            if job is not None:
                return job
            leader = self.board.leader(self.track)
            if leader is None:  # the baseline is still being measured by others
                if not self.pre_ideated:
                    # Think now, on the pristine arena (the code the baseline leader will have), so
                    # there is work to claim before the baseline lands (`ahead_of_baseline`).
                    self.pre_ideated = True
                    self.ideate(None)
                return self.ahead_of_baseline(below)
        t0 = time.monotonic()
        claim = self.claim(below_priority=below)
        usage = Usage()
        for _ in range(defaults.IDEATE_TRIES):
            if claim is not None:
                break
            more, posted = self.ideate(leader)
            usage = usage.add(more)
            claim = self.claim(below_priority=below)
            if not posted:  # the proposer had nothing (or failed): idle, do not hammer it
                break
        self.metrics.claim_wait(time.monotonic() - t0)
        if claim is None:
            return None
        job = self.implement_claim(claim, leader)
        if job is None:
            return None
        if job.stale_idea:
            # A machine-made idea (the classical optimizer's) whose edit conflicts with the leader that
            # replaced the one it was proposed on: retire it rather than burn a slot on an `invalid`
            # result; the proposer will be asked again on the new leader.
            self.retire(job)
            return self.prepare(on, leave_urgent)  # each retry retires one stale idea, so this ends
        if job.kind != Kind.BASELINE:
            job.usage = job.usage.add(usage)  # the ideation call that produced the work is paid by it
        return job

    def implement_claim(self, claim: Claim, leader: Leader) -> Job | None:
        """The claimed hypothesis as a job on `leader` (a baseline seed as itself); None when its
        implementer failed and it went back to the board."""
        if claim.hypothesis.kind == Kind.BASELINE:  # a baseline job left over: still worth its seed
            return Job(claim.hypothesis, claim.token, None, self.ws.baseline_files())
        job = self.implement(Job(claim.hypothesis, claim.token, leader))
        if job.giveback is not None:  # its implementer failed: the hypothesis is back on the board
            self.give_back(job)
            return None
        job.brief_version = self.board.brief()[0]
        return job

    def ahead_of_baseline(self, below_priority: int | None = None) -> Job | None:
        """An exploration of the pristine code while other agents run the track's last baseline seeds,
        instead of an idle GPU (`defaults.AHEAD_OF_BASELINE`). Its parent is the leader the baseline
        will make (`pristine_leader`); it is judged once that leader is on the board
        (`Publisher.deliver` waits for it). Not while a baseline seed has failed: an arena that
        crashes would use up the ideas (a human's among them) on crashes of its own making."""
        if not defaults.AHEAD_OF_BASELINE or self.promoter.baseline_failures():
            return None
        claim = self.claim(below_priority=below_priority)
        if claim is None:
            return None
        job = self.implement_claim(claim, self.pristine_leader())
        if job is not None and job.stale_idea:
            self.retire(job)
            return None
        return job

    def pristine_leader(self) -> Leader:
        """The leader the track's baseline will make: the pristine code, its metric not known yet (NaN;
        a proposer is shown no leader for it: `context`)."""
        return Leader(
            track=self.track, generation=0, metric=math.nan, patch_hash=EMPTY_PATCH, agent_id="", result_id="",
            time_ms=0,
        )  # fmt: skip

    def claim(self, min_priority: int | None = None, below_priority: int | None = None) -> Claim | None:
        """Lease the best open hypothesis for the track (of at least `min_priority`, of less than
        `below_priority`); a candidate's confirmations are left to the other agents of the track while
        there are any. The claim is held (renewed) from here on."""
        claim = self.board.claim(
            self.agent_id,
            self.track,
            need_patch=not self.can_implement,
            avoid_own=self.peers.others_on_track(defaults.LOOK_AROUND_S),
            min_priority=min_priority,
            below_priority=below_priority,
        )
        if claim is not None:
            self.leases.hold(claim.hypothesis.id, claim.token)
        return claim

    def urgent(self) -> Job | None:
        """A waiting confirmation or baseline seed of the track, claimed and ready to run (None: none
        is open). Asked whenever a GPU is free, before the prepared job: urgent work goes first."""
        claim = self.claim(min_priority=defaults.PRIORITY_CONFIRM)
        if claim is None:
            return None
        leader = self.board.leader(self.track)
        if leader is None and claim.hypothesis.kind != Kind.BASELINE:  # no candidate before the baseline
            self.leases.release(claim.hypothesis.id, claim.token)
            return None
        return self.implement_claim(claim, leader or self.pristine_leader())  # a confirmation, or a seed

    def baseline(self) -> Job | None:
        """A track without a leader first measures its baseline with NOISE_SEEDS seeds (and a new seed
        for each one that failed, once its back-off has passed: `Promoter.baseline_seeds_due`)."""
        self.promoter.finalize_baseline()
        if self.board.leader(self.track) is not None:
            return None
        for seed in range(self.promoter.baseline_seeds_due(self.board.server_ms())):
            self.board.post(
                HypothesisIn(
                    text=f"baseline seed {seed} on {self.track}",
                    source="human",
                    author=self.agent_id,
                    priority=defaults.PRIORITY_BASELINE,
                    track=self.track,
                    kind=Kind.BASELINE,
                    seed=seed,
                    tags=["baseline"],
                )
            )
        claim = self.board.claim(self.agent_id, self.track)
        if claim is None:
            return None
        if claim.hypothesis.kind != Kind.BASELINE:  # nothing can be judged before the baseline: give it back
            self.board.release(claim.hypothesis.id, claim.token)
            return None
        self.leases.hold(claim.hypothesis.id, claim.token)
        return Job(claim.hypothesis, claim.token, None, self.ws.baseline_files())

    def ideate(self, leader: Leader | None) -> tuple[Usage, int]:
        """Ask one proposer for new hypotheses on the leader's code (None: the pristine arena) and post
        them (dedup applies); returns the usage and how many were new on the board."""
        base = leader.patch_hash if leader is not None else EMPTY_PATCH
        try:
            proposer = self.selector.choose(need_implement=False)
        except ProposerError as exc:
            self.ledger.idle(f"nothing to claim on {self.track} and {exc}")
            return Usage(), 0
        ctx = self.context(leader, self.code.files_of(base))
        try:
            ideas, usage = proposer.ideate(ctx, defaults.IDEAS_PER_CALL)
        except ProposerError as exc:
            self.ledger.failed(proposer.name, exc, IDEATE)
            return Usage(), 0
        posted = 0
        for idea in ideas:
            text = idea.title if not idea.rationale else f"{idea.title}\n\n{idea.rationale}"
            meta = {**idea.meta, "base": base} if idea.patch else dict(idea.meta)
            try:
                _, new = self.board.post(
                    HypothesisIn(
                        text=text[: defaults.HYP_TEXT_MAX_CHARS],
                        source=source_label(proposer.name),
                        author=self.agent_id,
                        patch=idea.patch,
                        tags=idea.tags[: defaults.TAGS_MAX],
                        track=self.track,
                        meta=meta,
                    )
                )
                posted += new
            except (UserError, ValueError) as exc:
                log.warning("dropping a malformed idea from %s: %s", proposer.name, exc)
        if posted == 0 and usage.calls:  # a paid call that gave nothing new: backs off like a failure,
            # or a model that repeats itself would be asked again every few seconds
            why = f"{proposer.name}: no new idea ({len(ideas)} given, all already on the board)"
            self.ledger.failed(proposer.name, ProposerError(why), IDEATE, usage=usage)
        else:
            self.ledger.ok(proposer.name, usage, IDEATE)
        return usage, posted

    # --- implement -----------------------------------------------------------------------------------
    def implement(self, job: Job) -> Job:
        """Turn the claimed hypothesis into the editable files to run, on the job's parent leader."""
        assert job.parent is not None
        leader_files = self.code.files_of(job.parent.patch_hash)
        hyp = job.hyp
        try:
            if hyp.kind == Kind.CONFIRM and hyp.patch_hash:  # exactly the candidate's code, another seed
                job.files = self.code.files_of(hyp.patch_hash)
            elif hyp.patch_hash:
                base_hash = str(hyp.meta.get("base", EMPTY_PATCH))
                base = self.code.files_of(base_hash)
                theirs = apply_patch(base, self.board.get_patch(hyp.patch_hash))
                merged = theirs if base_hash == job.parent.patch_hash else merge3(base, leader_files, theirs)
                if merged is None:
                    job.invalid = "the hypothesis' patch conflicts with the leader's code"
                    job.stale_idea = hyp.source == "classical"
                else:
                    job.files = merged
            else:
                self.implement_text(job, leader_files)
        except UserError as exc:
            job.invalid = f"could not implement: {exc}"
        if job.giveback is not None:
            return job
        if not job.invalid:
            job.invalid = validate_edit(job.files, self.settings.editable) or ""
        return job

    def implement_text(self, job: Job, leader_files: dict[str, str]) -> None:
        """A proposer turns the hypothesis' text into code, one that has not failed on it where another
        can. When none can now, or the one chosen fails, the job is marked to be given back."""
        assert job.parent is not None
        try:
            proposer = self.selector.choose(need_implement=True, avoid=job.hyp.failed_proposers)
        except ProposerError as exc:
            job.giveback = ("", str(exc))
            return
        try:
            job.files, job.usage = proposer.implement(job.hyp.text, self.context(job.parent, leader_files))
        except ProposerError as exc:
            self.ledger.failed(proposer.name, exc, IMPLEMENT)
            job.usage = getattr(exc, "usage", None) or Usage()
            job.giveback = (proposer.name, str(exc))
            return
        self.ledger.ok(proposer.name, job.usage, IMPLEMENT)
        self.board.implemented(proposer.name)
        job.implementer = proposer

    def give_back(self, job: Job) -> None:
        """The hypothesis back on the board with why its implementation failed (lua/giveback.lua: it counts
        against the hypothesis only once that proposer has implemented other work since)."""
        assert job.giveback is not None
        proposer, reason = job.giveback
        to, counted = self.board.give_back(job.hyp.id, job.token, proposer, reason)
        self.leases.drop(job.hyp.id)
        log.warning("gave %s back to the board (%s; %d such failure(s) counted): %s",
                    job.hyp.id, to or "lease already lost", counted, reason)  # fmt: skip

    def context(self, leader: Leader | None, files: dict[str, str]) -> ProposalContext:
        """What a proposer sees: the track's history and the brief, on the code `files` (the pristine
        arena's, with no leader, ahead of the baseline)."""
        if leader is not None and not leader.result_id:
            leader = None
        sd, df = self.promoter.noise()
        return build_context(
            self.board, self.settings, self.track, self.profile, leader, files, history=self.history,
            noise_sd=sd if df else None,
        )  # fmt: skip

    # --- sync ----------------------------------------------------------------------------------------
    def sync_workspace(self) -> Leader | None:
        """Check out the track's current leader in the workspace (if it moved); returns it."""
        leader = self.board.leader(self.track)
        if leader is not None and leader.patch_hash != self.ws.leader_patch_hash:
            self.ws.checkout_leader(
                self.board.get_patch(leader.patch_hash),
                leader.patch_hash,
                f"gen {leader.generation} {leader.metric:.6f}",
            )
        if leader is not None:
            self.metrics.set_leader(leader.metric, leader.generation)
        return leader

    def sync(self, job: Job) -> Job | None:
        """Move the workspace to the track's leader and rebase the job onto it (None: the job was
        retired, take the next one)."""
        return self.rebase(job, self.sync_workspace())

    def rebase(self, job: Job, leader: Leader | None) -> Job | None:
        """`job` re-applied onto `leader` if it was built on another one: 3-way merge of its edit, or
        re-implemented by its LLM on a conflict. A conflicting machine-made idea is retired (None): the
        optimizer asks again on the new code. A confirmation of a candidate whose leader was replaced is
        dropped (None): its edit was carried onto the new leader (`Promoter.carry_over`). Touches no
        workspace file, so the preparer can do it while an experiment runs."""
        if leader is not None and self.promoter.superseded(job.hyp, leader):
            self.retire(job)
            return None
        if job.parent is None or leader is None or job.invalid or job.is_rerun:
            return job
        if job.parent.patch_hash == leader.patch_hash:  # same code (a speculated parent that came true)
            return job if job.parent == leader else replace(job, parent=leader)
        base = self.code.files_of(job.parent.patch_hash)
        merged = merge3(base, self.code.files_of(leader.patch_hash), job.files)
        if merged is None:
            if self.can_implement and not job.hyp.patch_hash:  # its LLM implements it again on the new code
                again = self.implement(replace(job, parent=leader, files={}, invalid="", implementer=None))
                if again.giveback is not None:
                    self.give_back(again)
                    return None
                return replace(again, usage=job.usage.add(again.usage))
            if job.hyp.source == "classical":
                self.retire(job)
                return None
            return replace(job, parent=leader, invalid="the edit conflicts with the new leader's code")
        log.info("rebased %s onto leader gen %d", job.hyp.id, leader.generation)
        return replace(job, parent=leader, files=merged, invalid=validate_edit(merged, self.settings.editable) or "")

    def retire(self, job: Job) -> None:
        """Cancel a claimed idea that can no longer run as proposed (its lease goes with it). One cancelled
        by someone else meanwhile (`Promoter.carry_over` cancels a confirmation it read as open, claimed
        since; a human's `swarm cancel`) needs nothing more."""
        with contextlib.suppress(UserError):  # "already cancelled": the outcome wanted
            self.board.cancel(job.hyp.id)
        self.leases.drop(job.hyp.id)
