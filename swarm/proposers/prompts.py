"""Prompts for LLM proposers, bounded by a token budget, and the parser for ideation replies.

Three prompts, one per proposer call:

- ideation: the brief (program.md), the leader's code, a summary of the board's history; asks for N
  distinct ideas as JSON (`{"ideas": [{"title": ..., "rationale": ...}]}`);
- implementation: the brief, the hypothesis, the editable files; asks for SEARCH/REPLACE blocks;
- repair: the hypothesis, the files as they ran, the traceback tail; asks for SEARCH/REPLACE blocks.

Every prompt fits `budget_tokens` (counted with swarm.proposers.tokens). Fixed parts are capped first
(code at `CODE_SHARE` of the budget, brief at `BRIEF_SHARE`, error tails at `ERROR_SHARE`); the history
summary gets what is left and is filled line by line in priority order, so a board of 10,000 results
costs the same prompt size as one of 100. The history sections are: the best results, what was already tried on
the current leader, recent failures with their error summaries, and the classical optimizer's best
settings (from `PastResult.meta`) when it runs in the swarm.

    prompt = ideation_prompt(ctx, n=3, budget_tokens=24_000)
    ideas = parse_ideas(reply_text, n=3)     # ValueError with a model-readable reason when malformed
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field, ValidationError

from swarm.defaults import PROPOSER_HISTORY_ITEMS
from swarm.models import Direction
from swarm.proposers.base import Idea, PastResult, ProposalContext
from swarm.proposers.tokens import count_tokens, truncate_to_tokens

CODE_SHARE = 0.55  # the code is what the model edits: it gets the largest fixed share
BRIEF_SHARE = 0.15  # program.md is usually short; a long one must not crowd out the code
ERROR_SHARE = 0.15  # the tail of a traceback carries the cause; more is rarely useful
TITLE_CHARS = 160  # one line of history: enough to recognise the idea
ERROR_CHARS = 240  # the error summary of a failed run: the exception line and a little context

SYSTEM = (
    "You are a research engineer in a swarm of agents improving a training script by small, "
    "testable experiments. Each experiment changes the editable files, runs under a fixed time "
    "budget, and is judged only by the metric. Be specific, be correct, keep changes minimal."
)

EDIT_FORMAT = """Reply with SEARCH/REPLACE blocks only, in this exact format, one block per change:

path/to/file.py
<<<<<<< SEARCH
lines copied exactly from the current file
=======
the new lines
>>>>>>> REPLACE

