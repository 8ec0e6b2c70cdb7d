"""The web view's index of results: what each page needs of the results, kept up to date in memory.

    index = ResultIndex()
    index.refresh(board)                 # reads only what was published since the last call
    rows = index.of_hypothesis("h1234")  # its results (and their confirmation runs), oldest first

The board keeps results in a hash by id plus an append-only stream of `{id, track}`; nothing on the
board lists a hypothesis' results or an agent's, and reading every result to find them costs ~80 us
each (8 s at 100,000 results). So `swarm web` tails the stream instead: each refresh reads the entries
after the last one it saw, fetches their blobs in batches and keeps a small `Row` per result (no
pydantic: msgpack straight to the fields used). Every result is read once in the server's life; a page
costs what was published since the previous page.

Bounded: at most `max_rows` newest results are kept (INDEX_MAX_RESULTS, like `swarm report`'s bound).
A longer swarm starts from its newest `max_rows`, and the oldest are dropped as new ones come, in
batches so dropping stays amortised O(1); `dropped` says how many older results the pages do not see.

Time: a result's time is its stream id, the Redis server's clock when it was published, so rows are in
time order and "the last hour" is measured on the same clock as leases.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgpack

INDEX_MAX_RESULTS = 200_000  # rows kept (~70 MB): ~2 weeks of a 100-GPU swarm, as `swarm report` reads
INDEX_BATCH = 2_000  # stream entries (and blobs) per round trip: ~1 MB replies, a few ms each
DROP_SLACK = 0.25  # drop the oldest in batches of this fraction of max_rows (amortised O(1) per row)

__all__ = ["INDEX_MAX_RESULTS", "ResultIndex", "Row"]


@dataclass(frozen=True, slots=True)
class Row:
    """What the pages need of one result."""

    result_id: str
    hypothesis_id: str | None
    candidate_of: str | None  # the candidate result a confirmation run re-measures
    track: str
    ms: int  # published (server clock, from the stream id)
    metric: float | None
    status: str
    kind: str
    agent: str
    proposer: str


def _row(blob: bytes, ms: int) -> Row:
    d = msgpack.unpackb(blob, raw=False)
    metric = d.get("metric")
    intern = sys.intern  # agent, proposer, track, status and kind repeat: one string object each
    return Row(
        result_id=str(d["result_id"]),
        hypothesis_id=intern(d["hypothesis_id"]) if d.get("hypothesis_id") else None,
        candidate_of=d.get("candidate_of") or None,
        track=intern(str(d.get("track", ""))),
        ms=ms,
        metric=None if metric is None else float(metric),
        status=intern(str(d.get("status", ""))),
        kind=intern(str(d.get("kind", ""))),
        agent=intern(str(d.get("agent_id", ""))),
        proposer=intern(str(d.get("proposer", ""))),
    )


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class ResultIndex:
    """Rows of the newest `max_rows` results, by hypothesis, candidate, track and agent. Thread-safe:
    the server's request threads share one index; each method takes the lock."""

    def __init__(self, max_rows: int = INDEX_MAX_RESULTS) -> None:
        self.max_rows = max_rows
        self.lock = threading.Lock()
        self.rows: list[Row] = []  # oldest first
        self.last_id = ""  # the newest stream id read ("": nothing yet)
        self.dropped = 0  # results on the board older than the rows kept
        self.version = 0  # moves on with every row added: a cache key for what is drawn from the rows
        self._by_hid: dict[str, list[Row]] = {}
        self._by_candidate: dict[str, list[Row]] = {}
        self._by_track: dict[str, list[Row]] = {}
        self._per_agent: Counter[str] = Counter()
        self._first_ms: dict[str, int] = {}  # agent -> its oldest row's time

    def refresh(self, board: Any) -> int:
        """Read the results published since the last refresh; returns how many were added."""
        with self.lock:
            r, k = board.r, board.k
            if not self.last_id:
                self.last_id = self._start(r, k.results_stream)
            added = 0
            while True:
                entries = r.xrange(k.results_stream, min="(" + self.last_id, max="+", count=INDEX_BATCH)
                if not entries:
                    break
                ids = [_text(f[b"id"]) for _, f in entries]
                blobs = r.hmget(k.results, ids)
                for (sid, _), blob in zip(entries, blobs, strict=True):
                    if blob is not None:
                        self._add(_row(blob, int(_text(sid).split("-")[0])))
                        added += 1
                self.last_id = _text(entries[-1][0])
                if len(entries) < INDEX_BATCH:
                    break
            if len(self.rows) > self.max_rows * (1 + DROP_SLACK):
                self._drop_oldest(len(self.rows) - self.max_rows)
            self.version += added
            return added

    def _start(self, r: Any, stream: str) -> str:
        """Where a fresh index starts: the beginning, or just before the newest `max_rows` entries."""
        length = int(r.xlen(stream))
        if length <= self.max_rows:
            return "0-0"
        tail = r.xrevrange(stream, max="+", min="-", count=self.max_rows + 1)
        self.dropped = length - self.max_rows
        return _text(tail[-1][0])

    def _add(self, row: Row) -> None:
        self.rows.append(row)
        if row.hypothesis_id:
            self._by_hid.setdefault(row.hypothesis_id, []).append(row)
        if row.candidate_of:
            self._by_candidate.setdefault(row.candidate_of, []).append(row)
        self._by_track.setdefault(row.track, []).append(row)
        self._per_agent[row.agent] += 1
        self._first_ms.setdefault(row.agent, row.ms)

    def _drop_oldest(self, n: int) -> None:
        keep = self.rows[n:]
        self.dropped += n
        self.rows = []
        self._by_hid, self._by_candidate, self._by_track = {}, {}, {}
        self._per_agent, self._first_ms = Counter(), {}
        for row in keep:
            self._add(row)

    # --- reads (each a copy taken under the lock) -------------------------------------------------

    def __len__(self) -> int:
        with self.lock:
            return len(self.rows)

    def of_hypothesis(self, hid: str) -> list[Row]:
        """The results of `hid` and the confirmation runs of any of them, oldest first."""
        with self.lock:
            own = list(self._by_hid.get(hid, []))
            confirms = [c for r in own for c in self._by_candidate.get(r.result_id, []) if c.hypothesis_id != hid]
        return sorted(own + confirms, key=lambda r: r.ms)

    def of_track(self, track: str) -> list[Row]:
        with self.lock:
            return list(self._by_track.get(track, []))

    def tracks(self) -> list[str]:
        with self.lock:
            return sorted(self._by_track)

    def newest(self, n: int) -> list[Row]:
        """The newest `n` rows, newest first."""
        with self.lock:
            return self.rows[: -n - 1 : -1] if n > 0 else []

    def agent_counts(self, since_ms: int) -> tuple[Counter[str], Counter[str], dict[str, int]]:
        """(results per agent, results per agent at or after `since_ms`, each agent's oldest row's ms).
        The recent count walks back from the newest row only as far as `since_ms`."""
        with self.lock:
            recent: Counter[str] = Counter()
            for row in reversed(self.rows):
                if row.ms < since_ms:
                    break
                recent[row.agent] += 1
            return Counter(self._per_agent), recent, dict(self._first_ms)
