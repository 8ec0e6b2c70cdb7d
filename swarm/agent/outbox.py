"""Results on their way to the board: written to a local file first, removed once the board has them.

Every result goes through the outbox: `keep(entry)` appends it to `outbox.jsonl` in the agent's work
dir, then `flush(deliver)` publishes what is there, oldest first. So a result survives Redis being
away (it stays in the file until Redis answers again), the agent being killed between the end of a
run and its publication (an agent started on the same work dir publishes it), and a crash mid-flush
(delivery is idempotent: results by a publisher-chosen id, claims completed by token).

A line that cannot be read back (a torn write, a hand edit) never blocks the ones after it: it is
moved to `outbox.rejected.jsonl` with a warning, and nothing is deleted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swarm.board.connection import BOARD_DOWN
from swarm.errors import SwarmError

log = logging.getLogger(__name__)

REJECTED_SUFFIX = ".rejected.jsonl"


class Outbox:
    """A JSON-lines file of results not yet on the board. Used by the agent's main loop only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected = path.with_name(path.name.removesuffix(".jsonl") + REJECTED_SUFFIX)

    def keep(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def pending(self) -> int:
        if not self.path.exists():
            return 0
        return sum(1 for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip())

    def flush(self, deliver: Callable[[dict[str, Any]], None]) -> int:
        """Deliver every kept entry, oldest first; returns how many were delivered. A board error
        stops the flush: what is left stays in the file and the error goes to the caller."""
        if not self.path.exists():
            return 0
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        done = 0
        for i, line in enumerate(lines):
            try:
                deliver(json.loads(line))
            except BOARD_DOWN:
                self._rewrite(lines[i:])
                raise
            except (ValueError, KeyError, TypeError, ValidationError, SwarmError) as exc:
                self._reject(line, exc)
                continue
            done += 1
        self.path.unlink()
        return done

    def _rewrite(self, lines: list[str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash here leaves the old file or the new, never half

    def _reject(self, line: str, exc: Exception) -> None:
        log.warning("outbox: an entry cannot be published (%s); kept in %s", str(exc).splitlines()[0], self.rejected)
        with self.rejected.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
