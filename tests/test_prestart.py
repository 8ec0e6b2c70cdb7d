"""A harness started ahead of its run (`harness run --wait`, the runner's `prestart`), with real processes:
the code under test is loaded only once the run starts, the evaluation process never ran train(), the
clock starts at the hand-over, a harness file touched while it waited gets fresh children, and a
harness that is never used leaves nothing behind: not when it is discarded, not when its agent is
killed with -9, and its processes never see the agent's secrets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.experiment.manifest import load_manifest
from swarm.experiment.runner import prestart
from swarm.experiment.sandbox import probe

REPO = Path(__file__).resolve().parents[1]
ARENA = REPO / "arena"
SECRET = "sk-test-prestart-secret-1f2e3d"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A prepared cpu cache (the session's, when test_arena_harness set one up: preparing is cached),
    and one torch thread for every run of this module."""
    path = Path(os.environ.get("ARENA_CACHE") or tmp_path_factory.mktemp("prestart-cache"))
    old = {k: os.environ.get(k) for k in ("ARENA_CACHE", "ARENA_THREADS")}
    os.environ.update(ARENA_CACHE=str(path), ARENA_THREADS="1")
    subprocess.run(
        [sys.executable, "-m", "harness", "prepare", "--profile", "cpu"], cwd=ARENA, check=True, capture_output=True
    )
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def copy_arena(dst: Path) -> Path:
    shutil.copytree(ARENA, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def waiting(arena: Path, out: Path) -> subprocess.Popen[str]:
    """`harness run --wait` on `arena`, bare (the children's pids and files are visible to the test)."""
    cmd = [sys.executable, "-m", "harness", "run", "--wait", "--profile", "cpu", "--device", "cpu", "--budget", "1"]
    return subprocess.Popen(
        [*cmd, "--out", str(out), "--sandbox", "none"],
        cwd=arena,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of `pid`: pid -> its start time (so a recycled pid is not mistaken for it)."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        starts[int(entry.name)] = fields[19]
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = starts[child]
                frontier.append(child)
    return found


def alive(procs: dict[int, str]) -> list[int]:
    left = []
    for pid, start in procs.items():
        try:
            if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19] == start:
                left.append(pid)
        except OSError:
            continue
    return left


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def harness_children(pid: int) -> list[int]:
    """The `_train` / `_eval` children among pid's descendants (not the bwrap around them), once both
    have imported torch (where their memory maps can be read)."""
    kids = []
    for child in descendants(pid):
        try:
            argv = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) < 4 or b"bwrap" in argv[0] or argv[3] not in (b"_train", b"_eval"):
            continue
        try:
            if "libtorch" not in (Path("/proc") / str(child) / "maps").read_text():
                continue
        except OSError:
            pass  # a sandboxed child another user may not inspect: its existence is enough
        kids.append(child)
    return kids


