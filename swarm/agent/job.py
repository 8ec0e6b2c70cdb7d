"""A job: one claimed hypothesis, implemented on a leader's code and ready to run (or invalid, with why)."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarm.models import Hypothesis, Kind, Leader
from swarm.proposers.base import Proposer, Usage


@dataclass
class Job:
    """A claimed hypothesis, implemented and ready to run on the leader `parent` (None: baseline)."""

    hyp: Hypothesis
    token: int
    parent: Leader | None
    files: dict[str, str] = field(default_factory=dict)
    invalid: str = ""
    implementer: Proposer | None = None
    usage: Usage = field(default_factory=Usage)
    brief_version: int = 0  # the brief (program.md) version on the board when the job was prepared
    stale_idea: bool = False  # a classical idea made on an older leader that no longer merges
    giveback: tuple[str, str] | None = None  # (proposer, reason): its implementer failed, back to the board

    @property
    def kind(self) -> Kind:
        return self.hyp.kind

    @property
    def is_rerun(self) -> bool:
        """A run of code as it is with another seed (a confirmation, a leader's re-measure, a baseline
        seed): never rebased, and never put behind urgent work nor stopped for it (it is that work)."""
        return self.hyp.kind in (Kind.CONFIRM, Kind.BASELINE)

    @property
    def seed(self) -> int:
        return self.hyp.seed if self.hyp.seed is not None else 0
