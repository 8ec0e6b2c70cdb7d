"""Snapshots: the whole board state of one swarm as one file, for archives, reports, moving a swarm and copying it.

`export_swarm(r, swarm, path)` writes every key under the swarm's prefix (`swarm:{NAME}:`) with its
type, its remaining TTL and its value, read type by type (string, hash, list, set, zset, stream), into
one gzip-compressed msgpack file. Being generic over keys, it stays complete as the board grows new
keys: settings, arena pin and files, brief, hypotheses and queues, results, patches, leaders and
their history, events, noise samples, the agent registry, proposer health, usage and bandit arms,
counters.

`import_swarm(r, snap, name=None)` writes the keys back into a swarm that does not exist yet on that
server (refusing to overwrite any key), so export then import on another Redis reproduces the board.
Values are type-aware reads rather than DUMP payloads so a snapshot loads into any Redis version
and can be inspected with msgpack alone.

`rename_snapshot(snap, name)` (what `import_swarm(..., name=NAME)` and `swarm import --as NAME` use)
makes the snapshot another swarm's, so a copy can live beside the original on the same server. Key
names are stored relative to the prefix, so they follow the new name by construction; what refers to
the swarm inside the data is rewritten too:
- a value that is a key name of the swarm (a hypothesis' `queue`, which release, reopen, giveback and
  the reaper ZADD to): every string value, hash value, list item, set or zset member and stream
  field value that starts with the old prefix gets the new one;
- the swarm name the settings hash keeps (`name`).
Every other reference is built from the prefix the caller passes (`hyp:<id>`, `claims:<agent>`) and
needs nothing. tests/test_snapshot.py checks that no byte of the old name is left in a copy of a
board that uses every key type, so a new key that stores the name inside a blob fails there.

`temporary_board(path)` loads a snapshot into a private redis-server on a free loopback port and
yields a `Board` for it (the report uses this to read an archived swarm with the same code as a
live one); the server and its directory are removed on exit.

Consistency: one read-only Lua script lists and reads every key, so all values are from one
instant even while agents write (the server is busy for the script's duration: milliseconds for a
board of thousands of results). Stream consumer groups are recreated with their last delivered id;
their pending-entry lists are not kept (the board does not use them).

File layout (msgpack map): format, version, swarm, exported_ms (server clock), redis_version,
keys: list of {key (relative to the prefix), type, pttl_ms (-1: none), value, [last_id, groups]}.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgpack
import redis
from pydantic import BaseModel, Field, ValidationError

from swarm.board.embedded import RedisProcess
from swarm.board.facade import Board
from swarm.board.keys import Keys
from swarm.errors import Conflict, UserError

__all__ = [
    "Snapshot",
    "export_swarm",
    "import_swarm",
    "read_snapshot",
    "rename_snapshot",
    "snapshot_swarm",
    "temporary_board",
    "write_snapshot",
]

log = logging.getLogger(__name__)

FORMAT = "swarm-snapshot"
VERSION = 1
SCAN_COUNT = 1000  # keys per SCAN step inside the snapshot script and the import check
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


# Read-only and atomic: every value comes from the same instant, however busy the swarm is. KEYS[1]
# only names the swarm's hash slot (all its keys share it), so this also runs on a Redis Cluster.
SNAPSHOT_LUA = """
-- snapshot: read every key under a swarm's prefix at one instant.
-- KEYS[1] the swarm's settings key (declares the slot)  ARGV[1] key prefix  ARGV[2] SCAN COUNT
-- Returns {TIME, {{key, type, pttl, value, {last_id, {{group, last_delivered}...}}}...}}
local out = {}
local cursor = '0'
local function field(flat, name)
  for i = 1, #flat, 2 do if flat[i] == name then return flat[i + 1] end end
  return false
end
repeat
  local res = redis.call('SCAN', cursor, 'MATCH', ARGV[1] .. '*', 'COUNT', ARGV[2])
  cursor = res[1]
  for _, key in ipairs(res[2]) do
    local t = redis.call('TYPE', key)['ok']
    local v = false
    local extra = {}
    if t == 'string' then v = redis.call('GET', key)
    elseif t == 'hash' then v = redis.call('HGETALL', key)
    elseif t == 'list' then v = redis.call('LRANGE', key, 0, -1)
    elseif t == 'set' then v = redis.call('SMEMBERS', key)
    elseif t == 'zset' then v = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    elseif t == 'stream' then
      v = redis.call('XRANGE', key, '-', '+')
      local groups = {}
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        table.insert(groups, {field(g, 'name'), field(g, 'last-delivered-id')})
      end
      extra = {field(redis.call('XINFO', 'STREAM', key), 'last-generated-id'), groups}
    end
    table.insert(out, {key, t, redis.call('PTTL', key), v, extra})
  end
