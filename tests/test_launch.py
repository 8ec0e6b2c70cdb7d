"""The agents of one host, with real processes: `swarm launch` supervising them, and CPU agents
sharing the host's cores (swarm/agent/launch.py, swarm/agent/join.py: take_cpu_share).

Covers: an agent killed with -9 is restarted on its work dir; an agent that fails at start is
restarted with growing waits, then given up with one line naming it, its error and its log (exit 1);
agents that finish end the launcher with 0; SIGTERM to the launcher stops every agent and leaves no
process; kill -9 of the launcher stops its agents too. CPU slots: the first agent takes one thread,
later ones copy the host's share while cores are free, a dead agent's slot is free at once, agents
deciding at the same moment never take the same free cores twice, and two real agents register the
tracks their threads give.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.agent.join import host_cores, take_cpu_share
from swarm.agent.launch import Launcher, LaunchPlan
from swarm.board import Board

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "tests" / "arenas" / "synth"
TRACK = "cpu:test"


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def init(url: str, swarm: str) -> Board:
    subprocess.run([sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", swarm, "init", "--arena",
                    str(SYNTH)], check=True, capture_output=True)  # fmt: skip
    return Board.connect(url, swarm)


def processes_under(path: Path) -> list[str]:
    """Command lines of the live processes that name `path` (the test's own tmp dir): agents and runs."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if str(path) in cmd and "\nState:\tZ" not in status:
            found.append(f"{entry.name}: {cmd}")
    return found


def start_launch(url: str, swarm: str, tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SWARM_CPU_SLOTS_DIR": str(tmp / "slots")}
    return subprocess.Popen(
        [sys.executable, "-m", "swarm.cli", "--redis", url, "--swarm", swarm, "launch", "--workdir", str(tmp / "L"),
         "--arena", str(SYNTH), "--track", TRACK, "--no-metrics", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def alive_pids(board: Board) -> set[int]:
    return {a.pid for a in board.agents() if a.alive and a.pid is not None}


# --- swarm launch -----------------------------------------------------------------------------------------


def test_a_killed_agent_is_restarted_and_sigterm_stops_all(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = init(redis_url, swarm_name)
    launcher = start_launch(redis_url, swarm_name, tmp_path, "--agents", "2")
    try:
        first = wait_for(lambda: len(p := alive_pids(board)) == 2 and p, 60, "two agents registered")
        assert isinstance(first, set)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # the launcher starts it again on the same work dir; the new process registers itself
        wait_for(lambda: len(alive_pids(board) - first) == 1, 60, "the killed agent restarted")
        assert len(board.results(limit=500)) > 0
    finally:
        launcher.send_signal(signal.SIGTERM)
        out, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, out
    assert re.search(r"agent \d ended \(killed by SIGKILL after \d+ s\); restarting in 2 s", out), out
    assert re.search(r"agent \d restarted \(pid \d+\)", out), out
    assert "all agents ended: agent 0 stopped, agent 1 stopped" in out, out
    assert processes_under(tmp_path) == []  # no agent and no run left behind
    # every live agent deregistered; the one killed with -9 could not (its entry ages out as dead)
    assert [a.pid for a in board.agents() if a.pid != victim] == []
    assert "--- swarm launch: start 2 of agent" in "".join(p.read_text() for p in (tmp_path / "L").glob("*.log"))


def test_an_agent_failing_at_start_is_retried_with_growing_waits_then_given_up(
    redis_url: str, swarm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_CPU_SLOTS_DIR", str(tmp_path / "slots"))
    # no --arena and no such swarm: every start ends with the same one-line error, exit 2
    plan = LaunchPlan(redis_url, swarm_name, tmp_path / "L", agents=1, agent_args=["--no-metrics"],
                      backoff_s=0.25, give_up_after=3)  # fmt: skip
    lines: list[tuple[float, str]] = []
    launcher = Launcher(plan, gpus=0, echo=lambda line: lines.append((time.monotonic(), line)))
    launcher.start()
    assert launcher.supervise() == 1
    text = "\n".join(line for _, line in lines)
    waits = [float(w) for w in re.findall(r"restarting in ([\d.]+) s", text)]
    assert waits == [0.5, 1.0], text  # doubled after each failure at start
    starts = [t for t, line in lines if re.match(r"agent 0 (re)?started", line)]
    ends = [t for t, line in lines if line.startswith("agent 0 ended")]
    assert len(starts) == 3 and len(ends) == 2, text
    # each restart waits at least the announced time after the end it follows (a lower bound:
    # start-up time varies with load, so gaps between starts are not compared with each other)
    gaps = [restart - end for restart, end in zip(starts[1:], ends, strict=True)]
    assert all(gap >= wait - 0.05 for gap, wait in zip(gaps, waits, strict=True)), (gaps, text)
    given_up = [line for _, line in lines if line.startswith("agent 0 given up")]
    assert len(given_up) == 1, text
    assert given_up[0].startswith("agent 0 given up: it ended in error within 60 s of starting 3 times in a row")
    assert f"error: swarm '{swarm_name}' does not exist" in given_up[0]
    assert given_up[0].endswith(f"see {tmp_path / 'L' / 'agent-0.log'}")
    assert lines[-1][1] == "all agents ended: agent 0 given up"


def test_agents_that_finish_end_the_launcher_with_0(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = init(redis_url, swarm_name)
    launcher = start_launch(redis_url, swarm_name, tmp_path, "--agents", "2", "--max-experiments", "2")
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, out
    assert out.count("finished (exit 0") == 2 and "restart" not in out, out
    assert len(board.results(limit=500)) == 4


def test_agents_stop_when_the_launcher_is_killed(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = init(redis_url, swarm_name)
    launcher = start_launch(redis_url, swarm_name, tmp_path, "--agents", "1")
    try:
        wait_for(lambda: alive_pids(board), 60, "the agent registered")
    finally:
        launcher.kill()  # as the OOM killer would: no chance to forward anything
        launcher.communicate(timeout=10)
    # the agent got SIGTERM from the kernel (parent death signal): it released its claims and left
    wait_for(lambda: not processes_under(tmp_path), 30, "the agent to end")
    assert board.agents() == []
    assert board.list_hypotheses(state="claimed", limit=50) == []


# --- CPU agents sharing a host -----------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from swarm.agent.join import take_cpu_share
asked = None if sys.argv[1] == "-" else int(sys.argv[1])
go = Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
share = take_cpu_share(asked, Path(sys.argv[2]), cores=int(sys.argv[3]))
print(share.threads, flush=True)
time.sleep(600)
"""


def hold(slots: Path, cores: int, threads: int | None, go: Path) -> subprocess.Popen[str]:
    """A process that takes a CPU share (once `go` exists) and keeps it until killed."""
    return subprocess.Popen([sys.executable, "-c", HOLDER, "-" if threads is None else str(threads), str(slots),
                             str(cores), str(go)], stdout=subprocess.PIPE, text=True)  # fmt: skip


def threads_of(p: subprocess.Popen[str]) -> int:
    assert p.stdout is not None
    return int(p.stdout.readline())


def test_cpu_agents_share_the_cores_and_a_dead_agents_slot_is_free_at_once(tmp_path: Path) -> None:
    slots, go = tmp_path / "slots", tmp_path / "go"
    go.touch()
    procs: list[subprocess.Popen[str]] = []
    try:
        alone = take_cpu_share(None, slots, cores=4)
        assert (alone.threads, alone.others) == (1, [])  # the first agent of a host: one core, room for more
        alone.close()
        procs.append(hold(slots, 4, 2, go))  # the first one told --threads 2
        assert threads_of(procs[0]) == 2
        procs.append(hold(slots, 4, None, go))  # the next copies it while 2 cores are free
        assert threads_of(procs[1]) == 2
        procs.append(hold(slots, 4, None, go))  # none free: still starts, on 1 thread, oversubscribed
        assert threads_of(procs[2]) == 1
        procs[1].kill()  # kill -9: the kernel drops its lock, its 2 cores are free again
        procs[1].wait()
        later = take_cpu_share(None, slots, cores=4)
        assert sorted(later.others) == [(procs[0].pid, 2), (procs[2].pid, 1)]
        assert later.threads == 1 and not later.oversubscribed  # 2 + 1 + 1 = 4; the tie 2 vs 1 takes the smaller
        assert later.slot.name == "slot-1"  # the dead agent's slot, reused
        later.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()
            assert p.stdout is not None
            p.stdout.close()


def test_agents_deciding_at_the_same_moment_never_overcommit_the_free_cores(tmp_path: Path) -> None:
    slots, go = tmp_path / "slots", tmp_path / "go"
    first = hold(slots, 8, 4, go)  # the host's share is 4 threads; 4 of the 8 cores are free
    go.touch()
    assert threads_of(first) == 4
    go.unlink()
    racers = [hold(slots, 8, None, go) for _ in range(6)]
    try:
        time.sleep(2.0)  # every racer is up and spinning on `go`
        go.touch()
        got = sorted(threads_of(p) for p in racers)
        # exactly one takes the 4 free cores; the others find none free and take 1 each
        assert got == [1, 1, 1, 1, 1, 4], got
    finally:
        for p in [first, *racers]:
            p.kill()
            p.wait()
            assert p.stdout is not None
            p.stdout.close()


def test_bad_thread_settings_end_as_one_line(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    init(redis_url, swarm_name)
    base = [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name, "agent", "--workdir",
            str(tmp_path / "a"), "--no-metrics", "--max-experiments", "1"]  # fmt: skip
    env = {**os.environ, "SWARM_CPU_SLOTS_DIR": str(tmp_path / "slots")}
    for args, extra, message in [
        (["--threads", "0"], {}, "error: --threads must be a number of at least 1 or 'all', not '0'"),
        ([], {"OMP_NUM_THREADS": "two"}, "error: OMP_NUM_THREADS='two' is not a positive integer"),
    ]:
        p = subprocess.run(base + args, env={**env, **extra}, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "Traceback" not in p.stderr and message in p.stderr, p.stderr
    (tmp_path / "theirs").symlink_to(tmp_path)  # not a directory of its own: refused
    p = subprocess.run(base, env={**env, "SWARM_CPU_SLOTS_DIR": str(tmp_path / "theirs")}, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith(
        f"error: the CPU slots directory {tmp_path / 'theirs'} is not a directory of this user's"
    ), p.stderr


def test_two_cpu_agents_started_by_hand_register_the_tracks_of_their_threads(
    redis_url: str, swarm_name: str, tmp_path: Path
) -> None:
    """Started by hand in one directory, without --workdir: each gets its own work dir, and the track of
    the threads it took; a third pointed at a work dir in use is refused in one line."""
    board = init(redis_url, swarm_name)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["SWARM_CPU_SLOTS_DIR"] = str(tmp_path / "slots")

    def agent(*extra: str) -> list[str]:
        return [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", swarm_name, "agent", "--arena",
                str(SYNTH), "--no-metrics", *extra]  # fmt: skip

    procs = []
    for i, extra in enumerate([["--threads", "2"], []]):
        with (tmp_path / f"a{i}.log").open("wb") as log:
            procs.append(subprocess.Popen(agent("--max-experiments", "4", *extra), cwd=tmp_path, stdout=log,
                                          stderr=subprocess.STDOUT, env=env))  # fmt: skip
        # the second starts once the first holds its share
        wait_for(lambda i=i: "cpu share:" in (tmp_path / f"a{i}.log").read_text(), 60, f"agent {i}'s share")
    first_dir = tmp_path / ".swarm" / swarm_name / "agent-cpu"
    busy = subprocess.run(agent("--workdir", str(first_dir)), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    for i, p in enumerate(procs):
        assert p.wait(timeout=120) == 0, (tmp_path / f"a{i}.log").read_text()[-2000:]
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert busy.stderr.strip().splitlines()[-1] == (
        f"error: the work dir {first_dir} is in use by another agent (pid {procs[0].pid}): "
        "give each agent its own --workdir"
    )
    assert (first_dir / "ws").is_dir() and (first_dir.parent / "agent-cpu-1" / "ws").is_dir()
    cores = host_cores()
    second = 2 if cores >= 4 else max(1, cores - 2)  # the first's share while 2 cores are free, else what is
    tracks = {r.agent_id.split("-")[-2]: r.track for r in board.results(limit=50)}  # pid -> track
    assert tracks == {str(procs[0].pid): "cpu:2c", str(procs[1].pid): f"cpu:{second}c"}
    log1 = (tmp_path / "a1.log").read_text()
    assert f"cpu share: {second} thread(s) of this host's {cores} core(s); 1 other CPU agent(s) here: pid" in log1
    assert ("more threads than cores" in log1) == (2 + second > cores)


def test_threads_all_takes_every_core_and_bad_values_are_one_line(tmp_path: Path) -> None:
    from swarm.agent.join import host_cores
    from swarm.cli.agent_cmds import parse_threads
    from swarm.errors import UserError

    assert parse_threads("all") == host_cores() and parse_threads("3") == 3 and parse_threads(None) is None
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(UserError, match="--threads must be a number of at least 1 or 'all'"):
            parse_threads(bad)
