"""Per-proposer accounting, `swarm status [--json]` and the live view `swarm status --watch`.

A board is built through the Board API on a real redis-server: hypotheses claimed and completed,
results published with their proposer and LLM usage, leader moves made by compare-and-set. The
figures are then checked exactly, as a pure function, through the CLI, and in the rendered frame.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import free_port
from redis.backoff import NoBackoff
from redis.retry import Retry
from test_board_core import make_arena

from swarm.board import Board
from swarm.models import (
    AgentInfo,
    AgentRecord,
    Hypothesis,
    HypothesisIn,
    Leader,
    ProposerHealth,
    ProposerUsage,
    Result,
    ResultIn,
    State,
    Status,
)
from swarm.observe.accounting import NO_PROPOSER, board_proposer_stats, paused_agents, proposer_stats
from swarm.observe.watch import AgentRow, Frame, render, take_frame, watch

REPO = Path(__file__).resolve().parents[1]
T = "cpu:2c"
CLAUDE = "llm:anthropic/claude-sonnet-4-5"


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Iterator[Board]:
    b = Board.connect(redis_url, swarm_name)
    yield b
    b.r.close()  # no socket left for the garbage collector (ResourceWarning is an error here)


def publish(
    board: Board,
    proposer: str,
    status: str,
    metric: float | None,
    *,
    kind: str = "explore",
    llm: tuple[int, int, float, float] = (0, 0, 0.0, 0.0),
    candidate_of: str | None = None,
) -> str:
    """Publish a result as an agent would: claim a hypothesis posted for the purpose, publish, complete."""
    hid: str | None = None
    token: int | None = None
    if kind != "baseline":
        source = proposer if proposer in ("classical", CLAUDE) else "human"
        hid, _ = board.post(HypothesisIn(text=f"{proposer} {status} {uuid.uuid4().hex}", source=source, track=T))
        claim = board.claim("tester", T)
        assert claim is not None and claim.hypothesis.id == hid
        token = claim.token
    rid = uuid.uuid4().hex
    tin, tout, cost, lat = llm
    out = board.publish(
        ResultIn(
            result_id=rid,
            hypothesis_id=hid,
            token=token,
            agent_id="tester",
            proposer=proposer,
            track=T,
            status=status,  # type: ignore[arg-type]
            metric=metric,
            kind=kind,  # type: ignore[arg-type]
            candidate_of=candidate_of,
            llm_input_tokens=tin,
            llm_output_tokens=tout,
            llm_cost_usd=cost,
            llm_latency_s=lat,
            patch_hash="0" * 64,
        )
    )
    assert out.stored and not out.stale
    if hid is not None and token is not None:
        board.complete(hid, token, State.FAILED if Status(status).failed else State.DONE)
    return rid


def move(board: Board, rid: str, metric: float) -> None:
    lead = board.leader(T)
    r = board.result(rid)
    out = board.move_leader(T, lead.generation if lead else 0, metric, "0" * 64, r.hypothesis_id, "tester", rid)
    assert out.accepted, out


def build(board: Board, tmp_path: Path) -> dict[str, str]:
    """The recorded swarm: a baseline move, then claude, classical and a human's experiments."""
    board.init(make_arena(tmp_path / "arena"))
    ids: dict[str, str] = {}
    ids["base"] = publish(board, "", "keep", 1.0, kind="baseline")
    move(board, ids["base"], 1.0)
    ids["c1"] = publish(board, CLAUDE, "keep", 0.97, llm=(1000, 200, 0.01, 2.0))
    publish(board, CLAUDE, "keep", 0.968, kind="confirm", candidate_of=ids["c1"])  # no LLM call: no usage
    move(board, ids["c1"], 0.97)
    publish(board, CLAUDE, "discard", 0.99, llm=(1500, 300, 0.02, 4.0))
    publish(board, CLAUDE, "crash", None, llm=(500, 100, 0.005, 3.0))
    ids["k1"] = publish(board, "classical", "keep", 0.95)
    move(board, ids["k1"], 0.95)
    publish(board, "classical", "timeout", None)
    publish(board, "classical", "invalid", None)
    publish(board, "classical", "discard", 0.96)
    publish(board, "human", "keep", 0.96)  # kept (passed screening) but never promoted
    return ids


