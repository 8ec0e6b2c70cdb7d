"""The JobSource and the Executor alone, on a real board: baseline seeds first, ideas on the pristine
arena while the baseline runs, claims held as leases, and an LLM's crashed edit repaired within the
experiment (the official OpenAI SDK against a scripted server on loopback)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from agent_parts import SYNTH, TRACK, Parts, establish_baseline, make_parts, publish

from swarm import defaults
from swarm.agent.executor import Executor
from swarm.agent.job import Job
from swarm.agent.promoter import baseline_retry_s
from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH
from swarm.models import HypothesisIn, Kind, ResultIn, State, Status
from swarm.proposers.classical import ClassicalProposer


def test_a_new_track_runs_its_baseline_seeds_first(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    parts.board.post(HypothesisIn(text="a human idea, posted early", track=TRACK, priority=10))
    jobs = [parts.source.prepare() for _ in range(defaults.NOISE_SEEDS)]
    assert [j.kind if j else None for j in jobs] == [Kind.BASELINE] * defaults.NOISE_SEEDS
    assert sorted(j.seed for j in jobs if j) == list(range(defaults.NOISE_SEEDS))
    assert all(j.files == parts.baseline_files() and j.parent is None for j in jobs if j)
    assert set(parts.leases.held()) == {j.hyp.id for j in jobs if j}
    # the human idea waits: nothing can be judged before the baseline leader exists
    assert [h.text for h in parts.board.list_hypotheses(state=State.OPEN, limit=10)] == ["a human idea, posted early"]


def test_idle_agents_explore_the_pristine_arena_while_the_baseline_runs(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent with no baseline seed left to run thinks on the pristine arena and runs one of the ideas
    on it, to be judged once the baseline lands, instead of leaving its GPU idle."""
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, source = parts.board, parts.source
    other = Board.connect(redis_url, swarm_name)
    assert source.prepare() is not None  # the first agent posts the baseline seeds and claims one
    while other.claim("busy", TRACK) is not None:  # the other seeds are taken by other agents
        pass
    ahead = source.prepare()  # no seed left to run, no leader yet: an exploration of the pristine code
    assert ahead is not None and ahead.kind == Kind.EXPLORE and ahead.hyp.source == "classical"
    assert ahead.parent == source.pristine_leader() and ahead.parent.patch_hash == EMPTY_PATCH
    assert ahead.files != parts.baseline_files() and not ahead.invalid and ahead.hyp.id in parts.leases.held()
    ideas = [h for h in board.list_hypotheses(state="open", limit=50) if h.kind == "explore"]
    assert ideas and all(h.meta["base"] == EMPTY_PATCH and h.patch_hash for h in ideas)  # more work is ready
    # Once the baseline lands, the job built on the pristine code is on its leader as it is.
    leader = establish_baseline(parts)
    assert (synced := source.rebase(ahead, leader)) is not None and synced.parent == leader
    assert synced.files == ahead.files
    # Not while a baseline seed has failed (an arena that crashes would use ideas up), nor when off.
    monkeypatch.setattr(parts.promoter, "baseline_failures", lambda: ["a crashed seed"])
    assert source.ahead_of_baseline() is None
    monkeypatch.undo()
    monkeypatch.setattr(defaults, "AHEAD_OF_BASELINE", False)
    assert source.ahead_of_baseline() is None
    assert len([h for h in board.list_hypotheses(state="open", limit=50) if h.kind == "explore"]) == len(ideas)


