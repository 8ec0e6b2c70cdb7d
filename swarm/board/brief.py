"""The brief: the swarm's program.md, the text every LLM proposer reads, versioned on the board.

`set_brief(text)` replaces it in one Lua step that bumps the version (the same text again keeps the
version, so re-running `swarm brief set` or `swarm init` is a no-op) and logs an event; `brief()`
returns (version, text). Proposers read it for each proposal, and each result records the version it
was proposed under (`ResultIn.brief_version`). Key: `Keys.brief`.
"""

from __future__ import annotations

from swarm import defaults
from swarm.board.core import BoardCore, s
from swarm.errors import UserError


class BriefMixin(BoardCore):
    def set_brief(self, text: str) -> int:
        """Replace the brief; returns its version. UserError when empty or over BRIEF_MAX_BYTES."""
        if not text.strip():
            raise UserError("brief is empty")
        if len(text.encode("utf-8")) > defaults.BRIEF_MAX_BYTES:
            raise UserError(f"brief is over the {defaults.BRIEF_MAX_BYTES}-byte cap")
        return int(self.scripts.set_brief(keys=[self.k.brief, self.k.events], args=[text, defaults.EVENTS_MAXLEN]))

    def brief(self) -> tuple[int, str]:
        """(version, text); (0, "") when no brief was set."""
        v, text = self.r.hmget(self.k.brief, ["version", "text"])
        return (int(v) if v else 0, s(text) or "")
