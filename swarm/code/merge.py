"""Line-level 3-way merge of editable files: an edit made on one leader's code, onto another's.

`merge3(base, ours, theirs)` applies `theirs` (an edit of `base`) onto `ours` file by file and
returns None on a real conflict (both sides changed overlapping lines differently). Edits to
different lines merge, even adjacent constants: a same-size replacement is split into one region
per line. The agent uses it to rebase a prepared job and a candidate onto a new leader.
"""

from __future__ import annotations

import difflib


def _changes(base: list[str], other: list[str]) -> list[tuple[int, int, list[str]]]:
    """(start, end, replacement) regions turning `base` into `other`. A same-size replacement is split
    into one region per line, so edits to neighbouring lines (two adjacent constants) stay independent."""
    out: list[tuple[int, int, list[str]]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, base, other, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            out.extend((i1 + k, i1 + k + 1, [other[j1 + k]]) for k in range(i2 - i1) if base[i1 + k] != other[j1 + k])
        else:
            out.append((i1, i2, other[j1:j2]))
    return out


def merge_text(base: str, ours: str, theirs: str) -> str | None:
    """Line-level 3-way merge of `theirs` (an edit of `base`) onto `ours`; None on a real conflict
    (both sides changed overlapping lines differently, or inserted different lines at one place)."""
    b = base.splitlines(keepends=True)
    regions = [(*r, "o") for r in _changes(b, ours.splitlines(keepends=True))]
    regions += [(*r, "t") for r in _changes(b, theirs.splitlines(keepends=True))]
    regions.sort(key=lambda r: (r[0], r[1]))
    merged: list[tuple[int, int, list[str]]] = []
    for start, end, lines, _side in regions:
        if merged:
            ps, pe, plines = merged[-1]
            same = (ps, pe, plines) == (start, end, lines)
            overlap = start < pe or (start == ps and (start == end or ps == pe))
            if same:
                continue
            if overlap:
                return None
        merged.append((start, end, lines))
    out = list(b)
    for start, end, lines in reversed(merged):
        out[start:end] = lines
    return "".join(out)


def merge3(base: dict[str, str], ours: dict[str, str], theirs: dict[str, str]) -> dict[str, str] | None:
    """3-way merge per file: `theirs` (an edit made on `base`) onto `ours`; None when any file conflicts."""
    merged: dict[str, str] = {}
    for rel in sorted(set(ours) | set(theirs)):
        b, o, t = base.get(rel, ""), ours.get(rel, ""), theirs.get(rel, "")
        m = o if t == b else t if o == b else merge_text(b, o, t)
        if m is None:
            return None
        merged[rel] = m
    return merged
