"""What the agent's proposers did: every call's cost, their health, and what their experiments gave.

    ledger = Ledger(board, agent_id=..., track=..., selector=..., metrics=...)
    ledger.ok(proposer.name, usage, IDEATE)      # a call (ideation; IMPLEMENT: implementation, repair) that worked
    ledger.failed(proposer.name, exc, IMPLEMENT) # one that failed: costed, and the proposer backs off
    ledger.outcome(result, gain)                 # a published exploration, for the bandit

- Cost: every call's tokens and dollars go to /metrics and to the board's swarm-wide totals
  (`Board.add_usage`), failed calls included, under the proposer's own name. Totals Redis missed are
  kept in memory and sent with the next call's.
- Health (swarm.proposers.health): a failure backs the proposer off, then pauses it; the change is
  logged once (not on every skipped call), set on /metrics (`swarm_proposer_state`) and on the board
  for `swarm agents` and `swarm status`. A success after failures logs the recovery.
- Bandit: the selector's counts live on the board per track (`Board.arms`), so the agents of a track
  share them and a restarted agent keeps them. Each exploration published by this agent adds one run
  to the arm of the proposer that made it (an LLM that implemented a human's text is that proposer):
  `improved` when it was kept (beat the leader it started from by the screening threshold), its gain,
  and its LLM cost; failed calls add their cost alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import KW_ONLY, dataclass, field

from swarm.board import Board
from swarm.board.connection import BOARD_DOWN
from swarm.errors import ProposerError
from swarm.models import Kind, ProposerHealth, ResultIn, Status
from swarm.observe.metrics import AgentMetrics
from swarm.proposers.base import Usage
from swarm.proposers.health import HEALTHY, PAUSED
from swarm.proposers.select import ROLES, ArmStats, Selector

log = logging.getLogger(__name__)


@dataclass(eq=False)
class BoardArms:
    """The selector's ArmStore on the board: `arms:t=<track>`, shared by the track's agents."""

    board: Board
    track: str

    def load(self) -> dict[str, ArmStats]:
        return {
            n: ArmStats(int(a["runs"]), int(a["improved"]), a["delta"], a["cost_usd"])
            for n, a in self.board.arms(self.track).items()
        }

    def add(self, name: str, runs: int, improved: int, delta: float, cost_usd: float) -> None:
        self.board.add_arm(self.track, name, runs=runs, improved=improved, delta=delta, cost_usd=cost_usd)


@dataclass(eq=False)
class Ledger:
    board: Board
    _: KW_ONLY
    agent_id: str
    track: str
    selector: Selector
    metrics: AgentMetrics
    unsent: dict[str, Usage] = field(default_factory=dict, init=False)  # usage (and failures) Redis missed
    unsent_failures: dict[str, int] = field(default_factory=dict, init=False)
    idle_said: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.selector.arms = BoardArms(self.board, self.track)
        for name in self.selector.names:
            self.metrics.set_proposer_state(name, HEALTHY)

    # --- calls ---------------------------------------------------------------------------------------
    def ok(self, name: str, usage: Usage, role: str) -> None:
        """A call of `name` in `role` (IDEATE or IMPLEMENT, repairs included) worked."""
        self.spent(name, usage, failed=False)
        if self.selector.succeeded(name, role):
            log.info("proposer %s works again (%s)", name, role)
            self.health_changed(name, self.selector.state(name).state)

    def failed(self, name: str, exc: ProposerError, role: str, usage: Usage | None = None) -> None:
        """A call of `name` in `role` failed for reasons of the proposer (`usage`: what it cost, else the
        error's own)."""
        usage = usage or getattr(exc, "usage", None) or Usage()
        self.spent(name, usage, failed=True)
        # an endpoint that fails (transport, HTTP errors) fails whatever is asked: every role backs off
        st = None
        for r in ROLES if getattr(exc, "transport", False) else (role,):
            st = self.selector.failed(name, str(exc), r)
        if st is None:
            return
        wait = max(0.0, st.until - time.monotonic())
        if st.state == PAUSED:
            log.error("proposer %s paused after %d failures in a row (%s); probing it again in %.0f s",
                      name, st.failures, st.reason, wait)  # fmt: skip
        else:
            log.warning("proposer %s failed (%d in a row: %s); next try in %.0f s", name, st.failures, st.reason, wait)
        self.health_changed(name, st.state)
        try:
            self.selector.charge(name, usage.cost_usd)
        except BOARD_DOWN as err:
            log.warning("could not add a failed call's cost to the bandit (Redis: %s)", err)

    def spent(self, name: str, usage: Usage, *, failed: bool) -> None:
        """Cost to /metrics now, to the board's totals with whatever Redis missed before."""
        if usage.calls or failed:
            self.metrics.llm_call(name, usage.input_tokens, usage.output_tokens, usage.cost_usd, usage.latency_s,
                                  calls=usage.calls, failed=failed)  # fmt: skip
        self.unsent[name] = self.unsent.get(name, Usage()).add(usage)
        self.unsent_failures[name] = self.unsent_failures.get(name, 0) + int(failed)
        for n in list(self.unsent):
            u, f = self.unsent[n], self.unsent_failures.get(n, 0)
            if not (u.calls or f or u.cost_usd):
                del self.unsent[n]
                continue
            try:
                self.board.add_usage(n, calls=u.calls, failures=f, input_tokens=u.input_tokens,
                                     output_tokens=u.output_tokens, cost_usd=u.cost_usd)  # fmt: skip
            except BOARD_DOWN as err:
                log.warning("proposer usage kept until Redis answers (%s)", err)
                return
            del self.unsent[n]
            self.unsent_failures.pop(n, None)

    # --- health --------------------------------------------------------------------------------------
    def health_changed(self, name: str, state: str) -> None:
        self.metrics.set_proposer_state(name, state)
        self.idle_said = False
        now_ms, now = time.time() * 1000, time.monotonic()
        unhealthy = {}
        for n in self.selector.names:
            st = self.selector.state(n)
            if st.state != HEALTHY:
                until_ms = int(now_ms + max(0.0, st.until - now) * 1000)
                unhealthy[n] = ProposerHealth(state=st.state, reason=st.reason, failures=st.failures, until_ms=until_ms)
        try:
            self.board.set_health(self.agent_id, unhealthy)
        except BOARD_DOWN as err:
            log.warning("could not show proposer health on the board (Redis: %s)", err)

    def idle(self, why: str) -> None:
        """Nothing to run and no proposer to ask: said once until a proposer's health changes."""
        if not self.idle_said:
            self.idle_said = True
            log.warning("waiting: %s", why)

    # --- outcomes ------------------------------------------------------------------------------------
    def outcome(self, result: ResultIn, gain: float | None) -> None:
        """A published exploration of this agent (not stale): one run for the bandit arm of the proposer
        that made it."""
        if result.kind != Kind.EXPLORE:
            return
        name = self.selector.name_of(result.proposer)
        if name is None:
            return
        kept = result.status == Status.KEEP
        self.selector.record(name, kept, gain if gain is not None else 0.0, result.llm_cost_usd)
