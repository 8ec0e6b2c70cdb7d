"""Urgent work takes the GPU of an exploration that has just started.

    preemptor = Preemptor(pipeline, executor, metrics)
    preemptor.urgent_posted()   # the watcher heard the track's name on the board's urgent channel

A candidate's confirmations (and a baseline seed) are urgent: every later promotion waits on them. They
go to the first GPU that is free (`defaults.URGENT_FIRST`), but runs end together (every agent starts at
once, and again after a leader move), so a candidate judged at the end of a round found every GPU just
started and waited a whole run. Now an agent whose exploration is in the first `PREEMPT_WITHIN` of its
training budget claims the urgent job, and only with the claim in hand stops its run
(`Executor.preempt`): the urgent job runs now, the exploration right after it on the same claim and code
(`Pipeline.put_front`; nothing is published for the stopped run). Agents that hear one post race for its
claim; the ones that lose keep running. A post not heard (Redis away, the subscription reconnecting)
costs only the old wait. Confirmations, baseline seeds and a leader's re-measures are never preempted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from swarm import defaults
from swarm.agent.executor import Executor
from swarm.agent.job import Job
from swarm.agent.pipeline import Pipeline
from swarm.observe.metrics import AgentMetrics

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Preemptor:
    pipeline: Pipeline
    executor: Executor
    metrics: AgentMetrics

    def urgent_posted(self) -> Job | None:
        """Run urgent work now if this agent's exploration has just started; returns the urgent job taken
        (None: none taken, the run goes on)."""
        running = self.executor.running
        if not defaults.PREEMPT_WITHIN or running is None or running.job.is_rerun:
            return None
        if running.cancel.preempted.is_set():  # one urgent job per stopped run: the others are left to
            return None  # other GPUs (several posts at once, e.g. a candidate's confirmations, are heard together)
        window = defaults.PREEMPT_WITHIN * self.executor.budget()
        if time.monotonic() - running.started > window:
            return None
        urgent = self.pipeline.urgent()  # claimed and implemented: ours to run
        if urgent is None:
            return None
        self.pipeline.put_front(urgent)  # runs next, whether or not the run below ended meanwhile
        elapsed = time.monotonic() - running.started  # a human's urgent text took an LLM call to implement:
        if elapsed <= window and self.executor.preempt(running.job):  # a run past its window goes on
            self.metrics.preempted()
            log.info("stopped %s %.1f s into its run for %s %s; it runs again next", running.job.hyp.id,
                     elapsed, urgent.kind, urgent.hyp.id)  # fmt: skip
        return urgent
