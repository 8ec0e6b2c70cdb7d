"""The agent: one process per GPU that claims, implements, runs, publishes, confirms and rebases.

    join -> loop { flush the outbox; take the prepared job; sync it onto the leader; run; publish }

The steps are done by collaborators, each built with explicit arguments and tested alone:
`JobSource` (claim, ideate, implement, sync, rebase), `Pipeline` (the next job prepared while one
runs), `Executor` (run, with repairs), `Publisher` + `Outbox` (publish, nothing lost), `Promoter`
(judge, confirm, promote, port), `Preemptor` (urgent work takes a run that has just started), `Leases`
(held claims), `CodeCache`, `Peers`. `Agent` keeps the loop, the threads (keeper: heartbeats and lease
renewal; watcher: leader moves and urgent posts on pub/sub; the pipeline's preparer) and shutdown.

Errors are sorted at one boundary per loop iteration:
- Redis unreachable (anywhere in an iteration): back off (doubling, capped) and go on. A job not yet
  run stays pending for the next iteration; a finished run's result is already in the outbox, and is
  published when Redis answers again (nothing lost).
- an experiment that crashes, times out or is invalid: recorded as such, the loop goes on.
- SIGTERM/SIGINT: the run is killed, the claims held are released, the agent deregisters.
A process killed with -9 loses nothing either: once its heartbeat expires (the swarm's heartbeat_ttl_s,
60 s by default) whoever claims or reads states next requeues its claims, and its run dies with it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from swarm import __version__, defaults
from swarm.agent.code_cache import CodeCache
from swarm.agent.executor import PREEMPTED, Executor, SimRunner
from swarm.agent.history import TrackHistory
from swarm.agent.job import Job
from swarm.agent.join import take_seat
from swarm.agent.leases import Leases
from swarm.agent.ledger import Ledger
from swarm.agent.outbox import Outbox
from swarm.agent.peers import Peers
from swarm.agent.pipeline import Pipeline
from swarm.agent.preempt import Preemptor
from swarm.agent.promoter import Promoter
from swarm.agent.publisher import Publisher
from swarm.agent.source import JobSource
from swarm.board import Board, parse_leader_message
from swarm.board.connection import BOARD_DOWN
from swarm.board.core import s
from swarm.board.registry import beat_every_s
from swarm.models import AgentInfo
from swarm.observe.metrics import AgentMetrics
from swarm.proposers.base import Proposer
from swarm.proposers.select import Selector

log = logging.getLogger(__name__)


@dataclass
class AgentOptions:
    workdir: Path
    arena: Path | None = None  # local arena to check against the pin (or to create the swarm with)
    gpu: str = "cpu"  # "cpu" or a CUDA device index
    profile: str | None = None  # arena profile; None: the manifest's default ("auto": gpu if CUDA)
    budget_s: float | None = None  # overrides the profile's training budget
    max_experiments: int | None = None
    track: str | None = None  # override the detected hardware track
    metrics_port: int | None = None  # None: no /metrics; 0: any free port
    metrics_scan: int = 1  # ports tried from metrics_port when it is in use (1: that port or an error)
    metrics_advertise: str | None = None  # "host:port" registered instead of ours (NAT, containers)
    agent_id: str | None = None
    pipeline: bool = True  # prepare the next experiment while one runs
    runner: SimRunner | None = None  # simulated experiments (the swarm benchmark); None: the arena's command
    seed: int = 0  # seeds the proposer choice
    sandbox: str = "auto"  # --sandbox: auto | required | off (swarm.experiment.sandbox)


class Agent:
    """One agent. `run()` returns the number of experiments it ran."""

    def __init__(self, board: Board, opts: AgentOptions, proposers: list[Proposer], selector: Selector) -> None:
        self.board = board
        self.opts = opts
        self.proposers = proposers
        self.selector = selector
        opts.workdir = opts.workdir.resolve()  # runs execute in the workspace: relative paths would break
        self.agent_id = opts.agent_id or f"{socket.gethostname()}-{opts.gpu}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.stop = threading.Event()
        self.outbox = Outbox(opts.workdir / defaults.OUTBOX_FILE)
        self.ran = 0
        self.started = time.monotonic()
        self.state = "starting"  # what the heartbeats report: state and the hypothesis running
        self.current: str | None = None
        self.pending: Job | None = None  # taken but not run yet: kept across a Redis error
        self.backoff_s = 0.0
        self.threads: list[threading.Thread] = []
        self.propagation_ms: list[int] = []  # leader move -> this agent heard of it, server clock

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        if not self.join_when_redis_answers():
            return self.ran  # stopped before Redis answered: nothing was taken, nothing to give back
        self.start_threads()
        ended = False
        try:
            while not self.stop.is_set() and not self.done():
                try:
                    self.iteration()
                    if self.backoff_s:
                        log.info("Redis answers again: the loop goes on")
                    self.backoff_s = 0.0
                except BOARD_DOWN as exc:  # the one boundary: back off, keep the result, go on
                    self.board_down(exc)
                    self.stop.wait(self.next_backoff())
            self.drain_outbox()
            ended = True
        finally:
            self.shutdown(final_sync=ended)
        if self.pipeline.fatal is not None:
            raise self.pipeline.fatal
        return self.ran

    def iteration(self) -> None:
        """One experiment, step by step. A Redis error in any step ends the iteration (see `run`)."""
        self.outbox.flush(self.publisher.deliver)  # publish: results Redis missed before
        job = self.pending or self.pipeline.take()  # claim + implement: done while the last one ran
        if job is None:
            return
        job = self.pending = self.source.sync(job)  # sync: the workspace on the leader, the job rebased
        if job is None:  # retired: its idea no longer applies to the new leader
            return
        self.board.heartbeat(self.agent_id, "running", job.hyp.id)
        self.state, self.current = "running", job.hyp.id
        try:
            outcome = self.executor.run(job)  # run (an LLM may repair its crashed edit)
        finally:
            self.state, self.current, self.pending = "idle", None, None
        if self.stop.is_set():  # cancelled mid-run: give the hypothesis back untouched
            self.leases.release(job.hyp.id, job.token)
            return
        if outcome is PREEMPTED:  # stopped for urgent work (`Preemptor`): it runs again right after that
            self.pipeline.put_front(job)
            return
        entry = self.publisher.record(job, outcome)
        self.count(entry, outcome.wall_s)
        self.publisher.publish(entry)  # publish -> confirm -> promote (kept in the outbox until done)
        self.pipeline.running = None

    def done(self) -> bool:
        return self.opts.max_experiments is not None and self.ran >= self.opts.max_experiments

    # --- join --------------------------------------------------------------------------------------
    def join_when_redis_answers(self) -> bool:
        """`join`, again after each Redis error with the loop's backoff: an agent started (or restarted
        by `swarm launch`) while Redis is away waits for it instead of dying on a traceback. False when a
        stop came first."""
        while True:
            try:
                self.join()
            except BOARD_DOWN as exc:
                metrics = getattr(self, "metrics", None)
                if metrics is not None:
                    metrics.close()  # the next attempt serves /metrics again
                log.warning("Redis trouble while joining: %s; trying again", exc)
                if self.stop.wait(self.next_backoff()):
                    return False
                continue
            if self.backoff_s:
                log.info("Redis answers again: joined")
            self.backoff_s = 0.0
            return True

    def join(self) -> None:
        """Take a seat in the swarm (swarm, workspace, profile, track), build the collaborators, register."""
        opts, board, aid = self.opts, self.board, self.agent_id
        seat = take_seat(board, opts.workdir, opts.arena, opts.gpu, opts.profile, opts.track, opts.sandbox)
        self.settings, self.ws, self.track = seat.settings, seat.ws, seat.track
        settings, ws, track = seat.settings, seat.ws, seat.track
        self.metrics = AgentMetrics(aid, track)
        if opts.metrics_port is not None:
            self.metrics.serve(opts.metrics_port, scan=opts.metrics_scan)
        self.history = TrackHistory(board, track)
        self.code = CodeCache(board, ws)
        self.leases = Leases(board, settings.lease_s)
        self.peers = Peers(board, aid, track)
        self.promoter = Promoter(
            board, agent_id=aid, track=track, settings=settings, history=self.history, code=self.code
        )
        self.ledger = Ledger(board, agent_id=aid, track=track, selector=self.selector, metrics=self.metrics)
        self.source = JobSource(
            board, agent_id=aid, track=track, settings=settings, profile=seat.profile, ws=ws, code=self.code,
            leases=self.leases, peers=self.peers, promoter=self.promoter, selector=self.selector,
            history=self.history, metrics=self.metrics, ledger=self.ledger,
        )  # fmt: skip
        self.executor = Executor(
            ws, seat.manifest, profile=seat.profile, budget_s=opts.budget_s, device=seat.device, gpu=opts.gpu,
            runs_dir=opts.workdir / "runs", editable=settings.editable, stop=self.stop, context=self.source.context,
            ledger=self.ledger, sim=opts.runner, sandbox=seat.sandbox,
        )  # fmt: skip
        self.executor.kill_leftover()
        self.publisher = Publisher(
            board, agent_id=aid, track=track, settings=settings, ws=ws, leases=self.leases, promoter=self.promoter,
            outbox=self.outbox, ledger=self.ledger, stop=self.stop,
        )  # fmt: skip
        self.pipeline = Pipeline(
            self.source, self.promoter, stop=self.stop, enabled=opts.pipeline, board_down=self.board_down
        )
        self.preemptor = Preemptor(self.pipeline, self.executor, self.metrics)
        served = self.metrics.address(socket.gethostname())  # "" when not serving: nothing to advertise
        board.register(
            AgentInfo(
                agent_id=aid, host=socket.gethostname(), gpu=opts.gpu, track=track,
                proposers=[p.name for p in self.proposers], version=__version__, pid=os.getpid(),
                metrics_addr=served and (opts.metrics_advertise or served), sandbox=seat.sandbox.kind,
            )
        )  # fmt: skip
        board.heartbeat(aid, "joined", None)
        self.peers.others_on_track()
        self.executor.prestart()  # the first run's harness gets ready while the first job is claimed
        log.info("agent %s joined swarm %s on track %s", aid, board.swarm, track)

    def start_threads(self) -> None:
        for target in (self.keeper, self.watcher):
            t = threading.Thread(target=target, name=f"{target.__name__}-{self.agent_id}", daemon=True)
            t.start()
            self.threads.append(t)
        self.pipeline.start(name=f"preparer-{self.agent_id}")

    # --- background: heartbeats, leases, leader moves ------------------------------------------------
    def keeper(self) -> None:
        """Heartbeats the registry and renews every lease held (running and prepared jobs)."""
        renew_every = min(defaults.RENEW_EVERY_S, self.settings.lease_s / 3)
        beat_every = beat_every_s(self.settings.heartbeat_ttl_s)  # a few beats per TTL: a pause is not death
        last_beat = last_renew = time.monotonic()
        while not self.stop.wait(min(1.0, renew_every, beat_every)):
            now = time.monotonic()
            try:
                if now - last_beat >= beat_every:
                    last_beat = now
                    self.board.heartbeat(self.agent_id, self.state, self.current)
                    self.peers.others_on_track()
                if now - last_renew >= renew_every:
                    last_renew = now
                    self.leases.renew()
            except BOARD_DOWN as exc:
                self.board_down(exc)

    def watcher(self) -> None:
        """Follows leader moves on pub/sub so the waiting job is rebased before it runs, and urgent posts
        on the track so a run that has just started gives its GPU to them (`Preemptor`)."""
        leader_channel, urgent_channel = self.board.leader_channel(), self.board.urgent_channel()
        while not self.stop.is_set():
            try:
                # closed on the way out of the block, a Redis error included: a subscription dropped
                # unclosed keeps its socket open until the garbage collector gets to it
                with self.board.r.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(leader_channel, urgent_channel)
                    while not self.stop.is_set():
                        msg = pubsub.get_message(timeout=0.5)
                        if msg is None:
                            continue
                        if s(msg["channel"]) == urgent_channel:
                            if s(msg["data"]) in (self.track, ""):  # "": posted for any track
                                self.preempt()
                            continue
                        moved = parse_leader_message(msg["data"])
                        if moved.track == self.track:
                            self.pipeline.leader_moved()
                            self.propagation_ms.append(self.board.server_ms() - moved.time_ms)
            except BOARD_DOWN as exc:
                self.board_down(exc)
                self.stop.wait(1.0)

    def preempt(self) -> None:
        """Urgent work was posted on the track: the preemptor may stop a run that has just started. A
        failure there (a board error included) only loses the preemption: leader moves are still heard."""
        try:
            self.preemptor.urgent_posted()
        except BOARD_DOWN as exc:
            self.board_down(exc)
        except Exception:
            log.exception("preempting for urgent work failed; the run goes on")

    # --- bookkeeping -------------------------------------------------------------------------------
    def count(self, entry: dict[str, object], wall_s: float) -> None:
        result = entry["result"]
        assert isinstance(result, dict)
        self.ran += 1
        self.metrics.experiment_finished(result["status"], result["proposer"], wall_s)
        self.metrics.set_duty_cycle(self.duty_cycle())
        if result.get("metric") is not None:
            self.metrics.set_last_metric(float(result["metric"]))

    def board_down(self, exc: BaseException) -> None:
        log.warning("Redis trouble (%s): %s", threading.current_thread().name.partition("-")[0], exc)
        self.metrics.redis_error()

    def next_backoff(self) -> float:
        self.backoff_s = min(defaults.BOARD_BACKOFF_MAX_S, max(defaults.BOARD_BACKOFF_S, 2 * self.backoff_s))
        return self.backoff_s

    def duty_cycle(self) -> float:
        return self.executor.busy_s / max(time.monotonic() - self.started, 1e-9)

    # --- stop --------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Called from a signal handler: kill the run, then the loop releases and deregisters."""
        self.stop.set()

    def drain_outbox(self) -> None:
        """Before a normal exit, wait for Redis to take every kept result (a signal stops the wait;
        the outbox stays on disk and an agent started on the same work dir publishes it)."""
        while self.outbox.pending() and not self.stop.is_set():
            try:
                self.outbox.flush(self.publisher.deliver)
            except BOARD_DOWN as exc:
                self.board_down(exc)
                self.stop.wait(self.next_backoff())
        if self.outbox.pending():
            log.warning("stopping with unpublished results in %s (published by the next run here)", self.outbox.path)

    def final_sync(self) -> None:
        """End on the leader: the workspace holds the track's best code when the agent stops."""
        leader = self.source.sync_workspace()
        if leader is None:
            return
        state = {"generation": leader.generation, "patch_hash": leader.patch_hash, "server_ms": self.board.server_ms()}
        (self.opts.workdir / "final-leader.json").write_text(json.dumps(state), encoding="utf-8")
        log.info("ends on leader gen %d of %s (%s %.6f)", leader.generation, self.track,
                 self.settings.metric_name, leader.metric)  # fmt: skip

    def shutdown(self, final_sync: bool = False) -> None:
        """Stop the threads, end on the leader, give back every claim held (the running and the prepared
        job), deregister. With Redis away, the heartbeat expires instead: the registry shows the agent
        dead and its claims are requeued by the next claim or state read."""
        self.stop.set()
        joined = hasattr(self, "pipeline")
        if joined:
            self.executor.close()  # the next run's harness, started ahead: killed and removed
            self.pipeline.close()
            self.metrics.close()
        for t in self.threads:
            t.join(timeout=5)
        try:
            if joined and final_sync:
                self.final_sync()
            if joined:
                self.leases.release_all()
            self.board.deregister(self.agent_id)
        except BOARD_DOWN as exc:
            log.warning("Redis unreachable while stopping (%s): claims held come back when the heartbeat expires", exc)
