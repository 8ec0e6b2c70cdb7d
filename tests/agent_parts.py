"""The agent's collaborators built one by one with explicit arguments, on a real board, with no `Agent`:
what the tests of each part (tests/test_agent_*.py) start from. The synthetic arena (tests/arenas/synth)
is a quadratic bowl with known seed noise: fast and deterministic per code and seed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from swarm import defaults
from swarm.agent.code_cache import CodeCache
from swarm.agent.history import TrackHistory
from swarm.agent.join import Seat, take_seat
from swarm.agent.leases import Leases
from swarm.agent.ledger import Ledger
from swarm.agent.outbox import Outbox
from swarm.agent.peers import Peers
from swarm.agent.pipeline import Pipeline
from swarm.agent.promoter import Promoter
from swarm.agent.publisher import Publisher
from swarm.agent.source import JobSource
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, make_patch
from swarm.models import HypothesisIn, Kind, Leader, ResultIn, Status
from swarm.observe.metrics import AgentMetrics
from swarm.proposers.base import Proposer
from swarm.proposers.classical import ClassicalProposer
from swarm.proposers.select import Selector

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
TRACK = "cpu:test"
AGENT = "agent-t"


@dataclass
class Parts:
    board: Board
    seat: Seat
    history: TrackHistory
    code: CodeCache
    leases: Leases
    peers: Peers
    promoter: Promoter
    source: JobSource
    metrics: AgentMetrics
    ledger: Ledger
    stop: threading.Event

    def pipeline(self, enabled: bool = True) -> Pipeline:
        return Pipeline(self.source, self.promoter, stop=self.stop, enabled=enabled)

    def publisher(self, outbox: Outbox) -> Publisher:
        s = self.seat
        return Publisher(self.board, agent_id=AGENT, track=TRACK, settings=s.settings, ws=s.ws, leases=self.leases,
                         promoter=self.promoter, outbox=outbox, ledger=self.ledger)

    def baseline_files(self) -> dict[str, str]:
        return self.seat.ws.baseline_files()

    def edited(self, x: float) -> dict[str, str]:
        return {"train.py": self.baseline_files()["train.py"].replace("X = 0.2 ", f"X = {x}")}


def make_parts(redis_url: str, swarm: str, workdir: Path, proposers: list[Proposer] | None = None) -> Parts:
    """Every collaborator of one agent on track TRACK, wired as `Agent.join` wires them."""
    board = Board.connect(redis_url, swarm)
    seat = take_seat(board, workdir, SYNTH, "cpu", None, TRACK)
    props = proposers or [ClassicalProposer(seed=0)]
    selector = Selector(props, [1.0] * len(props))
    history = TrackHistory(board, TRACK)
    code = CodeCache(board, seat.ws)
    leases = Leases(board, seat.settings.lease_s)
    peers = Peers(board, AGENT, TRACK)
    promoter = Promoter(board, agent_id=AGENT, track=TRACK, settings=seat.settings, history=history, code=code)
    metrics = AgentMetrics(AGENT, TRACK)
    ledger = Ledger(board, agent_id=AGENT, track=TRACK, selector=selector, metrics=metrics)
    source = JobSource(board, agent_id=AGENT, track=TRACK, profile=seat.profile, settings=seat.settings, ws=seat.ws,
                       code=code, leases=leases, peers=peers, promoter=promoter, selector=selector, history=history,
                       metrics=metrics, ledger=ledger)
    return Parts(board, seat, history, code, leases, peers, promoter, source, metrics, ledger, threading.Event())


def publish(parts: Parts, files: dict[str, str], metric: float | None, *, kind: Kind = Kind.EXPLORE,
            parent: str | None = EMPTY_PATCH, candidate_of: str | None = None, seed: int = 0,
            status: Status = Status.KEEP, meta: dict[str, bool] | None = None) -> str:
    """Publish a result as an agent would, for a hypothesis claimed by a tester for the purpose."""
    board = parts.board
    text = make_patch(parts.baseline_files(), files)
    ph = board.put_patch(text) if text else EMPTY_PATCH
    hid, _ = board.post(HypothesisIn(text=f"{kind} {metric} {seed} {ph[:8]} {candidate_of}", track=TRACK,
                                     priority=999))
    claim = board.claim("tester", TRACK)
    assert claim is not None and claim.hypothesis.id == hid
    rid = f"r{abs(hash((hid, metric))) % 10**12}"
    board.publish(ResultIn(result_id=rid, hypothesis_id=hid, token=claim.token, agent_id="tester", track=TRACK,
                           parent_patch_hash=parent, patch_hash=ph, status=status, metric=metric,
                           kind=kind, candidate_of=candidate_of, seed=seed,  # type: ignore[arg-type]
                           meta=dict(meta or {})))
    board.complete(hid, claim.token)
    return rid


def establish_baseline(parts: Parts) -> Leader:
    for s in range(defaults.NOISE_SEEDS):
        publish(parts, parts.baseline_files(), 1.50 + 0.001 * s, kind=Kind.BASELINE, seed=s)
    parts.promoter.finalize_baseline()
    leader = parts.board.leader(TRACK)
    assert leader is not None
    return leader


def move_leader_to(parts: Parts, files: dict[str, str], metric: float) -> Leader:
    """A confirmed move to `files` (a candidate with its two confirmations), as another agent makes it."""
    leader = parts.board.leader(TRACK)
    assert leader is not None
    cand = publish(parts, files, metric, parent=leader.patch_hash)
    for s in range(1, defaults.CONFIRM_RUNS):
        publish(parts, files, metric, kind=Kind.CONFIRM, parent=leader.patch_hash, candidate_of=cand, seed=s)
    parts.promoter.promote(cand)
    moved = parts.board.leader(TRACK)
    assert moved is not None and moved.result_id == cand
    return moved
