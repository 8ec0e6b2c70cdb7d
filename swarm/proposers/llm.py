"""LLMProposer: a Proposer backed by one chat model (Anthropic, OpenAI or an OpenAI-compatible server).

- `ideate(ctx, n)`: one call with the brief, the leader's code and the bounded board history; the reply
  is parsed as JSON ideas (or `Title:` lines). A malformed reply is retried once with the parse error;
  a second failure raises `LLMCallFailed`.
- `implement(hypothesis, ctx)`: the model replies with SEARCH/REPLACE blocks, applied with forgiving
  matching (swarm.proposers.edits). Blocks that fail are sent back with the exact reasons and the files
  as they now stand, up to `max_edit_attempts` replies in all; blocks that applied are kept.
- `repair(hypothesis, ctx, files, error_tail)`: the files as they ran plus the traceback tail; the
  model's blocks fix the files. At most `max_repairs` repairs per hypothesis and leader generation;
  after that it returns None (give up) without calling the model.

Every method returns the `Usage` of all its calls. On failure it raises `LLMCallFailed`, a
ProposerError that carries `.usage` so the agent can still account for the tokens spent.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from swarm.defaults import (
    PROPOSER_CONTEXT_TOKENS,
    PROPOSER_FUZZY_THRESHOLD,
    PROPOSER_MAX_EDIT_ATTEMPTS,
    PROPOSER_MAX_OUTPUT_TOKENS,
    PROPOSER_MAX_REPAIRS,
)
from swarm.errors import ProposerError
from swarm.proposers.base import Idea, ProposalContext, Usage
from swarm.proposers.edits import apply_blocks
from swarm.proposers.prompts import SYSTEM, edit_feedback, ideation_prompt, implement_prompt, parse_ideas, repair_prompt
from swarm.proposers.providers import ChatClient, Message, Reply

log = logging.getLogger(__name__)

REPAIR_MEMORY = 1024  # hypotheses whose repair counts are remembered; an agent works on one at a time


class LLMCallFailed(ProposerError):
    """The proposer gave up; `usage` is what the failed attempt cost (for the result's accounting).
    `transport`: the endpoint failed (connection, HTTP error, timeout, an empty body), whatever was
    asked; otherwise the model answered but not usefully (prose for JSON, edits that never apply)."""

    def __init__(self, message: str, usage: Usage, transport: bool = False) -> None:
        super().__init__(message)
        self.usage = usage
        self.transport = transport


@dataclass(frozen=True)
class LLMLimits:
    max_edit_attempts: int = PROPOSER_MAX_EDIT_ATTEMPTS
    max_repairs: int = PROPOSER_MAX_REPAIRS
    context_tokens: int = PROPOSER_CONTEXT_TOKENS
    max_output_tokens: int = PROPOSER_MAX_OUTPUT_TOKENS
    fuzzy_threshold: float = PROPOSER_FUZZY_THRESHOLD


class LLMProposer:
    """A Proposer (swarm.proposers.base) over a ChatClient. `name` is the spec without weight."""

    can_implement = True

    def __init__(self, name: str, client: ChatClient, limits: LLMLimits | None = None) -> None:
        self.name = name
        self.client = client
        self.limits = limits or LLMLimits()
        self._repairs: dict[str, int] = {}

    def close(self) -> None:
        self.client.close()

    # --- calls -----------------------------------------------------------------------------------

    def _call(self, messages: list[Message], usage: list[Usage]) -> Reply:
        try:
            reply = self.client.complete(SYSTEM, messages, self.limits.max_output_tokens)
        except ProposerError as err:  # the failed call counts as a call (its tokens are unknown: 0)
            raise LLMCallFailed(str(err), _total([*usage, Usage(calls=1)]), transport=True) from err
        usage.append(Usage(reply.input_tokens, reply.output_tokens, reply.cost_usd, reply.latency_s, 1))
        log.info(
            "llm call: proposer=%s input_tokens=%d output_tokens=%d cost_usd=%.5f latency_s=%.2f",
            self.name,
            reply.input_tokens,
            reply.output_tokens,
            reply.cost_usd,
            reply.latency_s,
        )
        return reply

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        usage: list[Usage] = []
        messages: list[Message] = [
            {"role": "user", "content": ideation_prompt(ctx, n, self.limits.context_tokens)}
        ]
        for attempt in range(2):
            reply = self._call(messages, usage)
            try:
                ideas = parse_ideas(reply.text, n)
            except ValueError as err:
                if attempt == 1:
                    raise LLMCallFailed(
                        f"{self.name}: malformed ideation reply: {err}", _total(usage)
                    ) from err
                messages += [
                    {"role": "assistant", "content": reply.text},
                    {
                        "role": "user",
                        "content": f"Your reply could not be parsed: {err}. Reply again, "
                        'with only the JSON object {"ideas": [{"title": ..., "rationale": ...}]}.',
                    },
                ]
                continue
            for idea in ideas:
                idea.tags.append(f"proposer:{self.name}")
            return ideas, _total(usage)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _edit_loop(self, first_prompt: str, files: dict[str, str], usage: list[Usage]) -> dict[str, str]:
        """Ask for blocks, apply, feed failures back; the final files or LLMCallFailed."""
        messages: list[Message] = [{"role": "user", "content": first_prompt}]
        current = dict(files)
        report = ""
        for attempt in range(1, self.limits.max_edit_attempts + 1):
            reply = self._call(messages, usage)
            outcome = apply_blocks(current, reply.text, self.limits.fuzzy_threshold)
            current = outcome.files
            if outcome.ok and current != files:
                return current
            report = (
                outcome.report() or "The blocks applied but changed nothing; the hypothesis needs a change."
            )
            log.info(
                "edit attempt failed: proposer=%s attempt=%d failures=%d",
                self.name,
                attempt,
                len(outcome.failures),
            )
            messages += [
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": edit_feedback(report, current, self.limits.context_tokens)},
            ]
        raise LLMCallFailed(
            f"{self.name}: edits still failing after {self.limits.max_edit_attempts} attempts: "
            + report.splitlines()[-1][:300],
            _total(usage),
        )

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        usage: list[Usage] = []
        prompt = implement_prompt(hypothesis, ctx, self.limits.context_tokens)
        files = self._edit_loop(prompt, ctx.files, usage)
        return files, _total(usage)

    def repair(
        self, hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str
    ) -> tuple[dict[str, str] | None, Usage]:
        key = hashlib.sha256(f"{ctx.track}\0{ctx.leader_generation}\0{hypothesis}".encode()).hexdigest()
        done = self._repairs.get(key, 0)
        if done >= self.limits.max_repairs:
            return None, Usage()
        if len(self._repairs) >= REPAIR_MEMORY:
            self._repairs.clear()
        self._repairs[key] = done + 1
        usage: list[Usage] = []
        prompt = repair_prompt(hypothesis, ctx, files, error_tail, self.limits.context_tokens)
        fixed = self._edit_loop(prompt, files, usage)
        return fixed, _total(usage)


def _total(usage: list[Usage]) -> Usage:
    total = Usage()
    for u in usage:
        total = total.add(u)
    return total
