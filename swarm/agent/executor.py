"""Running a job: the editable files written into the workspace, the arena's command run in its own
process group under the supervisor's clock (`swarm.experiment.runner`), and a crash of an LLM's
edit handed back to that LLM with the traceback tail for up to `PROPOSER_MAX_REPAIRS` fixes.

An invalid job is not run at all: its outcome is `invalid` with the reason, and no GPU time is spent.

When the arena has a `run.prestart` command, the next run's harness is started `PRESTART_AFTER_S`
into the current run (and once when the agent joins): it gets ready while this run trains (for the
default arena: interpreters up, torch and the data loaded, the pins hashed, nothing of the
experiment) and is handed the next run when it starts. It is thrown away instead (and the run
started cold) when it died, or when the workspace had to be restored before the run: a run that
changed files outside the editable ones may have changed what the waiting harness had loaded.
A run can be preempted (`preempt`, by `swarm.agent.preempt.Preemptor`): its process group is killed and
`run` returns `PREEMPTED` instead of an outcome; the job was not spent and runs again later.
Each run's outcome names the sandbox it ran in (`fields["sandbox"]`: the arena's report, else what was
asked); a run without one is a warning when the agent was not told `--sandbox off`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

from swarm import defaults
from swarm.agent.job import Job
from swarm.agent.ledger import Ledger
from swarm.code.validate import validate_edit
from swarm.errors import ProposerError
from swarm.experiment.manifest import Manifest
from swarm.experiment.runner import (
    Cancel,
    Prestarted,
    RunOutcome,
    RunStatus,
    kill_leftover,
    prestart,
    run_experiment,
)
from swarm.experiment.sandbox import BWRAP, NONE, SandboxChoice
from swarm.experiment.workspace import Workspace
from swarm.models import Leader
from swarm.proposers.base import ProposalContext, Usage
from swarm.proposers.select import IMPLEMENT

log = logging.getLogger(__name__)

# (arena_dir, files, seed, budget_s, cancel) -> RunOutcome: a simulated experiment (the swarm benchmark)
SimRunner = Callable[[Path, dict[str, str], int, float, Cancel], RunOutcome]

PREEMPTED = RunOutcome(RunStatus.CRASH, None, 0.0, {}, "preempted")  # `run`'s answer for a preempted run


class RunCancel:
    """One run's cancel: set when the agent stops or when this run alone is preempted. `wait` wakes on
    either (a simulated run waits on it; `run_experiment` polls `is_set`)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.preempted = threading.Event()

    def is_set(self) -> bool:
        return self.stop.is_set() or self.preempted.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if end is None else min(0.05, end - time.monotonic())
            if left <= 0:
                return False
            self.preempted.wait(left)
        return True


@dataclass
class Running:
    """The run going on: its job, when it started (monotonic) and its cancel."""

    job: Job
    started: float
    cancel: RunCancel


