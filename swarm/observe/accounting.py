"""Per-proposer accounting: what each proposer costs, how often its calls fail, and how often its ideas
became the leader.

    stats = proposer_stats(board.results(limit=10_000), {t: board.leader_history(t) for t in tracks},
                           usage=board.proposer_usage())
    stats["llm:anthropic/claude-sonnet-4-5"].acceptance_rate      # promoted / experiments
    board_proposer_stats(board)                                    # the same, read from a live board
    paused_agents(board.agents())                                  # {proposer: live agents that paused it}

Every rejected or broken proposal burns a full GPU run, so the figure that decides what a proposer is
worth is its acceptance rate, and what it costs is its spend per promotion. One function computes
them from board records only, so `swarm status`, the live view, the report and the exporter agree.

Two sources, one row per proposer (its result label: `classical`, `llm:<provider>/<model>`):

- The board's usage totals (`board.proposer_usage()`, keyed by the agents' proposer spec names, mapped
  to result labels with `swarm.proposers.base.source_label`; spec names with the same label add up):
  every LLM call the swarm made, ideation, implementation and repair, failed calls included.
  - calls, failed_calls: calls made; call batches that failed (after the SDK's retries).
  - input_tokens, output_tokens, cost_usd: summed over all of them, swarm-wide, never windowed.
  A proposer without usage totals (a board, or a snapshot, written before agents recorded them) keeps
  the sums stored on its results, whatever their kind, as before: ideation and failed calls missing.
- Results and leader moves (the newest results the caller read, and the full leader history):
  - A result belongs to `Result.proposer` ("none" when empty: runs the agent made on its own).
  - experiments: its exploration results (`Kind.EXPLORE`; ports and rebased candidates run as
    explore). Baseline seed runs and confirmations re-measure code that is already decided: they are
    not new proposals and count in `results` only.
  - kept: experiments that passed screening (status keep: a candidate worth confirming).
  - promoted: experiments a leader move names as its `result_id` (the move's candidate; the move's
    supporting confirmation runs are not counted again).
  - failed: experiments that ended crash, timeout or invalid (`Status.failed`).
  - moves: results of any kind a leader move names (a track's baseline move included).
  - mean_llm_latency_s: mean `llm_latency_s` over the results that made an LLM call (None without one).

Derived: acceptance_rate = promoted / experiments; crash_rate = failed / experiments (None with no
experiment); cost_per_promotion_usd = cost_usd / promoted (None with no promotion). When the results
read are a window of a longer swarm, the cost is still the swarm's total, so the cost per promotion
is an upper bound.

Over every result, `tally_stats` gives the same figures from the board's running summary
(`board.tally()`, kept by the publish script) and the few results the leader moves name, so `swarm
status` and the exporter cost the same at 100,000 results as at 100; `board_proposer_stats` uses it
unless asked for a window of the newest results. `swarm report` reads every result (it draws each).

A proposer that made calls but has no result yet (all its calls failed, or its ideas are still
queued) still gets a row: that is the proposer an operator most needs to see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from swarm import defaults
from swarm.board.results import Tally
from swarm.models import AgentRecord, Kind, Leader, ProposerUsage, Result, Status
from swarm.proposers.base import source_label

__all__ = [
    "NO_PROPOSER",
    "ProposerStats",
    "board_proposer_stats",
    "moved_results",
    "paused_agents",
    "proposer_stats",
    "tally_stats",
]

NO_PROPOSER = "none"  # the label of results published without a proposer (baseline runs)


@dataclass
class ProposerStats:
    """One proposer's figures; see the module docstring for what each counts."""

    proposer: str
    results: int = 0
    experiments: int = 0
    kept: int = 0
    promoted: int = 0
    failed: int = 0
    moves: int = 0
    calls: int = 0  # LLM calls (usage totals); 0 without them
    failed_calls: int = 0  # LLM call batches that failed (usage totals)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    llm_results: int = 0  # results that made at least one LLM call (the latency mean's denominator)
    llm_latency_s: float = 0.0  # summed over those results

    @property
    def acceptance_rate(self) -> float | None:
        return self.promoted / self.experiments if self.experiments else None

    @property
    def crash_rate(self) -> float | None:
        return self.failed / self.experiments if self.experiments else None

    @property
    def cost_per_promotion_usd(self) -> float | None:
        return self.cost_usd / self.promoted if self.promoted else None

    @property
    def mean_llm_latency_s(self) -> float | None:
        return self.llm_latency_s / self.llm_results if self.llm_results else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (`swarm status --json`): counts, sums and the derived rates."""
        return {
            "results": self.results,
            "experiments": self.experiments,
            "kept": self.kept,
            "promoted": self.promoted,
            "failed": self.failed,
            "moves": self.moves,
            "acceptance_rate": self.acceptance_rate,
            "crash_rate": self.crash_rate,
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "cost_per_promotion_usd": self.cost_per_promotion_usd,
            "mean_llm_latency_s": self.mean_llm_latency_s,
        }


def _moved_ids(leader_histories: Mapping[str, Iterable[Leader]] | Iterable[Leader]) -> set[str]:
    moves: Iterable[Leader]
    if isinstance(leader_histories, Mapping):
        moves = (m for h in leader_histories.values() for m in h)
    else:
        moves = leader_histories
    return {m.result_id for m in moves}


def usage_by_label(usage: Mapping[str, ProposerUsage]) -> dict[str, ProposerUsage]:
    """The board's usage totals (keyed by spec name) per result label; names with one label add up."""
    out: dict[str, ProposerUsage] = {}
    for name, u in usage.items():
        label = source_label(name)
        a = out.setdefault(label, ProposerUsage())
        a.calls += u.calls
        a.failures += u.failures
        a.input_tokens += u.input_tokens
        a.output_tokens += u.output_tokens
        a.cost_usd += u.cost_usd
    return out


