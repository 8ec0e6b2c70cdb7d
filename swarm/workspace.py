"""An agent's private copy of the arena: a git repository whose first commit is the pristine arena.

Every agent owns one workspace in its own work dir (never shared: concurrent runs in one directory
clobber each other, a failure seen in n-autoresearch). The workspace knows three kinds of code:

- the baseline (tag `baseline`): the arena exactly as pinned on the board;
- the leader it is on: the baseline plus the leader's patch (a unified diff against the baseline);
- the experiment: the leader plus one hypothesis' edit, to editable files only.

Each experiment starts from a clean tree: `prepare_run()` writes the editable files and restores
everything else to the baseline, so nothing an earlier run wrote outside the editable files
survives. Merges of a prepared edit onto a new leader are 3-way (`git merge-file`).
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

from swarm.errors import ArenaError
from swarm.patches import EMPTY_PATCH, apply_patch, make_patch

log = logging.getLogger(__name__)

EDITABLE_MAX_BYTES = 512 * 1024  # a train.py is ~30 KB; 16x headroom, yet a runaway edit is refused


class Workspace:
    """A git working copy of the arena under `root/arena`."""

    def __init__(self, root: Path, editable: list[str]) -> None:
        self.root = root
        self.dir = root / "arena"
        self.editable = list(editable)
        self.leader_patch_hash = EMPTY_PATCH
        self._baseline: dict[str, str] | None = None

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
        (ws.dir / ".git-info-exclude").unlink(missing_ok=True)
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
        """The unified diff against the baseline that turns the baseline into `files`."""
        return make_patch(self.baseline_files(), files)

    # --- writing --------------------------------------------------------------------------------
    def checkout_leader(self, patch_text: str, patch_hash: str, label: str) -> None:
        """Move the working copy to baseline + the leader's patch and commit it."""
        files = self.files_for(patch_text)
        self._clean_to("baseline")
        self._write(files)
        self._git("commit", "-q", "--allow-empty", "-am", f"leader: {label}")
        self.leader_patch_hash = patch_hash

    def prepare_run(self, files: dict[str, str]) -> None:
        """Restore the tree to the leader commit, then write the experiment's editable files."""
        self._clean_to("HEAD")
        self._write(files)

    def record(self, message: str) -> None:
        """Commit the experiment's editable files (local history of what ran)."""
        self._git("add", "--", *self.editable)
        self._git("commit", "-q", "--allow-empty", "-m", message[:200])
        self._git("reset", "-q", "--hard", "HEAD~1")  # back to the leader; the commit stays in the reflog

    def _write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            (self.dir / rel).write_text(text, encoding="utf-8")

    def _clean_to(self, ref: str) -> None:
        self._git("reset", "-q", "--hard", ref)
        self._git("clean", "-q", "-f", "-d")

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


def validate_edit(files: dict[str, str], editable: list[str]) -> str | None:
    """Why an edit may not run (None when it may): editable files only, compiles, under size caps."""
    extra = sorted(set(files) - set(editable))
    if extra:
        return f"edit touches files outside the editable set: {', '.join(extra)}"
    for rel, text in files.items():
        size = len(text.encode("utf-8"))
        if size > EDITABLE_MAX_BYTES:
            return f"{rel} is {size} bytes, over the {EDITABLE_MAX_BYTES}-byte cap"
        if rel.endswith(".py"):
            try:
                compile(text, rel, "exec")
            except SyntaxError as exc:
                return f"{rel} does not compile: line {exc.lineno}: {exc.msg}"
    return None


def merge3(base: dict[str, str], ours: dict[str, str], theirs: dict[str, str]) -> dict[str, str] | None:
    """3-way merge per file with `git merge-file`: `theirs` (an edit made on `base`) onto `ours`.

    Returns the merged files, or None when any file conflicts.
    """
    merged: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="swarm-merge-") as tmp:
        for rel in sorted(set(ours) | set(theirs)):
            b, o, t = base.get(rel, ""), ours.get(rel, ""), theirs.get(rel, "")
            if t == b:
                merged[rel] = o
                continue
            if o == b:
                merged[rel] = t
                continue
            paths = []
            for name, text in (("ours", o), ("base", b), ("theirs", t)):
                p = Path(tmp) / name
                p.write_text(text, encoding="utf-8")
                paths.append(str(p))
            proc = subprocess.run(["git", "merge-file", "-p", *paths], capture_output=True, text=True)
            if proc.returncode != 0:  # >0: number of conflicts; <0: error
                return None
            merged[rel] = proc.stdout
    return merged
