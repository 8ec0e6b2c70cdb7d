"""The agent: one process per GPU that claims, implements, runs, publishes, confirms and rebases.

    join -> loop { flush outbox; take the next prepared job; sync onto the leader; run; publish; promote }

While one experiment runs, a preparer thread already claims and implements the next one (the GPU
never waits for the proposer); a keeper thread heartbeats and renews the leases held; a watcher
thread follows leader moves on pub/sub. Each step is a method that can be tested alone.

Errors are sorted at the loop boundary:
- Redis unreachable: the running experiment goes on; its result goes to a local outbox and is
  published when Redis answers again (nothing lost).
- an experiment that crashes, times out or is invalid: recorded as such, the loop goes on.
- SIGTERM/SIGINT: the run is killed, the claims held are released, the agent deregisters.
A process killed with -9 loses nothing either: its leases expire and whoever claims next requeues them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm import __version__, defaults
from swarm.agent.context import build_context
from swarm.agent.history import TrackHistory
from swarm.agent.jobs import Job, WorkMixin, proposer_source
from swarm.agent.promotion import PromotionMixin
from swarm.board import Board, parse_leader_message
from swarm.board.connection import BOARD_DOWN
from swarm.code.diff import EMPTY_PATCH, patch_hash
from swarm.code.validate import validate_edit
from swarm.errors import ArenaError, Conflict, ProposerError, SwarmError, UserError
from swarm.experiment.manifest import Manifest, load_manifest
from swarm.experiment.runner import RunOutcome, run_experiment
from swarm.experiment.workspace import Workspace
from swarm.models import AgentInfo, ResultIn, SwarmSettings
from swarm.observe.metrics import AgentMetrics
from swarm.proposers.base import Proposer, Usage

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
    agent_id: str | None = None
    pipeline: bool = True  # prepare the next experiment while one runs
    # (arena_dir, files, seed, budget_s, cancel) -> RunOutcome; None runs the arena's command for real
    runner: Callable[[Path, dict[str, str], int, float, threading.Event], RunOutcome] | None = None
    seed: int = 0  # seeds the proposer choice


def detect_track(profile: str, gpu: str) -> str:
    """profile + ':' + hardware, as the default arena's harness names it (cpu:<threads>c or the GPU name)."""
    import torch

    if gpu != "cpu" and torch.cuda.is_available():
        return f"{profile}:{torch.cuda.get_device_name(0).replace(' ', '-')}"
    return f"{profile}:{torch.get_num_threads()}c"


