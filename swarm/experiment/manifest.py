"""The arena manifest (`arena.toml`): what an arena is, parsed and validated.

An arena is a directory with an `arena.toml` at its root. The manifest names the editable files (the
only files an experiment may change), the brief LLM proposers read, the fixed harness files and their
pinned sha256 hashes, the metric (name and direction), the run command and how its metric is read,
and the profiles (budget and hard timeout per profile).

    [arena]
    name = "gpt-bpb"
    editable = ["train.py"]
    brief = "program.md"
    harness = ["harness/__init__.py", "harness/run.py"]    # fixed files, pinned in [pins]

    [metric]
    name = "val_bpb"
    direction = "minimize"                 # or "maximize"

    [run]
    # placeholders: {python} {profile} {budget_s} {seed} {out} {device} {sandbox} (bwrap|none|auto:
    # an arena whose harness sandboxes its children takes it; swarm.experiment.sandbox)
    command = ["{python}", "-m", "harness", "run", "--profile", "{profile}", "--budget", "{budget_s}",
               "--seed", "{seed}", "--out", "{out}", "--device", "{device}", "--sandbox", "{sandbox}"]
    # optional: the same command started ahead of its run (no {seed}): it gets ready, then reads the
    # run from stdin as one JSON line {"seed": N} and runs it; EOF instead: it exits without a result
    prestart = ["{python}", "-m", "harness", "run", "--wait", "--profile", "{profile}", ...]
    result = "json"                        # "json": read the JSON file {out}; "regex": search the log
    metric_key = "val_bpb"                 # json mode: key of the metric in {out}
    metric_regex = ""                      # regex mode: one capture group holding the number
    default_profile = "auto"               # auto: "gpu" when CUDA is available, else "cpu"

    [profiles.cpu]
    budget_s = 60                          # training wall-clock budget
    timeout_s = 180                        # hard deadline of the whole run (setup + train + eval)

    [pins]
    "harness/run.py" = "<sha256 hex>"

The run command executes with the arena directory as its working directory. In json mode the result
file may carry a `status` (`ok`, `crash`, `timeout`, `invalid`) and an `error`; without one, exit
code 0 plus a parsable metric means `ok`. The swarm never imports arena code: it only runs the
command and reads its result.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from swarm.errors import ArenaError
from swarm.models import Direction

MANIFEST = "arena.toml"
MAX_PATH_CHARS = 200  # relative paths only; long ones are a sign of a malformed manifest


def _relpath(p: str) -> str:
    if not p or len(p) > MAX_PATH_CHARS or p.startswith("/") or ".." in Path(p).parts or "\\" in p:
        raise ValueError(f"bad relative path {p!r}")
    return p


class ArenaSection(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    editable: list[str] = Field(min_length=1, max_length=32)
    brief: str | None = None
    harness: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("editable", "harness")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        return [_relpath(p) for p in v]


class MetricSection(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    direction: Direction  # which way is better: Direction.gain


class RunSection(BaseModel):
    command: list[str] = Field(min_length=1, max_length=64)
    prestart: list[str] = Field(default_factory=list, max_length=64)  # empty: runs are started cold
    result: Literal["json", "regex"] = "json"
    metric_key: str = "val_bpb"
    metric_regex: str = ""
    default_profile: str = "auto"


class Profile(BaseModel):
    budget_s: float = Field(gt=0, le=86_400)
    timeout_s: float = Field(gt=0, le=172_800)


class Manifest(BaseModel):
    arena: ArenaSection
    metric: MetricSection
    run: RunSection
    profiles: dict[str, Profile] = Field(min_length=1)
    pins: dict[str, str] = Field(default_factory=dict)

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise ArenaError(f"arena {self.arena.name!r} has no profile {name!r} (has {sorted(self.profiles)})")
        return self.profiles[name]


def load_manifest(arena_dir: str | Path) -> Manifest:
    """Parse and validate `<arena_dir>/arena.toml`; ArenaError with one line on any problem."""
    path = Path(arena_dir) / MANIFEST
    if not path.is_file():
        raise ArenaError(f"{arena_dir} is not an arena: no {MANIFEST}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Manifest.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ArenaError(f"{path}: invalid TOML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ArenaError(f"{path}: {where}: {first['msg']}") from exc


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def harness_mismatches(arena_dir: str | Path, manifest: Manifest | None = None) -> list[str]:
    """Harness files whose sha256 differs from the pin (or that are missing / unpinned)."""
    m = manifest or load_manifest(arena_dir)
    bad = []
    for rel in m.arena.harness:
        p = Path(arena_dir) / rel
        if not p.is_file() or m.pins.get(rel) != sha256_file(p):
            bad.append(rel)
    return bad
