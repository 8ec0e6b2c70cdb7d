"""An agent's private copy of the arena: a git repository whose first commit is the pristine arena.

Every agent owns one workspace in its own work dir (never shared: concurrent runs in one directory
clobber each other, a failure seen in n-autoresearch). The workspace knows three kinds of code:

- the baseline (tag `baseline`, HEAD): the arena exactly as pinned on the board;
- the leader it is on: the baseline plus the leader's patch (a unified diff against the baseline).
  Patches touch editable files only, so checking a leader out is writing its editable files over the
  baseline's: no git call, and `git diff` in the workspace shows the leader's change;
- the experiment: the leader plus one hypothesis' edit, to editable files only.

Each experiment starts from a clean tree: `prepare_run()` writes the editable files and restores
everything else to the baseline, so nothing an earlier run wrote outside the editable files
survives. Restoring costs git subprocesses, so it only happens when the tree changed: after each
restore the workspace notes every path's (type, size, mtime, ctime, inode); a run that leaves all of
them as they were (the normal case: the runner keeps bytecode out) needs no git at all, and any
difference (a new, removed or touched file, a symlink where an editable file was) restores the tree
with `git reset --hard` + `git clean -fdx`. ctime cannot be set back from user space, so a file
rewritten with its old mtime and size is still seen. Leader moves and what ran are appended to
`history.jsonl` next to the working copy (message + diff against the baseline), no subprocess.
Merges of a prepared edit onto a new leader are 3-way (`swarm.code.merge`, line-level).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import time
from pathlib import Path

from swarm.code.diff import EMPTY_PATCH, apply_patch, make_patch
from swarm.errors import ArenaError

log = logging.getLogger(__name__)

class Workspace:
    """A git working copy of the arena under `root/arena`."""

    def __init__(self, root: Path, editable: list[str]) -> None:
        self.root = root
        self.dir = root / "arena"
        self.editable = list(editable)
        self.leader_patch_hash = EMPTY_PATCH
        self._baseline: dict[str, str] | None = None
        self._clean: dict[str, tuple[int, ...]] | None = None  # the tree as the last restore left it
        self._leader_files: dict[str, str] | None = None  # the leader's editable files (None: baseline)
        self._last_patch: tuple[dict[str, str], str] | None = None  # patch_of's last (files, patch)
        self.restores = 0  # how many times prepare_run found the tree changed and restored it

    # --- setup --------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, arena_files: dict[str, bytes], editable: list[str]) -> Workspace:
        """(Re)create the workspace from the pinned arena files; the first commit is the baseline."""
        ws = cls(root, editable)
        if (ws.dir / ".git").is_dir() and ws._git("tag", "--list", "baseline").strip() == "baseline":
            if ws._pinned_matches(arena_files):
                ws._clean_to("baseline")
                return ws
            log.warning("workspace %s holds another arena; recreating it", ws.dir)
        subprocess.run(["rm", "-rf", str(ws.dir)], check=True)
        ws.dir.mkdir(parents=True)
        for rel, data in arena_files.items():
            p = ws.dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        ws._git("init", "-q")
        (ws.dir / ".git" / "info").mkdir(parents=True, exist_ok=True)
        (ws.dir / ".git" / "info" / "exclude").write_text("__pycache__/\n*.pyc\n")
        ws._git("add", "-A")
        ws._git("commit", "-q", "-m", "baseline: the pinned arena")
        ws._git("tag", "baseline")
        return ws

    def _pinned_matches(self, arena_files: dict[str, bytes]) -> bool:
        for rel, data in arena_files.items():
            try:
                blob = subprocess.run(
                    ["git", "show", f"baseline:{rel}"], cwd=self.dir, capture_output=True, check=True
                ).stdout
            except subprocess.CalledProcessError:
                return False
            if blob != data:
                return False
        return True

    # --- reading --------------------------------------------------------------------------------
    def baseline_files(self) -> dict[str, str]:
        """The editable files as pinned (the base every patch is relative to)."""
        if self._baseline is None:
            self._baseline = {rel: self._git("show", f"baseline:{rel}") for rel in self.editable}
        return dict(self._baseline)

    def files(self) -> dict[str, str]:
        """The editable files as they are on disk now."""
        return {rel: (self.dir / rel).read_text(encoding="utf-8") for rel in self.editable}

    def files_for(self, patch_text: str) -> dict[str, str]:
        """The editable files of the code `patch_text` (a diff against the baseline) describes."""
        return apply_patch(self.baseline_files(), patch_text) if patch_text.strip() else self.baseline_files()

    def patch_of(self, files: dict[str, str]) -> str:
        """The unified diff against the baseline that turns the baseline into `files` (the last answer is
        kept: after a run, the local history and the published result both ask for the same files)."""
        last = self._last_patch
        if last is not None and last[0] == files:
            return last[1]
        patch = make_patch(self.baseline_files(), files)
        self._last_patch = (dict(files), patch)
        return patch

    # --- writing --------------------------------------------------------------------------------
    def checkout_leader(self, patch_text: str, patch_hash: str, label: str) -> None:
        """Move the working copy to baseline + the leader's patch (its editable files)."""
        files = self.files_for(patch_text)
        self._write(files)
        self.leader_patch_hash = patch_hash
        self._leader_files = files
        self._log({"time": time.time(), "message": f"leader: {label}", "patch_hash": patch_hash})

    def prepare_run(self, files: dict[str, str]) -> None:
        """Make the tree the leader commit plus `files`: restored by git only if anything changed."""
        if self._clean is None or self._snapshot() != self._clean:
            self.restores += 1
            self._clean_to("baseline")
        self._write(files)

    def record(self, message: str, files: dict[str, str]) -> None:
        """Append what ran (`files` as a diff against the baseline) to the local history, and put the
        leader's editable files back: between runs the tree is the leader's code."""
        self._log({"time": time.time(), "message": message[:200], "patch": self.patch_of(files) if files else ""})
        self._write(self._leader_files if self._leader_files is not None else self.baseline_files())

    def _log(self, line: dict[str, object]) -> None:
        with (self.root / "history.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def _write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            p = self.dir / rel
            if p.is_symlink() or p.is_dir():  # a run replaced it: never write through it
                subprocess.run(["rm", "-rf", str(p)], check=True)
            p.write_text(text, encoding="utf-8")

    def _clean_to(self, ref: str) -> None:
        self._git("reset", "-q", "--hard", ref)
        self._git("clean", "-q", "-f", "-d", "-x")  # -x: bytecode too (a planted .pyc would be loaded)
        self._clean = self._snapshot()

    def _snapshot(self) -> dict[str, tuple[int, ...]]:
        """Every path under the tree but .git (editable files only by type: each run rewrites them)."""
        out: dict[str, tuple[int, ...]] = {}
        editable = set(self.editable)
        for dirpath, dirnames, filenames in os.walk(self.dir):
            if dirpath == str(self.dir):
                dirnames[:] = [d for d in dirnames if d != ".git"]
            rel_dir = os.path.relpath(dirpath, self.dir)
            for name in dirnames + filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = os.lstat(os.path.join(dirpath, name))
                if rel in editable:
                    out[rel] = (int(stat.S_ISREG(st.st_mode)),)
                elif stat.S_ISDIR(st.st_mode):
                    out[rel] = (st.st_mode, st.st_ino)
                else:
                    out[rel] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        return out

    def _git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "-c", "user.name=swarm", "-c", "user.email=swarm@localhost", *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ArenaError(f"git {args[0]} failed in {self.dir}: {proc.stderr.strip()[:300]}")
        return proc.stdout
