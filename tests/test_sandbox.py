"""The sandbox around a run's children (bubblewrap), with real escapes.

Each escape is a real edited train.py, posted as a hypothesis with its patch and run by a real
`swarm agent --sandbox required` process on the CPU arena, through the same harness path every run
takes (the harness wraps its training and evaluation children in bwrap). The agent's environment
holds fake API keys and its board's Redis has a password. The escapes: read ancestors' environments
and command lines through /proc, connect to a port this test listens on (and to the Redis port) on
loopback, read the validation tokens (and the corpus) during training, write outside the run's own
directory (the harness, train.py, the training tokens, a directory of the test's), and start a
`setsid` child that tries to outlive the run. Each must be blocked and say so in its result's error
tail, and no secret may appear in any log, result, file or board key.

The same five train.py files run bare (`--sandbox none`) through the harness succeed: the escapes
are real. On a host where bwrap cannot build a sandbox, those tests are skipped with the reason.
Also: `--sandbox required` refuses to start without a sandbox (one line, exit 2); `auto` without one
warns at start and on every result, records `none` on each result, and `swarm agents` / `swarm
status` name the agent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from conftest import RedisServer, free_port

from swarm import defaults
from swarm.board import Board
from swarm.code.diff import make_patch
from swarm.errors import UserError
from swarm.experiment.manifest import harness_mismatches, load_manifest
from swarm.experiment.sandbox import BWRAP, NONE, SandboxMode, choose_sandbox, probe

REPO = Path(__file__).resolve().parents[1]
ARENA = REPO / "arena"
SYNTH = REPO / "tests" / "arenas" / "synth"
sys.path.insert(0, str(ARENA))  # the harness is its own package, imported here only for unit tests

from harness import sandbox as harness_sandbox  # noqa: E402

WHY_NOT = probe()
needs_bwrap = pytest.mark.skipif(WHY_NOT is not None, reason=f"no sandbox on this host: {WHY_NOT}")
ESCAPED = "ESCAPED"  # what an escape that worked prints; the train.py files spell it in two halves
TRAIN = (ARENA / "train.py").read_text()


def swarm(*args: str) -> list[str]:
    return [sys.executable, "-m", "swarm.cli", *args]


# --- the escapes: bodies of `_escape(arena)`, called first thing in train() ------------------------------

ENVIRON = """
import os
hits, visible = [], set()
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    for name in ("environ", "cmdline"):
        try:
            data = open(f"/proc/{pid}/{name}", "rb").read()
        except OSError:
            continue
        visible.add(int(pid))
        for word in data.split(b"\\0"):
            if b"sk-" in word or b"requirepass" in word or word.startswith((b"ANTHROPIC_", b"OPENAI_", b"SWARM_")):
                hits.append(word.decode(errors="replace"))
if hits:
    print("ESC" + "APED environ:", hits, flush=True)
    raise SystemExit("ESC" + "APED environ: secrets read from /proc")
raise RuntimeError(f"ESCAPE BLOCKED environ: /proc shows only pids {sorted(visible)}; no secret in them")
"""

NETWORK = """
import socket
errors = []
for port in ({port}, {redis_port}):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"hello from train.py\\n")
    except OSError as exc:
        errors.append(f"127.0.0.1:{{port}}: {{exc}}")
        continue
    raise SystemExit("ESC" + f"APED network: connected to 127.0.0.1:{{port}}")
raise RuntimeError("ESCAPE BLOCKED network: " + "; ".join(errors))
"""

VALIDATION = """
import os, pathlib
here = pathlib.Path(__file__).resolve().parent
root = pathlib.Path(os.environ.get("ARENA_CACHE") or "~/.cache/swarm-arena").expanduser()
errors = []
for target in [arena.cache / "val.bin", here / "data" / "shakespeare.jsonl.xz", *sorted(root.glob("*/val.bin"))]:
    try:
        n = len(target.read_bytes())
    except OSError as exc:
        errors.append(f"{{target}}: {{exc.strerror}}")
        continue
    raise SystemExit("ESC" + f"APED validation: read {{n}} bytes of {{target}}")
