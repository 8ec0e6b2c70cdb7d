"""Benchmark: what the swarm adds per LLM call, and how big prompts get as the board grows.

With the scripted server (tests/llm_server.py) standing in for a model, so only our side is timed:

- prompt building (ideation prompt with N past results, implementation prompt) in ms;
- applying SEARCH/REPLACE blocks to arena/train.py (exact, whitespace, indentation drift, fuzzy,
  no match) in ms, and on a 2,000-line file to show how fuzzy matching scales;
- one full LLMProposer.implement round trip through the real openai SDK over loopback (SDK + HTTP +
  our work) in ms;
- ideation prompt size in tokens for 0 .. 10,000 results against the configured budget.

    PYTHONPATH=. .venv/bin/python scripts/bench_llm.py [--budget 24000] [--repeat 20]

Output is `key: value` lines, one per measurement (medians).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from swarm.defaults import PROPOSER_CONTEXT_TOKENS  # noqa: E402
from swarm.proposers.base import PastResult, ProposalContext  # noqa: E402
from swarm.proposers.edits import apply_blocks  # noqa: E402
from swarm.proposers.llm import LLMLimits, LLMProposer  # noqa: E402
from swarm.proposers.prompts import ideation_prompt, implement_prompt  # noqa: E402
from swarm.proposers.providers import OpenAIClient  # noqa: E402
from swarm.proposers.tokens import count_tokens, encoding  # noqa: E402
from tests.llm_server import Scripted, ScriptedServer  # noqa: E402

_rng = random.Random(0)  # a varied 2,000-line file: near-identical lines would make fuzzy matches ambiguous
WORDS = ["".join(_rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(400)]


def _synthetic_fn(i: int) -> str:
    a, b, c, d = _rng.sample(WORDS, 4)
    return (
        f"def {a}_{b}_{i}(x, {c}):\n    {d} = x @ {c}[{i}]\n    {a} = torch.{b}({d}) * {i % 7 + 1}\n"
        f"    {c}_{d} = {a} + x.mean(dim={i % 3})\n    return norm({c}_{d}, eps=1e-{i % 6 + 1})\n"
    )


SYNTHETIC = "\n".join(_synthetic_fn(i) for i in range(350))


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches (encoding load, regex compile)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def history(n: int) -> list[PastResult]:
    statuses = ("keep", "discard", "discard", "crash", "timeout", "discard")
    out = []
    for i in range(n):
        status = statuses[i % len(statuses)]
        metric = None if status in ("crash", "timeout") else 1.0 + ((i * 7919) % 1000) / 10_000
        out.append(
            PastResult(
                title=f"Hypothesis {i}: set warmup to {i % 300} steps and scale the LR by {1 + i % 9 / 10}",
                status=status,
                metric=metric,
                delta=None if metric is None else metric - 1.05,
                on_current_leader=i % 11 == 0,
                proposer=("classical", "anthropic:claude-sonnet-4-5", "openai-compatible:qwen@x")[i % 3],
                error="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.2 GiB"
                if status == "crash"
                else "",
                meta={"lr": 0.01 + i / 1e6, "warmup": i % 300, "depth": 4 + i % 4} if i % 3 == 0 else {},
            )
        )
    return out


def context(train: str, n: int) -> ProposalContext:
    brief_path = REPO / "arena" / "program.md"
    brief = brief_path.read_text() if brief_path.exists() else "Lower val_bpb."
    return ProposalContext(
        "cpu:2c", "cpu", "val_bpb", "minimize", {"train.py": train}, 1.1, 12, brief, 1, history(n)
    )


def block(search: list[str], replace: list[str]) -> str:
    return (
        "train.py\n<<<<<<< SEARCH\n"
        + "\n".join(search)
        + "\n=======\n"
        + "\n".join(replace)
        + "\n>>>>>>> REPLACE\n"
    )


def edit_cases(text: str) -> dict[str, str]:
    lines = text.splitlines()
    # A 4-line indented window near the middle: the typical shape of a model's block.
    mid = next(
        i
        for i in range(len(lines) // 2, len(lines) - 4)
        if all(x.startswith("    ") and x.strip() for x in lines[i : i + 4])
    )
    window = lines[mid : mid + 4]
    new = [*window[:-1], window[-1] + "  # changed"]
    fuzzy = (
        [*window[:-1], window[-1].replace("(", "( ", 1) + "  # drift"]
        if "(" in window[-1]
        else [*window[:-1], window[-1] + "x"]
    )
    return {
        "exact": block(window, new),
        "whitespace": block([x + "   " for x in window], new),
        "indent": block([x.lstrip() for x in window], [x.lstrip() for x in new]),
        "fuzzy": block(fuzzy, new),
        "nomatch": block(["completely = different(code)", "nothing_like = 'this'"], ["x = 1"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=PROPOSER_CONTEXT_TOKENS)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    train_path = REPO / "arena" / "train.py"
    train = train_path.read_text() if train_path.exists() else SYNTHETIC
    encoding()
    lines, tokens = len(train.splitlines()), count_tokens(train)
    print(f"train_py_lines: {lines}  train_py_tokens: {tokens}  budget_tokens: {args.budget}")

    for n in (0, 100, 1000, 10_000):
        c = context(train, n)
        ms = median_ms(lambda c=c: ideation_prompt(c, 3, args.budget), args.repeat)
        tokens = count_tokens(ideation_prompt(c, 3, args.budget))
        ok = "under" if tokens <= args.budget else "OVER"
        print(f"ideation_prompt history: {n:>6}  build_ms: {ms:8.2f}  tokens: {tokens:>6}  ({ok} budget)")
    c = context(train, 10_000)
    ms = median_ms(lambda: implement_prompt("Scale LR by 1.5", c, args.budget), args.repeat)
    print(f"implement_prompt history: 10000  build_ms: {ms:.2f}")

    for label, text in (("train.py", train), ("synthetic", SYNTHETIC)):
        for case, reply in edit_cases(text).items():
            ms = median_ms(
                lambda reply=reply, text=text: apply_blocks({"train.py": text}, reply), args.repeat
            )
            out = apply_blocks({"train.py": text}, reply)
            how = out.how.get(1, "failed")
            n = len(text.splitlines())
            print(f"apply_blocks file: {label} lines: {n} case: {case:<10} ms: {ms:8.2f}  result: {how}")

    with ScriptedServer() as srv:
        client = OpenAIClient(
            "openai-compatible:bench@" + srv.url,
            "bench",
            "EMPTY",
            base_url=srv.url + "/v1",
            max_retries=0,
            compatible=True,
        )
        proposer = LLMProposer(client.name, client, LLMLimits())
        reply = edit_cases(train)["indent"]
        c = context(train, 1000)
        rounds = []
        ours = []
        for _ in range(args.repeat):
            srv.push(Scripted(text=reply))
            t0 = time.perf_counter()
            _, usage = proposer.implement("Tweak the last line", c)
            total = (time.perf_counter() - t0) * 1000
            rounds.append(total)
            ours.append(total - usage.latency_s * 1000)
        proposer.close()
    print(f"implement_round_trip_ms (SDK + loopback HTTP + prompt + edits): {statistics.median(rounds):.2f}")
    print(f"implement_swarm_side_ms (round trip minus SDK call latency): {statistics.median(ours):.2f}")


if __name__ == "__main__":
    main()