@dataclass(eq=False)
class Executor:
    """`run(job)` -> the run's outcome; `busy_s` is the time spent running (the duty cycle's numerator)."""

    ws: Workspace
    manifest: Manifest
    _: KW_ONLY
    profile: str
    budget_s: float | None
    device: str
    gpu: str
    runs_dir: Path
    editable: list[str]
    stop: threading.Event
    context: Callable[[Leader | None, dict[str, str]], ProposalContext]  # what an implementer sees to repair
    ledger: Ledger  # every repair call's cost, and its proposer's health
    sim: SimRunner | None = None
    sandbox: SandboxChoice | None = None  # None: the arena decides ({sandbox} = auto)
    busy_s: float = field(default=0.0, init=False)  # time spent running: the duty cycle's numerator
    warm: Prestarted | None = field(default=None, init=False)  # the next run's harness, started ahead
    warm_during_run: bool = field(default=False, init=False)  # a run was going when it started
    running: Running | None = field(default=None, init=False)  # the job being run now (`preempt` reads it)

    @property
    def marker(self) -> Path:
        """Names the running experiment's process group (see `kill_leftover`)."""
        return self.runs_dir / "current.json"

    @property
    def warm_marker(self) -> Path:
        """Names the process group of the harness started ahead, while it waits."""
        return self.runs_dir / "next.json"

    def kill_leftover(self) -> bool:
        """Before the first run: kill what an earlier agent on this work dir left running (it was killed
        together with its run's guard, so nothing ended the run), a harness started ahead included."""
        killed = False
        for marker in (self.marker, self.warm_marker):
            killed |= marker.exists() and kill_leftover(marker)
        return killed

    def prestart(self, during_run: bool = False) -> None:
        """Start the next run's harness ahead, unless one waits already (or the arena has no prestart)."""
        if self.sim is not None or self.warm is not None or self.stop.is_set():
            return
        self.warm_during_run = during_run
        self.warm = prestart(
            self.ws.dir, self.manifest, profile=self.profile, budget_s=self.budget(), device=self.device,
            gpu=self.gpu, run_dir=self.runs_dir / f"next-{uuid.uuid4().hex[:12]}", marker=self.warm_marker,
            sandbox=self.sandbox.kind if self.sandbox else "auto",
        )  # fmt: skip

    def close(self) -> None:
        """Kill and remove the harness started ahead, if any (the agent is stopping)."""
        warm, self.warm = self.warm, None
        if warm is not None:
            warm.discard()

    def budget(self) -> float:
        return self.budget_s or self.manifest.profile(self.profile).budget_s

    def preempt(self, job: Job) -> bool:
        """Stop the run of `job` (the one going on now) for urgent work: `run` returns `PREEMPTED`. False
        when `job` is not running any more (it ended meanwhile: its outcome stands)."""
        running = self.running
        if running is None or running.job is not job or running.cancel.preempted.is_set():
            return False
        running.cancel.preempted.set()
        return True

    def run(self, job: Job) -> RunOutcome:
        """Validate, then run; an implementation that crashes may be repaired by its LLM. `PREEMPTED`
        when `preempt` stopped it (nothing to publish: the job runs again later)."""
        if job.invalid:
            return RunOutcome(RunStatus.INVALID, None, 0.0, {}, job.invalid)
        cancel = RunCancel(self.stop)
        self.running = Running(job, time.monotonic(), cancel)
        try:
            return self.run_repaired(job, cancel)
        finally:
            self.running = None

    def run_repaired(self, job: Job, cancel: RunCancel) -> RunOutcome:
        outcome = self.run_files(job, job.files, cancel)
        if cancel.preempted.is_set() and outcome.status == RunStatus.CRASH and not self.stop.is_set():
            return PREEMPTED  # killed for urgent work (a run that finished first keeps its outcome)
        repairs = defaults.PROPOSER_MAX_REPAIRS if job.implementer is not None else 0
        attempt = 0
        while outcome.status == RunStatus.CRASH and attempt < repairs and not self.stop.is_set():
            attempt += 1
            assert job.implementer is not None
            try:
                fixed, usage = job.implementer.repair(
                    job.hyp.text, self.context(job.parent, self.ws.files()), job.files, outcome.error
                )
            except ProposerError as exc:
                self.ledger.failed(job.implementer.name, exc, IMPLEMENT)
                job.usage = job.usage.add(getattr(exc, "usage", None) or Usage())  # the result pays for it
                break
            job.usage = job.usage.add(usage)
            if usage.calls:
                self.ledger.ok(job.implementer.name, usage, IMPLEMENT)
            if fixed is None or validate_edit(fixed, self.editable):
                break
            job.files = fixed
            outcome = self.run_files(job, fixed, cancel, f"-repair{attempt}")
        return outcome

    def run_files(self, job: Job, files: dict[str, str], cancel: Cancel, suffix: str = "") -> RunOutcome:
        """One run of `files` on the workspace's leader, with the job's seed, logged in its own run dir."""
        profile = self.manifest.profile(self.profile)
        budget = self.budget()
        restores = self.ws.restores
        self.ws.prepare_run(files)
        warm, self.warm = self.warm, None
        # the tree restored after a run that went on while the harness got ready: that run may have
        # changed what the harness loaded (the first restore of a new workspace follows no run)
        stale = self.ws.restores != restores and self.warm_during_run
        if warm is not None and (stale or not warm.alive()):
            warm.discard()
            warm = None
        run_dir = self.runs_dir / f"{int(time.time())}-{job.hyp.id[:12]}-s{job.seed}{suffix}"
        t0 = time.monotonic()
        try:
            if self.sim is not None:
                return self.sim(self.ws.dir, files, job.seed, budget, cancel)

            def tick(elapsed_s: float) -> None:  # the next run's harness, once this one is past its setup
                if elapsed_s >= defaults.PRESTART_AFTER_S:
                    self.prestart(during_run=True)

            outcome = run_experiment(
                self.ws.dir,
                self.manifest,
                profile=self.profile,
                budget_s=budget,
                timeout_s=profile.timeout_s - profile.budget_s + budget,
                seed=job.seed,
                device=self.device,
                gpu=self.gpu,
                run_dir=run_dir,
                on_tick=tick,
                cancel=cancel,
                marker=self.marker,
                sandbox=self.sandbox.kind if self.sandbox else "auto",
                prestarted=warm,
            )
            if warm is not None and not run_dir.exists():  # its run dir gets the run's name
                warm.run_dir.rename(run_dir)
                outcome.log_path = str(run_dir / Path(outcome.log_path).name)
            return self.note_sandbox(outcome)
        finally:
            self.busy_s += time.monotonic() - t0
            self.ws.record(f"{job.kind} {job.hyp.id}: {job.hyp.title}", files)

    def note_sandbox(self, outcome: RunOutcome) -> RunOutcome:
        """Name the sandbox the run had in its fields (the arena's report; without one, what was asked
        when the arena takes it, else none) and warn about a run that had none."""
        asked = self.sandbox.kind if self.sandbox else NONE
        reported = outcome.fields.get("sandbox")
        kind = reported if reported in (BWRAP, NONE) else asked
        outcome.fields["sandbox"] = kind
        if kind == NONE and (self.sandbox is None or self.sandbox.warn_each or self.sandbox.sandboxed):
            why = self.sandbox.reason if self.sandbox and self.sandbox.reason else "the arena ran it bare"
            log.warning("run %s was NOT sandboxed (%s)", Path(outcome.log_path).parent.name or "-", why)
        return outcome