Rules: put the file path on the line before `<<<<<<< SEARCH`; copy the SEARCH lines exactly, including
indentation; include enough lines to match exactly one place; keep blocks small; do not add prose
between blocks."""

IDEA_FORMAT = """Reply with exactly one JSON object and nothing else:
{{"ideas": [{{"title": "<one line, under 120 characters>", "rationale": "<one paragraph: what to change \
and why it should improve {metric}>"}}]}}
Give {n} ideas that differ from each other and from what was already tried."""


class _IdeaIn(BaseModel):
    title: str = Field(min_length=3, max_length=300)
    rationale: str = Field(default="", max_length=4000)


class _IdeasIn(BaseModel):
    ideas: list[_IdeaIn] = Field(min_length=1, max_length=20)


# --- history summary -----------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _result_line(r: PastResult) -> str:
    delta = "" if r.delta is None else f" delta={r.delta:+.4g}"
    who = f" by={r.proposer}" if r.proposer else ""
    return f"- [{r.status}] {_one_line(r.title, TITLE_CHARS)} ({_fmt(r.metric)}{delta}{who})"


def history_sections(ctx: ProposalContext, items: int = PROPOSER_HISTORY_ITEMS) -> list[tuple[str, list[str]]]:
    """The history as (heading, lines) in priority order, each list capped at `items` lines."""
    hist = ctx.history

    def gain(r: PastResult) -> float:  # ranks the best first, whichever way the metric improves
        return ctx.direction.gain(0.0, float(r.metric))  # type: ignore[arg-type]

    scored = [r for r in hist if r.metric is not None and not r.status.failed]
    best = sorted(scored, key=gain, reverse=True)[:items]
    tried = [r for r in hist if r.on_current_leader][:items]
    failed = [r for r in hist if r.status.failed][:items]
    sections: list[tuple[str, list[str]]] = [
        (f"Best results so far ({ctx.metric_name}, {ctx.direction})", [_result_line(r) for r in best]),
        ("Already tried on the current leader (do not repeat these)", [_result_line(r) for r in tried]),
        (
            "Recent failures (avoid these mistakes)",
            [f"{_result_line(r)}: {_one_line(r.error, ERROR_CHARS)}" if r.error else _result_line(r) for r in failed],
        ),
    ]
    classical = [r for r in scored if r.proposer == "classical" and r.meta]
    if classical:
        top = max(classical, key=gain)
        settings = ", ".join(f"{k}={v}" for k, v in sorted(top.meta.items()))
        sections.append(("Classical optimizer's best settings", [f"- {_one_line(settings, 800)} ({_fmt(top.metric)})"]))
    return [(h, lines) for h, lines in sections if lines]


def summarize_history(ctx: ProposalContext, budget_tokens: int) -> str:
    """The history summary within `budget_tokens`: lines are taken round-robin across sections (so
    every section is represented) until the next line would not fit."""
    if budget_tokens <= 0 or not ctx.history:
        return ""
    sections = history_sections(ctx)
    chosen: list[list[str]] = [[] for _ in sections]
    used = sum(count_tokens(f"## {h}\n") for h, _ in sections)
    if used > budget_tokens:
        return ""
    cursor = [0] * len(sections)
    progress = True
    while progress:
        progress = False
        for i, (_, lines) in enumerate(sections):
            if cursor[i] >= len(lines):
                continue
            cost = count_tokens(lines[cursor[i]] + "\n")
            cursor[i] += 1
            if used + cost > budget_tokens:
                cursor[i] = len(lines)  # this section is full; others may still fit shorter lines
                continue
            chosen[i].append(lines[cursor[i] - 1])
            used += cost
            progress = True
    parts = [f"## {h}\n" + "\n".join(c) for (h, _), c in zip(sections, chosen, strict=True) if c]
    text = "\n\n".join(parts)
    # Token counts are not exactly additive across joins; trim whole lines if the sum drifted over.
    while text and count_tokens(text) > budget_tokens:
        text = text.rsplit("\n", 1)[0] if "\n" in text else ""
    return text


# --- prompts -------------------------------------------------------------------------------------


def _files_block(files: dict[str, str], budget_tokens: int) -> str:
    per_file = max(64, budget_tokens // max(1, len(files)))
    return "\n\n".join(
        f"{path}\n```\n{truncate_to_tokens(text, per_file)}\n```" for path, text in sorted(files.items())
    )


def _header(ctx: ProposalContext) -> str:
    leader = (
        f"The current leader (generation {ctx.leader_generation}) scores {ctx.metric_name}={_fmt(ctx.leader_metric)}"
        if ctx.leader_metric is not None
        else "There is no leader yet: the files below are the baseline"
    )
    goal = "lower" if ctx.direction is Direction.MINIMIZE else "higher"
    return f"Track: {ctx.track}. Goal: {goal} {ctx.metric_name}. {leader}."


def _assemble(fixed: list[str], history: str | None, ctx: ProposalContext, budget_tokens: int) -> str:
    """Join the parts; when `history` is None, fill the remaining budget with the history summary."""
    body = "\n\n".join(p for p in fixed if p)
    if history is None:
        room = budget_tokens - count_tokens(body) - 16  # 16: headings and separators
        history = summarize_history(ctx, room)
    text = body if not history else f"{body}\n\n# Board history\n{history}"
    # Last guard for tiny budgets, where the capped fixed parts alone exceed it.
    return truncate_to_tokens(text, budget_tokens)


def _brief_block(ctx: ProposalContext, budget_tokens: int) -> str:
    """The brief section (empty without a brief), capped at its share of the budget."""
    if not ctx.brief:
        return ""
    brief = truncate_to_tokens(ctx.brief, int(budget_tokens * BRIEF_SHARE))
    return f"# Brief (program.md, version {ctx.brief_version})\n" + brief


def ideation_prompt(ctx: ProposalContext, n: int, budget_tokens: int) -> str:
    fixed = [
        _header(ctx),
        _brief_block(ctx, budget_tokens),
        "# Editable files of the current leader\n" + _files_block(ctx.files, int(budget_tokens * CODE_SHARE)),
        "# Task\nPropose hypotheses for the next experiments. " + IDEA_FORMAT.format(n=n, metric=ctx.metric_name),
    ]
    return _assemble(fixed, None, ctx, budget_tokens)


def implement_prompt(hypothesis: str, ctx: ProposalContext, budget_tokens: int) -> str:
    fixed = [
        _header(ctx),
        _brief_block(ctx, budget_tokens),
        "# Hypothesis to implement\n" + truncate_to_tokens(hypothesis, int(budget_tokens * 0.05) + 64),
        "# Editable files\n" + _files_block(ctx.files, int(budget_tokens * CODE_SHARE)),
        "# Task\nImplement the hypothesis in the editable files. " + EDIT_FORMAT,
    ]
    return _assemble(fixed, "", ctx, budget_tokens)


def repair_prompt(
    hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str, budget_tokens: int
) -> str:
    fixed = [
        _header(ctx),
        "# Hypothesis being implemented\n" + truncate_to_tokens(hypothesis, int(budget_tokens * 0.05) + 64),
        "# The files as they ran\n" + _files_block(files, int(budget_tokens * CODE_SHARE)),
        "# The run crashed; the end of its output\n```\n"
        + truncate_to_tokens(error_tail, int(budget_tokens * ERROR_SHARE))
        + "\n```",
        "# Task\nFix the bug so the experiment runs, keeping the hypothesis. " + EDIT_FORMAT,
    ]
    return _assemble(fixed, "", ctx, budget_tokens)


def edit_feedback(report: str, files: dict[str, str], budget_tokens: int) -> str:
    """The follow-up message after blocks failed: the exact reasons and the files as they now stand."""
    return (
        "Some SEARCH/REPLACE blocks could not be applied.\n\n"
        + truncate_to_tokens(report, int(budget_tokens * ERROR_SHARE))
        + "\n\nBlocks that applied are kept. The editable files now read:\n\n"
        + _files_block(files, int(budget_tokens * CODE_SHARE))
        + "\n\nResend only the failed changes as SEARCH/REPLACE blocks against the files above."
    )


# --- ideation replies ----------------------------------------------------------------------------

FENCED_RE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)
PLAIN_RE = re.compile(r"^\s*(?:\d+[.)]\s*)?\**title\**\s*:\s*(.+)$", re.I | re.M)


def _json_candidates(text: str) -> list[str]:
    found = [m.group(1) for m in FENCED_RE.finditer(text)]
    for opener, closer in (("{", "}"), ("[", "]")):
        a, b = text.find(opener), text.rfind(closer)
        if a != -1 and b > a:
            found.append(text[a : b + 1])
        elif a != -1:  # unterminated (a reply cut at max_tokens): parse it anyway for the exact error
            found.append(text[a:])
    return found


def _plain_ideas(text: str) -> list[_IdeaIn]:
    """Fallback for models that ignore JSON: `Title: ...` lines, each followed by its rationale."""
    marks = list(PLAIN_RE.finditer(text))
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        rest = text[m.end() : end]
        rest = re.sub(r"^\s*\**rationale\**\s*:\s*", "", rest.strip(), flags=re.I)
        out.append(_IdeaIn(title=m.group(1).strip().strip("*"), rationale=" ".join(rest.split())[:4000]))
    return out


def parse_ideas(text: str, n: int) -> list[Idea]:
    """Up to `n` ideas from a reply; ValueError (model-readable) when none can be read."""
    errors: list[str] = []
    for cand in _json_candidates(text):
        try:
            data = json.loads(cand)
        except ValueError as err:
            errors.append(f"invalid JSON: {err}")
            continue
        if isinstance(data, list):
            data = {"ideas": data}
        try:
            parsed = _IdeasIn.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            errors.append(f"JSON does not match the format: {'.'.join(map(str, first['loc']))}: {first['msg']}")
            continue
        return _dedup(parsed.ideas, n)
    try:
        plain = _plain_ideas(text)
    except ValidationError:
        plain = []
    if plain:
        return _dedup(plain, n)
    reason = errors[0] if errors else "no JSON object with an `ideas` list was found"
    raise ValueError(f"could not read ideas from the reply: {reason}")


def _dedup(ideas: list[_IdeaIn], n: int) -> list[Idea]:
    seen: set[str] = set()
    out: list[Idea] = []
    for idea in ideas:
        key = " ".join(idea.title.lower().split())
        if key in seen:
            continue
        seen.add(key)
        out.append(Idea(title=_one_line(idea.title, 300), rationale=idea.rationale.strip()))
    return out[:n]
