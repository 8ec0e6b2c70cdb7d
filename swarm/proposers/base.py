"""The proposer interface: every source of ideas (classical optimizer, Anthropic, OpenAI, local
OpenAI-compatible servers) plugs into the agent the same way.

An agent holds one or more proposers (`--proposer SPEC[=WEIGHT]`, repeatable). For each experiment it
picks one (by weight, or by a cost-aware bandit) and calls:

- `ideate(ctx, n)` when the board has no open hypothesis for the agent's track: up to `n` distinct
  ideas, each a title and a rationale, optionally with a ready patch (the classical proposer always
  gives one). The agent posts them to the board (dedup applies) and claims one.
- `implement(hypothesis, ctx)` for a claimed hypothesis without a patch: the new contents of the
  editable files. Proposers that cannot implement free text (classical) set `can_implement = False`;
  such an agent only claims hypotheses that carry a patch.
- `repair(hypothesis, ctx, files, error_tail)` after a run crashed in a way that looks like an
  implementation bug: fixed file contents, or None to give up.

Every call returns a `Usage` (tokens, cost, latency) that ends up in the published result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from swarm.models import Direction, Status


def source_label(name: str) -> str:
    """The label results and hypotheses carry for proposer `name` (its spec without weight):
    `classical`, or `llm:<provider>/<model>` (`anthropic:claude-x` -> `llm:anthropic/claude-x`)."""
    if name == "classical" or name.startswith("llm:"):
        return name
    provider, _, model = name.partition(":")
    return f"llm:{provider}/{model or provider}"


@dataclass
class Usage:
    """LLM accounting for one call (all zero for the classical proposer)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    calls: int = 0

    def add(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
            self.latency_s + other.latency_s,
            self.calls + other.calls,
        )


@dataclass
class PastResult:
    """One line of board history as proposers see it (bounded, newest/best first as the agent chooses)."""

    title: str  # first line of the hypothesis text
    status: Status
    metric: float | None
    delta: float | None  # metric minus the parent leader's metric (negative is better when minimizing)
    on_current_leader: bool  # built on the leader generation the proposer is editing now
    proposer: str = ""
    error: str = ""  # error summary for crash/invalid
    meta: dict[str, float | int | str] = field(default_factory=dict)  # e.g. the classical params tried
    replicates: list[float] = field(default_factory=list)  # this code's confirmation runs (other seeds)

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a plain "keep" from a script becomes the member; a typo raises


@dataclass
class ProposalContext:
    """What a proposer may look at. Built by the agent from the board; bounded in size."""

    track: str  # e.g. "cpu:2c" or "gpu:NVIDIA-H100-80GB-HBM3"
    profile: str  # arena profile of this track ("cpu", "gpu"): selects per-profile constants
    metric_name: str
    direction: Direction
    files: dict[str, str]  # the leader's editable files: relative path -> text
    leader_metric: float | None  # None before the track has a leader
    leader_generation: int
    brief: str = ""  # program.md, as currently set on the board
    brief_version: int = 0
    history: list[PastResult] = field(default_factory=list)
    noise_sd: float | None = None  # the track's seed noise (pooled sd of repeated runs); None before it is measured

    def __post_init__(self) -> None:
        self.direction = Direction(self.direction)  # as for PastResult.status


@dataclass
class Idea:
    """A proposed hypothesis. `patch` is a unified diff against `ctx.files` (paths a/<file> b/<file>)."""

    title: str
    rationale: str = ""
    patch: str | None = None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, float | int | str] = field(default_factory=dict)


class Proposer(Protocol):
    """What the agent needs from a proposer. `name` is its spec without weight, e.g. `classical`,
    `anthropic:claude-sonnet-4-5`, `openai-compatible:qwen3@http://127.0.0.1:8000/v1`."""

    name: str
    can_implement: bool

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]: ...

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]: ...

    def repair(
        self, hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str
    ) -> tuple[dict[str, str] | None, Usage]: ...
