"""The code a patch hash names, as editable files: read from the board once, kept for the next ask.

Patches are content-addressed, so the answer for a hash never changes; the agent asks for the same
few (the leader, a candidate, the base of an idea) again and again from its main loop and its
preparer thread, so the newest `CODE_CACHE_ENTRIES` are kept under a lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from swarm import defaults
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH
from swarm.experiment.workspace import Workspace


class CodeCache:
    """`files_of(patch_hash)`: the editable files of baseline + that patch (a fresh dict each time)."""

    def __init__(self, board: Board, ws: Workspace, size: int = defaults.CODE_CACHE_ENTRIES) -> None:
        self.board = board
        self.ws = ws
        self.size = size
        self._lock = threading.Lock()
        self._files: OrderedDict[str, dict[str, str]] = OrderedDict()

    def files_of(self, patch_hash: str) -> dict[str, str]:
        if patch_hash == EMPTY_PATCH:
            return self.ws.baseline_files()
        with self._lock:
            files = self._files.get(patch_hash)
            if files is not None:
                self._files.move_to_end(patch_hash)
                return dict(files)
        files = self.ws.files_for(self.board.get_patch(patch_hash))  # outside the lock: a board read
        with self._lock:
            self._files[patch_hash] = files
            while len(self._files) > self.size:
                self._files.popitem(last=False)
        return dict(files)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)