raise RuntimeError("ESCAPE BLOCKED validation: " + "; ".join(errors))
"""

WRITE = """
import pathlib
here = pathlib.Path(__file__).resolve().parent
errors = []
targets = [here / "harness" / "evaluate.py", here / "train.py", arena.cache / "train.bin"]
for target in [pathlib.Path({outside!r}), *targets]:
    try:
        with open(target, "a") as f:
            f.write("# written by train.py\\n")
    except OSError as exc:
        errors.append(f"{{target}}: {{exc.strerror}}")
        continue
    raise SystemExit("ESC" + f"APED write: appended to {{target}}")
raise RuntimeError("ESCAPE BLOCKED write: " + "; ".join(errors))
"""

SETSID = """
import subprocess, sys
code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "signal.signal(signal.SIGHUP, signal.SIG_IGN); time.sleep(300)")
p = subprocess.Popen([sys.executable, "-c", code, {marker!r}], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
raise RuntimeError(f"ESCAPE ATTEMPT setsid: started pid {{p.pid}} in a new session; it must not outlive the run")
"""


def escape_files(port: int, redis_port: int, outside: Path, marker: str) -> dict[str, str]:
    """name -> the edited train.py of each escape."""
    bodies = {
        "environ": ENVIRON,
        "network": NETWORK.format(port=port, redis_port=redis_port),
        "validation": VALIDATION.format(),
        "write": WRITE.format(outside=str(outside)),
        "setsid": SETSID.format(marker=marker),
    }
    head = "def train(model, arena):\n"
    assert head in TRAIN
    edited = TRAIN.replace(head, head + "    _escape(arena)\n", 1)
    return {
        name: edited + "\n\ndef _escape(arena):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
        for name, body in bodies.items()
    }


class Listener:
    """A TCP port on loopback that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.accepted.append(conn.recv(100))
                except OSError:
                    self.accepted.append(b"")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def marked_pids(marker: str) -> list[int]:
    """Processes on this host whose command line holds `marker` (the setsid escape's child)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return pids


def files_holding(root: Path, needles: list[str]) -> list[str]:
    """Every file under `root` whose bytes hold one of `needles`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n[:12]}..." for n in needles if n.encode() in data]
    return found


def board_holding(url: str, swarm_name: str, needles: list[str]) -> list[str]:
    """Every key of the swarm whose value holds one of `needles` (strings, hashes, lists, sets, zsets, streams)."""
    r = redis.Redis.from_url(url)
    found = []
    for key in r.scan_iter(match=f"swarm:{{{swarm_name}}}:*", count=1000):
        kind = r.type(key).decode()
        read: dict[str, Callable[[bytes], object]] = {
            "string": r.get,
            "hash": r.hgetall,
            "list": lambda k: r.lrange(k, 0, -1),
            "set": r.smembers,
            "zset": lambda k: r.zrange(k, 0, -1),
            "stream": r.xrange,
        }
        text = repr(read[kind](key)) if kind in read else ""
        found += [f"{key.decode()}: {n[:12]}..." for n in needles if n in text]
    r.close()
    return found


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- the escapes, blocked: a real agent, the real harness --------------------------------------------------