def test_an_empty_queue_is_filled_by_the_proposer_and_the_idea_claimed(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    leader = establish_baseline(parts)
    job = parts.source.prepare()
    assert job is not None and job.kind == Kind.EXPLORE and job.hyp.source == "classical"
    assert job.parent == leader and job.files != parts.baseline_files() and not job.invalid
    assert job.hyp.meta["base"] == leader.patch_hash
    assert job.hyp.id in parts.leases.held()


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
        config = load_config(None)
        specs = resolve_specs([f"openai-compatible:fixer@{srv.url}/v1"], config)
        props = build_proposers(specs, config, lambda: ClassicalProposer(seed=0))
        parts = make_parts(redis_url, swarm_name, tmp_path / "a", proposers=props)
        for s in range(defaults.NOISE_SEEDS):
            publish(parts, parts.baseline_files(), 1.5 + 0.001 * s, kind=Kind.BASELINE, seed=s)
        parts.promoter.finalize_baseline()
        parts.board.post(HypothesisIn(text="Add a failure switch next to X", priority=50, track=TRACK))
        job = parts.source.prepare()
        assert job is not None and not job.invalid and 'FAIL = "crash"' in job.files["train.py"]
        job = parts.source.sync(job)
        assert job is not None
        seat = parts.seat
        executor = Executor(seat.ws, seat.manifest, profile=seat.profile, budget_s=0.05, device="cpu", gpu="cpu",
                            runs_dir=tmp_path / "runs", editable=seat.settings.editable, stop=threading.Event(),
                            context=parts.source.context, ledger=parts.ledger)
        outcome = executor.run(job)
        assert outcome.status == "ok", outcome.error
        assert 'FAIL = ""' in job.files["train.py"]
        assert job.usage.calls >= 2 and job.usage.input_tokens >= 1000
        prompts = [r.last_user_text() for r in srv.requests]
        assert any("synthetic crash" in p for p in prompts)
        assert executor.busy_s > 0
        assert len(list((tmp_path / "runs").iterdir())) == 2  # the crash and the repaired run


def test_an_invalid_job_is_not_run(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    leader = establish_baseline(parts)
    parts.board.post(HypothesisIn(text="break the file", track=TRACK, priority=5,
                                  patch="--- a/train.py\n+++ b/train.py\n@@ -1,1 +1,1 @@\n-nothing like this\n+x\n"))
    job = parts.source.prepare()
    assert job is not None and job.parent == leader and job.invalid.startswith("could not implement")
    seat = parts.seat
    executor = Executor(seat.ws, seat.manifest, profile=seat.profile, budget_s=0.05, device="cpu", gpu="cpu",
                        runs_dir=tmp_path / "runs", editable=seat.settings.editable, stop=threading.Event(),
                        context=parts.source.context, ledger=parts.ledger)
    outcome = executor.run(job)
    assert outcome.status == "invalid" and outcome.error == job.invalid
    assert not (tmp_path / "runs").exists() and executor.busy_s == 0


def finish(parts: Parts, job: Job, metric: float | None, status: Status = Status.KEEP) -> None:
    """Publish the job's result as its agent's publisher would, and hand it to the promoter."""
    parts.board.publish(ResultIn(result_id=uuid.uuid4().hex, hypothesis_id=job.hyp.id, token=job.token,
                                 agent_id="agent-t", track=TRACK, status=status, metric=metric, kind=job.kind,
                                 seed=job.seed, patch_hash=EMPTY_PATCH,
                                 error="" if metric is not None else "RuntimeError: boom"))
    parts.board.complete(job.hyp.id, job.token)
    parts.promoter.on_result(ResultIn(result_id="x", agent_id="agent-t", track=TRACK, status=status,
                                      metric=metric, kind=job.kind, seed=job.seed,
                                      error="" if metric is not None else "RuntimeError: boom"))


def test_a_failed_baseline_seed_is_replaced_by_a_new_seed_after_its_back_off(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "BASELINE_RETRY_S", 0.5)
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    n = defaults.NOISE_SEEDS
    jobs = {j.seed: j for j in (parts.source.prepare() for _ in range(n)) if j is not None}
    for s in range(n):  # seed 1 times out (e.g. two agents fighting over the cores), the others finish
        finish(parts, jobs[s], *((None, Status.TIMEOUT) if s == 1 else (1.50 + 0.01 * s,)))  # type: ignore[arg-type]
    assert parts.board.leader(TRACK) is None  # n - 1 finished seeds are not the noise estimate asked for
    assert parts.source.prepare() is None  # the new seed waits for its back-off ...
    time.sleep(0.6)
    retry = parts.source.prepare()  # ... then runs
    assert retry is not None and retry.kind == Kind.BASELINE and retry.seed == n
    finish(parts, retry, 1.60)
    values = [1.50 + 0.01 * s for s in range(n) if s != 1] + [1.60]
    leader = parts.board.leader(TRACK)
    assert leader is not None and abs(leader.metric - sum(values) / n) < 1e-9  # the mean of the runs that finished
    assert parts.board.noise(TRACK) == pytest.approx(values)


def test_a_baseline_that_keeps_failing_is_retried_ever_more_slowly_and_said_loudly(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "BASELINE_RETRY_S", 1.0)
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    n = defaults.NOISE_SEEDS
    for _ in range(n):
        job = parts.source.prepare()
        assert job is not None
        finish(parts, job, None, Status.CRASH)
    assert parts.source.prepare() is None  # nothing due yet: no spin, no exit
    time.sleep(1.2)
    job = parts.source.prepare()
    assert job is not None and job.seed == n  # the first retry, after 1 s
    assert parts.source.prepare() is None  # the next ones wait 2 s, 4 s, ... after their failures
    time.sleep(1.0)
    other = parts.source.prepare()
    assert other is not None and other.seed == n + 1
    events = [e for e in parts.board.events(limit=50) if e.kind == "baseline_failing"]
    assert len(events) == n - 2 and "failure 3" in events[0].text  # from the third failure on, said on the board
    assert [baseline_retry_s(i) for i in range(3)] == [1.0, 2.0, 4.0]
