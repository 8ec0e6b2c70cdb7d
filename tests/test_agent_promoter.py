"""The Promoter alone, on a real board: judging against the leader, the noise rule through screening and
confirmation, promotion by compare-and-set, rebase of a candidate built on a stale leader, ports to
other tracks, and the speculation on a promotion the running confirmation will make."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_parts import TRACK, establish_baseline, make_parts, move_leader_to, publish

from swarm import defaults
from swarm.agent.job import Job
from swarm.experiment.runner import run_experiment
from swarm.models import AgentInfo, HypothesisIn, Kind, State, Status
from swarm.proposers.base import Usage


def test_candidate_on_a_stale_leader_is_rebased_not_promoted(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter, source = parts.board, parts.promoter, parts.source
    base_ids = [publish(parts, parts.baseline_files(), 1.50 + 0.001 * s, kind=Kind.BASELINE, seed=s)
                for s in range(defaults.NOISE_SEEDS)]
    promoter.finalize_baseline()
    gen1 = board.leader(TRACK)
    assert gen1 is not None and gen1.generation == 1 and set(base_ids) >= {gen1.result_id}
    # candidate A built on gen 1, then the leader moves (B) before A's confirmations are in.
    a_files = parts.edited(0.5)
    cand_a = publish(parts, a_files, 1.10, parent=gen1.patch_hash)
    b_files = {"train.py": parts.baseline_files()["train.py"].replace("Y = 0.8 ", "Y = 0.4")}
    cand_b = publish(parts, b_files, 1.05, parent=gen1.patch_hash)
    for s in range(1, defaults.CONFIRM_RUNS):
        publish(parts, b_files, 1.05, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand_b, seed=s)
    promoter.promote(cand_b)
    gen2 = board.leader(TRACK)
    assert gen2 is not None and gen2.generation == 2 and gen2.result_id == cand_b
    for s in range(1, defaults.CONFIRM_RUNS):
        publish(parts, a_files, 1.10, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand_a, seed=s)
    promoter.promote(cand_a)
    after = board.leader(TRACK)
    assert after is not None and after.generation == 2 and after.result_id == cand_b  # A was not promoted
    rebased = [h for h in board.list_hypotheses(state="open", limit=50) if h.text.startswith("rebase onto gen 2")]
    assert len(rebased) == 1 and rebased[0].patch_hash is not None
    assert rebased[0].meta["base"] == gen1.patch_hash
    # the rebased edit applies on top of the new leader: X changed, Y from the new leader kept
    job = source.implement(Job(rebased[0], 0, after))
    assert not job.invalid and "X = 0.5" in job.files["train.py"] and "Y = 0.4" in job.files["train.py"]
    # a prepared job built on gen 1 is re-applied onto gen 2 by sync, keeping what it carries
    prepared = Job(rebased[0], 0, gen1, a_files, usage=Usage(input_tokens=5, calls=1), brief_version=7)
    synced = source.sync(prepared)
    assert synced is not None and synced.parent == after and not synced.invalid
    assert "X = 0.5" in synced.files["train.py"] and "Y = 0.4" in synced.files["train.py"]
    assert synced.brief_version == 7 and synced.usage.input_tokens == 5
    # and the workspace is on the new leader
    assert parts.seat.ws.leader_patch_hash == after.patch_hash


def test_noise_rule_does_not_promote_null_changes(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    """20 edits with no true effect (comment-only changes: the synthetic noise draw changes with the code),
    run through screening and confirmation exactly as the agents do. Deterministic per code and seed."""
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter, ws = parts.board, parts.promoter, parts.seat.ws
    env = {"SYNTH_NOISE": "0.002"}

    def run(files: dict[str, str], seed: int) -> float:
        ws.prepare_run(files)
        out = run_experiment(ws.dir, parts.seat.manifest, profile="cpu", budget_s=0.01, timeout_s=30, seed=seed,
                             device="cpu", gpu="cpu", run_dir=tmp_path / "run", extra_env=env)
        assert out.status == "ok" and out.metric is not None
        return out.metric

    base = parts.baseline_files()
    for s in range(defaults.NOISE_SEEDS):
        publish(parts, base, run(base, s), kind=Kind.BASELINE, seed=s)
    promoter.finalize_baseline()
    leader = board.leader(TRACK)
    assert leader is not None
    screened = promoted = 0
    for i in range(20):
        files = {"train.py": base["train.py"] + f"# null change {i}\n"}
        metric = run(files, 0)
        if promoter.judge(leader.patch_hash, metric) != Status.KEEP:
            continue
        screened += 1
        rid = publish(parts, files, metric, parent=leader.patch_hash)
        for s in range(1, defaults.CONFIRM_RUNS):
            publish(parts, files, run(files, s), kind=Kind.CONFIRM, parent=leader.patch_hash, candidate_of=rid, seed=s)
        promoter.promote(rid)
        now = board.leader(TRACK)
        assert now is not None
        if now.generation != leader.generation:
            promoted += 1
            leader = now
    assert screened <= 12  # screening passes ~30% of nulls (SCREEN_ALPHA)
    assert promoted <= 1  # the measured rate is ~3% (scripts/bench_promotion.py); 20 nulls give 0.6 in expectation
    # and a real improvement (X much closer to the optimum) is promoted
    good = {"train.py": base["train.py"].replace("X = 0.2 ", "X = 0.6")}
    metric = run(good, 0)
    assert promoter.judge(leader.patch_hash, metric) == Status.KEEP
    assert promoter.judge(None, metric) == Status.DISCARD  # not built on the leader: never a candidate
    rid = publish(parts, good, metric, parent=leader.patch_hash)
    for s in range(1, defaults.CONFIRM_RUNS):
        publish(parts, good, run(good, s), kind=Kind.CONFIRM, parent=leader.patch_hash, candidate_of=rid, seed=s)
    promoter.promote(rid)
    final = board.leader(TRACK)
    assert final is not None and final.result_id == rid


def test_a_candidate_gets_its_confirmations_and_a_win_is_ported(redis_url: str, swarm_name: str,
                                                                 tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter = parts.board, parts.promoter
    gen1 = establish_baseline(parts)
    board.register(AgentInfo(agent_id="gpu-agent", track="gpu:H100"))  # another live track
    files = parts.edited(0.6)
    rid = publish(parts, files, 1.0, parent=gen1.patch_hash)
    promoter.on_result(board.result(rid))  # a candidate: its confirmations are posted
    confirms = [h for h in board.list_hypotheses(state="open", limit=50) if h.kind == Kind.CONFIRM]
    assert sorted(h.seed for h in confirms) == list(range(1, defaults.CONFIRM_RUNS))
    assert all(h.parent == rid and h.patch_hash == board.result(rid).patch_hash for h in confirms)
    for h in confirms:
        promoter.on_result(board.result(publish(parts, files, 1.0, kind=Kind.CONFIRM, parent=gen1.patch_hash,
                                                candidate_of=rid, seed=h.seed or 0)))
    leader = board.leader(TRACK)
    assert leader is not None and leader.result_id == rid and leader.generation == 2
    ports = [h for h in board.list_hypotheses(state="open", limit=50) if h.kind == Kind.PORT]
    assert [h.track for h in ports] == ["gpu:H100"] and ports[0].meta["base"] == gen1.patch_hash


def test_the_next_job_is_built_on_a_promotion_the_running_confirmation_will_make(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter, source = parts.board, parts.promoter, parts.source
    gen1 = establish_baseline(parts)
    files = parts.edited(0.5)
    cand = publish(parts, files, 1.10, parent=gen1.patch_hash)

    def confirm_hyp(seed: int) -> Job:
        hid, _ = board.post(HypothesisIn(text=f"confirm {cand} seed {seed}", track=TRACK, kind=Kind.CONFIRM,
                                         parent=cand, seed=seed))
        return Job(board.get(hid), 0, gen1)  # type: ignore[arg-type]

    last = defaults.CONFIRM_RUNS - 1  # the seed of the deciding confirmation
    assert promoter.speculative_leader(confirm_hyp(1).hyp) is None  # others are still to come: not decisive
    for seed in range(1, last):
        publish(parts, files, 1.11, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand, seed=seed)
    spec = promoter.speculative_leader(confirm_hyp(last).hyp)
    assert spec is not None and spec.generation == 2 and spec.result_id == cand
    assert spec.patch_hash == board.result(cand).patch_hash
    # The next job is made on the candidate's code; when the promotion lands it needs no rebase.
    job = source.prepare(spec)
    assert job is not None and job.parent == spec and job.hyp.meta["base"] == spec.patch_hash
    assert "X = 0.5" in parts.code.files_of(job.parent.patch_hash)["train.py"]
    assert job.hyp.id in parts.leases.held()  # the claim is held (renewed) from the moment it is made
    publish(parts, files, 1.10, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand, seed=last)
    promoter.promote(cand)
    real = board.leader(TRACK)
    assert real is not None and real.result_id == cand
    again = source.rebase(job, real)
    assert again is not None and again.parent == real and again.files == job.files
    # A candidate whose runs so far do not clear the threshold is not speculated on.
    other = publish(parts, parts.edited(0.55), 1.09, parent=real.patch_hash)
    for seed in range(1, last):
        publish(parts, parts.edited(0.55), 1.2, kind=Kind.CONFIRM, parent=real.patch_hash, candidate_of=other,
                seed=seed)
    hid, _ = board.post(HypothesisIn(text=f"confirm {other} seed {last}", track=TRACK, kind=Kind.CONFIRM,
                                     parent=other, seed=last))
    assert promoter.speculative_leader(board.get(hid)) is None



def test_an_exploration_whose_parent_moved_while_it_ran_is_rebased_when_it_beat_its_parent(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter = parts.board, parts.promoter
    gen1 = establish_baseline(parts)
    gen2 = move_leader_to(parts, {"train.py": parts.baseline_files()["train.py"].replace("Y = 0.8 ", "Y = 0.4 ")},
                          1.20)
    # Two explorations that started on gen 1 and finished after the move to gen 2.
    assert promoter.judge(gen1.patch_hash, 1.5016) == Status.DISCARD  # inside the noise of its own parent
    assert promoter.judge(gen1.patch_hash, 1.30) == Status.KEEP  # beats gen 1 (not gen 2): kept ...
    assert promoter.judge(gen2.patch_hash, 1.30) == Status.DISCARD  # (on gen 2 it would be no gain)
    assert promoter.judge("f" * 64, 1.0) == Status.DISCARD  # a parent that never led this track
    stale = publish(parts, parts.edited(0.6), 1.30, parent=gen1.patch_hash)
    promoter.on_result(board.result(stale))
    open_now = board.list_hypotheses(state=State.OPEN, limit=50)
    assert not [h for h in open_now if h.kind == Kind.CONFIRM]  # ... not confirmed on a leader it did not run on
    rebased = [h for h in open_now if h.text.startswith(f"rebase onto gen {gen2.generation}")]
    assert len(rebased) == 1 and rebased[0].meta["base"] == gen1.patch_hash  # ... but re-run on the new leader
    job = parts.source.implement(Job(rebased[0], 0, gen2))
    assert "X = 0.6" in job.files["train.py"] and "Y = 0.4 " in job.files["train.py"]


def test_a_promotion_carries_the_other_pending_candidates_over(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    """Candidates of the replaced leader still waiting for confirmations: their open confirmations are
    cancelled, their edits posted on the new leader at once, each alone and all merged into one."""
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter = parts.board, parts.promoter
    gen1 = establish_baseline(parts)
    base = parts.baseline_files()["train.py"]
    p_files = parts.edited(0.5)
    a_files = {"train.py": base.replace("Y = 0.8 ", "Y = 0.4")}
    b_files = {"train.py": base + "# b\n"}
    cand_p = publish(parts, p_files, 1.10, parent=gen1.patch_hash)
    cand_a = publish(parts, a_files, 1.12, parent=gen1.patch_hash)
    cand_b = publish(parts, b_files, 1.15, parent=gen1.patch_hash)
    worse = publish(parts, {"train.py": base + "# w\n"}, 1.16, parent=gen1.patch_hash)
    publish(parts, {"train.py": base + "# w\n"}, 1.90, kind=Kind.CONFIRM, parent=gen1.patch_hash,
            candidate_of=worse, seed=1)  # its runs so far no longer beat the leader: not carried
    promoter.confirm(board.result(cand_a))
    a_confirms = [h for h in board.list_hypotheses(state="open", limit=50) if h.kind == Kind.CONFIRM]
    assert len(a_confirms) == defaults.CONFIRM_RUNS - 1
    claimed = parts.source.claim()  # one of A's confirmations, prepared ahead by an agent
    assert claimed is not None and claimed.hypothesis.kind == Kind.CONFIRM
    for s in range(1, defaults.CONFIRM_RUNS):
        publish(parts, p_files, 1.10, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand_p, seed=s)
    promoter.promote(cand_p)
    gen2 = board.leader(TRACK)
    assert gen2 is not None and gen2.result_id == cand_p
    assert board.get(claimed.hypothesis.id).state == State.CLAIMED  # the open ones were cancelled
    dropped = Job(claimed.hypothesis, claimed.token, gen1, a_files)
    assert parts.source.sync(dropped) is None  # dropped, not run
    parts.source.retire(dropped)  # cancelled already (by a carry-over racing the claim): nothing to do
    assert all(h.state == State.CANCELLED for h in board.get_many([h.id for h in a_confirms]))
    opened = board.list_hypotheses(state="open", limit=50)
    rebased = [h for h in opened if h.text.startswith("rebase onto gen 2")]
    assert len(rebased) == 2 and all(h.meta["base"] == gen1.patch_hash for h in rebased)
    combined = [h for h in opened if h.text.startswith("combine 2 candidates of gen 1 onto gen 2")]
    assert len(combined) == 1 and combined[0].priority > max(h.priority for h in rebased)
    job = parts.source.implement(Job(combined[0], 0, gen2))
    assert not job.invalid
    code = job.files["train.py"]
    assert "X = 0.5" in code and "Y = 0.4" in code and code.endswith("# b\n") and "# w" not in code
    assert cand_b  # carried (its edit is in the combination)


def test_a_candidate_that_beats_the_leader_that_replaced_its_parent_is_promoted_over_it(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A strong candidate found on gen 1 while a weaker one was promoted (gen 2): confirmed against gen 2
    as it is, promoted over it, and gen 2's edit posted onto it (before: rebased, one more screening run
    and its confirmations after that, behind the weaker candidate's promotion)."""
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter = parts.board, parts.promoter
    gen1 = establish_baseline(parts)
    y_files = {"train.py": parts.baseline_files()["train.py"].replace("Y = 0.8 ", "Y = 0.4 ")}
    gen2 = move_leader_to(parts, y_files, 1.30)
    strong = publish(parts, parts.edited(0.5), 1.10, parent=gen1.patch_hash)  # ran on gen 1, beats gen 2 too
    promoter.on_result(board.result(strong))
    open_now = board.list_hypotheses(state=State.OPEN, limit=50)
    assert not [h for h in open_now if h.text.startswith("rebase")]
    confirms = [h for h in open_now if h.kind == Kind.CONFIRM and h.parent == strong]
    assert len(confirms) == defaults.CONFIRM_RUNS - 1
    assert not promoter.superseded(confirms[0], gen2)  # an agent about to run one runs it
    for s in range(1, defaults.CONFIRM_RUNS - 1):
        publish(parts, parts.edited(0.5), 1.10, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=strong, seed=s)
    last = next(h for h in confirms if h.seed == defaults.CONFIRM_RUNS - 1)
    guess = promoter.speculative_leader(last)  # the agent running the last one prepares its next job on it
    assert guess is not None and guess.result_id == strong and guess.generation == 3
    publish(parts, parts.edited(0.5), 1.10, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=strong,
            seed=defaults.CONFIRM_RUNS - 1)
    promoter.promote(strong)
    gen3 = board.leader(TRACK)
    assert gen3 is not None and gen3.generation == 3 and gen3.result_id == strong
    reapplied = [h for h in board.list_hypotheses(state=State.OPEN, limit=50) if h.text.startswith("reapply gen 2")]
    assert len(reapplied) == 1 and reapplied[0].meta["base"] == gen1.patch_hash
    job = parts.source.implement(Job(reapplied[0], 0, gen3))  # gen 2's edit on top of the new leader
    assert not job.invalid and "X = 0.5" in job.files["train.py"] and "Y = 0.4 " in job.files["train.py"]
    # with the setting off, the same candidate is rebased, never confirmed as it is
    monkeypatch.setattr(defaults, "OVERTAKE", False)
    other = publish(parts, parts.edited(0.45), 1.05, parent=gen1.patch_hash)
    promoter.on_result(board.result(other))
    open_now = board.list_hypotheses(state=State.OPEN, limit=50)
    assert not [h for h in open_now if h.kind == Kind.CONFIRM and h.parent == other]
    assert [h for h in open_now if h.text.startswith("rebase onto gen 3")]


