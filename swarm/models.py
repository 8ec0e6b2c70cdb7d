"""The board's records: pydantic models with explicit limits, validated at every boundary.

Inputs (`HypothesisIn`, `ResultIn`, `AgentInfo`) are what callers hand the board; stored records
(`Hypothesis`, `Result`, `Leader`, `AgentRecord`, `Event`, `SwarmSettings`) are what it hands back.
On the wire they are msgpack (`pack`/`unpack`), except where a Lua script must read the fields
(hypothesis state, leaders, settings), which are plain hash fields.

The vocabularies are string enums: `State`, `Kind`, `Status` and `Direction` (whose `gain` is the one
place that knows which way a metric improves). A member is its value everywhere it leaves Python:
msgpack, Redis arguments, JSON and f-strings all see "keep", never "Status.KEEP".

Hypothesis states (`State`) and their allowed transitions, enforced by the Lua scripts:

    open     -> claimed (claim) | cancelled (cancel)
    claimed  -> done | failed (complete, current token only)
             -> open (release with the token; or reaped after the lease expired, attempts+1)
             -> failed (reaped with attempts reaching max_attempts)
             -> cancelled (cancel: the token is revoked, a later result is flagged stale)
    done, failed, cancelled: final
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal, TypeVar

import msgpack
from pydantic import BaseModel, ConfigDict, Field, field_validator

from swarm import defaults
from swarm.errors import UserError


class State(StrEnum):
    """A hypothesis' state on the board (transitions above, enforced by the Lua scripts)."""

    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Kind(StrEnum):
    """What a hypothesis (and the job that runs it) is for."""

    EXPLORE = "explore"  # an idea: screened against the leader, a candidate if it clears the noise
    CONFIRM = "confirm"  # a candidate's code again with another seed
    PORT = "port"  # a win on another track, to be validated here (its results are explorations)
    BASELINE = "baseline"  # the pristine arena with one seed: the track's noise and first leader


class Status(StrEnum):
    """A result's outcome. keep: a run that counts (a candidate, or a baseline or confirmation run
    with a metric); discard: an exploration that did not clear screening; the rest: no metric."""

    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    TIMEOUT = "timeout"
    INVALID = "invalid"

    @property
    def failed(self) -> bool:
        """No metric came out of the run."""
        return self in (Status.CRASH, Status.TIMEOUT, Status.INVALID)


class Direction(StrEnum):
    """Which way the metric improves; `gain` is the one place that knows."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    def gain(self, reference: float, value: float) -> float:
        """How much better `value` is than `reference` (positive: better), in the metric's units."""
        return reference - value if self is Direction.MINIMIZE else value - reference


E = TypeVar("E", bound=StrEnum)


def parse_enum(kind: type[E], text: str, what: str) -> E:
    """`text` as a member of `kind` (a member passes through); UserError naming the choices otherwise."""
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"unknown {what} {text!r} (one of {', '.join(kind)})") from None