def test_proposer_stats_from_a_board(board: Board, tmp_path: Path) -> None:
    build(board, tmp_path)
    stats, counted = board_proposer_stats(board)
    assert counted == 10
    assert list(stats) == sorted([CLAUDE, "classical", "human", NO_PROPOSER])

    c = stats[CLAUDE]
    assert (c.results, c.experiments, c.kept, c.promoted, c.failed, c.moves) == (4, 3, 1, 1, 1, 1)
    assert c.acceptance_rate == pytest.approx(1 / 3) and c.crash_rate == pytest.approx(1 / 3)
    assert (c.input_tokens, c.output_tokens) == (3000, 600)
    assert c.cost_usd == pytest.approx(0.035) and c.cost_per_promotion_usd == pytest.approx(0.035)
    assert c.llm_results == 3 and c.mean_llm_latency_s == pytest.approx(3.0)  # the confirmation made no call

    k = stats["classical"]
    assert (k.results, k.experiments, k.kept, k.promoted, k.failed, k.moves) == (4, 4, 1, 1, 2, 1)
    assert k.acceptance_rate == 0.25 and k.crash_rate == 0.5  # timeout + invalid of 4
    assert (k.input_tokens, k.output_tokens, k.cost_usd) == (0, 0, 0.0)
    assert k.cost_per_promotion_usd == 0.0 and k.mean_llm_latency_s is None

    h = stats["human"]
    assert (h.experiments, h.kept, h.promoted, h.acceptance_rate, h.crash_rate) == (1, 1, 0, 0.0, 0.0)
    assert h.cost_per_promotion_usd is None

    b = stats[NO_PROPOSER]  # the baseline: a leader move, but not an experiment
    assert (b.results, b.experiments, b.promoted, b.moves) == (1, 0, 0, 1)
    assert b.acceptance_rate is None and b.crash_rate is None


def _result(rid: str, proposer: str, status: str = "keep", kind: str = "explore", cost: float = 0.0) -> Result:
    return Result(
        result_id=rid,
        agent_id="a",
        proposer=proposer,
        track=T,
        status=status,  # type: ignore[arg-type]
        metric=None if status != "keep" else 1.0,
        kind=kind,  # type: ignore[arg-type]
        llm_cost_usd=cost,
    )


def _leader(rid: str, gen: int) -> Leader:
    return Leader(track=T, generation=gen, metric=1.0, patch_hash="0" * 64, agent_id="a", result_id=rid, time_ms=0)


def test_proposer_stats_pure_edge_cases() -> None:
    assert proposer_stats([], {}) == {}
    rs = [_result("r1", "classical", cost=0.5), _result("r1", "classical", cost=0.5), _result("r2", "classical")]
    by_track = proposer_stats(rs, {T: [_leader("r1", 1)]})
    by_moves = proposer_stats(rs, [_leader("r1", 1)])  # a plain iterable of moves works too
    assert by_track == by_moves
    k = by_track["classical"]
    assert (k.results, k.experiments, k.promoted) == (2, 2, 1)  # r1 seen twice counts once
    assert k.cost_usd == 0.5 and k.cost_per_promotion_usd == 0.5
    assert k.as_dict()["acceptance_rate"] == 0.5
    # a move naming a result that is not in the window changes nothing
    assert proposer_stats(rs, [_leader("elsewhere", 1)])["classical"].promoted == 0


# --- swarm status ---------------------------------------------------------------------------------


