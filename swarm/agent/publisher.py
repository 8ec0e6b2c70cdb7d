"""Publishing a run: its result record, kept in the outbox, then delivered to the board.

    entry = publisher.record(job, outcome)    # the result (status decided on delivery) + its patch
    publisher.publish(entry)                  # outbox first, then deliver everything kept

Delivery of one entry: the patch is stored (content-addressed), an exploration is judged against the
leader as it is when the result lands, the result is published (idempotent by its id), the claim is
completed (by its token), and the promoter takes it from there (confirm, promote). Every step is
idempotent, so an entry delivered twice (a crash or a Redis error halfway) changes nothing the
second time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from swarm import defaults
from swarm.agent.job import Job
from swarm.agent.leases import Leases
from swarm.agent.ledger import Ledger
from swarm.agent.outbox import Outbox
from swarm.agent.promoter import Promoter
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, patch_hash
from swarm.experiment.runner import RunOutcome, RunStatus
from swarm.experiment.workspace import Workspace
from swarm.models import Kind, ResultIn, State, Status, SwarmSettings
from swarm.proposers.base import source_label

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Publisher:
    """Turns a finished job into a result on the board (through the outbox) and hands it to the promoter."""

    board: Board
    _: KW_ONLY
    agent_id: str
    track: str
    settings: SwarmSettings
    ws: Workspace
    leases: Leases
    promoter: Promoter
    outbox: Outbox
    ledger: Ledger  # each exploration's outcome, for the bandit
    stop: threading.Event = field(default_factory=threading.Event)  # the agent's: ends a wait for the baseline

    def record(self, job: Job, outcome: RunOutcome) -> dict[str, Any]:
        """The outbox entry of a finished job: its result (keep/discard is decided on delivery), the
        patch text of the code that ran, and the claim to complete."""
        f = outcome.fields
        now_ms = int(time.time() * 1000)
        patch_text = self.ws.patch_of(job.files) if job.files else ""
        implementer = job.implementer.name if job.implementer is not None else None
        source = source_label(implementer) if job.hyp.source == "human" and implementer else job.hyp.source
        result = ResultIn(
            result_id=uuid.uuid4().hex,
            hypothesis_id=job.hyp.id,
            token=job.token,
            agent_id=self.agent_id,
            proposer=source,
            track=self.track,
            parent_generation=job.parent.generation if job.parent else 0,
            parent_patch_hash=job.parent.patch_hash if job.parent else None,
            patch_hash=patch_hash(patch_text) if patch_text.strip() else EMPTY_PATCH,
            status=Status.KEEP if outcome.status == RunStatus.OK else Status(outcome.status),
            metric=outcome.metric,
            metric_name=self.settings.metric_name,
            direction=self.settings.direction,
            seed=job.seed,
            training_s=_num(f.get("training_s")),
            steps=_int(f.get("steps")),
            tokens=_int(f.get("tokens")),
            peak_mem_mb=_num(f.get("peak_mem_mb")),
            sandbox=str(f.get("sandbox") or ""),
            error=outcome.error[-defaults.ERROR_MAX_CHARS :],
            llm_input_tokens=job.usage.input_tokens,
            llm_output_tokens=job.usage.output_tokens,
            llm_cost_usd=job.usage.cost_usd,
            llm_latency_s=job.usage.latency_s,
            brief_version=job.brief_version,
            started_ms=now_ms - int(outcome.wall_s * 1000),
            finished_ms=now_ms,
            kind=job.kind if job.kind in (Kind.BASELINE, Kind.CONFIRM) else Kind.EXPLORE,
            candidate_of=job.hyp.parent if job.kind == Kind.CONFIRM else None,
            # what the idea says it tried (the classical proposer's point): proposers learn from it
            meta=dict(job.hyp.meta),
        )
        return {
            "result": result.model_dump(mode="json"),
            "hid": job.hyp.id,
            "token": job.token,
            "patch_text": patch_text,
            # judged on delivery: explorations only (a port goes straight to confirmation)
            "judge": job.kind == Kind.EXPLORE and outcome.status == RunStatus.OK,
        }

    def publish(self, entry: dict[str, Any]) -> None:
        """Keep the entry on disk, then deliver everything kept (a board error leaves it kept and goes
        to the caller: the agent's loop backs off and the next iteration delivers it)."""
        self.outbox.keep(entry)
        self.outbox.flush(self.deliver)

    def deliver(self, entry: dict[str, Any]) -> None:
        """Publish one result and complete its claim; both are idempotent, so a retry is harmless."""
        result = ResultIn.model_validate(entry["result"])
        if entry.get("patch_text"):
            result.patch_hash = self.board.put_patch(entry["patch_text"])
        gain = None
        if entry.get("judge"):  # decided now, against the leader as it is when the result lands
            self.await_baseline(result)
            result.status = self.promoter.judge(result.parent_patch_hash, result.metric)
            gain = self.promoter.gain(result.parent_patch_hash, result.metric)
        published = self.board.publish(result)
        self.board.complete(entry["hid"], entry["token"], State.DONE)
        self.leases.drop(entry["hid"])
        if published.stale:
            log.warning("result %s was published with a lost lease: stored as stale", result.result_id)
            return
        if published.stored:  # once, even when a retry delivers it again
            self.ledger.outcome(result, gain)
        self.promoter.on_result(result)

    def await_baseline(self, result: ResultIn) -> None:
        """An exploration run ahead of the baseline (`JobSource.ahead_of_baseline`) is judged against the
        baseline's leader: wait for it, as long as the run itself took plus BASELINE_AWAIT_S (the last
        seeds started about when it did). Without it by then, it is judged as it is: discarded."""
        if result.parent_patch_hash != EMPTY_PATCH or self.board.leader(self.track) is not None:
            return
        run_s = max(0.0, ((result.finished_ms or 0) - (result.started_ms or 0)) / 1000)
        deadline = time.monotonic() + run_s + defaults.BASELINE_AWAIT_S
        log.info("result %s ran ahead of the baseline: judged once the baseline is in", result.result_id[:8])
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.promoter.finalize_baseline()  # the seeds may all be in with nobody left to finalize
            if self.board.leader(self.track) is not None:
                return
            self.stop.wait(defaults.BASELINE_AWAIT_POLL_S)
        log.warning("result %s: the baseline did not land in time; discarded unjudged", result.result_id[:8])


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x >= 0 and x == x and x != float("inf") else None


def _int(v: Any) -> int | None:
    x = _num(v)
    return int(x) if x is not None else None