TRACK_RE = re.compile(r"^[A-Za-z0-9_.:\-+@/ ]{1,128}$")
SOURCE_RE = re.compile(r"^(human|classical|llm:[A-Za-z0-9_.\-]+/[A-Za-z0-9_.:\-/@]+)$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
Scalar = int | float | str


def check_track(track: str) -> str:
    if not TRACK_RE.match(track):
        raise UserError(f"bad track {track!r}: 1-128 of letters, digits and _ . : - + @ / space")
    return track


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def _check_meta(v: dict[str, Scalar]) -> dict[str, Scalar]:
    if len(pack(v)) > defaults.META_MAX_BYTES:
        raise ValueError(f"meta is over {defaults.META_MAX_BYTES} bytes packed")
    for k in v:
        if not k or len(k) > 64:
            raise ValueError(f"meta key {k!r} must be 1-64 characters")
    return v


class HypothesisIn(_Strict):
    """An idea to test. `patch` is a unified diff against the pinned arena (None: text only)."""

    text: str = Field(min_length=1, max_length=defaults.HYP_TEXT_MAX_CHARS)
    source: str = "human"
    author: str = Field(default="", max_length=128)
    priority: int = Field(default=0, ge=defaults.PRIORITY_MIN, le=defaults.PRIORITY_MAX)
    patch: str | None = Field(default=None, max_length=defaults.PATCH_MAX_BYTES)
    tags: list[str] = Field(default_factory=list, max_length=defaults.TAGS_MAX)
    track: str | None = None
    meta: dict[str, Scalar] = Field(default_factory=dict)
    kind: Kind = Kind.EXPLORE
    parent: str | None = Field(default=None, max_length=128)
    seed: int | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        if "\x00" in v:
            raise ValueError("text contains NUL bytes")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not SOURCE_RE.match(v) or len(v) > 128:
            raise ValueError(f"source {v!r} must be human, classical or llm:<provider>/<model>")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for t in v:
            if not t.strip() or len(t) > defaults.TAG_MAX_CHARS:
                raise ValueError(f"tag {t!r} must be 1-{defaults.TAG_MAX_CHARS} characters")
        return v

    @field_validator("track")
    @classmethod
    def _track(cls, v: str | None) -> str | None:
        return None if v is None else check_track(v)

    @field_validator("meta")
    @classmethod
    def _meta(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        return _check_meta(v)


class ImplFailure(BaseModel):
    """A proposer could not turn the hypothesis into code (board/lua/giveback.lua): the claim went back
    to open. `counted`: against the hypothesis' attempts, because that proposer has implemented other
    hypotheses since (`ok_at` was its count of implementations then); `reopened`: before a reopen."""

    model_config = ConfigDict(extra="ignore")
    proposer: str
    reason: str
    agent: str = ""
    ms: int = 0
    ok_at: int = 0
    counted: bool = False
    reopened: bool = False


class Hypothesis(BaseModel):
    """A stored hypothesis: the posted fields (patch by hash) plus its claim state."""

    id: str
    text: str
    source: str
    author: str
    priority: int
    patch_hash: str | None
    tags: list[str]
    track: str | None
    meta: dict[str, Scalar]
    kind: Kind
    parent: str | None
    seed: int | None
    state: State
    attempts: int = 0
    created_ms: int
    claimed_by: str | None = None
    token: int | None = None
    deadline_ms: int | None = None
    failures: list[ImplFailure] = Field(default_factory=list)  # implementations that failed (newest last)

    @property
    def title(self) -> str:
        return self.text.strip().splitlines()[0]

    @property
    def failed_proposers(self) -> set[str]:
        """Proposers that failed to implement it since it was last (re)opened by a human."""
        return {f.proposer for f in self.failures if not f.reopened}


class Claim(BaseModel):
    """A lease on one hypothesis: renew/release/complete and publish with `token`."""

    hypothesis: Hypothesis
    token: int
    deadline_ms: int


class ResultIn(_Strict):
    """One experiment's outcome as the agent publishes it. `result_id` makes re-publishing a no-op."""

    result_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    hypothesis_id: str | None = Field(default=None, max_length=128)  # None for baseline runs
    token: int | None = None
    agent_id: str = Field(min_length=1, max_length=128)
    proposer: str = Field(default="", max_length=128)
    track: str
    parent_generation: int = Field(default=0, ge=0)
    parent_patch_hash: str | None = Field(default=None, pattern=SHA_RE.pattern)
    patch_hash: str | None = Field(default=None, pattern=SHA_RE.pattern)
    status: Status
    metric: float | None = None
    metric_name: str = Field(default="", max_length=64)
    direction: Direction = Direction.MINIMIZE
    seed: int | None = None
    training_s: float | None = Field(default=None, ge=0)
    steps: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    peak_mem_mb: float | None = Field(default=None, ge=0)
    error: str = Field(default="", max_length=defaults.ERROR_MAX_CHARS)
    llm_input_tokens: int = Field(default=0, ge=0)
    llm_output_tokens: int = Field(default=0, ge=0)
    llm_cost_usd: float = Field(default=0.0, ge=0)
    llm_latency_s: float = Field(default=0.0, ge=0)
    brief_version: int = Field(default=0, ge=0)
    started_ms: int | None = None
    finished_ms: int | None = None
    kind: Literal[Kind.EXPLORE, Kind.CONFIRM, Kind.BASELINE] = Kind.EXPLORE  # a port runs as an exploration
    candidate_of: str | None = Field(default=None, max_length=128)
    meta: dict[str, Scalar] = Field(default_factory=dict)
    sandbox: str = Field(default="", max_length=32)  # what the run ran in: "bwrap", "none"; "": not run, or unknown

    @field_validator("track")
    @classmethod
    def _track(cls, v: str) -> str:
        return check_track(v)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: float | None) -> float | None:
        if v is not None and (v != v or v in (float("inf"), float("-inf"))):
            raise ValueError("metric must be finite (use status crash/invalid and metric None)")
        return v

    @field_validator("meta")
    @classmethod
    def _meta(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        return _check_meta(v)


class Result(ResultIn):
    """A stored result: `stale` when its token was not the hypothesis' current lease at publish time."""

    model_config = ConfigDict(extra="ignore")
    stale: bool = False
    published_ms: int = 0


class PublishOutcome(BaseModel):
    stored: bool  # False: a result with this id existed (idempotent no-op)
    stale: bool  # the token was not the hypothesis' current token, or its lease had expired


class Leader(BaseModel):
    track: str
    generation: int
    metric: float
    patch_hash: str
    hypothesis_id: str | None = None
    agent_id: str
    result_id: str
    time_ms: int
    runs: int = 0  # how many runs `metric` is the mean of (0: a leader written before the field existed)


MoveReason = Literal["ok", "stale_generation", "not_better", "stale_result", "unknown_result"]


class MoveOutcome(BaseModel):
    accepted: bool
    reason: MoveReason
    leader: Leader | None  # the leader after the call (the new one, or the one that refused you)


class SwarmSettings(BaseModel):
    name: str
    arena_name: str
    arena_hash: str
    metric_name: str
    direction: Direction
    editable: list[str]
    brief_file: str | None = None
    min_delta: float = Field(ge=0)
    lease_s: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    # an agent silent this long is dead and its claims are reaped (a swarm pinned before it existed: the default)
    heartbeat_ttl_s: float = Field(default=defaults.HEARTBEAT_TTL_S, ge=defaults.HEARTBEAT_TTL_MIN_S)
    created_ms: int


class AgentInfo(_Strict):
    agent_id: str = Field(pattern=r"^[A-Za-z0-9_.:\-@]{1,128}$")
    host: str = Field(default="", max_length=256)
    gpu: str = Field(default="", max_length=256)
    track: str
    proposers: list[str] = Field(default_factory=list, max_length=32)
    version: str = Field(default="", max_length=64)
    pid: int | None = None
    # "host:port" of its /metrics (the port it found free), "" when not served; for discovery by Prometheus
    metrics_addr: str = Field(default="", max_length=300)
    sandbox: str = Field(default="", max_length=32)  # its runs': "bwrap", "none" (unsandboxed); "": unknown

    @field_validator("track")
    @classmethod
    def _track(cls, v: str) -> str:
        return check_track(v)


class ProposerHealth(BaseModel):
    """One proposer of one agent that is not healthy: `backoff` (waiting after failures in a row) or
    `paused` (after PROPOSER_PAUSE_AFTER of them; probed again at `until_ms`, agent clock)."""

    model_config = ConfigDict(extra="ignore")
    state: str
    reason: str = ""
    failures: int = 0  # in a row
    until_ms: int = 0


class ProposerUsage(BaseModel):
    """A proposer's running totals over the whole swarm, failed calls included (board: proposers:usage)."""

    calls: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class AgentRecord(AgentInfo):
    model_config = ConfigDict(extra="ignore")
    health: dict[str, ProposerHealth] = Field(default_factory=dict)  # its proposers not healthy now
    state: str = "registered"
    current: str | None = None
    last_ms: int = 0
    expires_ms: int = 0
    alive: bool = False


class Event(BaseModel):
    id: str
    time_ms: int
    kind: str
    text: str
    fields: dict[str, Any] = Field(default_factory=dict)
