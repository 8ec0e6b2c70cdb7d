"""Proposer health through real agents: an LLM that is down or answers in prose backs off and pauses
(a bounded number of calls, each one costed), never uses a human's hypothesis up, and the agent waits
quietly; a failed implementation goes to another proposer; the bandit learns from every experiment.

The process tests run `swarm agent` on the synthetic arena against the official SDKs talking to a
scripted server on loopback (or a closed port); the in-process ones drive `Agent` with scripted
Python proposers and a simulated run, so dozens of experiments take seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import free_port
from llm_server import Scripted, ScriptedServer
from scripted_proposers import Marker, marker_run
from test_agent import init, wait_for

from swarm import defaults
from swarm.agent.loop import Agent, AgentOptions
from swarm.board import Board, HypothesisIn, State
from swarm.code.diff import make_patch
from swarm.models import Kind
from swarm.proposers.base import Idea, ProposalContext, Usage
from swarm.proposers.health import HealthPolicy
from swarm.proposers.llm import LLMCallFailed
from swarm.proposers.select import Selector

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
TRACK = "cpu:test"
HUMAN = ["Move X towards the middle", "Try a smaller Y", "Both coordinates by a tenth"]
FAST_HEALTH = """
[limits]
max_retries = 0
max_edit_attempts = 2
backoff_s = 0.4
pause_after = 3
pause_s = 5
pause_max_s = 10
"""


def swarm_cli(url: str, swarm: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", swarm, *args]


@pytest.mark.parametrize("outage", ["connection refused", "replies in prose"])
def test_a_failing_llm_backs_off_pauses_and_uses_no_human_hypothesis_up(
    outage: str, redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    subprocess.run(swarm_cli(redis_url, swarm_name, "init", "--arena", str(SYNTH)), check=True, capture_output=True)
    board = Board.connect(redis_url, swarm_name)
    ids = [board.post(HypothesisIn(text=t, source="human", author="me", priority=10))[0] for t in HUMAN]
    prose = Scripted(text="Sure! I think you should make the model better by tuning it.", input_tokens=1000,
                     output_tokens=100)  # fmt: skip
    with ScriptedServer(responder=lambda req: prose) as srv:
        url = srv.url if outage == "replies in prose" else f"http://127.0.0.1:{free_port()}"
        name = f"openai-compatible:m@{url}/v1"
        config = tmp_path / "proposers.toml"
        config.write_text(FAST_HEALTH + f'\n[[proposer]]\nspec = "{name}"\ninput_usd_per_mtok = 1.0\n')
        log = tmp_path / "agent.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                swarm_cli(redis_url, swarm_name, "agent", "--arena", str(SYNTH), "--workdir", str(tmp_path / "a"),
                          "--no-metrics", "--track", TRACK, "--budget", "0.1", "--proposers-config", str(config)),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for(lambda: any(a.health.get(name, None) and a.health[name].state == "paused" for a in board.agents()),
                     60, "the proposer paused on the board")  # fmt: skip
            paused_at = time.monotonic()
            time.sleep(8)  # one probe (after pause_s = 5 s) at most in this window
            (agent,) = board.agents()
            health = agent.health[name]
            calls_server = len(srv.requests)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    usage = board.proposer_usage()[name]
    # tries at ~0, 0.4, 1.2 s, then paused: a probe after ~5 s, the next ~10 s later; each try is at most 2
    # replies (ideation retries a malformed one; max_edit_attempts = 2)
    assert 3 <= usage.failures <= 5, usage
    assert usage.calls <= 2 * usage.failures
    if outage == "replies in prose":
        assert calls_server <= len(srv.requests) == usage.calls
        assert usage.input_tokens >= 1000 * usage.calls and usage.cost_usd > 0  # failed calls are billed
    assert health.state == "paused" and health.failures >= 3 and health.reason
    assert time.monotonic() - paused_at >= 8
    # the human's hypotheses: all still open, none used up; a failure recorded on each one tried
    hyps = [board.get(h) for h in ids]
    assert all(h.state == State.OPEN and h.attempts == 0 for h in hyps), [(h.state, h.attempts) for h in hyps]
    tried = [h for h in hyps if h.failures]
    assert tried and all(not f.counted and f.proposer == name for h in tried for f in h.failures)
    assert all(r.kind == Kind.BASELINE for r in board.results(limit=50))
    assert text.count("paused after 3 failures in a row") == 1
    assert text.count("waiting: ") <= usage.failures + 1  # said once per health change, not per poll


# --- in process: scripted Python proposers, simulated runs ---------------------------------------------


def test_the_bandit_shifts_claims_to_the_proposer_that_improves(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Callable[[str, str], Board]
) -> None:
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    props = [Marker("openai:good", "good"), Marker("openai:useless", "bad")]
    opts = AgentOptions(workdir=tmp_path / "a", arena=SYNTH, track=TRACK, runner=marker_run, max_experiments=70,
                        pipeline=False)  # fmt: skip
    agent = Agent(board, opts, props, Selector(props, [1.0, 1.0], bandit=True, seed=3))  # type: ignore[list-item]
    assert agent.run() == 70
    explore = sorted((r for r in board.results(limit=200, track=TRACK) if r.kind == Kind.EXPLORE),
                     key=lambda r: r.finished_ms)  # fmt: skip
    late = Counter(r.proposer for r in explore[len(explore) // 2 :])
    assert late["llm:openai/good"] >= 0.7 * sum(late.values()), late
    arms = board.arms(TRACK)  # the counts are on the board: every result reached the selector
    assert arms["openai:good"]["runs"] + arms["openai:useless"]["runs"] == len(explore)
    good, useless = arms["openai:good"], arms["openai:useless"]
    # a no-effect change passes screening by noise now and then (SCREEN_ALPHA, 30%), a real gain nearly always;
    # the bandit leaves the useless arm few runs (4-10), so its share passing is judged by what it gained per
    # run (noise, ~0.002) against the real gain's (0.01), not by a rate over a handful of runs
    assert good["improved"] >= 0.8 * good["runs"], arms
    assert useless["delta"] / useless["runs"] < 0.5 * good["delta"] / good["runs"], arms
    assert arms["openai:good"]["cost_usd"] > 0
    # a restarted agent starts from what the track learned: the arms are read from the board
    again = Selector(props, [1.0, 1.0], bandit=True, seed=4)  # type: ignore[list-item]
    agent2 = Agent(board, AgentOptions(workdir=tmp_path / "b", arena=SYNTH, track=TRACK, runner=marker_run,
                                       max_experiments=6, pipeline=False), props, again)  # type: ignore[arg-type]
    agent2.run()
    assert Counter(again.choose(False).name for _ in range(50))["openai:good"] >= 40


class Implementer:
    """A scripted implementer: turns any text into X = 0.5, or fails like a model whose edits never apply."""

    can_implement = True

    def __init__(self, name: str, works: bool) -> None:
        self.name, self.works, self.calls = name, works, 0

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        return [], Usage()

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        self.calls += 1
        if not self.works:
            raise LLMCallFailed(f"{self.name}: edits still failing after 3 attempts", Usage(500, 50, 0.02, 1.0, 3))
        return {"train.py": ctx.files["train.py"].replace("X = 0.2 ", "X = 0.5 ")}, Usage(500, 50, 0.01, 1.0, 1)

    def repair(self, *a: object) -> tuple[None, Usage]:
        return None, Usage()


def test_a_failed_implementation_goes_back_and_to_another_proposer(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Callable[[str, str], Board]
) -> None:
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    hid, _ = board.post(HypothesisIn(text="Move X to the middle", source="human", author="me", priority=10))
    bad, good = Implementer("anthropic:bad", works=False), Implementer("openai:good", works=True)
    opts = AgentOptions(workdir=tmp_path / "a", arena=SYNTH, track=TRACK, runner=marker_run,
                        max_experiments=defaults.NOISE_SEEDS + 1)
    # the failing one first (weight 1000), then the other: avoided for this hypothesis, and backing off
    agent = Agent(board, opts, [bad, good], Selector([bad, good], [1000.0, 1.0], seed=0))  # type: ignore[list-item]
    agent.run()
    h = board.get(hid)
    assert h.state == State.DONE and bad.calls == 1 and good.calls >= 1
    assert [(f.proposer, f.counted) for f in h.failures] == [("anthropic:bad", False)]
    assert "edits still failing" in h.failures[0].reason
    (res,) = [r for r in board.results(limit=20) if r.hypothesis_id == hid]
    assert res.proposer == "llm:openai/good" and res.status != "invalid"
    usage = board.proposer_usage()
    assert usage["anthropic:bad"].failures == 1 and usage["anthropic:bad"].calls == 3
    assert usage["anthropic:bad"].cost_usd == pytest.approx(0.02) and usage["openai:good"].failures == 0
    assert any(e.kind == "giveback" for e in board.events(100))
    assert json.loads(h.model_dump_json())["failures"][0]["proposer"] == "anthropic:bad"


class Repeater(Marker):
    """A paid model that gives the same idea every time: new once, then only duplicates."""

    def __init__(self) -> None:
        super().__init__("openai:parrot", "good")
        self.calls = 0

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        self.calls += 1
        files = {"train.py": ctx.files["train.py"].replace("X = 0.2 ", "X = 0.3 ")}
        return [Idea("X to 0.3", patch=make_patch(ctx.files, files))], Usage(100, 10, 0.001, 0.01, 1)


def test_a_model_that_repeats_itself_backs_off_instead_of_being_asked_every_poll(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Callable[[str, str], Board]
) -> None:
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    parrot = Repeater()
    sel = Selector([parrot], [1.0], seed=0, health=HealthPolicy(backoff_s=2, pause_after=3, pause_s=60))  # type: ignore[list-item]
    opts = AgentOptions(workdir=tmp_path / "a", arena=SYNTH, track=TRACK, runner=marker_run, pipeline=False)
    agent = Agent(board, opts, [parrot], sel)  # type: ignore[list-item]
    threading.Timer(15, agent.request_stop).start()
    agent.run()
    # asked once with a new idea (run), then nothing new at ~2 s, 4 s and 8 s later: paused. Asked on every
    # idle poll (2 s) it would have been called about 7 times in the 15 s
    assert parrot.calls <= 5, parrot.calls
    assert sel.state("openai:parrot").state == "paused" and "no new idea" in sel.state("openai:parrot").reason
    assert board.proposer_usage()["openai:parrot"].calls == parrot.calls