class Agent(WorkMixin, PromotionMixin):
    """One agent. `run()` returns the number of experiments it ran."""

    def __init__(self, board: Board, opts: AgentOptions, proposers: list[Proposer], selector: Any) -> None:
        self.board = board
        self.opts = opts
        self.proposers = proposers
        self.selector = selector  # .choose(need_implement) -> Proposer, .record(...)
        self.can_implement = any(p.can_implement for p in proposers)
        opts.workdir = opts.workdir.resolve()  # runs execute in the workspace: relative paths would break
        self.agent_id = opts.agent_id or f"{socket.gethostname()}-{opts.gpu}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.stop = threading.Event()
        self.held: dict[str, int] = {}  # hypothesis id -> lease token, renewed by the keeper
        self.held_lock = threading.Lock()
        # The pipeline: one prepared job waits in `slot` while the current one runs. `kick` wakes the
        # preparer: the slot was emptied, or the leader moved (`moved`) and the waiting job must be
        # re-applied onto the new leader now, while the GPU is still busy, rather than when it is taken.
        self.slot: Job | None = None
        self.slot_lock = threading.Lock()
        self.slot_full = threading.Event()
        self.kick = threading.Event()
        self.moved = threading.Event()
        self._files_cache: dict[str, dict[str, str]] = {}
        self.pre_ideated = False  # ideas posted while the track's baseline was being measured
        self.running: Job | None = None  # the job the main loop runs now (the preparer may speculate on it)
        self.others_on_track = False  # another live agent on this track: it confirms our candidates
        self.looked_at = 0.0
        self.ran = 0
        self.busy_s = 0.0
        self.started = time.monotonic()
        self.outbox = opts.workdir / defaults.OUTBOX_FILE
        self.state = "starting"
        self.current: str | None = None
        self.metrics: AgentMetrics | None = None
        self.threads: list[threading.Thread] = []
        self.fatal: SwarmError | None = None  # an error a background thread hit that ends the agent
        self.propagation_ms: list[int] = []  # leader move -> this agent heard of it, server clock
        # set by join()
        self.settings: SwarmSettings
        self.ws: Workspace
        self.manifest: Manifest
        self.profile = ""
        self.track = ""
        self.device = "cpu"
        self.history: TrackHistory

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        self.join()
        self.start_threads()
        try:
            while not self.stop.is_set() and not self.done():
                self.flush_outbox()
                job = self.next_job()
                if job is None:
                    continue
                job = self.sync(job)
                if job is None:  # retired: its idea no longer applies to the new leader
                    continue
                self.running = job
                outcome = self.execute(job)
                if self.stop.is_set():  # cancelled mid-run: give the hypothesis back untouched
                    self.release(job)
                    break
                self.publish(job, outcome)
                self.running = None
            self.drain_outbox()
            self.final_sync()
        finally:
            self.shutdown()
        if self.fatal is not None:
            raise self.fatal
        return self.ran

    def final_sync(self) -> None:
        """End on the leader: the workspace holds the track's best code when the agent stops."""
        try:
            leader = self.sync_workspace()
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
            return
        if leader is not None:
            state = {
                "generation": leader.generation,
                "patch_hash": leader.patch_hash,
                "server_ms": self.board.server_ms(),
            }
            (self.opts.workdir / "final-leader.json").write_text(json.dumps(state), encoding="utf-8")
            log.info(
                "ends on leader gen %d of %s (%s %.6f)",
                leader.generation,
                self.track,
                self.settings.metric_name,
                leader.metric,
            )

    def done(self) -> bool:
        return self.opts.max_experiments is not None and self.ran >= self.opts.max_experiments

    # --- join ------------------------------------------------------------------------------------
    def join(self) -> None:
        """Create or check the swarm, build the workspace, detect the track, register."""
        self.opts.workdir.mkdir(parents=True, exist_ok=True)
        settings = self.board.settings()
        if settings is None:
            if self.opts.arena is None:
                raise UserError(f"swarm {self.board.swarm!r} does not exist; pass --arena PATH to create it")
            settings = self.board.init(self.opts.arena)
        elif self.opts.arena is not None:
            differ = self.board.arena_diff(self.opts.arena)
            if differ:
                raise Conflict(
                    f"local arena {self.opts.arena} differs from the arena pinned on swarm "
                    f"{self.board.swarm!r}: {', '.join(differ[:10])}"
                )
        self.settings = settings
        self.ws = Workspace.create(self.opts.workdir / "ws", self.board.arena_files(), settings.editable)
        self.manifest = load_manifest(self.ws.dir)
        cuda = self.opts.gpu != "cpu"
        profile = self.opts.profile or self.manifest.run.default_profile
        if profile == "auto":
            profile = "gpu" if cuda and "gpu" in self.manifest.profiles else next(iter(self.manifest.profiles))
        self.profile = profile
        self.manifest.profile(profile)  # ArenaError if unknown
        self.device = "cuda" if cuda else "cpu"
        self.track = self.opts.track or detect_track(profile, self.opts.gpu)
        self.history = TrackHistory(self.board, self.track)
        if self.opts.metrics_port is not None:
            self.metrics = AgentMetrics(self.agent_id, self.track)
            try:
                self.metrics.serve(self.opts.metrics_port)
            except OSError as exc:
                raise UserError(
                    f"cannot serve /metrics on port {self.opts.metrics_port}: {exc.strerror}; "
                    "pass another --metrics-port or --no-metrics"
                ) from exc
        self.board.register(
            AgentInfo(
                agent_id=self.agent_id,
                host=socket.gethostname(),
                gpu=self.opts.gpu,
                track=self.track,
                proposers=[p.name for p in self.proposers],
                version=__version__,
                pid=os.getpid(),
            )
        )
        self.beat("joined")
        self.look_around()
        log.info("agent %s joined swarm %s on track %s", self.agent_id, self.board.swarm, self.track)

    def start_threads(self) -> None:
        targets = [self.keeper, self.watcher] + ([self.preparer] if self.opts.pipeline else [])
        for target in targets:
            t = threading.Thread(target=target, name=f"{target.__name__}-{self.agent_id}", daemon=True)
            t.start()
            self.threads.append(t)
        self.kick.set()

    # --- get work --------------------------------------------------------------------------------
    def next_job(self) -> Job | None:
        """The next prepared job: from the preparer thread (pipelined) or prepared inline."""
        if not self.opts.pipeline:
            job = self.safe_prepare()
            if job is None:
                self.kick.wait(defaults.IDLE_POLL_S)
                self.kick.clear()
            return job
        while not self.stop.is_set():
            if not self.slot_full.wait(timeout=0.5):
                continue
            with self.slot_lock:
                job, self.slot = self.slot, None
                self.slot_full.clear()
            self.running = job  # before the kick: the preparer may build on the promotion it will make
            self.kick.set()  # the slot is free: the preparer may claim the next one now
            if job is not None:
                return job
        return None

    def preparer(self) -> None:
        """Keeps one job prepared ahead of the running one, re-applied onto every new leader."""
        idle_until = 0.0  # after an empty claim, poll again only then (or on a leader move)
        while not self.stop.is_set():
            self.kick.wait(timeout=0.5)
            self.kick.clear()
            try:
                if self.moved.is_set():
                    self.moved.clear()
                    idle_until = 0.0
                    self.refresh_slot()
                if self.slot_full.is_set() or time.monotonic() < idle_until:
                    continue
                job = self.safe_prepare(speculate=True)
            except SwarmError as exc:  # fatal (e.g. the baseline cannot run): the main loop re-raises it
                self.fatal = exc
                self.stop.set()
                return
            if job is None:  # nothing to claim: wait for a leader move (new work) or poll again
                idle_until = time.monotonic() + defaults.IDLE_POLL_S
                continue
            self.fill_slot(job)

    def fill_slot(self, job: Job) -> None:
        with self.slot_lock:
            self.slot = job
            self.slot_full.set()

    def refresh_slot(self) -> None:
        """The leader moved: re-apply the waiting job onto it now (or retire it and prepare another)."""
        with self.slot_lock:
            job, self.slot = self.slot, None
            self.slot_full.clear()
        if job is None:
            return
        try:
            again = self.rebase_job(job, self.board.leader(self.track))
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
            again = job
        if again is not None:
            self.fill_slot(again)

    def safe_prepare(self, speculate: bool = False) -> Job | None:
        try:
            running = self.running
            on = self.speculative_leader(running.hyp) if speculate and running is not None else None
            return self.prepare(on)
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
            return None
        except ArenaError:
            raise
        except SwarmError as exc:
            log.warning("could not prepare an experiment: %s", exc)
            return None

    # --- run ---------------------------------------------------------------------------------------
    def execute(self, job: Job) -> RunOutcome:
        """Validate, then run in the sandbox; an implementation crash may be repaired by its LLM."""
        if job.invalid:
            return RunOutcome("invalid", None, 0.0, {}, job.invalid)
        outcome = self.run_files(job, job.files)
        repairs = defaults.PROPOSER_MAX_REPAIRS if job.implementer is not None else 0
        while outcome.status == "crash" and repairs > 0 and not self.stop.is_set():
            repairs -= 1
            assert job.implementer is not None and job.parent is not None
            ctx = build_context(
                self.board, self.settings, self.track, self.profile, job.parent, self.ws.files(), history=self.history
            )
            try:
                fixed, usage = job.implementer.repair(job.hyp.text, ctx, job.files, outcome.error)
            except ProposerError:
                break
            job.usage = job.usage.add(usage)
            self.account(job.implementer.name, usage)
            if fixed is None or validate_edit(fixed, self.settings.editable):
                break
            job.files = fixed
            outcome = self.run_files(job, fixed)
        return outcome

    def run_files(self, job: Job, files: dict[str, str]) -> RunOutcome:
        profile = self.manifest.profile(self.profile)
        budget = self.opts.budget_s or profile.budget_s
        timeout = profile.timeout_s - profile.budget_s + budget
        self.ws.prepare_run(files)
        self.current, self.state = job.hyp.id, "running"
        self.beat("running", job.hyp.id)
        run_dir = self.opts.workdir / "runs" / f"{int(time.time())}-{job.hyp.id[:12]}-s{job.seed}"
        t0 = time.monotonic()
        try:
            if self.opts.runner is not None:  # simulated experiments (the swarm benchmark)
                return self.opts.runner(self.ws.dir, files, job.seed, budget, self.stop)
            return run_experiment(
                self.ws.dir,
                self.manifest,
                profile=self.profile,
                budget_s=budget,
                timeout_s=timeout,
                seed=job.seed,
                device=self.device,
                gpu=self.opts.gpu,
                run_dir=run_dir,
                cancel=self.stop,
            )
        finally:
            self.busy_s += time.monotonic() - t0
            self.current, self.state = None, "idle"
            self.ws.record(f"{job.kind} {job.hyp.id}: {job.hyp.title}", files)

    # --- publish -------------------------------------------------------------------------------------
    def publish(self, job: Job, outcome: RunOutcome) -> None:
        """Publish the result idempotently (outbox if Redis is down), complete the claim, then promote."""
        result, patch_text = self.result_of(job, outcome)
        self.ran += 1
        if self.metrics:
            self.metrics.experiment_finished(result.status, result.proposer, outcome.wall_s)
            self.metrics.set_duty_cycle(self.duty_cycle())
            if outcome.metric is not None:
                self.metrics.set_last_metric(outcome.metric)
        entry = {
            "result": result.model_dump(mode="json"),
            "hid": job.hyp.id,
            "token": job.token,
            "patch_text": patch_text,
            "judge": job.kind == "explore" and outcome.status == "ok",
        }
        try:
            self.deliver(entry)
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
            with self.outbox.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            log.warning("Redis unreachable: result %s kept in %s", result.result_id, self.outbox)

    def result_of(self, job: Job, outcome: RunOutcome) -> tuple[ResultIn, str]:
        """The result record (status keep/discard is decided on delivery) and the code's patch text."""
        f = outcome.fields
        status = "keep" if outcome.status == "ok" else outcome.status
        patch_text = self.ws.patch_of(job.files) if job.files else ""
        now_ms = int(time.time() * 1000)
        implementer = job.implementer.name if job.implementer is not None else None
        result = ResultIn(
            result_id=uuid.uuid4().hex,
            hypothesis_id=job.hyp.id,
            token=job.token,
            agent_id=self.agent_id,
            proposer=proposer_source(implementer) if job.hyp.source == "human" and implementer else job.hyp.source,
            track=self.track,
            parent_generation=job.parent.generation if job.parent else 0,
            parent_patch_hash=job.parent.patch_hash if job.parent else None,
            patch_hash=patch_hash(patch_text) if patch_text.strip() else EMPTY_PATCH,
            status=status,
            metric=outcome.metric,
            metric_name=self.settings.metric_name,
            direction=self.settings.direction,
            seed=job.seed,
            training_s=_num(f.get("training_s")),
            steps=_int(f.get("steps")),
            tokens=_int(f.get("tokens")),
            peak_mem_mb=_num(f.get("peak_mem_mb")),
            error=outcome.error[-defaults.ERROR_MAX_CHARS :],
            llm_input_tokens=job.usage.input_tokens,
            llm_output_tokens=job.usage.output_tokens,
            llm_cost_usd=job.usage.cost_usd,
            llm_latency_s=job.usage.latency_s,
            brief_version=job.brief_version,
            started_ms=now_ms - int(outcome.wall_s * 1000),
            finished_ms=now_ms,
            kind="baseline" if job.kind == "baseline" else "confirm" if job.kind == "confirm" else "explore",
            candidate_of=job.hyp.parent if job.kind == "confirm" else None,
        )
        return result, patch_text

    def deliver(self, entry: dict[str, Any]) -> None:
        """Publish one result and complete its claim; both are idempotent, so a retry is harmless."""
        result = ResultIn.model_validate(entry["result"])
        if entry.get("patch_text"):
            result.patch_hash = self.board.put_patch(entry["patch_text"])
        if entry.get("judge"):  # decided now, against the leader as it is when the result lands
            result.status = self.judge(result.parent_patch_hash, result.metric)  # type: ignore[assignment]
        outcome = self.board.publish(result)
        self.board.complete(entry["hid"], entry["token"], "done")
        self.unhold(entry["hid"])
        if outcome.stale:
            log.warning("result %s was published with a lost lease: stored as stale", result.result_id)
            return
        self.promote(result)

    def drain_outbox(self) -> None:
        """Before a normal exit, wait for Redis to take every kept result (a signal stops the wait;
        the outbox stays on disk and an agent started on the same work dir publishes it)."""
        while self.outbox.exists() and not self.stop.is_set():
            self.flush_outbox()
            if self.outbox.exists():
                self.stop.wait(1.0)
        if self.outbox.exists():
            log.warning("stopping with unpublished results in %s (published by the next run here)", self.outbox)

    def flush_outbox(self) -> None:
        """Publish the results kept while Redis was unreachable, oldest first."""
        if not self.outbox.exists():
            return
        lines = self.outbox.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            try:
                self.deliver(json.loads(line))
            except BOARD_DOWN as exc:
                self.redis_trouble(exc)
                self.outbox.write_text("".join(x + "\n" for x in lines[i:]), encoding="utf-8")
                return
        self.outbox.unlink()
        log.info("published %d result(s) from the outbox", len(lines))

    # --- background: leases, heartbeats, leader moves ---------------------------------------------------
    def keeper(self) -> None:
        """Heartbeats the registry and renews every lease held (running and prepared jobs)."""
        renew_every = min(defaults.RENEW_EVERY_S, self.settings.lease_s / 3)
        last_beat = last_renew = time.monotonic()
        while not self.stop.wait(min(1.0, renew_every)):
            now = time.monotonic()
            try:
                if now - last_beat >= defaults.AGENT_HEARTBEAT_S:
                    last_beat = now
                    self.beat(self.state, self.current)
                    self.look_around()
                if now - last_renew >= renew_every:
                    last_renew = now
                    with self.held_lock:
                        held = dict(self.held)
                    for hid, token in held.items():
                        if not self.board.renew(hid, token, self.settings.lease_s):
                            log.warning("lease on %s lost (token %d): its result will be stale", hid, token)
                            self.unhold(hid)
            except BOARD_DOWN as exc:
                self.redis_trouble(exc)

    def watcher(self) -> None:
        """Follows leader moves on pub/sub so the agent rebases before its next experiment."""
        while not self.stop.is_set():
            try:
                pubsub = self.board.r.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.board.leader_channel())
                while not self.stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    moved = parse_leader_message(msg["data"])
                    if moved.track == self.track:
                        self.moved.set()
                        self.kick.set()
                        self.propagation_ms.append(self.board.server_ms() - moved.time_ms)
                pubsub.close()
            except BOARD_DOWN as exc:
                self.redis_trouble(exc)
                self.stop.wait(1.0)

    def beat(self, state: str, current: str | None = None) -> None:
        self.board.heartbeat(self.agent_id, state, current)

    def look_around(self, max_age_s: float = 0.0) -> None:
        """Note whether another live agent shares the track (then it, not us, confirms our candidates).
        A yes is kept for `max_age_s`; a no is checked again each time (agents that started with this
        one may register a moment after it, and an agent alone reads a small registry)."""
        now = time.monotonic()
        if max_age_s and self.others_on_track and now - self.looked_at < max_age_s:
            return
        self.looked_at = now
        self.others_on_track = any(
            a.alive and a.track == self.track and a.agent_id != self.agent_id for a in self.board.agents()
        )

    def hold(self, hid: str, token: int) -> None:
        with self.held_lock:
            self.held[hid] = token

    def unhold(self, hid: str) -> None:
        with self.held_lock:
            self.held.pop(hid, None)

    def release(self, job: Job) -> None:
        try:
            self.board.release(job.hyp.id, job.token)
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
        self.unhold(job.hyp.id)

    def account(self, proposer: str, usage: Usage) -> None:
        if self.metrics and usage.calls:
            self.metrics.llm_call(proposer, usage.input_tokens, usage.output_tokens, usage.cost_usd, usage.latency_s)

    def record_win(self, proposer: str, delta: float) -> None:
        record = getattr(self.selector, "record", None)
        if record is not None:
            record(proposer, True, delta, 0.0)

    def redis_trouble(self, exc: BaseException) -> None:
        log.warning("Redis trouble: %s", exc)
        if self.metrics:
            self.metrics.redis_error()

    def duty_cycle(self) -> float:
        return self.busy_s / max(time.monotonic() - self.started, 1e-9)

    # --- stop --------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Called from a signal handler: kill the run, then the loop releases and deregisters."""
        self.stop.set()

    def shutdown(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)
        with self.slot_lock:
            job, self.slot = self.slot, None
        if job is not None:
            self.release(job)
        with self.held_lock:
            held = dict(self.held)
        for hid, token in held.items():
            try:
                self.board.release(hid, token)
            except BOARD_DOWN as exc:
                self.redis_trouble(exc)
        try:
            self.board.deregister(self.agent_id)
        except BOARD_DOWN as exc:
            self.redis_trouble(exc)
        if self.metrics:
            self.metrics.close()


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x >= 0 and x == x and x != float("inf") else None


def _int(v: Any) -> int | None:
    x = _num(v)
    return int(x) if x is not None else None
