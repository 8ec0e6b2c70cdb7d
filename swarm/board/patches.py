"""Patches on the board: one hash, sha256 -> unified diff text (`Keys.patches`).

Content-addressed, so the same patch posted twice is stored once and a hypothesis or leader refers
to it by hash. The diff format itself (make, apply, hash, check) is `swarm.code.diff`.
"""

from __future__ import annotations

from swarm.board.core import BoardCore
from swarm.code.diff import EMPTY_PATCH, check_patch_text, patch_hash
from swarm.errors import NotFound


class PatchStoreMixin(BoardCore):
    """Patches on the board: one hash, sha256 -> text."""

    def put_patch(self, text: str) -> str:
        """Store a patch (validated: text, size cap); returns its sha256. Idempotent."""
        text = check_patch_text(text)
        sha = patch_hash(text)
        self.r.hsetnx(self.k.patches, sha, text.encode("utf-8"))
        return sha

    def get_patch(self, sha: str) -> str:
        """The patch text for `sha` ("" for EMPTY_PATCH)."""
        if sha == EMPTY_PATCH:
            return ""
        raw = self.r.hget(self.k.patches, sha)
        if raw is None:
            raise NotFound(f"no patch {sha} in swarm {self.swarm!r}")
        return bytes(raw).decode("utf-8")