def proposer_stats(
    results: Iterable[Result],
    leader_histories: Mapping[str, Iterable[Leader]] | Iterable[Leader],
    usage: Mapping[str, ProposerUsage] | None = None,
) -> dict[str, ProposerStats]:
    """Figures per proposer, sorted by name, from `results`, the tracks' leader moves and `usage`.

    `leader_histories` is `{track: board.leader_history(track)}` (or any iterable of moves). A result
    seen twice (same `result_id`) counts once. `usage` is `board.proposer_usage()`: where it has a
    proposer, its calls, tokens and cost replace the sums over that proposer's results.
    """
    moved = _moved_ids(leader_histories)
    acc: dict[str, ProposerStats] = {}
    seen: set[str] = set()
    for r in results:
        if r.result_id in seen:
            continue
        seen.add(r.result_id)
        p = r.proposer or NO_PROPOSER
        a = acc.setdefault(p, ProposerStats(p))
        named = r.result_id in moved
        a.results += 1
        a.moves += named
        if r.kind == Kind.EXPLORE:
            a.experiments += 1
            a.kept += r.status == Status.KEEP
            a.promoted += named
            a.failed += r.status.failed
        a.input_tokens += r.llm_input_tokens
        a.output_tokens += r.llm_output_tokens
        a.cost_usd += r.llm_cost_usd
        if r.llm_input_tokens or r.llm_output_tokens or r.llm_latency_s:
            a.llm_results += 1
            a.llm_latency_s += r.llm_latency_s
    _apply_usage(acc, usage)
    return {p: acc[p] for p in sorted(acc)}


def tally_stats(
    tally: Tally, moved: Iterable[Result], usage: Mapping[str, ProposerUsage] | None = None
) -> dict[str, ProposerStats]:
    """The figures of `proposer_stats` over every result, from the board's running summary
    (`board.tally()`) and the results the leader moves name (`moved`, each once) instead of the results
    themselves: the same numbers, at a cost that does not grow with the results."""
    acc: dict[str, ProposerStats] = {}
    for (kind, status, _track, proposer), n in tally.outcomes.items():
        a = acc.setdefault(proposer or NO_PROPOSER, ProposerStats(proposer or NO_PROPOSER))
        a.results += n
        if kind == Kind.EXPLORE.value:
            a.experiments += n
            a.kept += n if status == Status.KEEP.value else 0
            a.failed += n if Status(status).failed else 0
    for (what, proposer), v in tally.sums.items():
        a = acc.setdefault(proposer or NO_PROPOSER, ProposerStats(proposer or NO_PROPOSER))
        if what == "in":
            a.input_tokens += int(v)
        elif what == "out":
            a.output_tokens += int(v)
        elif what == "cost":
            a.cost_usd += v
        elif what == "llm_n":
            a.llm_results += int(v)
        elif what == "llm_s":
            a.llm_latency_s += v
    for r in moved:
        a = acc.setdefault(r.proposer or NO_PROPOSER, ProposerStats(r.proposer or NO_PROPOSER))
        a.moves += 1
        a.promoted += r.kind == Kind.EXPLORE
    _apply_usage(acc, usage)
    return {p: acc[p] for p in sorted(acc)}


def _apply_usage(acc: dict[str, ProposerStats], usage: Mapping[str, ProposerUsage] | None) -> None:
    for label, u in usage_by_label(usage or {}).items():
        a = acc.setdefault(label, ProposerStats(label))
        a.calls, a.failed_calls = u.calls, u.failures
        a.input_tokens, a.output_tokens, a.cost_usd = u.input_tokens, u.output_tokens, u.cost_usd


def moved_results(board: Any, histories: Mapping[str, Iterable[Leader]]) -> list[Result]:
    """The results the leader moves name, each once (a move whose result is missing is skipped)."""
    ids = sorted(_moved_ids(histories))
    return board.results_by_id(ids) if ids else []


def board_proposer_stats(board: Any, max_results: int | None = None) -> tuple[dict[str, ProposerStats], int]:
    """(figures per proposer, results counted) from a live `swarm.board.Board`, with the full leader
    history of every track and the usage totals. `max_results` None: every result, from the board's
    running summary (`board.tally()`; read from the results, up to STATUS_MAX_RESULTS, on a board
    whose results it does not cover); a number: the newest `max_results` results, read one by one."""
    histories = {t: board.leader_history(t) for t in board.leaders()}  # a track with moves has a leader
    if max_results is None:
        tally = board.tally()
        if tally is not None:
            return tally_stats(tally, moved_results(board, histories), board.proposer_usage()), tally.results
        max_results = defaults.STATUS_MAX_RESULTS
    results = board.results(limit=max_results)
    return proposer_stats(results, histories, board.proposer_usage()), len(results)


def paused_agents(agents: Iterable[AgentRecord]) -> dict[str, int]:
    """Result label -> how many live agents have that proposer paused now (a dead agent's last health
    record is not counted: it no longer calls anyone)."""
    n: Counter[str] = Counter()
    for a in agents:
        if a.alive:
            n.update({source_label(p) for p, h in a.health.items() if h.state == "paused"})
    return dict(sorted(n.items()))
