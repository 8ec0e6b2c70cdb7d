"""What a proposer sees: a bounded `ProposalContext` built from the board for one track.

History is bounded here by count (newest results of the track, the best ones, the recent failures);
LLM proposers bound it again by tokens when they render the prompt (swarm.prompts).
"""

from __future__ import annotations

from swarm import defaults
from swarm.agent.history import TrackHistory
from swarm.board import Board
from swarm.models import Kind, Leader, Result, Status, SwarmSettings
from swarm.proposers.base import PastResult, ProposalContext

HISTORY_RESULTS = 500  # newest results of the track read per ideation; the prompt trims further by tokens


def past(
    r: Result, leader_metric: float | None, leader_patch: str | None, title: str, replicates: list[float]
) -> PastResult:
    delta = None
    if r.metric is not None and leader_metric is not None:
        delta = r.metric - leader_metric
    return PastResult(
        title=title,
        status=r.status,
        metric=r.metric,
        delta=delta,
        on_current_leader=r.parent_patch_hash == leader_patch,
        proposer=r.proposer,
        error=r.error[-300:],
        meta=dict(r.meta),
        replicates=replicates,
    )


def build_context(
    board: Board,
    settings: SwarmSettings,
    track: str,
    profile: str,
    leader: Leader | None,
    files: dict[str, str],
    limit: int = HISTORY_RESULTS,
    history: TrackHistory | None = None,
    noise_sd: float | None = None,
) -> ProposalContext:
    """The proposal context for `track`, on the leader whose editable files are `files`; `history`
    (an agent's incremental cache of the track's results) saves re-reading the board each time."""
    version, brief = board.brief()
    newest = history.newest(limit) if history is not None else board.results(limit=limit, track=track)
    results = [r for r in newest if r.kind == Kind.EXPLORE]
    # A candidate's confirmations are more runs of its code: the classical proposer's model counts each
    # (at 8 agents they are a third of the runs), so they ride along with the candidate's line.
    confirms: dict[str, list[float]] = {}
    for r in newest:
        scored = r.status in (Status.KEEP, Status.DISCARD) and r.metric is not None and not r.stale
        if r.kind == Kind.CONFIRM and r.candidate_of and scored:
            confirms.setdefault(r.candidate_of, []).append(float(r.metric))  # type: ignore[arg-type]
    hids = {r.hypothesis_id for r in results if r.hypothesis_id}
    titles = history.titles(hids) if history else {h.id: h.title for h in board.get_many(sorted(hids))}
    metric = leader.metric if leader else None
    patch = leader.patch_hash if leader else None
    items = [
        past(r, metric, patch, titles.get(r.hypothesis_id or "", ""), confirms.get(r.result_id, [])) for r in results
    ]
    return ProposalContext(
        track=track,
        profile=profile,
        metric_name=settings.metric_name,
        direction=settings.direction,
        files=files,
        leader_metric=metric,
        leader_generation=leader.generation if leader else 0,
        brief=brief,
        brief_version=version,
        history=items[: defaults.PROPOSER_HISTORY_ITEMS * 10],
        noise_sd=noise_sd,
    )
