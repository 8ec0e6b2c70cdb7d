"""Patches: unified diffs against the arena baseline, made and applied. Pure text, no Redis.

- `make_patch(before, after)` -> a unified diff (`--- a/<path>` / `+++ b/<path>` headers, `/dev/null`
  for added or deleted files, `\\ No newline at end of file` markers), the format `git apply` reads.
- `apply_patch(files, patch)` -> the new files. Strict: every context and removed line must match at
  the hunk's position (after the shift of earlier hunks), else `UserError` naming the file and hunk.
  No fuzz on purpose: a patch that silently half-applies is how other systems lost edits.
- `patch_hash(text)` -> sha256 hex of the UTF-8 text; `EMPTY_PATCH` is the hash of the empty patch
  (the baseline: the arena exactly as pinned).
- `check_patch_text(text_or_bytes)` -> the validated text (size cap, UTF-8, no NUL bytes).

The board stores patch texts by their sha256 (`swarm.board.patches`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field

from swarm import defaults
from swarm.errors import UserError

EMPTY_PATCH = hashlib.sha256(b"").hexdigest()  # the baseline: no change to the pinned arena
NO_NEWLINE = "\\ No newline at end of file"
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def patch_hash(text: str) -> str:
    """sha256 hex of a patch text (the empty text hashes to EMPTY_PATCH)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_patch_text(data: str | bytes, max_bytes: int = defaults.PATCH_MAX_BYTES) -> str:
    """The patch as text, or UserError if it is binary, not UTF-8 or over the size cap."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise UserError(f"patch is {len(raw)} bytes, over the {max_bytes}-byte cap")
    if b"\x00" in raw:
        raise UserError("patch is binary (contains NUL bytes); patches must be text diffs")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"patch is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if text.strip() and not any(line.startswith("@@") for line in text.splitlines()):
        raise UserError("patch is not a unified diff (no @@ hunk header)")
    return text


def _diff_lines(lines: list[str]) -> list[str]:
    """difflib leaves a last line without newline unterminated; git marks it explicitly."""
    out: list[str] = []
    for line in lines:
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n")
            out.append(NO_NEWLINE + "\n")
    return out


def make_patch(before: dict[str, str], after: dict[str, str]) -> str:
    """Unified diff turning `before` into `after` (path -> text), paths in sorted order."""
    chunks: list[str] = []
    for path in sorted(set(before) | set(after)):
        old = before.get(path)
        new = after.get(path)
        if old == new:
            continue
        fromfile = f"a/{path}" if old is not None else "/dev/null"
        tofile = f"b/{path}" if new is not None else "/dev/null"
        diff = list(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                (new or "").splitlines(keepends=True),
                fromfile=fromfile,
                tofile=tofile,
                lineterm="\n",
            )
        )
        if diff:
            chunks.extend(diff[:2])
            chunks.extend(_diff_lines(diff[2:]))
    return "".join(chunks)


@dataclass
class _Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    header: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (op, text with its newline or not)


@dataclass
class _FilePatch:
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    hunks: list[_Hunk] = field(default_factory=list)


def _strip_path(raw: str) -> str | None:
    name = raw.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        name = name[2:]
    if not name:
        raise UserError("patch has an empty file name in a ---/+++ header")
    return name


def _parse(patch: str) -> list[_FilePatch]:
    lines = patch.splitlines(keepends=True)
    files: list[_FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("--- "):
            i += 1  # `diff --git`, `index`, mode lines and commentary carry nothing we need
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            raise UserError(f"patch line {i + 1}: '---' header not followed by '+++'")
        fp = _FilePatch(_strip_path(line[4:]), _strip_path(lines[i + 1][4:]))
        i += 2
        while i < len(lines) and lines[i].startswith("@@"):
            m = _HUNK_RE.match(lines[i])
            if not m:
                raise UserError(f"patch line {i + 1}: malformed hunk header {lines[i].rstrip()!r}")
            hunk = _Hunk(
                int(m.group(1)),
                int(m.group(2)) if m.group(2) is not None else 1,
                int(m.group(3)),
                int(m.group(4)) if m.group(4) is not None else 1,
                lines[i].rstrip("\n"),
            )
            i += 1
            old_seen = new_seen = 0
            while old_seen < hunk.old_len or new_seen < hunk.new_len:
                if i >= len(lines):
                    raise UserError(f"patch ends inside hunk {hunk.header!r}")
                body = lines[i]
                op, text = body[:1], body[1:]
                if body in ("\n", "\r\n"):  # some editors strip the space of empty context lines
                    op, text = " ", body
                if op not in (" ", "-", "+"):
                    raise UserError(f"patch line {i + 1}: unexpected {body.rstrip()!r} in {hunk.header!r}")
                hunk.lines.append((op, text))
                old_seen += op in (" ", "-")
                new_seen += op in (" ", "+")
                i += 1
                if i < len(lines) and lines[i].startswith("\\"):
                    hunk.lines[-1] = (op, text.rstrip("\n").rstrip("\r"))  # the line had no newline
                    i += 1
            fp.hunks.append(hunk)
        if not fp.hunks:
            raise UserError(f"patch for {fp.new_path or fp.old_path} has no hunks")
        files.append(fp)
    if patch.strip() and not files:
        raise UserError("patch contains no file sections ('--- a/...' / '+++ b/...')")
    return files


def apply_patch(files: dict[str, str], patch: str) -> dict[str, str]:
    """Apply a unified diff to `files` (path -> text) and return the new mapping (input untouched)."""
    out = dict(files)
    for fp in _parse(patch):
        path = fp.new_path or fp.old_path
        assert path is not None
        if fp.old_path is None:
            if path in out:
                raise UserError(f"patch creates {path}, which already exists")
            src: list[str] = []
        else:
            if fp.old_path not in out:
                raise UserError(f"patch changes {fp.old_path}, which does not exist")
            src = out[fp.old_path].splitlines(keepends=True)
        result: list[str] = []
        pos = 0  # index into src of the next line not yet copied
        for n, hunk in enumerate(fp.hunks, 1):
            start = hunk.old_start - 1 if hunk.old_len > 0 else hunk.old_start
            if start < pos:
                raise UserError(f"{path}: hunk {n} {hunk.header!r} overlaps the previous hunk")
            result.extend(src[pos:start])
            cur = start
            for op, text in hunk.lines:
                if op in (" ", "-"):
                    if cur >= len(src) or src[cur] != text:
                        have = src[cur].rstrip("\n") if cur < len(src) else "<end of file>"
                        raise UserError(
                            f"{path}: hunk {n} {hunk.header!r} does not apply at line {cur + 1}: "
                            f"expected {text.rstrip(chr(10))!r}, found {have!r}"
                        )
                    cur += 1
                if op in (" ", "+"):
                    result.append(text)
            pos = cur
        result.extend(src[pos:])
        if fp.new_path is None:
            if result:
                raise UserError(f"patch deletes {path} but leaves lines in it")
            out.pop(path, None)
            continue
        if fp.old_path is not None and fp.old_path != fp.new_path:
            out.pop(fp.old_path, None)
        out[fp.new_path] = "".join(result)
    return out
