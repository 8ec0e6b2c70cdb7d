"""An agent's incremental view of its track's results (and hypothesis titles) on the board.

Results are append-only and never change once published, so an agent need not decode the board's
history again for every decision: `TrackHistory.refresh()` reads only the stream entries published
since its last call and keeps the newest `keep` results of the track in memory. The proposal context
(every ideation), the baseline's and the candidates' finalization (every baseline or confirmation
result) read from it. Before it, each of those re-read and re-decoded up to 2,000 results: at 64
agents on one host that decoding was most of the agents' CPU (docs/benchmarks.md, Swarm).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from swarm import defaults
from swarm.board import Board
from swarm.board.core import s
from swarm.board.results import decode_result
from swarm.models import Result

PAGE = 1000  # stream entries per read


class TrackHistory:
    """The newest `keep` results of `track`, refreshed from the board's results stream on demand."""

    def __init__(self, board: Board, track: str, keep: int = defaults.HISTORY_KEEP_RESULTS) -> None:
        self.board = board
        self.track = track
        self.keep = keep
        self._lock = threading.Lock()
        self._results: deque[Result] = deque(maxlen=keep)  # oldest first
        self._ids: set[str] = set()
        self._last: str | None = None  # the newest stream id read
        self._titles: dict[str, str] = {}

    def refresh(self) -> None:
        """Read what was published since the last refresh (the newest `keep` results the first time)."""
        with self._lock:
            if self._last is None:
                self._first_read()
            else:
                self._read_since()

    def _first_read(self) -> None:
        top = self.board.r.xrevrange(self.board.k.results_stream, max="+", min="-", count=1)
        self._last = str(s(top[0][0])) if top else "0-0"
        for r in reversed(self.board.results(limit=self.keep, track=self.track)):
            self._add(r)
        self._read_since()  # whatever landed between the two reads

    def _read_since(self) -> None:
        r, k = self.board.r, self.board.k
        while True:
            rows = r.xrange(k.results_stream, min=f"({self._last}", max="+", count=PAGE)
            if not rows:
                return
            self._last = str(s(rows[-1][0]))
            ids = [str(s(f[b"id"])) for _, f in rows if s(f.get(b"track")) == self.track]
            ids = [i for i in ids if i not in self._ids]
            if ids:
                blobs = r.hmget(k.results, ids)
                metas = r.hmget(k.results_meta, ids)
                for blob, meta in zip(blobs, metas, strict=True):
                    if blob is not None:
                        self._add(decode_result(blob, meta))
            if len(rows) < PAGE:
                return

    def _add(self, result: Result) -> None:
        if result.result_id in self._ids:
            return
        if len(self._results) == self.keep:
            self._ids.discard(self._results[0].result_id)
        self._results.append(result)
        self._ids.add(result.result_id)

    def newest(self, limit: int | None = None) -> list[Result]:
        """The track's results, newest first (after a refresh)."""
        self.refresh()
        with self._lock:
            out = list(reversed(self._results))
        return out if limit is None else out[:limit]

    def titles(self, ids: Iterable[str]) -> dict[str, str]:
        """Hypothesis titles by id; only the ones not seen before are read from the board."""
        wanted = sorted(set(ids))
        with self._lock:
            missing = [i for i in wanted if i not in self._titles]
        if missing:
            found = {h.id: h.title for h in self.board.get_many(missing)}
            with self._lock:
                if len(self._titles) > 4 * self.keep:  # bounded: forget the oldest half
                    for key in list(self._titles)[: len(self._titles) // 2]:
                        del self._titles[key]
                self._titles.update(found)
        with self._lock:
            return {i: self._titles[i] for i in wanted if i in self._titles}