def test_a_prestarted_run_loads_its_code_only_when_it_starts(cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(tmp_path / "arena")
    trace = tmp_path / "trace.jsonl"
    train = (arena / "train.py").read_text()
    hook = textwrap.dedent(f"""
        import json as _json, os as _os

        def _note(what):
            with open({str(trace)!r}, "a") as f:
                f.write(_json.dumps({{"what": what, "pid": _os.getpid(), "code": CODE}}) + "\\n")

        _note("import")
    """)
    (arena / "train.py").write_text('CODE = "waiting"\n' + train + hook)
    proc = waiting(arena, tmp_path / "r.json")
    t0 = time.monotonic()
    wait_for(lambda: len(harness_children(proc.pid)) == 2, 60, "both children warm")
    time.sleep(1.0)
    assert not trace.exists()  # warm children: torch imported, no experiment code loaded
    # the run's own code, written after the harness got ready (as an agent's workspace does)
    run_code = train.replace("def build_model(arena):\n", "def build_model(arena):\n    _note('build_model')\n")
    run_code = run_code.replace("def train(model, arena):\n", "def train(model, arena):\n    _note('train')\n")
    (arena / "train.py").write_text('CODE = "the run"\n' + run_code + hook)
    waited = time.monotonic() - t0
    t_hand = time.monotonic()
    out, _ = proc.communicate(json.dumps({"seed": 3}) + "\n", timeout=120)
    wall = time.monotonic() - t_hand
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["status"] == "ok", res["error"]
    assert res["prestarted"] is True and res["seed"] == 3 and "prestarted:   True" in out
    assert res["total_s"] <= wall < res["total_s"] + waited  # the clock started at the hand-over
    notes = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {n["code"] for n in notes} == {"the run"}  # never the code there when the harness started
    trainer = next(n["pid"] for n in notes if n["what"] == "train")
    builders = {n["pid"] for n in notes if n["what"] == "build_model"}
    assert len(builders) == 2 and trainer in builders  # the evaluation built its model in another process ...
    assert [n["pid"] for n in notes if n["what"] == "train"] == [trainer]  # ... which never ran train()


def test_a_harness_file_touched_while_waiting_gets_fresh_children(cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(tmp_path / "arena")
    proc = waiting(arena, tmp_path / "r.json")
    wait_for(lambda: len(harness_children(proc.pid)) == 2, 60, "both children warm")
    warm = {p: s for p, s in descendants(proc.pid).items() if p in harness_children(proc.pid)}
    data = arena / "harness" / "data.py"
    original = data.read_bytes()
    data.write_bytes(original + b"# tampered while the harness waited\n")  # as a bare run could, then ...
    st = data.stat()
    data.write_bytes(original)  # ... put back, with the old size and mtime: only ctime tells
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc.communicate(json.dumps({"seed": 0}) + "\n", timeout=120)
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["status"] == "ok", res["error"]
    assert res["prestarted"] is False  # the waiting children, which had imported data.py, were not used
    assert not alive(warm)
    # the same harness, unchanged: a run with nothing to take and an EOF leaves no result and no process
    proc = waiting(arena, tmp_path / "unused.json")
    wait_for(lambda: len(harness_children(proc.pid)) == 2, 60, "both children warm")
    kids = {p: s for p, s in descendants(proc.pid).items()}
    assert proc.communicate("", timeout=30)[0] == "" and proc.returncode == 0
    wait_for(lambda: not alive(kids), 10, "the unused children to exit")
    assert not (tmp_path / "unused.json").exists()


AGENT = """
import os, sys, time
from pathlib import Path
from swarm.experiment.manifest import load_manifest
from swarm.experiment.runner import prestart
warm = prestart(Path(sys.argv[1]), load_manifest(sys.argv[1]), profile="cpu", budget_s=1, device="cpu", gpu="cpu",
                run_dir=Path(sys.argv[2]), sandbox=sys.argv[3])
print("started", flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize("how", ["discard", "kill -9"])
def test_an_unused_prestarted_harness_leaves_nothing_behind(cache: Path, tmp_path: Path, how: str) -> None:
    sandbox = "bwrap" if probe() is None else "none"
    env = {**os.environ, "ANTHROPIC_API_KEY": SECRET, "SWARM_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0"}
    run_dir = tmp_path / "next"
    if how == "discard":  # the agent stops: Executor.close -> Prestarted.discard
        os.environ["ANTHROPIC_API_KEY"] = SECRET
        try:
            warm = prestart(ARENA, load_manifest(ARENA), profile="cpu", budget_s=1, device="cpu", gpu="cpu",
                            run_dir=run_dir, sandbox=sandbox)  # fmt: skip
        finally:
            del os.environ["ANTHROPIC_API_KEY"]
        assert warm is not None
        owner = os.getpid()
        wait_for(lambda: len(harness_children(warm.proc.pid)) == 2, 60, "both children warm")
        procs = {p: s for p, s in descendants(owner).items() if p == warm.proc.pid or p in descendants(warm.proc.pid)}
    else:  # the agent is killed: the guard, the supervisor and the waiting children die with it
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(ARENA), str(run_dir), sandbox], env=env, stdout=subprocess.PIPE
        )
        assert agent.stdout is not None and agent.stdout.readline() == b"started\n"
        owner = agent.pid
        wait_for(lambda: len(harness_children(agent.pid)) == 2, 60, "both children warm")
        procs = descendants(agent.pid)
    for pid in procs:  # nothing started ahead sees the agent's secrets
        if pid != owner and pid in alive(procs):
            try:
                environ = (Path("/proc") / str(pid) / "environ").read_bytes()
            except OSError:
                continue
            assert SECRET.encode() not in environ, (pid, (Path("/proc") / str(pid) / "cmdline").read_bytes())
    assert len(procs) >= 4  # the guard, the supervisor, the two children (and bwrap around each)
    if how == "discard":
        warm.discard()
        assert not run_dir.exists()
    else:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        agent.stdout.close()
    wait_for(lambda: not alive(procs), 10, f"every process of the unused harness gone after {how}")
