"""The agent end to end, with real processes and a real redis-server, on the synthetic arena
(a quadratic bowl with known seed noise: fast and deterministic per code and seed).

Covers: several agents reaching a confirmed leader move with no hypothesis claimed twice and every
agent ending on the leader; kill -9 (lease expiry, requeue, another agent finishes); SIGTERM (claim
released, deregistered); Redis stopped and restarted mid-run (the result is published afterwards);
a candidate built on a stale leader is rebased, never promoted; the noise rule; no secrets visible
to the experiment.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RedisServer, free_port

from swarm import defaults
from swarm.agent.jobs import Job
from swarm.agent.loop import Agent, AgentOptions
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, make_patch, patch_hash
from swarm.experiment.manifest import load_manifest
from swarm.experiment.runner import run_experiment
from swarm.models import HypothesisIn, ResultIn
from swarm.proposers.base import Usage
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


def init(url: str, swarm: str, *args: str) -> Board:
    subprocess.run([sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", swarm, "init", "--arena",
                    str(SYNTH), *args], check=True, capture_output=True)
    return Board.connect(url, swarm)


def claimed_by(board: Board, agent_pid: int) -> list[str]:
    return [h.id for h in board.list_hypotheses(state="claimed", limit=200)
            if h.claimed_by and f"-{agent_pid}-" in h.claimed_by]


@pytest.mark.slow
def test_three_agents_confirm_a_leader_move_and_end_on_it(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = init(redis_url, swarm_name)
    procs = [spawn(redis_url, swarm_name, tmp_path / f"a{i}", "--seed", str(i)) for i in range(3)]
    try:
        # From when all three are registered, no agent runs its own candidate's confirmations.
        wait_for(lambda: sum(a.alive for a in board.agents()) == 3, 60, "three agents registered")
        all_in_ms = board.server_ms()
        wait_for(lambda: (ld := board.leader(TRACK)) is not None and ld.generation >= 3
                 and len(board.results(limit=500, track=TRACK)) >= 15, 150, "two confirmed moves")
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
        confirms = [r for r in results if r.candidate_of == move.result_id]
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


def test_kill_9_requeues_and_another_agent_finishes(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = init(redis_url, swarm_name, "--lease-s", "2", "--max-attempts", "3")
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


def test_sigterm_releases_claims_and_deregisters(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = init(redis_url, swarm_name)
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


def test_redis_restart_mid_run_result_published_afterwards(tmp_path: Path, swarm_name: str) -> None:
    server = RedisServer(free_port(), tempfile.mkdtemp(prefix="swarm-aof-"), persist=True)
    server.start()
    try:
        board = init(server.url, swarm_name)
        proc = spawn(server.url, swarm_name, tmp_path / "a", "--budget", "4", "--max-experiments", "1",
                     "--no-pipeline")
        held = wait_for(lambda: claimed_by(board, proc.pid), 30, "a claim")
        assert isinstance(held, list) and len(held) == 1
        server.stop()
        # the run finishes while Redis is down: its result goes to the outbox
        wait_for(lambda: (tmp_path / "a" / defaults.OUTBOX_FILE).exists(), 30, "the outbox")
        server.start()
        assert proc.wait(timeout=60) == 0, (tmp_path / "a" / "agent.log").read_text()[-2000:]
        board = Board.connect(server.url, swarm_name)
        res = [r for r in board.results(limit=20) if r.hypothesis_id == held[0]]
        assert len(res) == 1 and res[0].status == "keep" and not res[0].stale
        assert board.get(held[0]).state == "done"
        assert not (tmp_path / "a" / defaults.OUTBOX_FILE).exists()
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def make_agent(redis_url: str, swarm: str, workdir: Path) -> Agent:
    board = Board.connect(redis_url, swarm)
    props = [ClassicalProposer(seed=0)]
    agent = Agent(board, AgentOptions(workdir=workdir, arena=SYNTH, track=TRACK), props, Selector(props, [1.0]))
    agent.join()
    return agent


def publish(board: Board, agent: Agent, files: dict[str, str], metric: float, *, kind: str = "explore",
            parent: str | None = EMPTY_PATCH, candidate_of: str | None = None, seed: int = 0) -> str:
    """Publish a result as an agent would, for a hypothesis claimed for the purpose."""
    text = make_patch(agent.ws.baseline_files(), files)
    ph = board.put_patch(text) if text else EMPTY_PATCH
    hid, _ = board.post(HypothesisIn(text=f"{kind} {metric} {seed} {ph[:8]} {candidate_of}", track=TRACK,
                                     priority=999))
    claim = board.claim("tester", TRACK)
    assert claim is not None and claim.hypothesis.id == hid
    rid = f"r{abs(hash((hid, metric))) % 10**12}"
    board.publish(ResultIn(result_id=rid, hypothesis_id=hid, token=claim.token, agent_id="tester", track=TRACK,
                           parent_patch_hash=parent, patch_hash=ph, status="keep", metric=metric,
                           kind=kind, candidate_of=candidate_of, seed=seed))  # type: ignore[arg-type]
    board.complete(hid, claim.token)
    return rid


def edited(agent: Agent, x: float) -> dict[str, str]:
    base = agent.ws.baseline_files()["train.py"]
    return {"train.py": base.replace("X = 0.2 ", f"X = {x}")}


def test_candidate_on_a_stale_leader_is_rebased_not_promoted(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    agent = make_agent(redis_url, swarm_name, tmp_path / "a")
    board = agent.board
    base_ids = [publish(board, agent, agent.ws.baseline_files(), 1.50 + 0.001 * s, kind="baseline", seed=s)
                for s in range(3)]
    agent.finalize_baseline()
    gen1 = board.leader(TRACK)
    assert gen1 is not None and gen1.generation == 1 and set(base_ids) >= {gen1.result_id}
    # candidate A built on gen 1, then the leader moves (B) before A's confirmations are in.
    a_files = edited(agent, 0.5)
    cand_a = publish(board, agent, a_files, 1.10, parent=gen1.patch_hash)
    b_files = {"train.py": agent.ws.baseline_files()["train.py"].replace("Y = 0.8 ", "Y = 0.4")}
    cand_b = publish(board, agent, b_files, 1.05, parent=gen1.patch_hash)
    for s in (1, 2):
        publish(board, agent, b_files, 1.05, kind="confirm", parent=gen1.patch_hash, candidate_of=cand_b, seed=s)
    agent.finalize_candidate(cand_b)
    gen2 = board.leader(TRACK)
    assert gen2 is not None and gen2.generation == 2 and gen2.result_id == cand_b
    for s in (1, 2):
        publish(board, agent, a_files, 1.10, kind="confirm", parent=gen1.patch_hash, candidate_of=cand_a, seed=s)
    agent.finalize_candidate(cand_a)
    after = board.leader(TRACK)
    assert after is not None and after.generation == 2 and after.result_id == cand_b  # A was not promoted
    rebased = [h for h in board.list_hypotheses(state="open", limit=50) if h.text.startswith("rebase onto gen 2")]
    assert len(rebased) == 1 and rebased[0].patch_hash is not None
    assert rebased[0].meta["base"] == gen1.patch_hash
    # the rebased edit applies on top of the new leader: X changed, Y from the new leader kept
    job = Job(rebased[0], 0, after)
    job = agent.implement(job)
    assert not job.invalid and "X = 0.5" in job.files["train.py"] and "Y = 0.4" in job.files["train.py"]
    # a prepared job built on gen 1 is re-applied onto gen 2 by sync, keeping what it carries
    prepared = Job(rebased[0], 0, gen1, a_files, usage=Usage(input_tokens=5, calls=1), brief_version=7)
    synced = agent.sync(prepared)
    assert synced.parent == after and not synced.invalid
    assert "X = 0.5" in synced.files["train.py"] and "Y = 0.4" in synced.files["train.py"]
    assert synced.brief_version == 7 and synced.usage.input_tokens == 5


def test_noise_rule_does_not_promote_null_changes(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    """20 edits with no true effect (comment-only changes: the synthetic noise draw changes with the code),
    run through screening and confirmation exactly as the agents do. Deterministic per code and seed."""
    agent = make_agent(redis_url, swarm_name, tmp_path / "a")
    board, manifest = agent.board, load_manifest(agent.ws.dir)
    noise = 0.002
    env = {"SYNTH_NOISE": str(noise)}

    def run(files: dict[str, str], seed: int) -> float:
        agent.ws.prepare_run(files)
        out = run_experiment(agent.ws.dir, manifest, profile="cpu", budget_s=0.01, timeout_s=30, seed=seed,
                             device="cpu", gpu="cpu", run_dir=tmp_path / "run", extra_env=env)
        assert out.status == "ok" and out.metric is not None
        return out.metric

    base = agent.ws.baseline_files()
    for s in range(defaults.NOISE_SEEDS):
        publish(board, agent, base, run(base, s), kind="baseline", seed=s)
    agent.finalize_baseline()
    leader = board.leader(TRACK)
    assert leader is not None
    screened = promoted = 0
    for i in range(20):
        files = {"train.py": base["train.py"] + f"# null change {i}\n"}
        metric = run(files, 0)
        if agent.judge(leader.patch_hash, metric) != "keep":
            continue
        screened += 1
        rid = publish(board, agent, files, metric, parent=leader.patch_hash)
        for s in range(1, defaults.CONFIRM_RUNS):
            publish(board, agent, files, run(files, s), kind="confirm", parent=leader.patch_hash,
                    candidate_of=rid, seed=s)
        agent.finalize_candidate(rid)
        now = board.leader(TRACK)
        assert now is not None
        if now.generation != leader.generation:
            promoted += 1
            leader = now
    assert screened <= 8  # screening at 1 sigma passes ~16% of nulls
    assert promoted <= 1  # the rule's rate is ~2.3%; 20 nulls give 0 in expectation 0.5
    # and a real improvement (X much closer to the optimum) is promoted
    good = {"train.py": base["train.py"].replace("X = 0.2 ", "X = 0.6")}
    metric = run(good, 0)
    assert agent.judge(leader.patch_hash, metric) == "keep"
    rid = publish(board, agent, good, metric, parent=leader.patch_hash)
    for s in range(1, defaults.CONFIRM_RUNS):
        publish(board, agent, good, run(good, s), kind="confirm", parent=leader.patch_hash, candidate_of=rid, seed=s)
    agent.finalize_candidate(rid)
    final = board.leader(TRACK)
    assert final is not None and final.result_id == rid


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


def test_patch_hash_of_results_matches_board_patches(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    agent = make_agent(redis_url, swarm_name, tmp_path / "a")
    files = edited(agent, 0.3)
    text = agent.ws.patch_of(files)
    assert agent.board.put_patch(text) == patch_hash(text)
    assert agent.ws.files_for(text) == files


def test_running_agent_serves_prometheus_metrics(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
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
    board = Board.connect(redis_url, swarm_name)
    try:
        wait_for(lambda: len(board.results(limit=50)) >= 5, 60, "five results")
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


def test_llm_edit_that_crashes_is_repaired_within_the_experiment(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    """An LLM-implemented hypothesis whose edit crashes the run gets the traceback back and a second edit."""
    from llm_server import Request, Scripted, ScriptedServer

    from swarm.proposers.spec import build_proposers, load_config, resolve_specs

    x_line = next(x for x in (SYNTH / "train.py").read_text().splitlines() if x.startswith("X = "))

    def model(req: Request) -> Scripted:
        prompt = req.last_user_text()
        if "synthetic crash" in prompt:  # the repair prompt carries the traceback tail
            text = 'train.py\n<<<<<<< SEARCH\nFAIL = "crash"\n=======\nFAIL = ""\n>>>>>>> REPLACE\n'
        else:
            text = f'train.py\n<<<<<<< SEARCH\n{x_line}\n=======\n{x_line}\nFAIL = "crash"\n>>>>>>> REPLACE\n'
        return Scripted(text=text, input_tokens=500, output_tokens=40)

    with ScriptedServer(responder=model) as srv:
        board = init(redis_url, swarm_name)
        config = load_config(None)
        specs = resolve_specs([f"openai-compatible:fixer@{srv.url}/v1"], config)
        props = build_proposers(specs, config, lambda: ClassicalProposer(seed=0))
        agent = Agent(board, AgentOptions(workdir=tmp_path / "a", arena=SYNTH, track=TRACK, pipeline=False),
                      props, Selector(props, [1.0]))
        agent.join()
        for s in range(3):
            publish(board, agent, agent.ws.baseline_files(), 1.5 + 0.001 * s, kind="baseline", seed=s)
        agent.finalize_baseline()
        board.post(HypothesisIn(text="Add a failure switch next to X", priority=50, track=TRACK))
        job = agent.prepare()
        assert job is not None and not job.invalid and 'FAIL = "crash"' in job.files["train.py"]
        job = agent.sync(job)
        outcome = agent.execute(job)
        assert outcome.status == "ok", outcome.error
        assert 'FAIL = ""' in job.files["train.py"]
        assert job.usage.calls >= 2 and job.usage.input_tokens >= 1000
        prompts = [r.last_user_text() for r in srv.requests]
        assert any("synthetic crash" in p for p in prompts)


def establish_baseline(board: Board, agent: Agent) -> object:
    for s in range(3):
        publish(board, agent, agent.ws.baseline_files(), 1.50 + 0.001 * s, kind="baseline", seed=s)
    agent.finalize_baseline()
    leader = board.leader(TRACK)
    assert leader is not None
    return leader


def move_leader_to(board: Board, agent: Agent, files: dict[str, str], metric: float) -> object:
    """A confirmed move to `files` (a candidate with its two confirmations), as another agent makes it."""
    leader = board.leader(TRACK)
    assert leader is not None
    cand = publish(board, agent, files, metric, parent=leader.patch_hash)
    for s in (1, 2):
        publish(board, agent, files, metric, kind="confirm", parent=leader.patch_hash, candidate_of=cand, seed=s)
    agent.finalize_candidate(cand)
    moved = board.leader(TRACK)
    assert moved is not None and moved.result_id == cand
    return moved


def slot_job(agent: Agent, board: Board, files: dict[str, str], source: str) -> Job:
    """Claim a patch-carrying idea made on the current leader and put it in the agent's slot, prepared."""
    leader = board.leader(TRACK)
    assert leader is not None
    patch = make_patch(agent.files_of(leader.patch_hash), files)
    board.post(HypothesisIn(text=f"idea {source} {patch_hash(patch)[:8]}", track=TRACK, source=source,
                            patch=patch, meta={"base": leader.patch_hash}, priority=998))
    claim = board.claim(agent.agent_id, TRACK)
    assert claim is not None
    agent.hold(claim.hypothesis.id, claim.token)
    job = agent.implement(Job(claim.hypothesis, claim.token, leader))
    assert not job.invalid
    agent.fill_slot(job)
    return job