until cursor == '0'
return {redis.call('TIME'), out}
"""


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def snapshot_swarm(r: redis.Redis, swarm: str) -> Snapshot:
    """Read every key of `swarm` into a Snapshot, all values from one instant (UserError if it has none)."""
    keys = Keys(swarm)
    prefix = keys.prefix
    (sec, usec), rows = r.register_script(SNAPSHOT_LUA)(keys=[keys.settings], args=[prefix, SCAN_COUNT])
    if not rows:
        raise UserError(f"swarm {swarm!r} has no keys on this server; nothing to export")
    entries: list[SnapshotEntry] = []
    for key, kind_raw, pttl, value, extra in rows:
        kind = _text(kind_raw)
        if kind not in ("string", "hash", "list", "set", "zset", "stream"):
            raise UserError(f"cannot snapshot key {_text(key)!r} of type {kind}")
        fields: dict[str, Any] = {}
        if kind == "hash":
            value = dict(_pairs(value))
        elif kind == "set":
            value = sorted(value)
        elif kind == "zset":
            value = [[m, float(sc)] for m, sc in _pairs(value)]
        elif kind == "stream":
            value = [[_text(eid), dict(_pairs(flat))] for eid, flat in value]
            last_id, groups = extra
            fields = {"last_id": _text(last_id), "groups": [(_text(g), _text(d)) for g, d in groups]}
        entries.append(
            SnapshotEntry(
                key=_text(key)[len(prefix) :],
                type=kind,
                pttl_ms=int(pttl) if int(pttl) > 0 else -1,
                value=value,
                **fields,
            )
        )
    entries.sort(key=lambda e: e.key)
    return Snapshot(
        swarm=swarm,
        exported_ms=int(sec) * 1000 + int(usec) // 1000,
        redis_version=str(r.info("server").get("redis_version", "")),
        keys=entries,
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


def _retarget(v: Any, old: bytes, new: bytes) -> Any:
    """`v` with the old prefix swapped for the new one when it is a key name of the swarm, else `v`."""
    if isinstance(v, bytes) and v.startswith(old):
        return new + v[len(old) :]
    if isinstance(v, str) and v.startswith(old.decode()):
        return new.decode() + v[len(old) :]
    return v


def rename_snapshot(snap: Snapshot, name: str) -> Snapshot:
    """`snap` as the snapshot of swarm `name`: stored key names and the settings' name rewritten."""
    old, new = Keys(snap.swarm).prefix.encode(), Keys(name).prefix.encode()  # Keys checks the name
    if name == snap.swarm:
        return snap
    entries: list[SnapshotEntry] = []
    for e in snap.keys:
        v = e.value
        if e.type == "string":
            v = _retarget(v, old, new)
        elif e.type == "hash":
            v = {f: _retarget(x, old, new) for f, x in v.items()}
            if e.key == "settings":
                for f in (b"name", "name"):
                    if f in v:
                        v[f] = name.encode() if isinstance(f, bytes) else name
        elif e.type in ("list", "set"):
            v = [_retarget(x, old, new) for x in v]
        elif e.type == "zset":
            v = [[_retarget(m, old, new), sc] for m, sc in v]
        elif e.type == "stream":
            v = [[eid, {f: _retarget(x, old, new) for f, x in fields.items()}] for eid, fields in v]
        entries.append(e.model_copy(update={"value": v}))
    return snap.model_copy(update={"swarm": name, "keys": entries})


def import_swarm(r: redis.Redis, snap: Snapshot, name: str | None = None) -> int:
    """Write `snap` into its swarm on `r`, or into swarm `name` (see `rename_snapshot`); Conflict if
    that swarm has any key. Returns keys written."""
    exported_as = snap.swarm
    if name is not None:
        snap = rename_snapshot(snap, name)
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
    log.info("snapshot: imported swarm=%s from=%s keys=%d", snap.swarm, exported_as, len(snap.keys))
    return len(snap.keys)


# --- a private server for reading a snapshot ----------------------------------------------------------


@contextlib.contextmanager
def temporary_board(path: str | Path) -> Iterator[Board]:
    """A `Board` over the snapshot at `path`, served by a private redis-server removed on exit."""
    snap = read_snapshot(path)
    workdir = tempfile.mkdtemp(prefix="swarm-snapshot-")
    server = RedisProcess(workdir)
    try:
        server.start()
        with redis.Redis.from_url(server.url, socket_timeout=5) as r:
            import_swarm(r, snap)
        with Board.connect(server.url, snap.swarm) as board:  # closed before its server stops
            yield board
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
