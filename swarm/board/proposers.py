"""What the board knows about proposers: their health per agent, their usage and cost over the swarm,
the bandit state each track's agents share, and the hypotheses an implementer gave back.

- `give_back(hid, token, proposer, reason)`: a claim its implementer could not turn into code goes
  back to open with the failure recorded on the hypothesis; it counts against the hypothesis only once
  that proposer has implemented other hypotheses since (lua/giveback.lua has the rule), so an outage,
  a paused proposer or a model that fails on everything never uses a hypothesis up.
- `implemented(proposer)`: one more hypothesis that proposer turned into code (what the rule reads).
- `reopen(hid)`: a human puts a failed, done or cancelled hypothesis back on the board.
- `add_usage(proposer, ...)` / `proposer_usage()`: every call's tokens and cost, failed calls too.
- `set_health(agent, {...})`: the agent's proposers that are backing off or paused (`swarm agents`).
- `add_arm(track, proposer, ...)` / `arms(track)`: the bandit's counts, shared by a track's agents and
  kept across restarts.
"""

from __future__ import annotations

import json

from swarm import defaults
from swarm.board.core import BoardCore, pairs
from swarm.errors import NotFound, UserError
from swarm.models import ProposerHealth, ProposerUsage, State

USAGE_FIELDS = ("calls", "failures", "input_tokens", "output_tokens", "cost_usd")
ARM_FIELDS = ("runs", "improved", "delta", "cost_usd")


class ProposersMixin(BoardCore):
    def give_back(self, hid: str, token: int, proposer: str, reason: str) -> tuple[State | None, int]:
        """Hand a claim back after its implementation failed for reasons of `proposer`; returns the state
        it went to (open, or failed once max_attempts are counted) and how many such failures count
        against it, or (None, 0) when the token is no longer current."""
        k = self.k
        keys = [
            k.hyp(hid), k.leases, k.state(State.OPEN), k.state(State.CLAIMED), k.state(State.FAILED),
            k.events, k.claimants, k.settings, k.proposers_implemented, k.seq_hyp,
        ]  # fmt: skip
        why = " ".join(reason.split())[: defaults.GIVEBACK_REASON_MAX_CHARS]
        args = [hid, token, proposer, why, defaults.EVENTS_MAXLEN, k.prefix, defaults.MAX_ATTEMPTS,
                defaults.GIVEBACK_FAILURES_KEPT]  # fmt: skip
        to, counted = self.scripts.giveback(keys=keys, args=args)
        to = to.decode() if isinstance(to, bytes) else str(to)
        return (None if to == "refused" else State(to)), int(counted)

    def implemented(self, proposer: str) -> None:
        self.r.hincrby(self.k.proposers_implemented, proposer, 1)

    def reopen(self, hid: str) -> State:
        """Put a failed, done or cancelled hypothesis back on the board (attempts 0). Returns the state it
        was in; NotFound without it, UserError when it is open or claimed (nothing to reopen)."""
        k = self.k
        keys = [k.hyp(hid), k.state(State.OPEN), k.state(State.FAILED), k.state(State.DONE),
                k.state(State.CANCELLED), k.events]  # fmt: skip
        was = self.scripts.reopen(keys=keys, args=[hid, defaults.EVENTS_MAXLEN])
        was = was.decode() if isinstance(was, bytes) else str(was)
        if was == "missing":
            raise NotFound(f"no hypothesis {hid!r} in swarm {self.swarm!r}")
        if was in (State.OPEN, State.CLAIMED):
            raise UserError(f"hypothesis {hid} is {was}: only a failed, done or cancelled one can be reopened")
        return State(was)

    # --- usage ---------------------------------------------------------------------------------------
    def add_usage(
        self, proposer: str, *, calls: int, failures: int, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """Add one call batch of `proposer` (a failed one included) to the swarm's totals."""
        key = self.k.proposers_usage
        pipe = self.r.pipeline(transaction=True)
        for name, v in (("calls", calls), ("failures", failures), ("input_tokens", input_tokens),
                        ("output_tokens", output_tokens)):  # fmt: skip
            if v:
                pipe.hincrby(key, f"{proposer}|{name}", int(v))
        if cost_usd:
            pipe.hincrbyfloat(key, f"{proposer}|cost_usd", float(cost_usd))
        pipe.execute()

    def proposer_usage(self) -> dict[str, ProposerUsage]:
        """Every proposer's totals over the swarm: calls, failed calls, tokens and cost."""
        out: dict[str, dict[str, float]] = {}
        for field, v in pairs(self.r.hgetall(self.k.proposers_usage)).items():
            name, _, what = field.rpartition("|")
            if what in USAGE_FIELDS:
                out.setdefault(name, {})[what] = float(v)
        return {n: ProposerUsage.model_validate({k: (v if k == "cost_usd" else int(v)) for k, v in d.items()})
                for n, d in sorted(out.items())}  # fmt: skip

    # --- health --------------------------------------------------------------------------------------
    def set_health(self, agent_id: str, health: dict[str, ProposerHealth]) -> None:
        """What `agent_id`'s unhealthy proposers are doing now (an empty dict: all healthy)."""
        if health:
            blob = json.dumps({n: h.model_dump() for n, h in health.items()})
            self.r.hset(self.k.agents_health, agent_id, blob)
        else:
            self.r.hdel(self.k.agents_health, agent_id)

    def health(self) -> dict[str, dict[str, ProposerHealth]]:
        """Agent id -> its proposers that are backing off or paused."""
        return {
            aid: {n: ProposerHealth.model_validate(h) for n, h in json.loads(blob).items()}
            for aid, blob in pairs(self.r.hgetall(self.k.agents_health)).items()
        }

    # --- bandit --------------------------------------------------------------------------------------
    def add_arm(self, track: str, proposer: str, *, runs: int, improved: int, delta: float, cost_usd: float) -> None:
        """Add one observation (a finished experiment, or a failed call's cost with runs=0) to the arm."""
        key = self.k.arms(track)
        pipe = self.r.pipeline(transaction=True)
        if runs:
            pipe.hincrby(key, f"{proposer}|runs", runs)
        if improved:
            pipe.hincrby(key, f"{proposer}|improved", improved)
        if delta:
            pipe.hincrbyfloat(key, f"{proposer}|delta", delta)
        if cost_usd:
            pipe.hincrbyfloat(key, f"{proposer}|cost_usd", cost_usd)
        pipe.execute()

    def arms(self, track: str) -> dict[str, dict[str, float]]:
        """Proposer -> {runs, improved, delta, cost_usd} on `track` (what every agent of it learned)."""
        out: dict[str, dict[str, float]] = {}
        for field, v in pairs(self.r.hgetall(self.k.arms(track))).items():
            name, _, what = field.rpartition("|")
            if what in ARM_FIELDS:
                out.setdefault(name, dict.fromkeys(ARM_FIELDS, 0.0))[what] = float(v)
        return out
