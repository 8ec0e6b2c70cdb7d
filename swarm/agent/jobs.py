"""Getting work: claim the best open hypothesis for the track, ask a proposer when none is open,
implement it on the leader's code, and re-apply it (3-way) when the leader moved before it ran.

`WorkMixin` is part of `swarm.agent.Agent`; its methods use the agent's board, workspace, settings,
track and selector. A `Job` is a claimed hypothesis ready to run (or invalid, with the reason).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from swarm import defaults
from swarm.agent.context import build_context
from swarm.agent.history import TrackHistory
from swarm.board import Board
from swarm.board.connection import BOARD_DOWN
from swarm.code.diff import EMPTY_PATCH, apply_patch
from swarm.code.merge import merge3
from swarm.code.validate import validate_edit
from swarm.errors import ProposerError, UserError
from swarm.experiment.workspace import Workspace
from swarm.models import Claim, Hypothesis, HypothesisIn, Leader, SwarmSettings
from swarm.observe.metrics import AgentMetrics
from swarm.proposers.base import Proposer, Usage

log = logging.getLogger(__name__)

FILES_CACHE = 32  # leaders and candidates' code kept by patch hash: the recent ones are asked again and again


def proposer_source(name: str) -> str:
    """The board's source label for a proposer spec: classical, or llm:<provider>/<model>."""
    if name == "classical":
        return "classical"
    provider, _, model = name.partition(":")
    return f"llm:{provider}/{model or provider}"


@dataclass
class Job:
    """A claimed hypothesis, implemented and ready to run on the leader `parent` (None: baseline)."""

    hyp: Hypothesis
    token: int
    parent: Leader | None
    files: dict[str, str] = field(default_factory=dict)
    invalid: str = ""
    implementer: Proposer | None = None
    usage: Usage = field(default_factory=Usage)
    brief_version: int = 0  # the brief (program.md) version on the board when the job was prepared
    stale_idea: bool = False  # a classical idea made on an older leader that no longer merges

    @property
    def kind(self) -> str:
        return self.hyp.kind

    @property
    def seed(self) -> int:
        return self.hyp.seed if self.hyp.seed is not None else 0


