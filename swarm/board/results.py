"""Results: an append-only stream of experiment outcomes plus a hash by id for lookup.

The publisher chooses the id (e.g. uuid4 hex), so publishing again after a timeout is a no-op.
The publish script checks the hypothesis' current token: a result whose lease was lost (reaped,
released, cancelled, reclaimed by someone else, or past its deadline) is stored but flagged
`stale`, and `move_leader` refuses stale results.

When the primary has replicas, `publish` returns only once one of them has the result (WAIT, see
`swarm.board.connection.Replication`); otherwise it raises `NotReplicated` and the publisher sends it
again. The retry finds the result stored (stored False, nothing duplicated) and waits for a replica
once more, or, when a failover lost the first write, stores it on the new primary.
"""

from __future__ import annotations

from swarm import defaults
from swarm.board.core import BoardCore, s
from swarm.errors import NotFound
from swarm.models import PublishOutcome, Result, ResultIn, check_track, pack, unpack


def decode_result(blob: bytes, meta: bytes | None) -> Result:
    """A stored result (msgpack blob + its `stale|published_ms|...` meta) as a `Result`."""
    stale, ms = "0", "0"
    if meta is not None:
        stale, ms = str(s(meta)).split("|", 2)[:2]
    return Result(**unpack(blob), stale=stale == "1", published_ms=int(ms))


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
        ]
        out, acked = self.replication.write(lambda c: self.scripts.publish(keys, args, client=c))
        self.replication.require(acked, f"result {result.result_id}")
        return PublishOutcome(stored=bool(int(out[0])), stale=s(out[1]) == "1")

    def result(self, rid: str) -> Result:
        blob, meta = self.r.hget(self.k.results, rid), self.r.hget(self.k.results_meta, rid)
        if blob is None:
            raise NotFound(f"no result {rid!r} in swarm {self.swarm!r}")
        return decode_result(blob, meta)

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

    def results_since(self, since_ms: int) -> int:
        """How many results were published at or after `since_ms` (server clock)."""
        n = 0
        start = f"{since_ms}-0"
        while True:
            rows = self.r.xrange(self.k.results_stream, min=start, max="+", count=1000)
            n += len(rows)
            if len(rows) < 1000:
                return n
            start = "(" + str(s(rows[-1][0]))
