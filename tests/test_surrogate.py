"""The classical proposer's model step: an additive quadratic fit to every agent's observations."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

from swarm.code.diff import apply_patch
from swarm.models import Direction, Status
from swarm.proposers.base import PastResult, ProposalContext
from swarm.proposers.classical import META_BASIS, ClassicalProposer
from swarm.proposers.constants import parse_constants, search_space
from swarm.proposers.surrogate import model_step

TRAIN = """\
MATRIX_LR = 0.04                       # Muon learning rate
WARMDOWN_RATIO = 0.5                   # fraction of the budget decaying the LR
TOTAL_BATCH_SIZE = 2**19               # tokens per optimizer step
SOFTCAP = 15.0                         # no effect on the objective below
"""
FILES = {"train.py": TRAIN}
OPT = {"MATRIX_LR": 0.07, "WARMDOWN_RATIO": 0.65, "TOTAL_BATCH_SIZE": 2**18}
NOISE = 0.001


def true_value(p: dict[str, float | int]) -> float:
    """A bowl in each constant's natural coordinate, 0.970 at OPT; SOFTCAP does nothing."""
    return (
        0.970
        + 0.004 * math.log2(float(p["MATRIX_LR"]) / OPT["MATRIX_LR"]) ** 2
        + 0.1 * (float(p["WARMDOWN_RATIO"]) - OPT["WARMDOWN_RATIO"]) ** 2
        + 0.003 * math.log2(int(p["TOTAL_BATCH_SIZE"]) / OPT["TOTAL_BATCH_SIZE"]) ** 2
    )


def spaces_and_leader() -> tuple[dict, dict[str, float | int]]:
    cs = parse_constants(FILES, "cpu")
    return {c.key: search_space(c) for c in cs}, {c.key: c.value for c in cs}


def local_moves(n: int, seed: int) -> list[tuple[dict[str, float | int], float]]:
    """The leader and n noisy runs of random 1-2 constant moves around it (what local search leaves)."""
    spaces, leader = spaces_and_leader()
    rng = random.Random(seed)
    obs: list[tuple[dict[str, float | int], float]] = [(dict(leader), true_value(leader))]
    for _ in range(n):
        p = dict(leader)
        for k in rng.sample(sorted(spaces), rng.randint(1, 2)):
            s = spaces[k]
            if s.kind == "pow2":
                p[k] = s.to_value(rng.randint(int(s.low), int(s.high)))
            elif s.log:
                p[k] = s.to_value(math.exp(rng.uniform(math.log(s.low), math.log(s.high))))
            else:
                p[k] = s.to_value(rng.uniform(s.low, s.high))
        obs.append((p, true_value(p) + rng.gauss(0.0, NOISE)))
    return obs