@pytest.fixture()
def cli(redis_url: str, swarm_name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """`swarm ARGS` in-process through the console entry point: (exit code, stdout, stderr)."""
    from swarm.cli import main

    for k in [k for k in os.environ if k.startswith("SWARM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SWARM_REDIS_URL", redis_url)
    monkeypatch.setenv("SWARM_NAME", swarm_name)

    def _run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["swarm", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


def test_status_json_has_per_proposer_figures(cli: Any, board: Board, tmp_path: Path) -> None:
    build(board, tmp_path)
    code, out, err = cli("status", "--json")
    assert code == 0, err
    st = json.loads(out)
    assert st["counts"]["done"] == 6 and st["counts"]["failed"] == 3  # what status showed before is still there
    assert st["leaders"][T]["generation"] == 3 and st["proposers_results"] == 10
    c = st["proposers"][CLAUDE]
    for key, want in {
        "experiments": 3,
        "promoted": 1,
        "input_tokens": 3000,
        "output_tokens": 600,
    }.items():
        assert c[key] == want, key
    assert c["acceptance_rate"] == pytest.approx(1 / 3) and c["crash_rate"] == pytest.approx(1 / 3)
    assert c["cost_usd"] == pytest.approx(0.035) and c["cost_per_promotion_usd"] == pytest.approx(0.035)
    k = st["proposers"]["classical"]
    assert (k["experiments"], k["promoted"], k["acceptance_rate"], k["crash_rate"]) == (4, 1, 0.25, 0.5)
    assert k["cost_usd"] == 0.0 and k["cost_per_promotion_usd"] == 0.0
    assert st["proposers"]["human"]["cost_per_promotion_usd"] is None
    assert st["proposers"][NO_PROPOSER]["acceptance_rate"] is None
    code, out, err = cli("status", "--json", "--max-results", "2")  # the newest two: classical discard, human keep
    assert code == 0, err
    st = json.loads(out)
    assert st["proposers_results"] == 2 and sorted(st["proposers"]) == ["classical", "human"]
    assert cli("status", "--max-results", "-1")[0] == 2


def test_status_table_has_per_proposer_lines(cli: Any, board: Board, tmp_path: Path) -> None:
    code, out, _ = cli("status")  # an empty swarm: no proposer table, no error
    assert code == 0 and "proposers" not in out
    build(board, tmp_path)
    code, out, err = cli("status")
    assert code == 0, err
    lines = out.splitlines()
    assert "proposers (10 results; calls, tokens and cost: swarm totals):" in lines
    header = next(ln for ln in lines if ln.strip().startswith("proposer "))
    want = ["proposer", "calls", "failed", "runs", "promoted", "accept", "crash", "tokens", "in/out", "cost", "per",
            "promotion", "llm"]  # fmt: skip
    assert header.split() == want
    # no usage totals on this board (agents from before them): tokens and cost are the results' sums
    claude = next(ln for ln in lines if ln.strip().startswith(CLAUDE))
    assert claude.split() == [CLAUDE, "0", "0", "3", "1", "33%", "33%", "3000/600", "$0.0350", "$0.0350", "3.0s"]
    classical = next(ln for ln in lines if ln.strip().startswith("classical"))
    assert classical.split() == ["classical", "0", "0", "4", "1", "25%", "50%", "0/0", "$0.0000", "$0.0000", "-"]
    human = next(ln for ln in lines if ln.strip().startswith("human"))
    assert human.split() == ["human", "0", "0", "1", "0", "0%", "0%", "0/0", "$0.0000", "-", "-"]
    assert "proposer health:" not in lines  # every proposer healthy: no section


def test_status_watch_refuses_bad_options(cli: Any) -> None:
    for args in (["--watch", "--json"], ["--watch", "--interval", "0"], ["--watch", "--iterations", "-1"]):
        code, _, err = cli("status", *args)
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err, (args, err)


# --- the live view --------------------------------------------------------------------------------

NOW = 1_700_000_000_000


def _snapshot() -> Frame:
    def hyp(hid: str, prio: int, title: str) -> Hypothesis:
        return Hypothesis(
            id=hid,
            text=f"{title}\nwhy",
            source="classical",
            author="",
            priority=prio,
            patch_hash=None,
            tags=[],
            track=None,
            meta={},
            kind="explore",
            parent=None,
            seed=None,
            state=State.OPEN,
            created_ms=NOW - 1000,
        )

    stats = proposer_stats(
        [_result("r1", "classical"), _result("r2", "classical", "crash"), _result("r3", CLAUDE, cost=0.25)],
        [_leader("r1", 4)],
    )
    return Frame(
        swarm="demo",
        server_ms=NOW,
        counts={"open": 7, "claimed": 2, "done": 30, "failed": 1, "cancelled": 0},
        leaders={
            T: Leader(
                **{
                    **_leader("r1", 4).model_dump(),
                    "metric": 0.9612345,
                    "time_ms": NOW - 125_000,
                    "hypothesis_id": "h9",
                    "agent_id": "node1-gpu0",
                }
            )
        },
        agents=[
            AgentRow("node1-gpu0", True, T, "running", "h42", "Raise the LR to 0.06", NOW - 192_000, True, NOW),
            AgentRow("node2-gpu0", True, T, "idle", None, None, NOW - 30_000, False, NOW),
            AgentRow("laptop", False, T, "running", "h7", "old", NOW - 900_000, True, NOW - 3_600_000),
        ],
        top_open=[hyp("h50", 900, "confirm abc with seed 1"), hyp("h51", 0, "Deeper model")],
        recent=[_result("r3", CLAUDE, "discard"), _result("r1", "classical")],
        titles={"h9": "Warmup 20 steps"},
        proposers=stats,
        results_counted=3,
        interval_s=2.0,
    )


def test_render_shows_every_section() -> None:
    text = render(_snapshot())
    assert render(_snapshot()) == text  # pure: same snapshot, same frame
    lines = text.splitlines()
    assert lines[0].startswith("swarm demo  2023-11-14 22:13:20 UTC")
    assert "hypotheses: open=7 claimed=2 done=30 failed=1 cancelled=0" in lines
    leader = next(ln for ln in lines if ln.strip().startswith(T) and "gen 4" in ln)
    assert leader.split() == [T, "gen", "4", "0.961234", "node1-gpu0", "2m05s", "ago", "Warmup", "20", "steps"]
    assert "agents: 2 alive, 1 dead" in lines
    running = next(ln for ln in lines if ln.strip().startswith("node1-gpu0") and "alive" in ln)
    assert running.split() == ["node1-gpu0", "alive", T, "running", "3m12s", "h42", "Raise", "the", "LR", "to", "0.06"]
    idle = next(ln for ln in lines if ln.strip().startswith("node2-gpu0"))
    assert idle.split() == ["node2-gpu0", "alive", T, "idle", ">=30s", "-"]  # a lower bound, marked
    dead = next(ln for ln in lines if ln.strip().startswith("laptop"))
    assert "DEAD" in dead and "last beat 1h00m ago" in dead
    assert "queue: 7 open, 2 claimed" in lines
    nxt = [ln.split()[0] for ln in lines if ln.strip().startswith("h5")]
    assert nxt == ["h50", "h51"]
    assert "proposers (newest 3 results; calls, tokens and cost: swarm totals):" in lines
    classical = next(ln for ln in lines if ln.strip().startswith("classical "))
    assert classical.split()[:7] == ["classical", "0", "0", "2", "1", "50%", "50%"]
    assert any(ln.split()[:4] == [CLAUDE, "0", "0", "1"] and "$0.2500" in ln for ln in lines)
    assert "proposer health:" not in lines


def test_render_cuts_lines_at_the_width() -> None:
    text = render(_snapshot(), width=40)
    assert max(len(ln) for ln in text.splitlines()) == 40
    assert any(ln.endswith("~") for ln in text.splitlines())


def test_snapshot_of_a_live_board(board: Board, tmp_path: Path) -> None:
    build(board, tmp_path)
    board.register(AgentInfo(agent_id="node1-gpu0", track=T))
    board.register(AgentInfo(agent_id="node2-gpu0", track=T))
    low, _ = board.post(HypothesisIn(text="Low priority idea", track=T, priority=-5))
    hid, _ = board.post(HypothesisIn(text="Try a cosine schedule\nbecause", track=T, priority=10))
    claim = board.claim("node1-gpu0", T)
    assert claim is not None and claim.hypothesis.id == hid
    board.heartbeat("node1-gpu0", "running", hid)
    board.heartbeat("node2-gpu0", "idle", None)
    top, _ = board.post(HypothesisIn(text="Top priority idea", track=T, priority=50))
    seen: dict[tuple[str, str, str], int] = {}
    snap = take_frame(board, seen)
    assert snap.counts["claimed"] == 1 and snap.counts["open"] == 2
    assert [h.id for h in snap.top_open] == [top, low]  # by priority, not by age
    rows = {a.agent_id: a for a in snap.agents}
    run = rows["node1-gpu0"]
    assert (run.state, run.current, run.title, run.since_exact) == ("running", hid, "Try a cosine schedule", True)
    claim_event = next(e for e in board.events(100) if e.kind == "claim" and e.fields.get("hid") == hid)
    assert run.since_ms == claim_event.time_ms
    idle = rows["node2-gpu0"]
    assert idle.since_exact is False and idle.since_ms == seen[("node2-gpu0", "idle", "")]
    assert snap.leaders[T].generation == 3 and len(snap.recent) == 8 and snap.results_counted == 10
    assert snap.proposers == board_proposer_stats(board)[0]
    first = idle.since_ms
    time.sleep(0.01)
    again = take_frame(board, seen)
    assert {a.agent_id: a for a in again.agents}["node2-gpu0"].since_ms == first  # remembered between frames
    text = render(snap)
    assert "Try a cosine schedule" in text and "Top priority idea" in text


def test_watch_keeps_going_when_the_board_is_down(swarm_name: str) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))  # no server
    out = io.StringIO()
    try:
        assert watch(Board(dead, swarm_name), interval_s=0.01, iterations=2, out=out) == 2
    finally:
        dead.close()
    frames = out.getvalue().split("\n\n")
    assert len(frames) == 2 and all("! board unreachable" in f for f in frames)


def _swarm(args: list[str], redis_url: str, swarm_name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "swarm", *args],
        cwd=REPO,
        env={**env, "SWARM_REDIS_URL": redis_url, "SWARM_NAME": swarm_name, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_draws_n_frames_in_a_subprocess(
    board: Board, redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    build(board, tmp_path)
    proc = _swarm(["status", "--watch", "--interval", "0.05", "--iterations", "3"], redis_url, swarm_name, clean_env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "\x1b[" not in out  # not a terminal: frames one after another, no escape codes
    headers = [ln for ln in out.splitlines() if ln.startswith(f"swarm {swarm_name}  ")]
    assert len(headers) == 3
    assert out.count("proposers (newest 10 results; calls, tokens and cost: swarm totals):") == 3 and CLAUDE in out


def test_watch_exits_cleanly_on_ctrl_c(redis_url: str, swarm_name: str, clean_env: dict[str, str]) -> None:
    proc = _swarm(["status", "--watch", "--interval", "0.2"], redis_url, swarm_name, clean_env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and not line.startswith(f"swarm {swarm_name}"):
        line = proc.stdout.readline()
    assert line.startswith(f"swarm {swarm_name}"), proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Aborted" not in err


def test_exporter_and_report_use_the_same_figures(board: Board, tmp_path: Path) -> None:
    """The exporter and the report call swarm.accounting: acceptance is promoted / run, not kept / run."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from swarm.observe.exporter import board_registry
    from swarm.observe.report import collect, render_markdown

    build(board, tmp_path)
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(board_registry(board)).decode())
        for s in fam.samples
    }

    def accept(p: str) -> float:
        return got[("swarm_board_proposer_acceptance_ratio", (("proposer", p),))]

    assert accept("human") == 0.0  # kept 1 of 1, promoted 0 of 1
    assert accept(CLAUDE) == pytest.approx(1 / 3) and accept("classical") == 0.25
    assert ("swarm_board_proposer_acceptance_ratio", (("proposer", NO_PROPOSER),)) not in got  # no experiment
    assert got[("swarm_board_proposer_promotions", (("proposer", NO_PROPOSER),))] == 1  # the baseline move
    assert got[("swarm_board_proposer_cost_usd", (("proposer", CLAUDE),))] == pytest.approx(0.035)

    md = render_markdown(collect(board))
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert rows["human"].startswith("| human | 1 | 1 | 0% | 0 | 0 | 0.0000 | 0 / 0 | - |")
    assert rows["classical"].startswith("| classical | 4 | 1 | 25% | 1 | 2 | 0.0000 | 0 / 0 | 0.0000 |")
    assert rows[CLAUDE].startswith(f"| {CLAUDE} | 3 | 1 | 33% | 1 | 1 | 0.0350 | 3000 / 600 | 0.0350 |")


# --- usage totals and proposer health -------------------------------------------------------------

SPEC = "anthropic:claude-sonnet-4-5"  # the agents' spec name of CLAUDE (its result label)
QWEN = "openai-compatible:qwen@http://127.0.0.1:9/v1"
QWEN_LABEL = "llm:openai-compatible/qwen@http://127.0.0.1:9/v1"


def test_usage_totals_replace_the_results_sums() -> None:
    rs = [_result("r1", CLAUDE, cost=0.25), _result("r2", "classical"), _result("r3", "human")]
    usage = {
        SPEC: ProposerUsage(calls=10, failures=2, input_tokens=5000, output_tokens=700, cost_usd=1.0),
        CLAUDE: ProposerUsage(calls=1, failures=1, input_tokens=100, output_tokens=10, cost_usd=0.5),  # same label
        QWEN: ProposerUsage(calls=3, failures=3),
    }
    stats = proposer_stats(rs, [_leader("r1", 1)], usage)
    c = stats[CLAUDE]
    assert (c.calls, c.failed_calls, c.input_tokens, c.output_tokens) == (11, 3, 5100, 710)
    assert c.cost_usd == pytest.approx(1.5) and c.cost_per_promotion_usd == pytest.approx(1.5)
    assert (c.results, c.experiments, c.promoted) == (1, 1, 1)  # still from the results and moves
    assert c.as_dict()["calls"] == 11 and c.as_dict()["failed_calls"] == 3
    q = stats[QWEN_LABEL]  # calls only, every one failed: a row all the same
    assert (q.calls, q.failed_calls, q.results, q.experiments, q.acceptance_rate) == (3, 3, 0, 0, None)
    assert stats["human"].calls == 0 and sorted(stats) == sorted([CLAUDE, QWEN_LABEL, "classical", "human"])
    # without totals (a board from before them) the results' sums stand, as before
    assert proposer_stats(rs, [], {}) == proposer_stats(rs, [])
    assert proposer_stats(rs, [])[CLAUDE].cost_usd == 0.25 and proposer_stats(rs, [])[CLAUDE].calls == 0


def _agent(aid: str, alive: bool, health: dict[str, ProposerHealth]) -> AgentRecord:
    return AgentRecord(agent_id=aid, track=T, proposers=[SPEC, "classical"], alive=alive, health=health)


def test_paused_agents_counts_live_agents_per_label() -> None:
    paused = ProposerHealth(state="paused", reason="HTTP 500", failures=3)
    backoff = ProposerHealth(state="backoff", reason="timeout", failures=1)
    agents = [
        _agent("a", True, {SPEC: paused, QWEN: backoff}),
        _agent("b", True, {SPEC: paused, QWEN: paused}),
        _agent("c", False, {SPEC: paused}),  # dead: calls nobody
        _agent("d", True, {}),
    ]
    assert paused_agents(agents) == {CLAUDE: 2, QWEN_LABEL: 1}
    assert paused_agents([]) == {}


def health_board(board: Board, tmp_path: Path) -> None:
    """build()'s board, plus usage totals the agents recorded and three agents' proposer health."""
    build(board, tmp_path)
    # every call: the three experiments' implementations plus ideation and two failed calls
    board.add_usage(SPEC, calls=5, failures=2, input_tokens=9000, output_tokens=1200, cost_usd=0.08)
    board.add_usage(SPEC, calls=2, failures=0, input_tokens=1000, output_tokens=300, cost_usd=0.04)
    board.add_usage(QWEN, calls=3, failures=3, input_tokens=0, output_tokens=0, cost_usd=0.0)
    for aid, ttl in (("n1", None), ("n2", None), ("n3", 0.001)):  # n3 is dead
        board.register(AgentInfo(agent_id=aid, track=T, proposers=[SPEC, QWEN, "classical"]), ttl_s=ttl)
    why = "APIConnectionError: Connection refused by 127.0.0.1:9 " + "x" * 200
    board.set_health("n1", {SPEC: ProposerHealth(state="paused", reason=why, failures=3, until_ms=1)})
    board.set_health(
        "n2",
        {
            SPEC: ProposerHealth(state="paused", reason="HTTP 529 overloaded", failures=4),
            QWEN: ProposerHealth(state="backoff", reason="timeout", failures=1),
        },
    )
    board.set_health("n3", {QWEN: ProposerHealth(state="paused", reason="gone", failures=3)})
    time.sleep(0.01)


def test_status_report_exporter_and_view_agree_on_usage_and_health(cli: Any, board: Board, tmp_path: Path) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from swarm.observe.exporter import board_registry
    from swarm.observe.report import collect, render_markdown

    health_board(board, tmp_path)
    code, out, err = cli("status", "--json")
    assert code == 0, err
    st = json.loads(out)
    c = st["proposers"][CLAUDE]
    assert (c["calls"], c["failed_calls"], c["input_tokens"], c["output_tokens"]) == (7, 2, 10000, 1500)
    assert c["cost_usd"] == pytest.approx(0.12) and c["cost_per_promotion_usd"] == pytest.approx(0.12)
    assert (c["experiments"], c["promoted"]) == (3, 1)
    q = st["proposers"][QWEN_LABEL]
    assert (q["calls"], q["failed_calls"], q["experiments"], q["acceptance_rate"]) == (3, 3, 0, None)
    assert st["proposers"]["classical"]["calls"] == 0
    health = st["proposer_health"]
    assert sorted(health) == ["n1", "n2", "n3"] and health["n3"]["alive"] is False
    assert health["n2"]["proposers"][QWEN] == {"state": "backoff", "reason": "timeout", "failures": 1, "until_ms": 0}
    assert health["n1"]["proposers"][SPEC]["state"] == "paused"

    code, out, err = cli("status")
    assert code == 0, err
    lines = out.splitlines()
    claude = next(ln for ln in lines if ln.strip().startswith(CLAUDE))
    assert claude.split() == [CLAUDE, "7", "2", "3", "1", "33%", "33%", "10000/1500", "$0.1200", "$0.1200", "3.0s"]
    qwen = next(ln for ln in lines if ln.strip().startswith(QWEN_LABEL))
    assert qwen.split() == [QWEN_LABEL, "3", "3", "0", "0", "-", "-", "0/0", "$0.0000", "-", "-"]
    sick = lines[lines.index("proposer health:") + 1 :]
    assert sick[0].startswith(f"  n1: paused {SPEC} (3 failures: APIConnectionError: Connection refused by")
    assert sick[0].endswith("...)") and len(sick[0]) < 140  # the reason cut to one line
    assert sick[1:] == [
        f"  n2: paused {SPEC} (4 failures: HTTP 529 overloaded)",
        f"  n2: backoff {QWEN} (1 failure: timeout)",
        f"  n3 (DEAD): paused {QWEN} (3 failures: gone)",
    ]

    got = {
        (smp.name, tuple(sorted(smp.labels.items()))): smp.value
        for fam in text_string_to_metric_families(generate_latest(board_registry(board)).decode())
        for smp in fam.samples
    }

    def v(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert v("swarm_board_proposer_llm_calls", proposer=CLAUDE) == 7
    assert v("swarm_board_proposer_llm_failures", proposer=CLAUDE) == 2
    assert v("swarm_board_proposer_llm_failures", proposer=QWEN_LABEL) == 3
    assert v("swarm_board_proposer_cost_usd", proposer=CLAUDE) == pytest.approx(0.12)
    assert v("swarm_board_proposer_tokens", proposer=CLAUDE, direction="input") == 10000
    assert v("swarm_board_proposer_tokens", proposer="classical", direction="output") == 0
    assert v("swarm_board_proposer_acceptance_ratio", proposer=CLAUDE) == pytest.approx(1 / 3)
    assert v("swarm_board_proposer_paused_agents", proposer=CLAUDE) == 2  # n1, n2
    assert v("swarm_board_proposer_paused_agents", proposer=QWEN_LABEL) == 0  # backing off on n2; n3 is dead
    assert v("swarm_board_proposer_paused_agents", proposer="classical") == 0  # a live agent runs it
    assert ("swarm_board_proposer_paused_agents", (("proposer", "human"),)) not in got  # no agent runs "human"

    md = render_markdown(collect(board))
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert rows[CLAUDE] == f"| {CLAUDE} | 3 | 1 | 33% | 1 | 1 | 0.1200 | 10000 / 1500 | 0.1200 | 7 | 2 |"
    assert rows[QWEN_LABEL] == f"| {QWEN_LABEL} | 0 | 0 | - | 0 | 0 | 0.0000 | 0 / 0 | - | 3 | 3 |"
    assert rows["classical"].endswith("| 0 | 0 |")

    frame = take_frame(board)
    assert frame.proposers == board_proposer_stats(board)[0]
    text = render(frame).splitlines()
    assert any(ln.split()[:4] == [CLAUDE, "7", "2", "3"] for ln in text)
    assert f"  n2: backoff {QWEN} (1 failure: timeout)" in text[text.index("proposer health:") :]