@needs_bwrap
def test_escapes_by_edited_train_py_are_blocked_in_a_real_agent(
    tmp_path: Path, clean_env: dict[str, str], listener: Listener
) -> None:
    tag = uuid.uuid4().hex[:12]
    secrets = [f"sk-test-secret-anthropic-{tag}", f"sk-test-secret-openai-{tag}", f"redispw{tag}"]
    server = RedisServer(free_port(), str(tmp_path / "redis"), password=secrets[2])
    server.start()
    marker = f"outlive-the-run-{tag}"
    outside = tmp_path / "outside" / "escape.txt"
    outside.parent.mkdir()
    name = f"t-{tag[:8]}"
    env = {
        **clean_env,
        "ANTHROPIC_API_KEY": secrets[0],
        "OPENAI_API_KEY": secrets[1],
        "SWARM_REDIS_URL": server.url,  # the password is in the agent's environment, not its command line
        "SWARM_NAME": name,
        "ARENA_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    try:
        subprocess.run(swarm("init", "--arena", str(ARENA)), check=True, env=env, capture_output=True)
        files = escape_files(listener.port, server.port, outside, marker)
        ids = {}
        for escape, text in files.items():
            patch = tmp_path / f"{escape}.diff"
            patch.write_text(make_patch({"train.py": TRAIN}, {"train.py": text}))
            out = subprocess.run(
                swarm("post", f"escape: {escape}", "--patch", str(patch), "--priority", "10"),
                check=True, env=env, capture_output=True, text=True,
            )  # fmt: skip
            ids[out.stdout.strip()] = escape
        # two agents on the track share its baseline seeds and the escapes (a 2-core CI machine: one each)
        agents = []
        for i in range(2):
            with (tmp_path / f"agent{i}.log").open("wb") as log:
                agents.append(subprocess.Popen(
                    swarm("agent", "--arena", str(ARENA), "--workdir", str(tmp_path / f"agent{i}"), "--proposer",
                          "classical", "--budget", "1", "--threads", "1", "--no-metrics", "--sandbox", "required",
                          "--seed", str(i)),
                    stdout=log, stderr=subprocess.STDOUT, env=env,
                ))  # fmt: skip
        board = Board.connect(server.url, name)
        try:
            done = lambda: {r.hypothesis_id for r in board.results(limit=100)} >= set(ids)  # noqa: E731
            wait_for(done, 240, "the escapes' results")
        finally:
            for agent in agents:
                agent.send_signal(signal.SIGTERM)
            for i, agent in enumerate(agents):
                assert agent.wait(timeout=60) == 0, (tmp_path / f"agent{i}.log").read_text()[-3000:]
        results = board.results(limit=100)
        baselines = [r for r in results if r.kind == "baseline"]
        # (a seed that timed out on a loaded machine is replaced by another: more seeds, never fewer kept)
        assert sum(r.status == "keep" for r in baselines) >= defaults.NOISE_SEEDS, [
            (r.status, r.error[-1500:]) for r in baselines
        ]
        assert all(r.status in ("keep", "timeout") for r in baselines)
        assert all(r.sandbox == BWRAP for r in results)  # every run the agents published
        by_escape = {ids[r.hypothesis_id]: r for r in results if r.hypothesis_id in ids}
        assert sorted(by_escape) == sorted(files), [
            (r.kind, r.status, r.hypothesis_id and board.get(r.hypothesis_id).text[:60], r.error[-200:])
            for r in results
        ]
        for escape, r in by_escape.items():
            assert r.sandbox == BWRAP and r.status == "crash", (escape, r.status, r.error)
            assert ESCAPED not in r.error, r.error
            word = "ESCAPE ATTEMPT" if escape == "setsid" else "ESCAPE BLOCKED"
            assert f"{word} {escape}" in r.error, r.error
        assert "only pids [1, 2]" in by_escape["environ"].error  # the sandbox's init and the child itself
        assert "Network is unreachable" in by_escape["network"].error or "refused" in by_escape["network"].error
        assert "Read-only file system" in by_escape["write"].error or "No such file" in by_escape["write"].error
        # nothing happened outside: no connection, no file, the harness intact, no process left
        assert listener.accepted == []
        assert not outside.exists()
        assert not marked_pids(marker)
        for i in range(2):
            ws = tmp_path / f"agent{i}" / "ws" / "arena"
            assert "# written by train.py" not in (ws / "harness" / "evaluate.py").read_text()
            assert harness_mismatches(ws, load_manifest(ws)) == []
        # no secret anywhere: logs, run dirs, outbox, workspace, cache, the board's keys
        assert files_holding(tmp_path, secrets) == []
        assert board_holding(server.url, name, secrets) == []
        assert not any("NOT sandboxed" in (tmp_path / f"agent{i}.log").read_text() for i in range(2))
    finally:
        for pid in marked_pids(marker):  # only if an escape worked: the process the test's train.py started
            os.kill(pid, signal.SIGKILL)
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


# --- the same escapes, bare: they are real --------------------------------------------------------------


@pytest.mark.slow
def test_the_same_escapes_succeed_without_the_sandbox(tmp_path: Path, listener: Listener) -> None:
    tag = uuid.uuid4().hex[:12]
    secret = f"sk-test-secret-{tag}"
    marker = f"outlive-the-run-{tag}"
    outside = tmp_path / "outside" / "escape.txt"
    outside.parent.mkdir()
    env = {**os.environ, "ANTHROPIC_API_KEY": secret, "ARENA_CACHE": str(tmp_path / "cache"), "ARENA_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "harness", "prepare", "--profile", "cpu"], cwd=ARENA, env=env, check=True,
                   capture_output=True)  # fmt: skip
    files = escape_files(listener.port, free_port(), outside, marker)

    def bare(escape: str) -> dict[str, object]:
        arena = tmp_path / escape
        shutil.copytree(ARENA, arena, ignore=shutil.ignore_patterns("__pycache__"))
        (arena / "train.py").write_text(files[escape])
        out = arena / "r.json"
        cmd = [sys.executable, "-m", "harness", "run", "--profile", "cpu", "--budget", "1", "--out", str(out),
               "--device", "cpu", "--sandbox", "none"]  # fmt: skip
        subprocess.run(cmd, cwd=arena, env=env, check=True, capture_output=True, timeout=120)
        return json.loads(out.read_text())

    try:
        with ThreadPoolExecutor(2) as pool:
            res = dict(zip(files, pool.map(bare, files), strict=True))
        for escape in ("environ", "network", "validation", "write"):
            assert res[escape]["sandbox"] == NONE
            assert f"{ESCAPED} {escape}" in str(res[escape]["error"]), (escape, res[escape]["error"])
        assert secret in str(res["environ"]["error"])  # read from the supervisor's /proc/<pid>/environ
        assert listener.accepted == [b"hello from train.py\n"]
        assert outside.read_text() == "# written by train.py\n"
        assert marked_pids(marker), "the setsid child should have outlived the bare run"
    finally:
        for pid in marked_pids(marker):  # the child the test's own train.py started
            os.kill(pid, signal.SIGKILL)


# --- the agent's --sandbox ------------------------------------------------------------------------------


def test_required_refuses_to_start_without_a_sandbox(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    cases = [
        (SYNTH, {}, "the arena's run command has no {sandbox} placeholder"),
        (ARENA, {"ARENA_BWRAP": str(tmp_path / "no-such-bwrap")}, "no bwrap on PATH"),
    ]
    for i, (arena, extra, why) in enumerate(cases):
        out = subprocess.run(
            swarm("--redis", redis_url, "--swarm", f"{swarm_name}-{i}", "agent", "--arena", str(arena),
                  "--workdir", str(tmp_path / f"a{i}"), "--no-metrics", "--sandbox", "required"),
            capture_output=True, text=True, env={**clean_env, **extra}, timeout=120,
        )  # fmt: skip
        assert out.returncode == UserError.exit_code, out.stderr
        lines = out.stderr.strip().splitlines()
        assert lines[-1].startswith("error: --sandbox required, but runs cannot be sandboxed: ") and why in lines[-1]
        assert "Traceback" not in out.stderr
        assert Board.connect(redis_url, f"{swarm_name}-{i}").agents() == []  # never registered


def test_auto_without_a_sandbox_warns_on_every_result_and_shows_the_agent(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    board = Board.connect(redis_url, swarm_name)
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:  # the synthetic arena's command takes no {sandbox}: runs are bare
        agent = subprocess.Popen(
            swarm("--redis", redis_url, "--swarm", swarm_name, "agent", "--arena", str(SYNTH), "--workdir",
                  str(tmp_path / "a"), "--no-metrics", "--track", "cpu:test"),
            stdout=log, stderr=subprocess.STDOUT, env=clean_env,
        )  # fmt: skip
    try:
        wait_for(lambda: len(board.results(limit=10)) >= 2, 60, "two results")
        agents = subprocess.run(swarm("--redis", redis_url, "--swarm", swarm_name, "agents"), capture_output=True,
                                text=True, check=True).stdout  # fmt: skip
        assert "runs UNSANDBOXED" in agents
        status = subprocess.run(swarm("--redis", redis_url, "--swarm", swarm_name, "status"), capture_output=True,
                                text=True, check=True).stdout  # fmt: skip
        assert "agents running UNSANDBOXED: " in status
        st = json.loads(subprocess.run(swarm("--redis", redis_url, "--swarm", swarm_name, "status", "--json"),
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
        assert len(st["unsandboxed_agents"]) == 1 and st["unsandboxed_agents"][0] in agents
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0, log_path.read_text()[-2000:]
    results = board.results(limit=100)
    assert results and all(r.sandbox == NONE for r in results)
    text = log_path.read_text()
    assert text.count("runs are NOT sandboxed (the arena's run command has no {sandbox} placeholder)") == 1
    # every published result, and the run SIGTERM cancelled (given back, not published) if there was one
    assert len(results) <= text.count("was NOT sandboxed") <= len(results) + 1


def test_choose_sandbox_modes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpu, synth = load_manifest(ARENA), load_manifest(SYNTH)
    assert choose_sandbox(SandboxMode.OFF, cpu).kind == NONE
    assert not choose_sandbox(SandboxMode.OFF, cpu).warn_each  # asked for: said once, at start
    bare = choose_sandbox(SandboxMode.AUTO, synth)
    assert bare.kind == NONE and bare.warn_each and "placeholder" in bare.reason
    monkeypatch.setenv("ARENA_BWRAP", str(tmp_path / "missing"))
    assert choose_sandbox(SandboxMode.AUTO, cpu).kind == NONE
    with pytest.raises(UserError, match="no bwrap"):
        choose_sandbox(SandboxMode.REQUIRED, cpu)
    monkeypatch.delenv("ARENA_BWRAP")
    if WHY_NOT is None:
        assert choose_sandbox(SandboxMode.REQUIRED, cpu).kind == BWRAP


def test_harness_refuses_a_bind_that_would_expose_a_hidden_path(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "v").mkdir(parents=True)
    hidden = [cache.resolve()]
    with pytest.raises(harness_sandbox.SandboxError, match="would expose"):
        harness_sandbox.wrap(["true"], bwrap="bwrap", cwd=tmp_path, ro=[tmp_path], rw=[], hidden=hidden, gpu=False)
    args = harness_sandbox.wrap(
        ["true"], bwrap="bwrap", cwd=tmp_path, ro=[cache / "v"], rw=[tmp_path / "out"], hidden=hidden, gpu=False
    )
    assert args[-2:] == ["--", "true"] and "--unshare-all" in args and "--cap-drop" in args
    binds = [args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")]
    assert str(cache.resolve()) not in binds and str((cache / "v").resolve()) in binds


@pytest.mark.skipif(not Path("/dev/nvidia0").exists(), reason="no GPU on this host (/dev/nvidia0)")
@needs_bwrap
def test_gpu_nodes_pass_through_the_sandbox(tmp_path: Path) -> None:
    env = {**os.environ, "ARENA_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, "-m", "harness", "run", "--profile", "cpu", "--device", "cuda", "--budget", "2",
                    "--out", str(out), "--sandbox", "bwrap"], cwd=ARENA, env=env, check=True, timeout=300)  # fmt: skip
    res = json.loads(out.read_text())
    assert res["status"] == "ok" and res["sandbox"] == BWRAP and res["device"] == "cuda", res["error"]
