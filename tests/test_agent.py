"""The agent end to end, with real processes and a real redis-server, on the synthetic arena
(a quadratic bowl with known seed noise: fast and deterministic per code and seed).

Covers: several agents reaching a confirmed leader move with no hypothesis claimed twice and every
agent ending on the leader; kill -9 (lease expiry, requeue, another agent finishes); SIGTERM (claim
released, deregistered); Redis stopped and restarted mid-run (the result is published afterwards)
and at each step of the loop (the agent backs off and goes on, nothing lost, no traceback); no
secrets visible to the experiment; /metrics of a running agent. Each collaborator of the agent is
tested alone in tests/test_agent_*.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RedisServer, free_port

from swarm import defaults
from swarm.agent.context import build_context
from swarm.agent.loop import Agent, AgentOptions
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH
from swarm.experiment.manifest import load_manifest
from swarm.experiment.runner import RunOutcome, run_experiment
from swarm.proposers.classical import ClassicalProposer
from swarm.proposers.select import Selector

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
TRACK = "cpu:test"


def agent_cmd(url: str, swarm: str, workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", swarm, "agent", "--arena", str(SYNTH),
        "--workdir", str(workdir), "--no-metrics", "--track", TRACK, *extra,
    ]


def spawn(
    url: str, swarm: str, workdir: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "agent.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(agent_cmd(url, swarm, workdir, *extra), stdout=log, stderr=subprocess.STDOUT,
                                env=env or dict(os.environ))


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


Connect = Callable[[str, str], Board]  # the connect_board fixture: boards closed at teardown


def init(url: str, swarm: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", swarm, "init", "--arena",
                    str(SYNTH), *args], check=True, capture_output=True)


def claimed_by(board: Board, agent_pid: int) -> list[str]:
    return [h.id for h in board.list_hypotheses(state="claimed", limit=200)
            if h.claimed_by and f"-{agent_pid}-" in h.claimed_by]


@pytest.mark.slow
def test_three_agents_confirm_a_leader_move_and_end_on_it(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    procs = [spawn(redis_url, swarm_name, tmp_path / f"a{i}", "--seed", str(i)) for i in range(3)]
    try:
        # From when all three are registered, no agent runs its own candidate's confirmations.
        wait_for(lambda: sum(a.alive for a in board.agents()) == 3, 60, "three agents registered")
        all_in_ms = board.server_ms()
        wait_for(lambda: (ld := board.leader(TRACK)) is not None and ld.generation >= 3
                 and sum(r.kind == "explore" for r in board.results(limit=500, track=TRACK)) >= 6, 150,
                 "two confirmed moves and six explorations")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(timeout=60) == 0, (tmp_path / "a0" / "agent.log").read_text()[-2000:]
    results = board.results(limit=1000, track=TRACK)
    explore = [r for r in results if r.kind == "explore"]
    assert len(explore) >= 6
    # Exactly once: no hypothesis has two results that were not flagged stale.
    counts = Counter(r.hypothesis_id for r in results if not r.stale)
    assert max(counts.values()) == 1, counts.most_common(3)
    # Every move after the baseline is backed by a candidate and its confirmations on the same code.
    history = board.leader_history(TRACK)
    assert [h.generation for h in history] == list(range(1, len(history) + 1))
    checked_authors = 0
    for move in history[1:]:
        confirms = [r for r in results if r.candidate_of == move.result_id and not r.meta.get("refresh")]
        assert len(confirms) >= defaults.CONFIRM_RUNS - 1
        if board.result(move.result_id).published_ms > all_in_ms:
            checked_authors += 1
            assert all(r.agent_id != move.agent_id for r in confirms)  # confirmed by others than its author
        assert {r.patch_hash for r in confirms} == {move.patch_hash}
        assert move.metric < history[0].metric  # monotone: every move improves on the baseline
    assert checked_authors >= 1  # the second move needs a whole cycle after the agents joined
    for a, b in itertools.pairwise(history):
        assert b.metric < a.metric
    # Every agent ends on the leader as it was when it stopped.
    for i in range(3):
        final = json.loads((tmp_path / f"a{i}" / "final-leader.json").read_text())
        at_exit = [h for h in history if h.time_ms <= final["server_ms"]][-1]
        assert final["generation"] == at_exit.generation
        ws_train = (tmp_path / f"a{i}" / "ws" / "arena" / "train.py").read_text()
        leader_files = board.arena_files()
        expected = leader_files["train.py"].decode()
        if at_exit.patch_hash != EMPTY_PATCH:
            from swarm.code.diff import apply_patch

            expected = apply_patch({"train.py": expected}, board.get_patch(at_exit.patch_hash))["train.py"]
        assert ws_train == expected
    assert all(not a.alive for a in board.agents())


def test_kill_9_requeues_and_another_agent_finishes(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    init(redis_url, swarm_name, "--lease-s", "2", "--max-attempts", "3")
    board = connect_board(redis_url, swarm_name)
    slow = spawn(redis_url, swarm_name, tmp_path / "slow", "--budget", "60")
    held = wait_for(lambda: claimed_by(board, slow.pid), 30, "the slow agent to claim")
    assert isinstance(held, list)
    time.sleep(0.5)
    slow.send_signal(signal.SIGKILL)
    slow.wait(timeout=10)
    time.sleep(2.5)  # past the lease
    fast = spawn(redis_url, swarm_name, tmp_path / "fast", "--max-experiments", "4")
    assert fast.wait(timeout=90) == 0, (tmp_path / "fast" / "agent.log").read_text()[-2000:]
    for hid in held:
        h = board.get(hid)
        assert h.state == "done", h
        assert h.attempts == 1  # requeued once by the reaper
        mine = [r for r in board.results(limit=100) if r.hypothesis_id == hid and not r.stale]
        assert len(mine) == 1 and f"-{fast.pid}-" in mine[0].agent_id
    assert any(e.kind == "requeue" or "requeue" in e.text for e in board.events(limit=200))


def test_sigterm_releases_claims_and_deregisters(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    proc = spawn(redis_url, swarm_name, tmp_path / "a", "--budget", "60")
    held = wait_for(lambda: claimed_by(board, proc.pid), 30, "a claim")
    assert isinstance(held, list)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - t0 < 20  # the 60 s run was killed, not waited for
    for hid in held:
        h = board.get(hid)
        assert h.state == "open" and h.attempts == 0, h
    assert not any(a.alive for a in board.agents())
    assert not [r for r in board.results(limit=50) if r.hypothesis_id in held]  # nothing half-published


def test_redis_restart_mid_run_result_published_afterwards(
    tmp_path: Path, swarm_name: str, connect_board: Connect
) -> None:
    server = RedisServer(free_port(), tempfile.mkdtemp(prefix="swarm-aof-"), persist=True)
    server.start()
    try:
        init(server.url, swarm_name)
        board = connect_board(server.url, swarm_name)
        proc = spawn(server.url, swarm_name, tmp_path / "a", "--budget", "4", "--max-experiments", "1",
                     "--no-pipeline")
        held = wait_for(lambda: claimed_by(board, proc.pid), 30, "a claim")
        assert isinstance(held, list) and len(held) == 1
        server.stop()
        # the run finishes while Redis is down: its result goes to the outbox
        wait_for(lambda: (tmp_path / "a" / defaults.OUTBOX_FILE).exists(), 30, "the outbox")
        server.start()
        assert proc.wait(timeout=60) == 0, (tmp_path / "a" / "agent.log").read_text()[-2000:]
        board = connect_board(server.url, swarm_name)
        res = [r for r in board.results(limit=20) if r.hypothesis_id == held[0]]
        assert len(res) == 1 and res[0].status == "keep" and not res[0].stale
        assert board.get(held[0]).state == "done"
        assert not (tmp_path / "a" / defaults.OUTBOX_FILE).exists()
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def test_an_agent_whose_redis_goes_away_while_it_joins_waits_for_it(
    tmp_path: Path, swarm_name: str, connect_board: Connect
) -> None:
    """Redis away between the agent's connect (where the CLI checks it) and its registration, as when
    `swarm launch` restarts an agent during a Redis restart (chaos.py saw it die there on a traceback):
    it waits with the loop's backoff, joins when Redis is back, and runs."""
    server = RedisServer(free_port(), tempfile.mkdtemp(prefix="swarm-aof-"), persist=True)
    server.start()
    try:
        init(server.url, swarm_name)
        board = connect_board(server.url, swarm_name)
        server.stop()
        props = [ClassicalProposer(seed=0)]
        opts = AgentOptions(workdir=tmp_path / "a", arena=SYNTH, track=TRACK, runner=sim_run, max_experiments=1)
        agent = Agent(board, opts, props, Selector(props, [1.0]))
        errors: list[BaseException] = []

        def body() -> None:
            try:
                agent.run()
            except BaseException as exc:  # reported below, not hidden
                errors.append(exc)

        t = threading.Thread(target=body)
        t.start()
        time.sleep(8)  # longer than the client's own retries (3, backoff capped at 2 s)
        assert t.is_alive() and not errors, errors  # waiting for Redis, not dead
        server.start()
        t.join(timeout=120)
        assert not t.is_alive() and not errors, errors
        assert agent.ran == 1
        assert len(connect_board(server.url, swarm_name).results(limit=10)) == 1
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def test_experiment_sees_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arena = tmp_path / "arena"
    shutil.copytree(SYNTH, arena)
    (arena / "train.py").write_text(
        (SYNTH / "train.py").read_text()
        + "import json, os\njson.dump(dict(os.environ), open(os.path.join(os.environ['HOME'], 'env.json'), 'w'))\n"
    )
    secrets = {"ANTHROPIC_API_KEY": "sk-ant-Zq1", "OPENAI_API_KEY": "sk-Zq2",
               "SWARM_REDIS_URL": "redis://:hunter2Zq@db:6379/0", "REDIS_PASSWORD": "hunter2Zq",
               "AWS_SECRET_ACCESS_KEY": "awsZq3", "GITHUB_TOKEN": "ghZq4", "CUDA_API_KEY": "cudaZq5"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    out = run_experiment(arena, load_manifest(arena), profile="cpu", budget_s=0.01, timeout_s=30, seed=0,
                         device="cpu", gpu="cpu", run_dir=tmp_path / "run")
    assert out.status == "ok", out.error
    env = json.loads((tmp_path / "run" / "home" / "env.json").read_text())
    leaked = [k for k, v in env.items() if "Zq" in v or k in secrets]
    assert leaked == []
    assert env["HOME"] == str(tmp_path / "run" / "home")  # not the user's dotfiles
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_runner_kills_a_run_that_ignores_its_deadline(tmp_path: Path) -> None:
    t0 = time.monotonic()
    out = run_experiment(SYNTH, load_manifest(SYNTH), profile="cpu", budget_s=0.5, timeout_s=3, seed=0,
                         device="cpu", gpu="cpu", run_dir=tmp_path / "run", extra_env={"SYNTH_FAIL": "hang"})
    assert out.status == "timeout" and time.monotonic() - t0 < 10
    out = run_experiment(SYNTH, load_manifest(SYNTH), profile="cpu", budget_s=0.5, timeout_s=30, seed=0,
                         device="cpu", gpu="cpu", run_dir=tmp_path / "run2", extra_env={"SYNTH_FAIL": "crash"})
    assert out.status == "crash" and "synthetic crash" in out.error


def test_running_agent_serves_prometheus_metrics(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    init(redis_url, swarm_name)
    port = free_port()
    workdir = tmp_path / "a"
    workdir.mkdir()
    with (workdir / "agent.log").open("wb") as log:
        argv = agent_cmd(redis_url, swarm_name, workdir, "--metrics-port", str(port))
        argv.remove("--no-metrics")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    board = connect_board(redis_url, swarm_name)
    try:
        # the 5 baseline seeds and one run after them: the leader was seen (synced) before that run
        wait_for(lambda: len(board.results(limit=50)) >= 6, 60, "six results")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    samples = {s.name: s for fam in text_string_to_metric_families(body) for s in fam.samples}
    finished = sum(s.value for fam in text_string_to_metric_families(body) for s in fam.samples
                   if s.name == "swarm_experiments_total")
    assert finished >= 4
    assert 0 < samples["swarm_gpu_duty_cycle_ratio"].value <= 1
    assert samples["swarm_leader_seen_generation"].value >= 1
    assert "swarm_claim_wait_seconds_count" in samples




def sim_run(arena_dir: Path, files: dict[str, str], seed: int, budget_s: float, cancel: threading.Event) -> RunOutcome:
    """A fast stand-in for the training run: the synthetic objective of X and Y, seeded noise, 0.2 s."""
    code = files["train.py"]
    x, y = (float(re.search(rf"^{n} = ([0-9.]+)", code, re.M).group(1)) for n in ("X", "Y"))  # type: ignore[union-attr]
    cancel.wait(0.2)
    noise = random.Random(f"{seed}{code}").gauss(0.0, 0.002)
    return RunOutcome("ok", (x - 0.7) ** 2 + (y - 0.3) ** 2 + 1.0 + noise, 0.2, {})


def start_sim_agents(
    board: Board, tmp_path: Path, n: int, max_experiments: int
) -> tuple[list[Agent], list[threading.Thread]]:
    """`n` real Agents in threads (classical proposers seeded 0.., simulated runs), started."""
    agents = []
    for i in range(n):
        props = [ClassicalProposer(seed=i)]
        opts = AgentOptions(workdir=tmp_path / f"a{i}", arena=SYNTH, track=TRACK, runner=sim_run,
                            max_experiments=max_experiments)
        agents.append(Agent(board, opts, props, Selector(props, [1.0])))
    threads = [threading.Thread(target=a.run) for a in agents]
    for t in threads:
        t.start()
    return agents, threads


def test_two_agents_keep_busy_while_the_baseline_is_measured(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    """Two real Agents (simulated runs) on a fresh track: 5 baseline seeds split 3/2, so the agent that ran
    its 2 explores the pristine code meanwhile; that run is judged against the baseline once it lands,
    and nothing is lost or left claimed."""
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    agents, threads = start_sim_agents(board, tmp_path, 2, max_experiments=6)
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    results = board.results(limit=100)
    assert len(results) == 12 and not any(r.stale for r in results)
    baseline = min(board.leader_history(TRACK), key=lambda m: m.generation)  # the first leader
    assert baseline.patch_hash == EMPTY_PATCH
    ahead = [r for r in results if r.kind == "explore" and (r.started_ms or 0) < baseline.time_ms]
    assert ahead, "no agent explored while the baseline was measured"
    assert all(r.parent_patch_hash == EMPTY_PATCH and r.status in ("keep", "discard") for r in ahead)
    assert all((r.finished_ms or 0) <= (r.published_ms or 0) for r in ahead)
    assert not board.list_hypotheses(state="claimed", limit=20)
    # Each classical result carries the point its idea tried, so the proposers' next ideas learn from
    # it (the published result once dropped its hypothesis' meta: TPE saw only the leader, ever).
    explores = [r for r in results if r.kind == "explore"]
    assert explores and all(r.meta.get("changed") for r in explores)
    for r in explores:
        hyp = board.get(r.hypothesis_id or "")
        assert {k: r.meta[k] for k in ("X", "Y")} == {k: hyp.meta[k] for k in ("X", "Y")}
    leader = board.leader(TRACK)
    files = {"train.py": board.arena_files()["train.py"].decode()}
    ctx = build_context(board, agents[0].settings, TRACK, "cpu", leader, files)
    assert sum("changed" in h.meta for h in ctx.history) == len(explores)
    # On a fresh track the first classical ideas probe each constant alone; and the context an agent
    # builds carries the track's measured seed noise, which the model step's standard errors rest on.
    assert any(r.meta.get("basis") == "probe" and "," not in str(r.meta["changed"]) for r in explores)
    # ... and each candidate's confirmation runs ride along with it as more observations of its code
    ids = {r.result_id for r in explores}
    confirms = [r for r in results if r.kind == "confirm" and r.candidate_of in ids and r.metric is not None]
    assert sum(len(h.replicates) for h in ctx.history) == len(confirms)
    sd, df = agents[0].promoter.noise()
    assert df >= 4 and sd > 0 and agents[0].source.context(leader, files).noise_sd == sd


def test_two_agents_re_measure_a_standing_leader(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real Agents (simulated runs, one re-measure run per 2 explorations on a leader): a promoted
    leader's re-measure jobs are claimed and run like any job, and its metric on the board becomes the
    mean of all the runs of its code, checked against the published results."""
    monkeypatch.setattr(defaults, "LEADER_REFRESH_EVERY", 2)
    init(redis_url, swarm_name)
    board = connect_board(redis_url, swarm_name)
    agents, threads = start_sim_agents(board, tmp_path, 2, max_experiments=60)
    try:
        wait_for(lambda: any(r.meta.get("refresh") for r in board.results(limit=500, track=TRACK)), 150,
                 "a re-measure run of a promoted leader")
        time.sleep(1.0)  # the agent that ran it folds it into the leader
    finally:
        for a in agents:
            a.stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    results = board.results(limit=500, track=TRACK)
    refreshed = [r for r in results if r.meta.get("refresh")]
    moves = {m.result_id: m for m in board.leader_history(TRACK)}
    for r in refreshed:  # each a run of a promoted leader's code with a new seed
        assert r.kind == "confirm" and r.candidate_of in moves and r.patch_hash == moves[r.candidate_of].patch_hash
        assert r.seed is not None and r.seed >= defaults.CONFIRM_RUNS
    leader = board.leader(TRACK)
    assert leader is not None
    runs = [r.metric for r in results if r.metric is not None and r.status == "keep"
            and (r.result_id == leader.result_id or r.candidate_of == leader.result_id)]  # fmt: skip
    assert leader.runs == len(runs) or leader.patch_hash == EMPTY_PATCH
    assert leader.metric == pytest.approx(sum(runs) / len(runs), abs=1e-12)
    grown = [m for m in moves.values() if m.patch_hash != EMPTY_PATCH
             and sum(r.candidate_of == m.result_id for r in refreshed) > 0]  # fmt: skip
    assert grown  # some leader stood long enough for its re-measure runs
    assert not board.list_hypotheses(state="claimed", limit=20)


FAULT_POINTS = {
    # (collaborator, method, stop Redis before the call or after it returns)
    "as a prepared job starts": ("pipeline", "take", "after"),
    "at the sync onto the leader": ("source", "sync", "before"),
    "while the experiment runs": ("executor", "run", "before"),
    "as the result is published": ("publisher", "publish", "before"),
    "in the outbox flush": ("outbox", "flush", "before"),
}


@pytest.mark.parametrize("where", list(FAULT_POINTS))
def test_redis_refusing_connections_at_each_step_of_the_loop(
    where: str, tmp_path: Path, swarm_name: str, connect_board: Connect
) -> None:
    """Redis stops at one step of the loop of a real Agent (after the baseline) and comes back 2 s later:
    the agent backs off, goes on, ends normally, and nothing is lost or published twice."""
    owner, method, when = FAULT_POINTS[where]
    server = RedisServer(free_port(), tempfile.mkdtemp(prefix="swarm-aof-"), persist=True)
    server.start()
    fired: list[float] = []

    class Faulty(Agent):
        def join(self) -> None:
            super().join()
            part = getattr(self, owner)
            original = getattr(part, method)

            def fault() -> None:
                if not fired and self.ran >= defaults.NOISE_SEEDS:
                    fired.append(time.monotonic())
                    server.stop()
                    threading.Timer(2.0, server.start).start()

            def wrapped(*args: object, **kwargs: object) -> object:
                if when == "before":
                    fault()
                out = original(*args, **kwargs)
                if when == "after":
                    fault()
                return out

            setattr(part, method, wrapped)

    try:
        init(server.url, swarm_name)
        board = connect_board(server.url, swarm_name)
        props = [ClassicalProposer(seed=0)]
        opts = AgentOptions(workdir=tmp_path / "a", arena=SYNTH, track=TRACK, runner=sim_run, max_experiments=7)
        agent = Faulty(board, opts, props, Selector(props, [1.0]))
        assert agent.run() == 7  # no exception: the agent went on
        assert fired, "the fault never fired"
        assert not (tmp_path / "a" / defaults.OUTBOX_FILE).exists()
        board = connect_board(server.url, swarm_name)
        mine = [r for r in board.results(limit=100) if r.agent_id == agent.agent_id]
        assert len(mine) == 7 and not any(r.stale for r in mine)  # every run published, once
        assert max(Counter(r.hypothesis_id for r in mine).values()) == 1
        assert not board.list_hypotheses(state="claimed", limit=20)  # no claim left behind
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def flaky_arena(dest: Path, crash_seed: int) -> Path:
    """The synthetic arena whose harness crashes for one seed (its pin updated to match)."""
    shutil.copytree(SYNTH, dest)
    objective = dest / "objective.py"
    text = objective.read_text().replace(
        "args = parser.parse_args()\n",
        f"args = parser.parse_args()\nif args.seed == {crash_seed}:\n    raise RuntimeError('flaky seed')\n",
    )
    objective.write_text(text)
    toml = (dest / "arena.toml").read_text()
    old = re.search(r'"objective.py" = "([0-9a-f]{64})"', toml)
    assert old is not None
    (dest / "arena.toml").write_text(toml.replace(old.group(1), hashlib.sha256(text.encode()).hexdigest()))
    return dest


def test_a_crashed_baseline_seed_is_retried_and_no_agent_gives_up(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    arena = flaky_arena(tmp_path / "flaky", crash_seed=1)
    init_cmd = [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name, "init", "--arena",
                str(arena)]
    subprocess.run(init_cmd, check=True, capture_output=True)
    board = connect_board(redis_url, swarm_name)
    procs = []
    for i in range(2):
        workdir = tmp_path / f"a{i}"
        workdir.mkdir()
        cmd = [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name, "agent", "--arena",
               str(arena), "--workdir", str(workdir), "--no-metrics", "--track", TRACK, "--seed", str(i),
               "--max-experiments", "5"]
        with (workdir / "agent.log").open("wb") as log:
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    for i, p in enumerate(procs):
        assert p.wait(timeout=120) == 0, (tmp_path / f"a{i}" / "agent.log").read_text()[-2000:]
    results = board.results(limit=100, track=TRACK)
    assert len(results) == 10  # both agents ran all they were asked to
    baseline = {r.seed: r.status for r in results if r.kind == "baseline"}
    assert baseline[1] == "crash" and baseline[3] == "keep"  # seed 1 failed and was replaced by seed 3
    leader = board.leader_history(TRACK)[0]
    assert leader.generation == 1 and len(board.noise(TRACK)) == defaults.NOISE_SEEDS
    logs = "".join((tmp_path / f"a{i}" / "agent.log").read_text() for i in range(2))
    assert "Traceback" not in logs and "baseline seed 1 failed" in logs


def runs_under(workdir: Path, script: str = "objective.py") -> list[int]:
    """Pids of processes whose command line runs `script` for a run dir under `workdir`."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if script != "guard.py" and any(a.endswith(b"guard.py") for a in argv):
            continue  # a guard's command line holds its run's: not the run itself
        if any(a.endswith(script.encode()) for a in argv) and str(workdir).encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


def test_a_run_dies_with_its_agent_and_a_restart_cleans_up_what_was_left(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    init(redis_url, swarm_name, "--lease-s", "3")  # the killed agents' claims come back in seconds
    workdir = tmp_path / "a"
    agent = spawn(redis_url, swarm_name, workdir, "--budget", "60")
    wait_for(lambda: runs_under(workdir), 30, "a run to start")
    agent.kill()  # as the OOM killer does
    agent.wait(timeout=10)
    wait_for(lambda: not runs_under(workdir), 5, "the run to die with its agent")
    # The agent and the run's guard killed together (a whole-host OOM kill): the run is orphaned ...
    agent = spawn(redis_url, swarm_name, workdir, "--budget", "60")
    # both the guard and its run started (the guard alone killed before it spawns the run leaves nothing)
    wait_for(lambda: runs_under(workdir, "guard.py") and runs_under(workdir), 30, "a guarded run to start")
    guards = runs_under(workdir, "guard.py")
    for pid in guards:
        os.kill(pid, signal.SIGKILL)
    agent.kill()
    agent.wait(timeout=10)
    time.sleep(1.0)
    orphans = runs_under(workdir)
    assert orphans  # ... and keeps running, holding the GPU, until ...
    again = spawn(redis_url, swarm_name, workdir, "--budget", "1", "--max-experiments", "1")
    wait_for(lambda: not any(p in orphans for p in runs_under(workdir)), 20, "the restarted agent to kill it")
    assert again.wait(timeout=60) == 0, (workdir / "agent.log").read_text()[-2000:]
    assert "killed the run an earlier agent left running here" in (workdir / "agent.log").read_text()


def test_an_agent_starts_past_a_corrupt_outbox_line(
    redis_url: str, swarm_name: str, tmp_path: Path, connect_board: Connect
) -> None:
    init(redis_url, swarm_name)
    workdir = tmp_path / "a"
    workdir.mkdir()
    (workdir / defaults.OUTBOX_FILE).write_text('{"result": {"result_id": "torn\n')  # a write cut short
    agent = spawn(redis_url, swarm_name, workdir, "--max-experiments", "2")
    assert agent.wait(timeout=60) == 0, (workdir / "agent.log").read_text()[-2000:]
    assert not (workdir / defaults.OUTBOX_FILE).exists()
    assert (workdir / "outbox.rejected.jsonl").read_text() == '{"result": {"result_id": "torn\n'
    assert len(connect_board(redis_url, swarm_name).results(limit=10)) == 2
