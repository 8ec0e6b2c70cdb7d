"""Harness integrity: the sha256 pins of `arena.toml` and the harness hash recorded in each result.

`mismatches()` lists harness files (every harness module and the shipped corpus, as named in
`[arena] harness`) whose hash differs from `[pins]`; a run with any mismatch is refused.
`pin()` rewrites the `[pins]` table (the last table of arena.toml) from the files as they are.
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