def test_a_model_step_jumps_most_of_the_way_and_leaves_a_constant_without_effect() -> None:
    spaces, leader = spaces_and_leader()
    obs = local_moves(40, seed=3)
    start = true_value(leader)  # 0.9779: 7.9 noise sds above the optimum
    for seed in range(5):  # each bootstrap draw is a different, equally good step
        step = model_step(obs, spaces, leader, random.Random(seed))
        assert step is not None and step.n_obs == 41
        after = true_value({**leader, **step.values})
        # one step (within the trust region) takes most of the gap
        assert after < start - 0.6 * (start - 0.970), (seed, step.values, after)
        assert "SOFTCAP" not in step.values
        assert step.predicted_gain > 3 * NOISE
    # over many histories and draws: a constant without effect rarely moves (5% measured), the gain holds
    steps = [
        model_step(local_moves(40, seed=100 + h), spaces, leader, random.Random(d)) for h in range(20) for d in range(3)
    ]
    assert all(s is not None for s in steps)
    assert sum("SOFTCAP" in s.values for s in steps if s) <= 6
    gaps = sorted((start - true_value({**leader, **s.values})) / (start - 0.970) for s in steps if s)
    assert gaps[len(gaps) // 2] > 0.9 and gaps[len(gaps) // 10] > 0.6, gaps


def test_too_few_observations_or_only_noise_give_no_step() -> None:
    spaces, leader = spaces_and_leader()
    assert model_step(local_moves(8, seed=3), spaces, leader, random.Random(0)) is None  # 9 params need 14
    rng = random.Random(9)
    flat = [(p, 1.0 + rng.gauss(0.0, NOISE)) for p, _ in local_moves(60, seed=4)]
    assert [model_step(flat, spaces, leader, random.Random(s)) for s in range(10)] == [None] * 10


def test_maximize_is_the_mirror_of_minimize() -> None:
    spaces, leader = spaces_and_leader()
    obs = local_moves(40, seed=5)
    down = model_step(obs, spaces, leader, random.Random(1))
    up = model_step([(p, -v) for p, v in obs], spaces, leader, random.Random(1), minimize=False)
    assert down is not None and down == up


def test_natural_coordinates() -> None:
    spaces, _ = spaces_and_leader()
    assert spaces["TOTAL_BATCH_SIZE"].coordinate(2**19) == 19
    assert spaces["MATRIX_LR"].coordinate(0.04) == math.log(0.04)
    assert spaces["WARMDOWN_RATIO"].coordinate(0.5) == 0.5
    assert spaces["MATRIX_LR"].coordinate(-1.0) is None


def _ctx(obs: list[tuple[dict[str, float | int], float]], noise_sd: float | None = None) -> ProposalContext:
    history = [
        PastResult(
            title="t",
            status=Status.DISCARD,
            metric=v,
            delta=None,
            on_current_leader=True,
            proposer="classical",
            meta={"changed": ",".join(k for k in p if p[k] != obs[0][0][k]) or "SOFTCAP", "profile": "cpu", **p},
        )
        for p, v in obs[1:]
    ]
    return ProposalContext(
        track="cpu:2c",
        profile="cpu",
        metric_name="val_bpb",
        direction=Direction.MINIMIZE,
        files=FILES,
        leader_metric=obs[0][1],
        leader_generation=1,
        history=history,
        noise_sd=noise_sd,
    )


def test_the_classical_proposer_leads_with_the_model_step_once_the_data_supports_one() -> None:
    ctx = _ctx(local_moves(40, seed=3))
    ideas, _ = ClassicalProposer(seed=7).ideate(ctx, 3)
    assert len(ideas) == 3
    first = ideas[0]
    assert first.title.startswith("classical model step: ") and first.meta[META_BASIS] == "model"
    assert "additive quadratic fit to 41 observations" in first.rationale
    new = apply_patch(FILES, first.patch or "")
    point = {c.key: c.value for c in parse_constants(new, "cpu")}
    assert true_value(point) < true_value(spaces_and_leader()[1]) - 0.004  # over half the gap of 0.0079
    assert all(META_BASIS not in i.meta for i in ideas[1:])  # the rest are local TPE moves
    # off: local moves only; and too little data: no model step either
    off, _ = ClassicalProposer(seed=7, model_step=False).ideate(ctx, 3)
    assert all(META_BASIS not in i.meta for i in off)
    few, _ = ClassicalProposer(seed=7).ideate(_ctx(local_moves(5, seed=3)), 3)
    assert all(i.meta.get(META_BASIS) != "model" for i in few)


def probe_design(seed: int, depth: float = 1.0) -> list[tuple[dict[str, float | int], float]]:
    """The leader and one noisy run of every probe the proposer asks for, asked as N agents would, on
    the bowl made `depth` times as deep (the same noise)."""
    _, leader = spaces_and_leader()
    rng = random.Random(seed)

    def value(p: dict[str, float | int]) -> float:
        return 0.970 + depth * (true_value(p) - 0.970)

    obs: list[tuple[dict[str, float | int], float]] = [(dict(leader), value(leader))]
    for call in range(20):
        ideas, _ = ClassicalProposer(seed=seed * 100 + call).ideate(_ctx(obs, noise_sd=NOISE), 4)
        probes = [i for i in ideas if i.meta.get(META_BASIS) == "probe"]
        if not probes:
            break
        for i in probes:
            p = {k: i.meta[k] for k in leader}
            obs.append((p, value(p) + rng.gauss(0.0, NOISE)))  # type: ignore[arg-type]
    return obs


def test_probes_move_one_constant_a_quarter_of_its_space_until_each_curvature_can_be_fitted() -> None:
    spaces, leader = spaces_and_leader()
    ideas, _ = ClassicalProposer(seed=3).ideate(_ctx([(dict(leader), true_value(leader))]), 8)
    probes = [i for i in ideas if i.meta.get(META_BASIS) == "probe"]
    assert len(probes) == 8 and all(i.title.startswith("classical probe: ") for i in probes)
    moves = set()
    for i in probes:
        (key,) = str(i.meta["changed"]).split(",")
        s = spaces[key]
        step = (s.coordinate(i.meta[key]) - s.coordinate(leader[key])) / s.span  # type: ignore[arg-type,operator]
        assert abs(abs(step) - 0.25) < 0.06, (key, i.meta[key], step)  # rounding to 2 significant digits
        moves.add((key, step > 0))
    assert len(moves) == 8  # the 4 constants, each up and down: every curvature, nothing twice
    obs = probe_design(seed=1)
    assert len(obs) == 9  # the leader and the 8 probes, then no more
    # 9 observations for 9 parameters: enough once the seed noise is known, not before. On this bowl
    # (7.9 noise sds from the optimum) one run per probe leaves the curvatures uncertain; on one 4 times
    # as steep (bench_search's is 30 sds deep) the step takes most of the gap at once.
    steep = probe_design(seed=1, depth=4.0)
    assert model_step(steep, spaces, leader, random.Random(0)) is None
    start = true_value(leader)
    for seed in range(5):
        step = model_step(steep, spaces, leader, random.Random(seed), noise_sd=NOISE)
        assert step is not None and "SOFTCAP" not in step.values
        assert true_value({**leader, **step.values}) < start - 0.6 * (start - 0.970), step.values


def test_a_known_noise_keeps_an_exact_fit_from_chasing_it() -> None:
    """With as many observations as parameters the residuals are zero whatever the noise: the known seed
    noise, not the residuals, sets the standard errors, so noise alone moves nothing."""
    spaces, leader = spaces_and_leader()
    moved = 0
    for seed in range(20):
        rng = random.Random(seed)
        flat = [(p, 1.0 + rng.gauss(0.0, NOISE)) for p, _ in probe_design(seed)]
        moved += model_step(flat, spaces, leader, random.Random(seed), noise_sd=NOISE) is not None
    assert moved <= 2, moved


def test_confirmation_runs_count_as_observations_of_their_candidate() -> None:
    """A candidate's confirmations are more runs of its code (`PastResult.replicates`): the model counts
    each, so a history too short for a fit becomes long enough without another exploration."""
    obs = local_moves(9, seed=3)  # the leader and 9 moves: 10 observations, 13.5 needed for 9 parameters
    rng = random.Random(5)
    ctx = _ctx(obs)
    assert all(i.meta.get(META_BASIS) != "model" for i in ClassicalProposer(seed=7).ideate(ctx, 3)[0])
    for h in ctx.history[:4]:  # two confirmation runs each for 4 of them: 18 observations
        point = {k: v for k, v in h.meta.items() if k not in ("changed", "profile")}
        h.replicates = [true_value(point) + rng.gauss(0.0, NOISE) for _ in range(2)]  # type: ignore[arg-type]
    first = ClassicalProposer(seed=7).ideate(ctx, 3)[0][0]
    assert first.meta[META_BASIS] == "model" and "fit to 18 observations" in first.rationale


def test_the_model_step_scripts_run() -> None:
    root = Path(__file__).resolve().parents[1]
    sim = subprocess.run(
        [sys.executable, str(root / "scripts" / "sim_search.py"), "--agents", "2", "--rounds", "4", "--seeds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sim.returncode == 0, sim.stderr
    assert sim.stdout.startswith("off: N=2, 4 rounds: final true ") and "\non: N=2" in sim.stdout
    bad = subprocess.run(
        [sys.executable, str(root / "scripts" / "sim_search.py"), "--variant", 'x={"NO_SUCH": 1}'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "error: variant 'x': swarm.defaults has no NO_SUCH"
    stats = subprocess.run(
        [sys.executable, str(root / "scripts" / "bench_model_step.py")], capture_output=True, text=True, timeout=120
    )
    assert stats.returncode == 0, stats.stderr
    assert [line.split(":")[0] for line in stats.stdout.splitlines()] == ["z = 1", "z = 2", "z = 3"]
