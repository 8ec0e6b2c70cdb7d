"""Results: an append-only stream of experiment outcomes plus a hash by id for lookup.

The publisher chooses the id (e.g. uuid4 hex), so publishing again after a timeout is a no-op.
The publish script checks the hypothesis' current token: a result whose lease was lost (reaped,
released, cancelled, reclaimed by someone else, or past its deadline) is stored but flagged
`stale`, and `move_leader` refuses stale results.

When the primary has replicas, `publish` returns only once one of them has the result (WAIT, see
`swarm.board.connection.Replication`); otherwise it raises `NotReplicated` and the publisher sends it
again. The retry finds the result stored (stored False, nothing duplicated) and waits for a replica
once more, or, when a failover lost the first write, stores it on the new primary.

Observers do not read every result. The publish script adds each stored result to two summaries in
the same atomic step (layout in `swarm.board.keys`): `tally()` (results by kind, status, track and
proposer, and each proposer's LLM sums) and per-minute counts per track, which `results_since` and
`results_since_by_track` read for the last RESULTS_MINUTES_KEPT minutes (plus the stream for the part
of the oldest minute they cover). The summaries count only what this script stored: on a board with
results from before they existed (`tally()` returns None: its count differs from the results'), the
readers fall back to reading results.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from swarm import defaults
from swarm.board.core import BoardCore, pairs, s
from swarm.errors import NotFound
from swarm.models import PublishOutcome, Result, ResultIn, check_track, pack, unpack


def decode_result(blob: bytes, meta: bytes | None) -> Result:
    """A stored result (msgpack blob + its `stale|published_ms|...` meta) as a `Result`."""
    stale, ms = "0", "0"
    if meta is not None:
        stale, ms = str(s(meta)).split("|", 2)[:2]
    return Result(**unpack(blob), stale=stale == "1", published_ms=int(ms))


MINUTE_MS = 60_000


@dataclass
class Tally:
    """The running summary of every stored result (`ResultsMixin.tally()`).

    `outcomes[(kind, status, track, proposer)]` -> results; `sums[(what, proposer)]` -> the sum of
    `what` (in, out: LLM tokens; cost: USD; llm_n: results with an LLM call; llm_s: their LLM latency)
    over that proposer's results. `proposer` is "" for results published without one.
    """

    results: int
    outcomes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    sums: dict[tuple[str, str], float] = field(default_factory=dict)


def parse_tally(raw: dict[str, bytes]) -> Tally:
    out = Tally(results=int(raw.get("n", b"0")))
    for name, v in raw.items():
        if name.startswith("o|"):
            kind, status, track, proposer = name[2:].split("|", 3)
            out.outcomes[(kind, status, track, proposer)] += int(v)
        elif name.startswith("s|"):
            what, proposer = name[2:].split("|", 1)
            out.sums[(what, proposer)] = float(v)
    return out


class ResultsMixin(BoardCore):
    def publish(self, result: ResultIn) -> PublishOutcome:
        """Store `result` once; `stored` False when its id existed, `stale` when its lease was lost."""
        k = self.k
        has_hyp = result.hypothesis_id is not None
        metric = "" if result.metric is None else repr(float(result.metric))
        text = (
            f"{result.agent_id} {result.status} {result.hypothesis_id or '(baseline)'} "
            f"{result.metric_name or 'metric'}={metric or '-'} on {result.track}"
        )
        keys = [
            k.results,
            k.results_meta,
            k.results_stream,
            k.hyp(result.hypothesis_id) if result.hypothesis_id else k.settings,
            k.events,
            k.results_tally,
            k.results_minutes,
        ]
        args = [
            result.result_id,
            pack(result.model_dump()),
            result.track,
            metric,
            "" if result.token is None else str(result.token),
            "1" if has_hyp else "0",
            defaults.EVENTS_MAXLEN,
            text,
            result.proposer,
            result.kind.value,
            result.status.value,
            result.llm_input_tokens,
            result.llm_output_tokens,
            repr(float(result.llm_cost_usd)),
            repr(float(result.llm_latency_s)),
            defaults.RESULTS_MINUTES_KEPT,
        ]
        out, acked = self.replication.write(lambda c: self.scripts.publish(keys, args, client=c))
        self.replication.require(acked, f"result {result.result_id}")
        return PublishOutcome(stored=bool(int(out[0])), stale=s(out[1]) == "1")

    def result(self, rid: str) -> Result:
        blob, meta = self.r.hget(self.k.results, rid), self.r.hget(self.k.results_meta, rid)
        if blob is None:
            raise NotFound(f"no result {rid!r} in swarm {self.swarm!r}")
        return decode_result(blob, meta)

    def results_by_id(self, ids: list[str]) -> list[Result]:
        """The results with these ids, in that order (missing ones skipped)."""
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.k.results, ids)
        pipe.hmget(self.k.results_meta, ids)
        blobs, metas = pipe.execute()
        return [decode_result(b, m) for b, m in zip(blobs, metas, strict=True) if b is not None]

    def results(self, limit: int = 100, track: str | None = None) -> list[Result]:
        """Newest first, optionally only one track's."""
        if track is not None:
            check_track(track)
        out: list[Result] = []
        last = "+"
        page = max(limit, 100) if track else limit
        while len(out) < limit and limit > 0:
            rows = self.r.xrevrange(self.k.results_stream, max=last, min="-", count=page)
            if not rows:
                break
            ids = [str(s(f[b"id"])) for _, f in rows if track is None or s(f.get(b"track")) == track]
            if ids:
                blobs = self.r.hmget(self.k.results, ids)
                metas = self.r.hmget(self.k.results_meta, ids)
                out.extend(decode_result(b, m) for b, m in zip(blobs, metas, strict=True) if b is not None)
            if len(rows) < page:
                break
            last = "(" + str(s(rows[-1][0]))
        return out[:limit]

    def tally(self) -> Tally | None:
        """The summary of every result (one hash read), or None when it does not cover them all (a
        board with results published before summaries existed): then read the results themselves."""
        pipe = self.r.pipeline(transaction=True)  # both from one instant: a publish adds to both at once
        pipe.hgetall(self.k.results_tally)
        pipe.hlen(self.k.results)
        raw, n = pipe.execute()
        t = parse_tally(pairs(raw))
        return t if t.results == int(n) else None

    def results_since(self, since_ms: int) -> int:
        """How many results were published at or after `since_ms` (server clock)."""
        return sum(self.results_since_by_track(since_ms).values())

    def results_since_by_track(self, since_ms: int) -> dict[str, int]:
        """Results published at or after `since_ms` (server clock) per track. Within the minutes the
        board counts (RESULTS_MINUTES_KEPT) it reads those counts and the stream for the rest of the
        oldest minute, so the cost does not grow with the results; further back, or on a board whose
        results are not all counted, it reads the stream from `since_ms`."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(self.k.results_minutes)
        pipe.hget(self.k.results_tally, "n")
        pipe.hlen(self.k.results)
        pipe.time()
        minutes, counted, n, (sec, usec) = pipe.execute()
        now_minute = (int(sec) * 1000 + int(usec) // 1000) // MINUTE_MS
        first = since_ms // MINUTE_MS  # the minute `since_ms` falls in: counted from the stream
        if int(counted or 0) != int(n) or first <= now_minute - defaults.RESULTS_MINUTES_KEPT:
            return dict(self._stream_count(f"{since_ms}-0", "+"))
        out: Counter[str] = Counter()
        for name, v in pairs(minutes).items():
            minute, track = name.split("|", 1)
            if int(minute) > first:
                out[track] += int(v)
        out.update(self._stream_count(f"{since_ms}-0", f"{(first + 1) * MINUTE_MS - 1}-18446744073709551615"))
        return dict(out)

    def _stream_count(self, start: str, end: str) -> Counter[str]:
        """Results per track in the stream between ids `start` and `end` (inclusive), paged."""
        out: Counter[str] = Counter()
        while True:
            rows = self.r.xrange(self.k.results_stream, min=start, max=end, count=1000)
            out.update(str(s(f.get(b"track"))) for _, f in rows)
            if len(rows) < 1000:
                return out
            start = "(" + str(s(rows[-1][0]))
