"""The pinned arena and the swarm's settings, written together by `init`.

`init(arena_dir)` pins every file of the arena (content-addressed blobs, size-capped) together with
its hash, the metric and the editable list, in one Lua step that refuses to overwrite an existing
swarm: re-init with the same arena is a no-op, with a different one a `Conflict` naming the files.
A machine that joins later needs only the Redis URL: `export_arena(dir)` writes the pinned files,
`arena_diff(dir)` says which local files differ from the pin. The settings (metric, direction,
editable files, min_delta, lease_s, max_attempts, heartbeat_ttl_s) are written once, with the pin,
and never change; the Lua scripts read lease_s, max_attempts, heartbeat_ttl_s, direction and
min_delta from them. `init` also sets the
brief from the manifest's brief file (`swarm.board.brief`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from swarm import defaults
from swarm.board.brief import BriefMixin
from swarm.board.core import pairs, s
from swarm.errors import ArenaError, Conflict, NotFound, UserError
from swarm.experiment.manifest import harness_mismatches, load_manifest
from swarm.models import SwarmSettings

# Never pinned: interpreter/tool caches and VCS data are not part of what decides the metric.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".cache", ".venv"})
SKIP_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
SKIP_NAMES = frozenset({".DS_Store"})


def scan_arena(arena_dir: str | Path) -> dict[str, bytes]:
    """Every pinned-able file of the arena (relative posix path -> bytes), enforcing the size caps."""
    root = Path(arena_dir)
    if not root.is_dir():
        raise ArenaError(f"{arena_dir} is not a directory")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts[:-1]) or rel.parts[0] in SKIP_DIRS:
            continue
        if not path.is_file() or path.name in SKIP_NAMES or path.name.endswith(SKIP_SUFFIXES):
            continue
        data = path.read_bytes()
        if len(data) > defaults.ARENA_FILE_MAX_BYTES:
            raise ArenaError(
                f"arena file {rel.as_posix()} is {len(data)} bytes, over the {defaults.ARENA_FILE_MAX_BYTES}-byte cap"
            )
        total += len(data)
        if total > defaults.ARENA_TOTAL_MAX_BYTES:
            raise ArenaError(f"arena {arena_dir} is over the {defaults.ARENA_TOTAL_MAX_BYTES}-byte total cap")
        files[rel.as_posix()] = data
    return files


def file_hashes(files: dict[str, bytes]) -> dict[str, str]:
    return {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}


def arena_hash(hashes: dict[str, str]) -> str:
    """One hash over the sorted (path, sha256) list: equal iff every file is equal."""
    h = hashlib.sha256()
    for p in sorted(hashes):
        h.update(f"{p}\0{hashes[p]}\n".encode())
    return h.hexdigest()


def diff_hashes(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))


class ArenaPinMixin(BriefMixin):
    def init(
        self,
        arena_dir: str | Path,
        min_delta: float | None = None,
        lease_s: float | None = None,
        max_attempts: int | None = None,
        heartbeat_ttl_s: float | None = None,
    ) -> SwarmSettings:
        """Create the swarm pinned to `arena_dir` (no-op when it exists with the same arena)."""
        manifest = load_manifest(arena_dir)
        bad = harness_mismatches(arena_dir, manifest)
        if bad:
            raise ArenaError(f"arena harness files differ from their pins in arena.toml: {', '.join(bad)}")
        if min_delta is not None and min_delta < 0:
            raise UserError("--min-delta must be >= 0")
        if lease_s is not None and lease_s <= 0:
            raise UserError("--lease-s must be > 0")
        if max_attempts is not None and max_attempts < 1:
            raise UserError("--max-attempts must be >= 1")
        if heartbeat_ttl_s is not None and not defaults.HEARTBEAT_TTL_MIN_S <= heartbeat_ttl_s < math.inf:
            raise UserError(f"--heartbeat-ttl-s must be a number of seconds >= {defaults.HEARTBEAT_TTL_MIN_S}")
        files = scan_arena(arena_dir)
        hashes = file_hashes(files)
        ahash = arena_hash(hashes)
        existing = self.settings()
        if existing is not None:
            return self._same_arena(existing, hashes, ahash)
        pipe = self.r.pipeline(transaction=False)
        for p, data in files.items():
            pipe.hsetnx(self.k.arena_blobs, hashes[p], data)
        pipe.execute()
        fields = {
            "name": self.swarm,
            "arena_name": manifest.arena.name,
            "arena_hash": ahash,
            "metric_name": manifest.metric.name,
            "direction": manifest.metric.direction,
            "editable": "\n".join(manifest.arena.editable),
            "brief_file": manifest.arena.brief or "",
            "min_delta": repr(float(defaults.MIN_DELTA if min_delta is None else min_delta)),
            "lease_s": repr(float(defaults.LEASE_S if lease_s is None else lease_s)),
            "max_attempts": str(int(defaults.MAX_ATTEMPTS if max_attempts is None else max_attempts)),
            "heartbeat_ttl_s": repr(float(defaults.HEARTBEAT_TTL_S if heartbeat_ttl_s is None else heartbeat_ttl_s)),
        }
        args: list[str] = [str(defaults.EVENTS_MAXLEN), str(len(fields))]
        for kv in fields.items():
            args.extend(kv)
        for p in sorted(hashes):
            args.extend((p, hashes[p]))
        keys = [self.k.settings, self.k.arena_files, self.k.events]
        created, _info = self.scripts.init(keys=keys, args=args)
        settings = self.settings()
        assert settings is not None
        if not created:  # another process initialised it between our read and our write
            return self._same_arena(settings, hashes, ahash)
        if manifest.arena.brief:
            brief = Path(arena_dir) / manifest.arena.brief
            if brief.is_file():
                self.set_brief(brief.read_text(encoding="utf-8"))
        return settings

    def _same_arena(self, existing: SwarmSettings, hashes: dict[str, str], ahash: str) -> SwarmSettings:
        if existing.arena_hash == ahash:
            return existing
        differ = diff_hashes(self._pinned_hashes(), hashes)
        raise Conflict(
            f"swarm {self.swarm!r} is pinned to a different arena ({existing.arena_name}); "
            f"differing files: {', '.join(differ) or '(none: hash scheme changed)'}"
        )

    def settings(self) -> SwarmSettings | None:
        """The swarm's settings, or None before `init`."""
        raw = pairs(self.r.hgetall(self.k.settings))
        if not raw:
            return None
        d = {k: s(v) for k, v in raw.items()}
        return SwarmSettings(
            name=d["name"] or self.swarm,
            arena_name=d["arena_name"] or "",
            arena_hash=d["arena_hash"] or "",
            metric_name=d["metric_name"] or "",
            direction=d["direction"],
            editable=[e for e in (d.get("editable") or "").split("\n") if e],
            brief_file=d.get("brief_file") or None,
            min_delta=float(d["min_delta"] or 0),
            lease_s=float(d["lease_s"] or defaults.LEASE_S),
            max_attempts=int(d["max_attempts"] or defaults.MAX_ATTEMPTS),
            heartbeat_ttl_s=float(d.get("heartbeat_ttl_s") or defaults.HEARTBEAT_TTL_S),
            created_ms=int(d["created_ms"] or 0),
        )

    def require_settings(self) -> SwarmSettings:
        st = self.settings()
        if st is None:
            raise NotFound(f"swarm {self.swarm!r} does not exist: run `swarm init --arena PATH` first")
        return st

    def _pinned_hashes(self) -> dict[str, str]:
        return {str(s(k)): str(s(v)) for k, v in pairs(self.r.hgetall(self.k.arena_files)).items()}

    def arena_files(self) -> dict[str, bytes]:
        """The pinned arena: relative path -> bytes."""
        hashes = self._pinned_hashes()
        if not hashes:
            raise NotFound(f"swarm {self.swarm!r} has no pinned arena: run `swarm init --arena PATH` first")
        paths = sorted(hashes)
        blobs = self.r.hmget(self.k.arena_blobs, [hashes[p] for p in paths])
        out: dict[str, bytes] = {}
        for p, b in zip(paths, blobs, strict=True):
            if b is None:
                raise NotFound(f"pinned arena blob for {p} is missing from the board")
            out[p] = b
        return out

    def arena_diff(self, arena_dir: str | Path) -> list[str]:
        """Files of `arena_dir` that differ from the pinned arena (missing or extra count); [] if equal."""
        pinned = self._pinned_hashes()
        if not pinned:
            raise NotFound(f"swarm {self.swarm!r} has no pinned arena")
        return diff_hashes(pinned, file_hashes(scan_arena(arena_dir)))

    def export_arena(self, dest_dir: str | Path) -> list[str]:
        """Write the pinned arena into `dest_dir`; returns the relative paths written."""
        return write_files(dest_dir, self.arena_files())


def write_files(dest_dir: str | Path, files: dict[str, bytes]) -> list[str]:
    dest = Path(dest_dir)
    for rel, data in files.items():
        target = dest / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ArenaError(f"refusing to write {rel!r} outside {dest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return sorted(files)
