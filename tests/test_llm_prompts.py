"""Prompt budgets, history summaries, ideation-reply parsing and the shipped token counter."""

from __future__ import annotations

import pytest

from swarm.models import Direction, Status
from swarm.proposers.base import PastResult, ProposalContext
from swarm.proposers.prompts import (
    history_sections,
    ideation_prompt,
    implement_prompt,
    parse_ideas,
    repair_prompt,
    summarize_history,
)
from swarm.proposers.tokens import count_tokens, encoding, truncate_to_tokens

CODE = "\n".join(f"def f{i}(x):\n    return x * {i}  # layer {i}\n" for i in range(400))


def history(n: int) -> list[PastResult]:
    out = []
    for i in range(n):
        status = (Status.KEEP, Status.DISCARD, Status.CRASH, Status.TIMEOUT)[i % 4]
        metric = None if status.failed else 1.0 + (i % 97) / 1000
        out.append(
            PastResult(
                title=f"Experiment {i}: change the learning-rate schedule variant {i}",
                status=status,
                metric=metric,
                delta=None if metric is None else metric - 1.05,
                on_current_leader=i % 5 == 0,
                proposer="classical" if i % 2 else "openai:gpt",
                error="RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
                if status is Status.CRASH
                else "",
                meta={"lr": round(0.01 + i / 1e5, 5), "depth": 4} if i % 2 else {},
            )
        )
    return out


def ctx(n: int, files: dict[str, str] | None = None, direction: Direction = Direction.MINIMIZE) -> ProposalContext:
    return ProposalContext(
        "cpu:2c", "cpu", "val_bpb", direction, files or {"train.py": CODE}, 1.02, 7,
        brief="Lower val_bpb. " * 300, brief_version=3, history=history(n),
    )  # fmt: skip


def test_tokenizer_loads_offline_and_round_trips() -> None:
    enc = encoding()
    assert enc.n_vocab == 4096
    text = "def f(x):\n    return x ** 2  # ünïcödé ✓\n"
    assert enc.decode(enc.encode_ordinary(text)) == text
    assert count_tokens(text) < len(text)
    cut = truncate_to_tokens(CODE, 200)
    assert count_tokens(cut) <= 200 and cut.startswith("def f0") and cut.rstrip().endswith("layer 399")


@pytest.mark.parametrize("n", [0, 10, 1000, 10_000])
@pytest.mark.parametrize("budget", [2000, 8000, 24_000])
def test_ideation_prompt_stays_under_budget(n: int, budget: int) -> None:
    prompt = ideation_prompt(ctx(n), 3, budget)
    assert count_tokens(prompt) <= budget
    assert "Propose hypotheses" in prompt


def test_history_summary_has_every_section_and_best_first() -> None:
    c = ctx(10_000)
    text = summarize_history(c, 3000)
    assert count_tokens(text) <= 3000
    for heading in (
        "Best results",
        "Already tried on the current leader",
        "Recent failures",
        "Classical optimizer",
    ):
        assert heading in text
    best_lines = text.split("## Best results")[1].split("##")[0].strip().splitlines()[1:]
    assert "(1 delta=-0.05" in best_lines[0]  # metric 1.0 is the minimum
    assert "CUDA out of memory" in text
    assert summarize_history(c, 0) == ""


def test_the_history_ranks_by_the_direction() -> None:
    """Best first is the lowest metric when minimizing and the highest when maximizing; the goal says so."""
    for direction, first, goal in ((Direction.MINIMIZE, 1.0, "lower"), (Direction.MAXIMIZE, 1.096, "higher")):
        c = ctx(200, direction=direction)
        sections = dict(history_sections(c, items=5))
        heading = f"Best results so far (val_bpb, {direction.value})"  # the plain value, not Direction.MAXIMIZE
        assert sections[heading][0].startswith("- [keep]") or sections[heading][0].startswith("- [discard]")
        assert f"({first:g} delta=" in sections[heading][0], sections[heading][0]
        classical = sections["Classical optimizer's best settings"][0]
        assert classical.endswith(f"({first:g})"), classical
        assert f"Goal: {goal} val_bpb." in ideation_prompt(c, 3, 4000)


def test_prompt_size_grows_then_plateaus() -> None:
    sizes = [count_tokens(ideation_prompt(ctx(n), 3, 8000)) for n in (10, 1000, 10_000)]
    assert sizes[0] < sizes[1] and abs(sizes[2] - sizes[1]) < 200


def test_implement_and_repair_prompts_bounded() -> None:
    big = {"train.py": CODE * 5}
    p = implement_prompt("Try a cosine schedule", ctx(5, big), 6000)
    assert count_tokens(p) <= 6000 and "Try a cosine schedule" in p and "<<<<<<< SEARCH" in p
    r = repair_prompt("Try a cosine schedule", ctx(5), big, "x\n" * 5000 + "ZeroDivisionError: boom", 6000)
    assert count_tokens(r) <= 6000 and "ZeroDivisionError: boom" in r


def test_parse_ideas_formats() -> None:
    ideas = parse_ideas(
        '{"ideas": [{"title": "Use RMSNorm", "rationale": "Cheaper."}, {"title": "use rmsnorm"}]}', 5
    )
    assert [i.title for i in ideas] == ["Use RMSNorm"]  # duplicates dropped
    listed = parse_ideas('Sure!\n[{"title": "Warmup 200 steps", "rationale": "Stabler."}]\nGood luck', 3)
    assert listed[0].title == "Warmup 200 steps"
    plain = parse_ideas("1. Title: Wider MLP\nRationale: More capacity.\n2. Title: Fewer heads\nSpeed.", 3)
    assert [(i.title, i.rationale) for i in plain] == [
        ("Wider MLP", "More capacity."),
        ("Fewer heads", "Speed."),
    ]
    many = ",".join('{"title": "idea ' + str(i) + '"}' for i in range(9))
    assert len(parse_ideas('{"ideas": [' + many + "]}", 3)) == 3


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("nothing useful", "no JSON object"),
        ('{"ideas": [{"title": "ok", "rationale": "x"', "invalid JSON"),
        ('{"ideas": []}', "ideas"),
        ('{"ideas": [{"rationale": "no title"}]}', "title"),
    ],
)
def test_parse_ideas_errors_are_readable(reply: str, why: str) -> None:
    with pytest.raises(ValueError, match="could not read ideas") as info:
        parse_ideas(reply, 3)
    assert why in str(info.value)
