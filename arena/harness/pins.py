"""Harness integrity: the sha256 pins of `arena.toml` and the harness hash recorded in each result.

`mismatches()` lists harness files (every harness module and the shipped corpus, as named in
`[arena] harness`) whose hash differs from `[pins]`; a run with any mismatch is refused.
`pin()` rewrites the `[pins]` table (the last table of arena.toml) from the files as they are.
`identities()` lets a supervisor started ahead of its run see, at the run's start, whether any of
them changed since it hashed them (and since its children imported them).
"""

from __future__ import annotations

import hashlib
import tomllib
from typing import Any

from harness import ARENA_DIR, MANIFEST


def manifest() -> dict[str, Any]:
    return tomllib.loads(MANIFEST.read_text(encoding="utf-8"))


def sha256(rel: str) -> str:
    return hashlib.sha256((ARENA_DIR / rel).read_bytes()).hexdigest()


def mismatches(m: dict[str, Any] | None = None) -> list[str]:
    m = m or manifest()
    pins = m.get("pins", {})
    return [rel for rel in m["arena"]["harness"] if not (ARENA_DIR / rel).is_file() or pins.get(rel) != sha256(rel)]


def unlisted(m: dict[str, Any] | None = None) -> list[str]:
    """Harness modules on disk that arena.toml does not list (so nothing would pin them)."""
    listed = set((m or manifest())["arena"]["harness"])
    return sorted(
        str(p.relative_to(ARENA_DIR))
        for p in (ARENA_DIR / "harness").glob("*.py")
        if str(p.relative_to(ARENA_DIR)) not in listed
    )


def identities() -> dict[str, tuple[int, ...]]:
    """(device, inode, size, mtime, ctime) of arena.toml and of every harness file it lists: a file
    changed since an earlier call differs here without being hashed again (ctime cannot be set back
    from user space, so even a file rewritten with its old size and mtime is seen)."""
    ids: dict[str, tuple[int, ...]] = {}
    for rel in [MANIFEST.name, *manifest()["arena"]["harness"]]:
        try:
            st = (ARENA_DIR / rel).stat()
        except OSError:
            ids[rel] = ()
            continue
        ids[rel] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return ids


def harness_hash(m: dict[str, Any] | None = None) -> str:
    """One sha256 over every harness file's path and hash: names the harness version of a result."""
    h = hashlib.sha256()
    for rel in sorted((m or manifest())["arena"]["harness"]):
        h.update(f"{rel}={sha256(rel) if (ARENA_DIR / rel).is_file() else 'missing'}\n".encode())
    return h.hexdigest()


def pin() -> dict[str, str]:
    """Rewrite the [pins] table of arena.toml from the current harness files; returns the pins."""
    m = manifest()
    text = MANIFEST.read_text(encoding="utf-8")
    head = text.split("\n[pins]\n")[0].rstrip("\n")
    pins = {rel: sha256(rel) for rel in m["arena"]["harness"]}
    body = "\n".join(f'"{rel}" = "{digest}"' for rel, digest in pins.items())
    tmp = MANIFEST.with_suffix(".tmp")
    tmp.write_text(f"{head}\n\n[pins]\n{body}\n", encoding="utf-8")
    tmp.replace(MANIFEST)
    return pins