def test_a_candidate_whose_runs_fall_behind_the_new_leader_is_rebased_once(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    """Confirmed against a newer leader it seemed to beat, a candidate whose mean then falls behind it: its
    last confirmation is dropped (not run) and its edit posted on the leader once, however many agents
    drop one of its confirmations; a complete one that does not beat it is rebased, not rejected."""
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter = parts.board, parts.promoter
    gen1 = establish_baseline(parts)
    gen2 = move_leader_to(parts, {"train.py": parts.baseline_files()["train.py"].replace("Y = 0.8 ", "Y = 0.4 ")},
                          1.30)
    cand = publish(parts, parts.edited(0.5), 1.20, parent=gen1.patch_hash)
    promoter.on_result(board.result(cand))
    confirms = sorted((h for h in board.list_hypotheses(state=State.OPEN, limit=50)
                       if h.kind == Kind.CONFIRM and h.parent == cand), key=lambda h: h.seed or 0)
    assert len(confirms) == defaults.CONFIRM_RUNS - 1
    publish(parts, parts.edited(0.5), 1.45, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand, seed=1)
    assert promoter.superseded(confirms[-1], gen2) and promoter.superseded(confirms[-2], gen2)
    rebased = [h for h in board.list_hypotheses(state=State.OPEN, limit=50) if h.text.startswith("rebase onto gen 2")]
    assert len(rebased) == 1 and rebased[0].meta["base"] == gen1.patch_hash
    for s in range(2, defaults.CONFIRM_RUNS):  # they ran anyway (claimed before the fall): the same rebase
        publish(parts, parts.edited(0.5), 1.45, kind=Kind.CONFIRM, parent=gen1.patch_hash, candidate_of=cand, seed=s)
    promoter.promote(cand)
    leader = board.leader(TRACK)
    assert leader is not None and leader.result_id == gen2.result_id
    again = [h for h in board.list_hypotheses(state=State.OPEN, limit=50) if h.text.startswith("rebase onto gen 2")]
    assert [h.id for h in again] == [h.id for h in rebased]


def test_a_standing_leader_is_re_measured_and_its_metric_becomes_the_mean(redis_url: str, swarm_name: str,
                                                                         tmp_path: Path) -> None:
    parts = make_parts(redis_url, swarm_name, tmp_path / "a")
    board, promoter = parts.board, parts.promoter
    establish_baseline(parts)
    gen2 = move_leader_to(parts, parts.edited(0.6), 1.0)  # promoted on 4 runs of 1.0
    assert gen2.runs == defaults.CONFIRM_RUNS and promoter.runs_behind(gen2) == defaults.CONFIRM_RUNS

    def refreshes() -> list:
        return sorted((h for h in board.list_hypotheses(state="open", limit=100) if "refresh" in h.tags),
                      key=lambda h: h.seed or 0)

    def explore(i: int) -> None:  # an exploration judged against the leader, worse than it
        rid = publish(parts, parts.edited(0.3 + 0.001 * i), 1.2, parent=gen2.patch_hash, status=Status.DISCARD)
        promoter.on_result(board.result(rid))

    for i in range(defaults.LEADER_REFRESH_EVERY - 1):
        explore(i)
    assert refreshes() == []  # a leader replaced soon costs nothing
    explore(99)
    jobs = refreshes()
    assert [h.seed for h in jobs] == [defaults.CONFIRM_RUNS]
    job = jobs[0]
    assert (job.kind, job.parent, job.patch_hash, job.priority) == (
        Kind.CONFIRM, gen2.result_id, gen2.patch_hash, defaults.PRIORITY_REFRESH)
    make_parts(redis_url, swarm_name, tmp_path / "b").promoter.post_refreshes()  # another agent: the same job
    assert [h.id for h in refreshes()] == [job.id]
    # the run comes in: the leader's metric is the mean of its five runs, the same generation
    claim = board.claim("runner", TRACK)
    assert claim is not None and claim.hypothesis.id == job.id
    board.complete(job.id, claim.token)
    rid = publish(parts, parts.edited(0.6), 1.05, kind=Kind.CONFIRM, candidate_of=gen2.result_id,
                  seed=defaults.CONFIRM_RUNS, meta={"refresh": True})
    promoter.on_result(board.result(rid))
    lead = board.leader(TRACK)
    assert lead is not None and (lead.generation, lead.result_id, lead.runs) == (gen2.generation, gen2.result_id, 5)
    assert lead.metric == pytest.approx(1.01)
    assert [m.metric for m in board.leader_history(TRACK)][-1] == 1.0  # the promotion's record stays as it was
    # and the judge now counts five runs behind the leader: a smaller gain clears screening
    assert promoter.runs_behind(lead) == 5
    # at most LEADER_REFRESH_RUNS, however long it stands
    for i in range(defaults.LEADER_REFRESH_EVERY * (defaults.LEADER_REFRESH_RUNS + 2)):
        explore(100 + i)
    seeds = [h.seed for h in refreshes()]
    assert seeds == list(range(defaults.CONFIRM_RUNS + 1, defaults.CONFIRM_RUNS + defaults.LEADER_REFRESH_RUNS))
    # a run of a leader already replaced changes nothing
    gen3 = move_leader_to(parts, parts.edited(0.7), 0.8)
    rid = publish(parts, parts.edited(0.6), 0.5, kind=Kind.CONFIRM, candidate_of=gen2.result_id,
                  seed=defaults.CONFIRM_RUNS + 1, meta={"refresh": True})
    promoter.on_result(board.result(rid))
    now = board.leader(TRACK)
    assert now is not None and (now.result_id, now.metric, now.runs) == (gen3.result_id, 0.8, defaults.CONFIRM_RUNS)
    assert not any(h.text.startswith("rebase") for h in board.list_hypotheses(state="open", limit=100))
