"""Hypothesis files: markdown with a small front matter, the format of the `hypotheses/` folder.

    ---
    priority: 5                   # optional int, -1000..1000 (default 0); higher is claimed first
    tags: [optimizer, lr]         # optional; a [list] or comma-separated
    track: cpu:2c                 # optional; absent = any track
    author: alice                 # optional
    patch: patches/lr.diff        # optional; a unified diff, path relative to this file
    ---
    Raise the matrix learning rate from 0.04 to 0.06

    Why: the published session kept two LR increases in a row ...

    ```diff                        # optional inline patch instead of `patch:` (not both)
    --- a/train.py
    +++ b/train.py
    @@ ...
    ```

The front matter is optional; when present it starts on the first line with `---` and ends at the
next `---` line; each line is `key: value` (blank lines and `#` comments allowed). The body's first
non-empty line is the title; the whole body (minus an inline ```diff/```patch block) is the text.
`README.md` in a folder is documentation and is skipped. Every problem is a `UserError` naming the
file, raised before anything is posted.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from swarm.code.diff import check_patch_text
from swarm.errors import UserError
from swarm.models import HypothesisIn

KEYS = ("priority", "tags", "track", "author", "patch")
_FENCE = re.compile(r"^```(?:diff|patch)[ \t]*\n(.*?)^```[ \t]*$\n?", re.S | re.M)


def _front_matter(path: Path, text: str) -> tuple[dict[str, str], str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        raise UserError(f"{path}: front matter opened with '---' is never closed")
    fm: dict[str, str] = {}
    for n, raw in enumerate(lines[1:end], 2):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in KEYS:
            raise UserError(
                f"{path}:{n}: expected 'key: value' with key one of {', '.join(KEYS)}, got {line!r}"
            )
        if key in fm:
            raise UserError(f"{path}:{n}: {key} given twice")
        fm[key] = value.strip()
    return fm, "".join(lines[end + 1 :])


def _tags(value: str) -> list[str]:
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    return [t.strip().strip("'\"") for t in v.split(",") if t.strip()]


def parse_file(path: str | Path) -> HypothesisIn:
    """Parse one hypothesis file into a validated HypothesisIn (source "human")."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text") from exc
    except OSError as exc:
        raise UserError(f"{p}: {exc.strerror}") from exc
    fm, body = _front_matter(p, text)
    patch: str | None = None
    fences = _FENCE.findall(body)
    if len(fences) > 1:
        raise UserError(f"{p}: more than one inline ```diff block")
    if fences:
        if "patch" in fm:
            raise UserError(f"{p}: both a patch: file and an inline ```diff block")
        patch = check_patch_text(fences[0])
        body = _FENCE.sub("", body)
    elif "patch" in fm:
        pp = p.parent / fm["patch"]
        if not pp.is_file():
            raise UserError(f"{p}: patch file {fm['patch']} not found")
        try:
            patch = check_patch_text(pp.read_bytes())
        except UserError as exc:
            raise UserError(f"{p}: {fm['patch']}: {exc}") from exc
    body = body.strip()
    if not body:
        raise UserError(f"{p}: no text (the first line of the body is the title)")
    try:
        priority = int(fm.get("priority", "0"))
    except ValueError as exc:
        raise UserError(f"{p}: priority must be an integer, got {fm['priority']!r}") from exc
    try:
        return HypothesisIn(
            text=body,
            source="human",
            author=fm.get("author", ""),
            priority=priority,
            patch=patch,
            tags=_tags(fm.get("tags", "")),
            track=fm.get("track") or None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{p}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from exc


def parse_path(path: str | Path) -> list[tuple[Path, HypothesisIn]]:
    """One file, or every *.md of a folder (sorted, README.md skipped). All parsed before any is posted."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.md") if f.name.lower() != "readme.md")
        if not files:
            raise UserError(f"{p}: no hypothesis files (*.md other than README.md)")
        return [(f, parse_file(f)) for f in files]
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    return [(p, parse_file(p))]