class WorkMixin:
    """prepare -> (baseline | claim | ideate + claim) -> implement; sync re-applies onto a moved leader."""

    board: Board
    ws: Workspace
    settings: SwarmSettings
    track: str
    profile: str
    agent_id: str
    selector: Any
    can_implement: bool
    metrics: AgentMetrics | None
    history: TrackHistory
    _files_cache: dict[str, dict[str, str]]
    pre_ideated: bool
    others_on_track: bool

    if TYPE_CHECKING:  # provided by swarm.agent.Agent; stubs here would shadow them in the MRO

        def hold(self, hid: str, token: int) -> None: ...
        def unhold(self, hid: str) -> None: ...
        def finalize_baseline(self) -> None: ...
        def redis_trouble(self, exc: BaseException) -> None: ...
        def account(self, proposer: str, usage: Usage) -> None: ...
        def look_around(self, max_age_s: float = 0.0) -> None: ...

    def prepare(self, on: Leader | None = None) -> Job | None:
        """Claim the best open hypothesis of the track (ask a proposer when none is open), implement it
        on the track's leader, or on `on` (the code a promotion about to happen will make the leader)."""
        leader = on or self.board.leader(self.track)
        if leader is None:
            job = self.prepare_baseline()
            leader = self.board.leader(self.track) if job is None else None
            if leader is None:  # a baseline job, or the baseline is still being measured by others
                if job is None and not self.pre_ideated:
                    # Idle until the baseline lands: think now, on the pristine arena (the code the
                    # baseline leader will have), so there is work to claim the moment it does.
                    self.pre_ideated = True
                    self.ideate(None)
                return job
        t0 = time.monotonic()
        self.look_around(defaults.LOOK_AROUND_S)
        need_patch = not self.can_implement
        def claim_one() -> Claim | None:
            return self.board.claim(self.agent_id, self.track, need_patch=need_patch, avoid_own=self.others_on_track)

        claim = claim_one()
        usage = Usage()
        for _ in range(defaults.IDEATE_TRIES):
            if claim is not None:
                break
            more, posted = self.ideate(leader)
            usage = usage.add(more)
            claim = claim_one()
            if not posted:  # the proposer had nothing (or failed): idle, do not hammer it
                break
        if self.metrics:
            self.metrics.claim_wait(time.monotonic() - t0)
        if claim is None:
            return None
        self.hold(claim.hypothesis.id, claim.token)
        if claim.hypothesis.kind == "baseline":  # a baseline job left over: still worth its seed
            return Job(claim.hypothesis, claim.token, None, self.ws.baseline_files())
        job = self.implement(Job(claim.hypothesis, claim.token, leader))
        if job.stale_idea:
            # A machine-made idea (the classical optimizer's) whose edit conflicts with the leader that
            # replaced the one it was proposed on: retire it rather than burn a slot on an `invalid`
            # result; the proposer will be asked again on the new leader.
            self.retire(job)
            return self.prepare(on)  # each retry retires one stale idea, so this ends
        job.usage = job.usage.add(usage)  # the ideation call that produced the work is paid by it
        job.brief_version = self.board.brief()[0]
        return job

    def prepare_baseline(self) -> Job | None:
        """A track without a leader first measures its baseline with NOISE_SEEDS seeds."""
        self.finalize_baseline()
        if self.board.leader(self.track) is not None:
            return None
        for seed in range(defaults.NOISE_SEEDS):
            self.board.post(
                HypothesisIn(
                    text=f"baseline seed {seed} on {self.track}",
                    source="human",
                    author=self.agent_id,
                    priority=defaults.PRIORITY_BASELINE,
                    track=self.track,
                    kind="baseline",
                    seed=seed,
                    tags=["baseline"],
                )
            )
        claim = self.board.claim(self.agent_id, self.track)
        if claim is None:
            return None
        if claim.hypothesis.kind != "baseline":  # nothing can be judged before the baseline: give it back
            self.board.release(claim.hypothesis.id, claim.token)
            return None
        self.hold(claim.hypothesis.id, claim.token)
        return Job(claim.hypothesis, claim.token, None, self.ws.baseline_files())

    def ideate(self, leader: Leader | None) -> tuple[Usage, int]:
        """Ask one proposer for new hypotheses on the leader's code (None: the pristine arena) and post
        them (dedup applies); returns the usage and how many were new on the board."""
        base = leader.patch_hash if leader is not None else EMPTY_PATCH
        try:
            proposer = self.selector.choose(need_implement=False)
        except ProposerError as exc:
            log.warning("no proposer available: %s", exc)
            return Usage(), 0
        files = self.files_of(base)
        ctx = build_context(
            self.board, self.settings, self.track, self.profile, leader, files, history=self.history
        )
        try:
            ideas, usage = proposer.ideate(ctx, defaults.IDEAS_PER_CALL)
        except ProposerError as exc:
            log.warning("proposer %s failed to ideate: %s", proposer.name, exc)
            return Usage(), 0
        self.account(proposer.name, usage)
        posted = 0
        for idea in ideas:
            text = idea.title if not idea.rationale else f"{idea.title}\n\n{idea.rationale}"
            meta = {**idea.meta, "base": base} if idea.patch else dict(idea.meta)
            try:
                _, new = self.board.post(
                    HypothesisIn(
                        text=text[: defaults.HYP_TEXT_MAX_CHARS],
                        source=proposer_source(proposer.name),
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
        return usage, posted

    # --- implement -------------------------------------------------------------------------------
    def implement(self, job: Job) -> Job:
        """Turn the claimed hypothesis into the editable files to run, on the job's parent leader."""
        assert job.parent is not None
        leader_files = self.files_of(job.parent.patch_hash)
        hyp = job.hyp
        try:
            if hyp.kind == "confirm" and hyp.patch_hash:  # exactly the candidate's code, another seed
                job.files = self.files_of(hyp.patch_hash)
            elif hyp.patch_hash:
                base_hash = str(hyp.meta.get("base", EMPTY_PATCH))
                base = self.files_of(base_hash)
                theirs = apply_patch(base, self.board.get_patch(hyp.patch_hash))
                merged = theirs if base_hash == job.parent.patch_hash else merge3(base, leader_files, theirs)
                if merged is None:
                    job.invalid = "the hypothesis' patch conflicts with the leader's code"
                    job.stale_idea = hyp.source == "classical"
                else:
                    job.files = merged
            else:
                proposer = self.selector.choose(need_implement=True)
                ctx = build_context(
                    self.board, self.settings, self.track, self.profile, job.parent, leader_files, history=self.history
                )
                job.files, job.usage = proposer.implement(hyp.text, ctx)
                job.implementer = proposer
                self.account(proposer.name, job.usage)
        except (UserError, ProposerError) as exc:
            job.invalid = f"could not implement: {exc}"
        if not job.invalid:
            job.invalid = validate_edit(job.files, self.settings.editable) or ""
        return job

    # --- sync --------------------------------------------------------------------------------------
    def sync_workspace(self) -> Leader | None:
        """Check out the track's current leader in the workspace (if it moved); returns it."""
        leader = self.board.leader(self.track)
        if leader is not None and leader.patch_hash != self.ws.leader_patch_hash:
            self.ws.checkout_leader(
                self.board.get_patch(leader.patch_hash),
                leader.patch_hash,
                f"gen {leader.generation} {leader.metric:.6f}",
            )
        if leader is not None and self.metrics:
            self.metrics.set_leader(leader.metric, leader.generation)
        return leader

    def sync(self, job: Job) -> Job | None:
        """Move the workspace to the track's leader and rebase the job onto it (None: the job was
        retired, take the next one)."""
        try:
            leader = self.sync_workspace()
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
            return job
        return self.rebase_job(job, leader)

    def rebase_job(self, job: Job, leader: Leader | None) -> Job | None:
        """`job` re-applied onto `leader` if it was built on another one: 3-way merge of its edit, or
        re-implemented by its LLM on a conflict. A conflicting machine-made idea is retired (None): the
        optimizer asks again on the new code. Touches no workspace file, so the preparer can do it while
        an experiment runs."""
        if job.parent is None or leader is None or job.invalid or job.kind in ("confirm", "baseline"):
            return job
        if job.parent.patch_hash == leader.patch_hash:  # same code (a speculated parent that came true)
            return job if job.parent == leader else replace(job, parent=leader)
        base = self.files_of(job.parent.patch_hash)
        merged = merge3(base, self.files_of(leader.patch_hash), job.files)
        if merged is None:
            if self.can_implement and not job.hyp.patch_hash:  # its LLM implements it again on the new code
                again = self.implement(replace(job, parent=leader, files={}, invalid="", implementer=None))
                return replace(again, usage=job.usage.add(again.usage))
            if job.hyp.source == "classical":
                self.retire(job)
                return None
            return replace(job, parent=leader, invalid="the edit conflicts with the new leader's code")
        log.info("rebased %s onto leader gen %d", job.hyp.id, leader.generation)
        return replace(job, parent=leader, files=merged, invalid=validate_edit(merged, self.settings.editable) or "")

    def files_of(self, patch_hash: str) -> dict[str, str]:
        """The editable files of the code `patch_hash` names (the baseline for the empty patch).
        Patches are content-addressed, so the answer never changes: the newest few are kept."""
        if patch_hash == EMPTY_PATCH:
            return self.ws.baseline_files()
        files = self._files_cache.get(patch_hash)
        if files is None:
            files = self.ws.files_for(self.board.get_patch(patch_hash))
            if len(self._files_cache) >= FILES_CACHE:
                with contextlib.suppress(StopIteration, RuntimeError):  # another thread evicted first
                    self._files_cache.pop(next(iter(self._files_cache)), None)
            self._files_cache[patch_hash] = files
        return dict(files)

    def retire(self, job: Job) -> None:
        """Cancel a claimed idea that can no longer run as proposed (its lease goes with it)."""
        self.board.cancel(job.hyp.id)
        self.unhold(job.hyp.id)
