"""Scripted Python proposers and a simulated run, shared by the proposer tests and
scripts/bench_proposer_health.py: a real agent drives them, so what they measure is the agent's wiring.

- `Marker(name, "good" | "bad")`: one idea per call, with a patch that appends a `# good <tag>` or
  `# bad <tag>` line to train.py; each call is billed like an LLM's (`Usage` with 1 call).
- `marker_run`: a simulated run (the `AgentOptions.runner` signature) whose metric is 1.0 minus 0.01 per
  `# good` line, plus seeded Gaussian noise of SD 0.002: a good idea is better than its parent by 5
  noise SDs, a bad one changes nothing.
"""

from __future__ import annotations

import random
import threading
import uuid
from pathlib import Path

from swarm.code.diff import make_patch
from swarm.experiment.runner import RunOutcome
from swarm.proposers.base import Idea, ProposalContext, Usage


def marker_run(
    arena_dir: Path, files: dict[str, str], seed: int, budget_s: float, cancel: threading.Event
) -> RunOutcome:
    code = files["train.py"]
    cancel.wait(0.02)
    noise = random.Random(f"{seed}{code}").gauss(0.0, 0.002)
    return RunOutcome("ok", 1.0 - 0.01 * code.count("# good") + noise, 0.02, {})


class Marker:
    """A scripted proposer: one idea per call, adding a `# good` or `# bad` line to train.py."""

    can_implement = False

    def __init__(self, name: str, mark: str) -> None:
        self.name, self.mark = name, mark

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        tag = uuid.uuid4().hex[:8]
        files = {"train.py": ctx.files["train.py"].rstrip("\n") + f"\n# {self.mark} {tag}\n"}
        return [Idea(f"{self.mark} {tag}", patch=make_patch(ctx.files, files))], Usage(100, 10, 0.001, 0.01, 1)

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        raise AssertionError("a patch-only proposer implements nothing")

    def repair(self, *a: object) -> tuple[None, Usage]:
        return None, Usage()
