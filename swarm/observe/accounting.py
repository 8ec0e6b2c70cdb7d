"""Per-proposer accounting: what each proposer's ideas cost and how often they became the leader.

    stats = proposer_stats(board.results(limit=10_000), {t: board.leader_history(t) for t in tracks})
    stats["llm:anthropic/claude-sonnet-4-5"].acceptance_rate      # promoted / experiments
    board_proposer_stats(board)                                    # the same, read from a live board

Every rejected or broken proposal burns a full GPU run, so the figure that decides what a proposer is
worth is its acceptance rate, and what it costs is its spend per promotion. One function computes
them from board records only, so `swarm status`, the live view, the report and the exporter agree:

- A result belongs to `Result.proposer` ("none" when empty: runs the agent made on its own).
- experiments: its exploration results (`Kind.EXPLORE`; ports and rebased candidates run as
  explore). Baseline seed runs and confirmations re-measure code that is already decided: they are
  not new proposals and count in `results` only.
- kept: experiments that passed screening (status keep: a candidate worth confirming).
- promoted: experiments a leader move names as its `result_id` (the move's candidate; the move's
  supporting confirmation runs are not counted again).
- failed: experiments that ended crash, timeout or invalid (`Status.failed`).
- moves: results of any kind a leader move names (a track's baseline move included).
- acceptance_rate = promoted / experiments; crash_rate = failed / experiments (None with no experiment).
- input_tokens, output_tokens, cost_usd: summed over every result of the proposer, whatever its kind
  (the spend is real either way). LLM calls made for ideation are not stored on results and are not
  included (they are on the agents' /metrics).
- cost_per_promotion_usd = cost_usd / promoted (None with no promotion).
- mean_llm_latency_s: mean `llm_latency_s` over the results that made an LLM call (None without one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from swarm import defaults
from swarm.models import Kind, Leader, Result, Status

__all__ = ["NO_PROPOSER", "ProposerStats", "board_proposer_stats", "proposer_stats"]

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
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0  # results that made at least one LLM call (the latency mean's denominator)
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
        return self.llm_latency_s / self.llm_calls if self.llm_calls else None

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


def proposer_stats(
    results: Iterable[Result], leader_histories: Mapping[str, Iterable[Leader]] | Iterable[Leader]
) -> dict[str, ProposerStats]:
    """Figures per proposer, sorted by name, from `results` and the tracks' leader moves.

    `leader_histories` is `{track: board.leader_history(track)}` (or any iterable of moves). A result
    seen twice (same `result_id`) counts once.
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
            a.llm_calls += 1
            a.llm_latency_s += r.llm_latency_s
    return {p: acc[p] for p in sorted(acc)}


def board_proposer_stats(
    board: Any, max_results: int = defaults.STATUS_MAX_RESULTS
) -> tuple[dict[str, ProposerStats], int]:
    """(figures per proposer, results counted) from a live `swarm.board.Board`: the newest
    `max_results` results and the full leader history of every track."""
    results = board.results(limit=max_results)
    histories = {t: board.leader_history(t) for t in board.leaders()}  # a track with moves has a leader
    return proposer_stats(results, histories), len(results)
