"""The pipeline: the next job is claimed and implemented while the current one runs.

    pipeline = Pipeline(source, promoter, stop=stop)
    pipeline.start()                 # the preparer thread
    job = pipeline.take()            # the prepared job (waits for one); the preparer starts the next
    pipeline.leader_moved()          # from the watcher: the waiting job is rebased now, not at take()
    pipeline.put_front(job)          # run before the slot's job (urgent work taken by a preemption, and
                                     # the exploration it stopped)
    leftover = pipeline.close()      # on the way out: the job still waiting (its claim is released)

One job waits in the slot. The GPU never waits for the proposer: when a run ends, the next job is
already implemented on the leader. Urgent work (a candidate's confirmations, a leftover baseline seed:
`defaults.URGENT_FIRST`, on by default) is never claimed into the slot, where it would wait behind the
current run: when a run ends, the agent claims it first and runs it now, and the prepared job waits one
more run in its slot; an agent with an empty slot asks for it too. When the running job is a candidate's
deciding confirmation whose runs so far clear the threshold, the next job is built on the candidate's code
(`Promoter.speculative_leader`), so the agent's own promotion does not leave the GPU idle either.

With `enabled=False` (`--no-pipeline`) there is no thread: `take()` prepares the job inline.
Errors: Redis unreachable in the preparer is reported and retried after `IDLE_POLL_S`; an
`ArenaError` (the arena cannot be used here, e.g. a workspace git cannot restore) is fatal and stops
the agent (`fatal`); a hypothesis
that cannot be prepared (`NotFound`, `UserError`) is logged and the preparer tries again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from swarm import defaults
from swarm.agent.job import Job
from swarm.agent.promoter import Promoter
from swarm.agent.source import JobSource
from swarm.board.connection import BOARD_DOWN
from swarm.errors import ArenaError, NotFound, SwarmError, UserError

log = logging.getLogger(__name__)


class Pipeline:
    """A slot of one prepared job, filled by the preparer thread and kept on the leader."""

    def __init__(
        self,
        source: JobSource,
        promoter: Promoter,
        *,
        stop: threading.Event,
        enabled: bool = True,
        board_down: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self.source = source
        self.promoter = promoter
        self.stop = stop
        self.enabled = enabled
        self.board_down = board_down  # reports Redis trouble met by the preparer thread
        self.running: Job | None = None  # the job the main loop runs now: the preparer may speculate on it
        self.fatal: SwarmError | None = None  # what stopped the preparer for good
        self.thread: threading.Thread | None = None
        self._slot: Job | None = None
        self._front: deque[Job] = deque()  # run first, in order, before the slot's job
        self._lock = threading.Lock()
        self._full = threading.Event()
        self._kick = threading.Event()  # wakes the preparer: the slot was emptied, or the leader moved
        self._moved = threading.Event()

    def start(self, name: str = "preparer") -> None:
        if self.enabled:
            self.thread = threading.Thread(target=self._prepare_ahead, name=name, daemon=True)
            self.thread.start()
            self._kick.set()

    def take(self) -> Job | None:
        """The next job to run: one put in front, the prepared one (waits for it), or prepared now
        without a pipeline. Urgent work open on the board goes before an exploration either way."""
        if not self.enabled:
            job = self._pop_front() or self.prepare()
            if job is None:
                self.stop.wait(defaults.IDLE_POLL_S)
            self.running = job
            return job
        asked = -math.inf  # when urgent work was last asked for while the slot was empty
        while not self.stop.is_set():
            job = self._pop_front()
            back = self._put_first if job is not None else self.put  # where a job that waits goes back to
            if job is None and self._full.is_set():
                job = self._empty()
            if job is None and time.monotonic() - asked < defaults.IDLE_POLL_S:
                self._full.wait(timeout=0.5)
                continue
            if job is None:
                asked = time.monotonic()
            if job is None or not job.is_rerun:
                urgent = self.urgent(job, back)
                if urgent is not None:
                    if job is not None:
                        back(job)  # it waits for the next run: in front, or in its slot
                    job = urgent
            if job is None:
                continue
            self.running = job  # before the kick: the preparer may build on the promotion it will make
            self._kick.set()  # the slot is free: the next job is prepared now, while this one runs
            return job
        return None

    def urgent(self, job: Job | None = None, back: Callable[[Job], None] | None = None) -> Job | None:
        """A confirmation or baseline seed to run now, before `job` (the prepared exploration, or None
        when the slot is empty). The preparer leaves such work open (`prepare`), so it is run by the
        first GPU that is free instead of waiting a run in some agent's slot."""
        if not defaults.URGENT_FIRST:
            return None
        try:
            return self.source.urgent()
        except (NotFound, UserError) as exc:  # a candidate's code the board no longer has: run `job`
            log.warning("could not prepare an urgent experiment: %s", exc)
            return None
        except BaseException:
            if job is not None:
                (back or self.put)(job)  # a board error (the main loop backs off): the job is not lost
            raise

    def leader_moved(self) -> None:
        self._moved.set()
        self._kick.set()

    def close(self) -> Job | None:
        """Stop the preparer; returns the job left waiting (its claim is the caller's to release)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        return self._empty()

    def put(self, job: Job) -> None:
        """Put a prepared job in the slot (the preparer does; tests may)."""
        with self._lock:
            self._slot = job
            self._full.set()

    def put_front(self, job: Job) -> None:
        """Run `job` before the slot's (after any put in front before it); its claim stays held."""
        with self._lock:
            self._front.append(job)

    def _put_first(self, job: Job) -> None:
        with self._lock:
            self._front.appendleft(job)

    def _pop_front(self) -> Job | None:
        with self._lock:
            return self._front.popleft() if self._front else None

    def waiting(self) -> Job | None:
        with self._lock:
            return self._slot

    def prepare(self) -> Job | None:
        """One job, built on the leader (or on the one the running confirmation will make)."""
        running = self.running
        on = self.promoter.speculative_leader(running.hyp) if self.enabled and running is not None else None
        try:
            return self.source.prepare(on, leave_urgent=self.enabled and defaults.URGENT_FIRST)
        except (NotFound, UserError) as exc:  # a hypothesis or patch the board no longer has, or malformed
            log.warning("could not prepare an experiment: %s", exc)
            return None

    def refresh(self) -> None:
        """The leader moved: re-apply the waiting job onto it now (or retire it and prepare another)."""
        job = again = self._empty()
        if job is None:
            return
        try:
            again = self.source.rebase(job, self.source.board.leader(self.source.track))
        finally:  # on a board error the job waits as it was: the main loop syncs every job it runs
            if again is not None:
                self.put(again)

    def _empty(self) -> Job | None:
        with self._lock:
            job, self._slot = self._slot, None
            self._full.clear()
        return job

    def _prepare_ahead(self) -> None:
        """The preparer thread: keeps the slot full, and on the leader."""
        idle_until = 0.0  # after an empty claim, poll again only then (or on a leader move)
        while not self.stop.is_set():
            self._kick.wait(timeout=0.5)
            self._kick.clear()
            try:
                if self._moved.is_set():
                    self._moved.clear()
                    idle_until = 0.0
                    self.refresh()
                if self._full.is_set() or time.monotonic() < idle_until:
                    continue
                job = self.prepare()
            except BOARD_DOWN as exc:
                self.board_down(exc)
                job = None
            except ArenaError as exc:  # the arena cannot be used here: the agent ends, naming it
                self.fatal = exc
                self.stop.set()
                return
            except Exception as exc:  # a bug: end the agent with it rather than leave its GPU waiting forever
                log.exception("the preparer failed")
                self.fatal = SwarmError(f"the preparer failed: {type(exc).__name__}: {exc}")
                self.stop.set()
                return
            if job is None:  # nothing to claim: wait for a leader move (new work) or poll again
                idle_until = time.monotonic() + defaults.IDLE_POLL_S
                continue
            self.put(job)
