"""Events: a capped stream of human-readable lines (post, claim, result, leader move, requeue, join).

Scripts append their own events in the same atomic step as the change they describe; `event()` is
for everything else. `events(limit)` returns the newest `limit`, oldest first; `follow()` blocks on
the stream and yields new events as they arrive (`swarm log --follow`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from swarm import defaults
from swarm.board.core import BoardCore, s
from swarm.models import Event


def _event(eid: bytes | str, fields: dict[bytes, bytes]) -> Event:
    d = {str(s(k)): str(s(v)) for k, v in fields.items()}
    eid_s = str(s(eid))
    return Event(
        id=eid_s, time_ms=int(eid_s.split("-")[0]), kind=d.pop("kind", "?"), text=d.pop("text", ""), fields=d
    )


class EventsMixin(BoardCore):
    def event(self, kind: str, text: str, **fields: Any) -> str:
        """Append an event; returns its stream id."""
        flat: dict[str, str] = {"kind": kind[:32], "text": text[:1000]}
        flat.update({k: str(v) for k, v in fields.items() if k not in ("kind", "text")})
        return str(s(self.r.xadd(self.k.events, flat, maxlen=defaults.EVENTS_MAXLEN, approximate=True)))

    def events(self, limit: int = 50) -> list[Event]:
        """The newest `limit` events, oldest first."""
        rows = self.r.xrevrange(self.k.events, count=limit)
        return [_event(i, f) for i, f in reversed(rows)]

    def follow(
        self, after_id: str = "$", block_ms: int = 1000, stop_after_idle: int | None = None
    ) -> Iterator[Event]:
        """Yield events after `after_id` as they arrive; stop after `stop_after_idle` empty waits if set."""
        last = after_id
        if last == "$":  # resolve "$" now, so nothing appended between two blocking reads is skipped
            newest = self.r.xrevrange(self.k.events, count=1)
            last = str(s(newest[0][0])) if newest else "0-0"
        idle = 0
        while True:
            reply = self.r.xread({self.k.events: last}, block=block_ms, count=100)
            if not reply:
                idle += 1
                if stop_after_idle is not None and idle >= stop_after_idle:
                    return
                continue
            idle = 0
            for _stream, rows in reply:
                for eid, fields in rows:
                    last = str(s(eid))
                    yield _event(eid, fields)
