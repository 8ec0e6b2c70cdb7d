"""Hypotheses: posting (deduplicated), reading, listing by state, cancelling.

A hypothesis' id is derived from its identity -- normalized text + patch hash + track + kind +
parent + seed -- so posting the same idea twice (from two agents at once, or after a timeout)
returns the existing id: the post script creates `hyp:<id>` only if it does not exist. An exploration
or port that carries an edit made on known code (`meta.base`) is the same experiment whatever its
words: its identity is the edit, that code and the track, not its text (two agents whose classical proposers
reach the same point from slightly different histories describe it differently; measured in
scripts/bench_search.py, the same model step ran up to three times at once before this). Open
hypotheses sit in one sorted set per (track or any, has patch) so a claim looks at 2-4 queue heads.

Reads that report states (`counts`, `list_hypotheses`) call `reap()` first, as a claim does: a claim
whose lease expired or whose agent's heartbeat expired goes back to open before it is counted, so
`swarm status`, `swarm hypotheses`, the exporter and the live view never show as claimed what nobody
is running (the scheme and its cost: claims.py). `reap()` lives here, beside the reads that need it,
because claims.py builds on this module and not the other way round.
"""

from __future__ import annotations

import hashlib
import json
import re

from swarm import defaults
from swarm.board.core import BoardCore, pairs, s
from swarm.code.diff import check_patch_text, patch_hash
from swarm.errors import NotFound, UserError
from swarm.models import Hypothesis, HypothesisIn, Kind, State, pack, parse_enum, unpack

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Case and whitespace do not make a new idea."""
    return _WS.sub(" ", text).strip().lower()


def hypothesis_id(h: HypothesisIn, phash: str | None) -> str:
    """The id of `h`: 16 hex chars of the sha256 of its identity (64 bits: collisions are negligible).
    An exploration or port that carries an edit made on known code (`meta.base`: the proposers', a
    rebase's, a port's) is identified by its edit and base, not its words; a human's posted patch keeps
    its words in its identity (posting it again with other words is a deliberate second post)."""
    by_edit = bool(h.patch and h.patch.strip() and h.meta.get("base")) and h.kind in (Kind.EXPLORE, Kind.PORT)
    words = f"edit on {h.meta.get('base', '')}" if by_edit else normalize_text(h.text)
    ident = [words, phash or "", h.track or "", h.kind, h.parent or "", h.seed]
    return "h" + hashlib.sha256(pack(ident)).hexdigest()[:16]


def hypothesis_from_hash(hid: str, raw: dict[str, bytes]) -> Hypothesis:
    """A stored `hyp:<id>` hash (HGETALL) as a validated Hypothesis."""
    token = raw.get("token")
    deadline = raw.get("deadline_ms")
    return hypothesis_from_fields(
        hid,
        raw["data"],
        state=State(str(s(raw["state"]))),
        attempts=int(raw.get("attempts") or 0),
        created_ms=int(raw.get("created_ms") or 0),
        claimed_by=s(raw.get("claimed_by")),
        token=int(token) if token else None,
        deadline_ms=int(deadline) if deadline else None,
        failures=raw.get("failures"),
    )


def hypothesis_from_fields(
    hid: str,
    data: bytes,
    *,
    state: State,
    attempts: int,
    created_ms: int,
    claimed_by: str | None,
    token: int | None,
    deadline_ms: int | None,
    failures: bytes | None = None,
) -> Hypothesis:
    """A validated Hypothesis from its msgpack `data` plus the claim fields as plain values.

    The claim script returns only `data`, `attempts` and `created_ms` (the rest the claimer knows),
    which skips the 11-field HGETALL reply and its str/dict conversion; pydantic still validates.
    """
    fields = unpack(data)
    fields.update(
        id=hid,
        state=state,
        attempts=attempts,
        created_ms=created_ms,
        claimed_by=claimed_by,
        token=token,
        deadline_ms=deadline_ms,
        failures=json.loads(failures) if failures else [],
    )
    # model_validate on one dict: the same validation as Hypothesis(**...), ~0.6 us less per claim
    # (no keyword-argument merge, no __init__ wrapper; 2.69 vs 3.26 us, timeit, 2026-11-27)
    return Hypothesis.model_validate(fields)


class HypothesesMixin(BoardCore):
    def post(self, h: HypothesisIn) -> tuple[str, bool]:
        """Post `h`; returns (id, created). A duplicate returns the existing id and False."""
        phash: str | None = None
        if h.patch is not None:
            text = check_patch_text(h.patch)
            phash = patch_hash(text)
            self.r.hsetnx(self.k.patches, phash, text.encode("utf-8"))
        hid = hypothesis_id(h, phash)
        data = h.model_dump(exclude={"patch"})
        data["patch_hash"] = phash
        queue = self.k.open_queue(h.track, phash is not None)
        title = normalize_text(h.text)[:80]
        keys = [self.k.hyp(hid), queue, self.k.state(State.OPEN), self.k.seq_hyp, self.k.events]
        args = [
            hid,
            pack(data),
            h.priority,
            f"{h.source} posted {hid}: {title}",
            defaults.EVENTS_MAXLEN,
            h.author if h.kind == Kind.CONFIRM else "",  # a candidate is confirmed by another agent
            defaults.PRIORITY_CONFIRM,  # urgent work is announced on the urgent channel (`urgent_channel`)
            self.k.urgent_channel,
            h.track or "",  # "": any track
        ]
        # With replicas, a post counts once one has it: a failover must not lose a human's hypothesis
        # or a candidate's confirmation job that its poster was told exists.
        created, acked = self.replication.write(lambda c: self.scripts.post(keys=keys, args=args, client=c))
        self.replication.require(acked, f"hypothesis {hid}")
        return hid, bool(created)

    def urgent_channel(self) -> str:
        """The pub/sub channel a track's name is published on when work of a confirmation's priority or
        above (a candidate's confirmation, a baseline seed) is posted on it (`post.lua`)."""
        return self.k.urgent_channel

    def get(self, hid: str) -> Hypothesis:
        raw = pairs(self.r.hgetall(self.k.hyp(hid)))
        if not raw:
            raise NotFound(f"no hypothesis {hid!r} in swarm {self.swarm!r}")
        return hypothesis_from_hash(hid, raw)

    def get_many(self, ids: list[str]) -> list[Hypothesis]:
        """The hypotheses with these ids, in one round trip (missing ids are skipped)."""
        pipe = self.r.pipeline(transaction=False)
        for hid in ids:
            pipe.hgetall(self.k.hyp(hid))
        return [hypothesis_from_hash(h, pairs(raw)) for h, raw in zip(ids, pipe.execute(), strict=True) if raw]

    def list_hypotheses(self, state: str | None = None, limit: int = 100) -> list[Hypothesis]:
        """Newest first; all states when `state` is None (a `State` or its value; UserError otherwise).
        Reaps first, so a dead agent's claims show as open."""
        states = list(State) if state is None else [parse_enum(State, state, "state")]
        if limit <= 0:
            return []
        self.reap()
        pipe = self.r.pipeline(transaction=False)
        for st in states:
            pipe.zrevrange(self.k.state(st), 0, limit - 1, withscores=True)
        merged: list[tuple[float, str]] = []
        for rows in pipe.execute():
            merged.extend((score, str(s(m))) for m, score in rows)
        merged.sort(reverse=True)
        return self.get_many([hid for _, hid in merged[:limit]])

    def cancel(self, hid: str) -> None:
        """Cancel an open or claimed hypothesis (a claim's token is revoked)."""
        k = self.k
        out = s(
            self.scripts.cancel(
                keys=[
                    k.hyp(hid),
                    k.leases,
                    k.state(State.OPEN),
                    k.state(State.CLAIMED),
                    k.state(State.CANCELLED),
                    k.events,
                    k.claimants,
                ],
                args=[hid, defaults.EVENTS_MAXLEN, k.prefix],
            )
        )
        if out == "missing":
            raise NotFound(f"no hypothesis {hid!r} in swarm {self.swarm!r}")
        if out != "ok":
            raise UserError(f"hypothesis {hid} is already {out}; only open or claimed ones can be cancelled")

    def counts(self) -> dict[str, int]:
        """Hypotheses per state, every state present, keyed by the plain value ("open", ...). Reaps first."""
        self.reap()
        pipe = self.r.pipeline(transaction=False)
        for st in State:
            pipe.zcard(self.k.state(st))
        return {st.value: int(n) for st, n in zip(State, pipe.execute(), strict=True)}

    def reap(self) -> int:
        """Hand back every claim whose lease expired or whose agent's heartbeat expired (open with
        attempts+1, failed at max_attempts, an event each); returns how many entries it handled."""
        k = self.k
        total = 0
        while True:
            n = int(
                self.scripts.reap(
                    keys=[
                        k.leases,
                        k.state(State.OPEN),
                        k.state(State.CLAIMED),
                        k.state(State.FAILED),
                        k.events,
                        k.settings,
                        k.claimants,
                    ],
                    args=[k.prefix, defaults.MAX_ATTEMPTS, defaults.REAP_BATCH, defaults.EVENTS_MAXLEN],
                )
            )
            total += n
            if n < defaults.REAP_BATCH:  # each kind takes at most a batch per call: one was full, go on
                return total
