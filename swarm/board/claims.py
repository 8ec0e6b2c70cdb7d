"""Claims: leases with fencing tokens, all in Lua so no two agents ever hold the same hypothesis.

- `claim(agent, track, need_patch)` first reaps (see below), then leases the best eligible open
  hypothesis: highest priority, then oldest, among the queues (any track | this track) x (has patch |
  text only, unless `need_patch`). The deadline comes from the server clock; the token from a
  per-swarm counter (strictly increasing).
- `renew`, `release`, `complete` succeed only with the current token (and, except `release`, before
  the deadline: a lease that expired is lost even if nobody reaped it yet).

A claim follows its agent's life as well as its lease. The lease (LEASE_S, 15 minutes by default)
covers one long run; an agent killed with kill -9 stops heartbeating at once, so its claims (the
running job and the prepared next one) should not wait for the lease. The board keeps, besides the
`leases` sorted set, a set `claims:<agent>` of what each agent holds and a sorted set `claimants` of
the agents holding anything, scored by their heartbeat expiry (heartbeat.lua moves the score). Reaping
takes the leases past their deadline and the claimants past their expiry, each a range read of a
sorted set, so it costs the same with 1,000 agents as with 2 and nothing scans every lease or agent;
each claim of a dead agent goes back to open with attempts+1 (failed at max_attempts) and an event
"<agent>'s heartbeat expired". This was chosen over storing the agent's expiry on each lease (every
heartbeat would rewrite every lease it holds) and over reading the registry at reap time (a scan of
every agent). Who reaps: every claim (before it picks) and every read that reports states
(`counts`, `list_hypotheses`, hence `status`, `swarm hypotheses`, the exporter and the live view),
through `reap()` in hypotheses.py, so a dead agent's work shows as open within the heartbeat TTL.
An agent that never heartbeat (a script, a test) is not a claimant: only its leases expire. An agent
that pauses and beats again before anyone reaps keeps its claims; one whose claims were reaped lost
their tokens, so its renew fails and its late result is stored stale (fencing, results.py).

The claim -> complete cycle is the board's busiest path (`scripts/bench_board.py`), and still a
light one: 1,000 GPUs running 5-minute experiments make about 3 claims per second.
"""

from __future__ import annotations

from swarm import defaults
from swarm.board.core import BoardCore
from swarm.board.hypotheses import hypothesis_from_fields
from swarm.models import Claim, State, check_track

_DEFAULT_LEASE_MS = int(defaults.LEASE_S * 1000)


def _lease_ms(lease_s: float | None) -> int:
    if lease_s is None:
        return 0  # the script uses the swarm's lease_s
    if lease_s <= 0:
        raise ValueError("lease_s must be > 0")
    return max(1, int(lease_s * 1000))


def _priority_bound(priority: int) -> int:
    """The queue score (post.lua: (1000 - priority) * 1e12 + seq) below which a hypothesis has at least
    `priority`, and at or above which it has less."""
    if not defaults.PRIORITY_MIN <= priority <= defaults.PRIORITY_MAX:
        raise ValueError(f"a priority bound must be in [{defaults.PRIORITY_MIN}, {defaults.PRIORITY_MAX}]")
    return (defaults.PRIORITY_MAX - priority + 1) * 10**12


class ClaimsMixin(BoardCore):
    def claim(
        self,
        agent_id: str,
        track: str,
        need_patch: bool = False,
        lease_s: float | None = None,
        avoid_own: bool = False,
        min_priority: int | None = None,
        below_priority: int | None = None,
    ) -> Claim | None:
        """Lease the best eligible open hypothesis, or None when there is none. `avoid_own`: pass over
        the confirmations of `agent_id`'s own candidates (set while another live agent can run them).
        `min_priority`: lease only a hypothesis of at least that priority (an agent whose next job is
        ready asks for urgent work only: a baseline seed or a confirmation). `below_priority`: lease only
        a hypothesis of a lower priority (a preparer filling its slot leaves urgent work to a free GPU)."""
        k = self.k
        out = self.scripts.claim(
            keys=[
                k.leases,
                k.state("open"),
                k.state("claimed"),
                k.state("failed"),
                k.seq_token,
                k.events,
                k.settings,
                k.claimants,
                k.agents_expiry,
                k.claims(agent_id),
                *k.claim_queues(check_track(track), need_patch),
            ],
            args=[
                k.prefix,
                agent_id,
                _lease_ms(lease_s),
                _DEFAULT_LEASE_MS,
                defaults.MAX_ATTEMPTS,
                defaults.REAP_BATCH,
                defaults.EVENTS_MAXLEN,
                "1" if avoid_own else "0",
                defaults.AVOID_SCAN,
                "" if min_priority is None else _priority_bound(min_priority),
                "" if below_priority is None else _priority_bound(below_priority),
            ],
        )
        if len(out) == 1:
            return None
        _reaped, hid, token, deadline, data, attempts, created_ms, failures = out
        hid = hid.decode("utf-8")
        token = int(token)
        deadline_ms = int(deadline)
        hyp = hypothesis_from_fields(
            hid,
            data,
            state=State.CLAIMED,
            attempts=int(attempts),
            created_ms=int(created_ms),
            claimed_by=agent_id,
            token=token,
            deadline_ms=deadline_ms,
            failures=failures or None,
        )
        return Claim(hypothesis=hyp, token=token, deadline_ms=deadline_ms)

    def renew(self, hid: str, token: int, lease_s: float | None = None) -> bool:
        """Extend the lease; False when the token is not current or the lease already expired."""
        out = self.scripts.renew(
            keys=[self.k.hyp(hid), self.k.leases, self.k.settings],
            args=[hid, token, _lease_ms(lease_s), _DEFAULT_LEASE_MS],
        )
        return int(out) > 0

    def release(self, hid: str, token: int) -> bool:
        """Give the hypothesis back to open, attempts unchanged (a clean give-back on SIGTERM)."""
        k = self.k
        out = self.scripts.release(
            keys=[k.hyp(hid), k.leases, k.state("open"), k.state("claimed"), k.events, k.claimants],
            args=[hid, token, defaults.EVENTS_MAXLEN, k.prefix],
        )
        return bool(out)

    def complete(self, hid: str, token: int, state: str = "done") -> bool:
        """Finish the claim as done or failed; False when the token is not current or the lease expired."""
        if state not in ("done", "failed"):
            raise ValueError(f"complete state must be done or failed, not {state!r}")
        k = self.k
        keys = [k.hyp(hid), k.leases, k.state("claimed"), k.state(state), k.events, k.claimants]
        args = [hid, token, state, defaults.EVENTS_MAXLEN, k.prefix]
        # With replicas, a completion counts once one has it: one a failover lost would leave the claim
        # held by an agent that has let it go, and the hypothesis would run again after the lease.
        out, acked = self.replication.write(lambda c: self.scripts.complete(keys=keys, args=args, client=c))
        self.replication.require(acked, f"completion of {hid}")
        return bool(out)
