"""Whole swarms for real: agents training the real GPT on the CPU arena, and the README's demo.

- Two agents on the CPU arena reach a confirmed leader move (a posted known-good patch on a slowed copy). One mixes an
  `openai-compatible` proposer (the official openai SDK talking to a scripted server on loopback) with
  `classical`, the other is classical only; per-proposer figures come out of `swarm status --json`.
- `swarm demo` end to end (embedded redis-server, launched agents, leaderboard) on the synthetic arena.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from llm_server import Request, Scripted, ScriptedServer

from swarm import defaults
from swarm.board import Board
from swarm.code.diff import make_patch

REPO = Path(__file__).resolve().parents[1]
ARENA = REPO / "arena"
SYNTH = REPO / "tests" / "arenas" / "synth"

IDEAS = {"ideas": [
    {"title": "Raise the Muon learning rate to 0.03",
     "rationale": "Short budgets reward faster learning on the matrices; 0.02 is conservative for 1M params."},
    {"title": "Shorten the warmup to 1% of the budget",
     "rationale": "With a few dozen steps, 3% warmup wastes a visible share of the budget."},
]}


def model_reply(req: Request) -> Scripted:
    """A stand-in model: JSON ideas for ideation, SEARCH/REPLACE blocks for implementation."""
    prompt = req.last_user_text()
    if "SEARCH" in prompt:
        name, old, new = ("MUON_LR", "0.02", "0.03") if "Muon learning rate" in prompt else ("WARMUP", "0.03", "0.01")
        line = next(x for x in (ARENA / "train.py").read_text().splitlines() if x.startswith(name + " "))
        text = f"train.py\n<<<<<<< SEARCH\n{line}\n=======\n{line.replace(old, new, 1)}\n>>>>>>> REPLACE\n"
    else:
        text = json.dumps(IDEAS)
    return Scripted(text=text, input_tokens=1200, output_tokens=80)


def swarm(url: str, name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", name, *args]


@pytest.mark.slow
def test_two_agents_mix_openai_compatible_and_classical_on_the_cpu_arena(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    # one thread per agent: two agents share the 2 cores without starving each other's training clock
    env = {**os.environ, "ARENA_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    # The swarm's arena is the shipped one with the output head's and the embedding's learning rates
    # cut 1000x, and the known-good edit (a patch) puts them back: 3.75 -> 3.48-3.57 bpb at a 3 s budget
    # (two runs, 2026-12-02), against a seed noise of ~0.002 for that baseline (it barely trains, so
    # its step count hardly matters). The shipped arena's known-good edit (2 blocks instead of 4) gained
    # ~0.1-0.3 while two agents' runs on a loaded 2-core machine differed by 0.04-0.15 from scheduling
    # alone (their steps varied 2x): its move cleared the noise in 1 of 8 runs that day (1 of 4 with
    # the code before urgent work could stop a run).
    arena = tmp_path / "arena"
    shutil.copytree(ARENA, arena, ignore=shutil.ignore_patterns("__pycache__"))
    good = (ARENA / "train.py").read_text()
    slow = good.replace("LR = 6e-3 ", "LR = 6e-6 ").replace("EMBED_LR = 3e-2 ", "EMBED_LR = 3e-5 ")
    assert slow.count("e-6 ") == 1 and slow.count("e-5 ") == 1
    (arena / "train.py").write_text(slow)
    subprocess.run(swarm(redis_url, swarm_name, "init", "--arena", str(arena)), check=True, env=env)
    (tmp_path / "fix.diff").write_text(make_patch({"train.py": slow}, {"train.py": good}))
    subprocess.run(swarm(redis_url, swarm_name, "post", "Learning rates of the head and embedding back to normal",
                         "--patch", str(tmp_path / "fix.diff"), "--priority", "10"), check=True, env=env,
                   capture_output=True)
    for idea in IDEAS["ideas"]:  # text-only: only an agent with an LLM can implement them
        subprocess.run(swarm(redis_url, swarm_name, "post", f"{idea['title']}\n\n{idea['rationale']}",
                             "--priority", "5"), check=True, env=env, capture_output=True)
    with ScriptedServer(responder=model_reply) as srv:
        llm = f"openai-compatible:scripted@{srv.url}/v1=3"
        common = ["agent", "--arena", str(arena), "--budget", "3", "--no-metrics", "--max-experiments", "10"]
        procs = []
        for i, props in enumerate([["--proposer", llm, "--proposer", "classical=1"], ["--proposer", "classical"]]):
            with (tmp_path / f"a{i}.log").open("wb") as log:
                procs.append(subprocess.Popen(
                    swarm(redis_url, swarm_name, *common, "--workdir", str(tmp_path / f"a{i}"), "--seed", str(i),
                          *props), stdout=log, stderr=subprocess.STDOUT, env=env))
        for i, p in enumerate(procs):
            assert p.wait(timeout=600) == 0, (tmp_path / f"a{i}.log").read_text()[-3000:]
        assert any(r.path.endswith("/chat/completions") for r in srv.requests)
    board = Board.connect(redis_url, swarm_name)
    results = board.results(limit=100)
    assert len(results) == 20
    # a loaded CI machine may push a 2 s run past its grace (timeout); nothing may be invalid or crash
    assert all(r.status in ("keep", "discard", "timeout") for r in results), [(r.status, r.error) for r in results]
    assert all(0 < r.metric < 8 for r in results if r.metric is not None)
    llm_runs = [r for r in results if r.proposer.startswith("llm:openai-compatible/scripted")]
    # the LLM's edits run as they are (its text ideas, implemented by it) carry the tokens of its calls; its
    # edits posted again by an agent (a rebase, or re-applied after another candidate overtook its leader)
    # are credited to it but made no call
    hyps = {r.result_id: board.get(r.hypothesis_id or "") for r in llm_runs}
    implemented = [r for r in llm_runs if r.kind == "explore" and not hyps[r.result_id].patch_hash]
    reposted = [r for r in llm_runs if r.kind == "explore" and hyps[r.result_id].patch_hash]
    assert implemented and all(r.llm_input_tokens >= 1200 and r.llm_output_tokens >= 80 for r in implemented), [
        (hyps[r.result_id].text[:60], r.llm_input_tokens, r.llm_output_tokens) for r in implemented
    ]
    assert all(hyps[r.result_id].text.startswith(("rebase onto", "reapply", "combine")) for r in reposted), [
        hyps[r.result_id].text[:60] for r in reposted
    ]
    assert {r.brief_version for r in results if r.kind == "explore"} == {1}
    out = subprocess.run(swarm(redis_url, swarm_name, "status", "--json"), capture_output=True, text=True,
                         env=env, check=True)
    status = json.loads(out.stdout)
    props = status["proposers"]
    name = next(k for k in props if k.startswith("llm:openai-compatible/scripted"))
    assert props[name]["experiments"] == len([r for r in llm_runs if r.kind == "explore"])
    assert props[name]["input_tokens"] >= 1200 and props[name]["cost_usd"] == 0  # no price configured
    assert "classical" in props
    # baseline (gen 1), then at least one confirmed move (usually the learning-rate fix; a classical idea that
    # beats the baseline can come first), each backed by its confirmation runs. 10 runs per agent: the
    # classical probes often beat the baseline too, and their confirmations compete with the fix's (at 8
    # runs per agent one CI run ended with three candidates half-confirmed and no move)
    leader = board.leader(results[0].track)
    assert leader is not None and leader.generation >= 2, [(r.kind, r.status, r.metric) for r in results]
    for move in board.leader_history(leader.track)[1:]:
        assert len([r for r in results if r.candidate_of == move.result_id]) == defaults.CONFIRM_RUNS - 1


@pytest.mark.slow
def test_demo_runs_end_to_end_with_an_embedded_redis(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "swarm.cli", "demo", "--minutes", "0.5", "--budget", "1", "--arena", str(SYNTH),
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=240, env={**os.environ, "SWARM_REDIS_URL": "redis://nowhere:1/0"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "embedded redis-server on redis://127.0.0.1:" in text
    assert "leader history of cpu:" in text
    m = re.search(r"demo done: (\d+) experiments", text)
    assert m and int(m.group(1)) >= 6
    assert (tmp_path / "demo" / "best" / "train.py").is_file()
    assert not (tmp_path / "demo" / "redis").exists()  # the embedded server's files are cleaned up