def test_a_prepared_job_follows_the_leader_while_the_gpu_is_busy(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    agent = make_agent(redis_url, swarm_name, tmp_path / "a")
    board = agent.board
    establish_baseline(board, agent)
    base = agent.ws.baseline_files()["train.py"]
    # A prepared edit of X; then the leader moves to a change of Y: the slot is re-applied at once.
    job = slot_job(agent, board, {"train.py": base.replace("X = 0.2 ", "X = 0.5 ")}, "human")
    gen2 = move_leader_to(board, agent, {"train.py": base.replace("Y = 0.8 ", "Y = 0.4 ")}, 1.05)
    agent.refresh_slot()
    again = agent.slot
    assert again is not None and again.hyp.id == job.hyp.id
    assert again.parent == gen2 and not again.invalid
    assert "X = 0.5 " in again.files["train.py"] and "Y = 0.4 " in again.files["train.py"]
    # A machine idea that now conflicts (the leader changed the same line) is retired, not run as invalid.
    agent.slot = None
    agent.slot_full.clear()
    idea = slot_job(agent, board, {"train.py": base.replace("Y = 0.8 ", "Y = 0.45")}, "classical")
    move_leader_to(board, agent, {"train.py": base.replace("Y = 0.8 ", "Y = 0.35")}, 1.0)
    agent.refresh_slot()
    assert agent.slot is None and not agent.slot_full.is_set()
    assert board.get(idea.hyp.id).state == "cancelled"
    assert idea.hyp.id not in agent.held


def test_idle_agents_ideate_on_the_pristine_arena_while_the_baseline_runs(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    agent = make_agent(redis_url, swarm_name, tmp_path / "a")
    board = agent.board
    other = Board.connect(redis_url, swarm_name)
    assert agent.prepare() is not None  # the first agent posts the baseline seeds and claims one
    while other.claim("busy", TRACK) is not None:  # the other seeds are taken by other agents
        pass
    assert agent.prepare() is None  # nothing to run before the baseline lands ...
    ideas = [h for h in board.list_hypotheses(state="open", limit=50) if h.kind == "explore"]
    assert ideas and all(h.meta["base"] == EMPTY_PATCH and h.patch_hash for h in ideas)  # ... but work is ready
    assert agent.prepare() is None
    assert len([h for h in board.list_hypotheses(state="open", limit=50) if h.kind == "explore"]) == len(ideas)


def test_the_next_job_is_built_on_a_promotion_the_running_confirmation_will_make(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    agent = make_agent(redis_url, swarm_name, tmp_path / "a")
    board = agent.board
    gen1 = establish_baseline(board, agent)
    files = edited(agent, 0.5)
    cand = publish(board, agent, files, 1.10, parent=gen1.patch_hash)  # type: ignore[attr-defined]

    def confirm_job(seed: int) -> Job:
        hid, _ = board.post(HypothesisIn(text=f"confirm {cand} seed {seed}", track=TRACK, kind="confirm",
                                         parent=cand, seed=seed))
        return Job(board.get(hid), 0, gen1)  # type: ignore[arg-type]

    assert agent.speculative_leader(confirm_job(1).hyp) is None  # seed 2 is still to come: not decisive
    publish(board, agent, files, 1.11, kind="confirm", parent=gen1.patch_hash, candidate_of=cand, seed=1)  # type: ignore[attr-defined]
    spec = agent.speculative_leader(confirm_job(2).hyp)
    assert spec is not None and spec.generation == 2 and spec.result_id == cand
    assert spec.patch_hash == board.result(cand).patch_hash
    # The next job is made on the candidate's code; when the promotion lands it needs no rebase.
    job = agent.prepare(spec)
    assert job is not None and job.parent == spec and job.hyp.meta["base"] == spec.patch_hash
    assert "X = 0.5" in agent.files_of(job.parent.patch_hash)["train.py"]
    publish(board, agent, files, 1.10, kind="confirm", parent=gen1.patch_hash, candidate_of=cand, seed=2)  # type: ignore[attr-defined]
    agent.finalize_candidate(cand)
    real = board.leader(TRACK)
    assert real is not None and real.result_id == cand
    again = agent.rebase_job(job, real)
    assert again is not None and again.parent == real and again.files == job.files
    # A candidate whose runs so far do not clear the threshold is not speculated on.
    other = publish(board, agent, edited(agent, 0.55), 1.09, parent=real.patch_hash)
    publish(board, agent, edited(agent, 0.55), 1.2, kind="confirm", parent=real.patch_hash, candidate_of=other, seed=1)
    hid, _ = board.post(HypothesisIn(text=f"confirm {other} seed 2", track=TRACK, kind="confirm", parent=other, seed=2))
    assert agent.speculative_leader(board.get(hid)) is None
