"""The `swarm` CLI board commands, run as real subprocesses: output, --json, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import one_line_error, swarm_cli
from conftest import free_port
from test_board_core import make_arena

from swarm.code.diff import make_patch


@pytest.fixture()
def run(  # type: ignore[no-untyped-def]
    redis_url: str,
    swarm_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """`swarm ARGS` through the console script's own entry point (`swarm.cli.main`), in-process.

    In-process because importing the whole CLI (LLM SDKs) costs seconds per subprocess on 2 cores;
    the real-subprocess path is covered by the tests at the end of this file.
    """
    from swarm.cli import main

    for k in [k for k in __import__("os").environ if k.startswith("SWARM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SWARM_REDIS_URL", redis_url)
    monkeypatch.setenv("SWARM_NAME", swarm_name)
    monkeypatch.chdir(tmp_path)

    def _run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", ["swarm", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        p = subprocess.CompletedProcess(["swarm", *args], code, out.out, out.err)
        if ok:
            assert p.returncode == 0, p.stderr
        return p

    return _run




def test_cli_full_walkthrough(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arena = make_arena(tmp_path / "arena")
    assert "arena tiny" in run("init", "--arena", str(arena), "--min-delta", "0.001").stdout
    hid = run("post", "Raise the LR", "--priority", "5", "--tag", "lr").stdout.strip()
    assert run("post", "raise the  lr", "--priority", "5").stdout.strip() == hid  # duplicate -> same id
    train = (arena / "train.py").read_text()
    (tmp_path / "p.diff").write_text(
        make_patch({"train.py": train}, {"train.py": train.replace("0.01", "0.02")})
    )
    hid2 = run("post", "LR 0.02", "--patch", "p.diff", "--track", "cpu:2c").stdout.strip()
    folder = tmp_path / "hyps"
    folder.mkdir()
    (folder / "README.md").write_text("docs, not a hypothesis")
    (folder / "a.md").write_text("---\npriority: 7\ntags: [x, y]\npatch: ../p.diff\n---\nFile idea\n\nwhy\n")
    inline = "```diff\n" + (tmp_path / "p.diff").read_text() + "```\n"
    (folder / "b.md").write_text("---\ntrack: cpu:2c\n---\nInline idea\n\n" + inline)
    out = run("post", "--file", str(folder)).stdout.splitlines()
    assert len(out) == 2 and all("posted" in line for line in out)
    hs = json.loads(run("hypotheses", "--json").stdout)
    assert len(hs) == 4 and {h["id"] for h in hs} >= {hid, hid2}
    by_title = {h["text"].splitlines()[0]: h for h in hs}
    assert by_title["File idea"]["priority"] == 7 and by_title["File idea"]["tags"] == ["x", "y"]
    assert by_title["Inline idea"]["patch_hash"] == by_title["LR 0.02"]["patch_hash"]
    assert "Raise the LR" in run("hypotheses", "--state", "open").stdout
    run("cancel", hid)
    assert json.loads(run("hypotheses", "--state", "cancelled", "--json").stdout)[0]["id"] == hid
    env_url = json.loads(run("status", "--json").stdout)
    assert env_url["counts"]["open"] == 3
    assert json.loads(run("results", "--json").stdout) == []
    assert json.loads(run("leader", "--json").stdout) == {}
    assert json.loads(run("agents", "--json").stdout) == []
    assert "no leader yet" in run("leader").stdout
    run("best", "--export", "baseline")
    assert (tmp_path / "baseline" / "train.py").read_text() == train
    assert "Brief" in run("brief", "show").stdout
    (tmp_path / "b2.md").write_text("new brief\n")
    assert "version 2" in run("brief", "set", "b2.md").stdout
    log = run("log").stdout
    assert "posted" in log and "cancelled" in log


def test_cli_leader_best_results_agents(run, redis_url: str, swarm_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import redis as _redis

    from swarm.board import AgentInfo, Board, HypothesisIn, ResultIn

    arena = make_arena(tmp_path / "arena")
    run("init", "--arena", str(arena))
    b = Board(_redis.Redis.from_url(redis_url), swarm_name)
    train = (arena / "train.py").read_text()
    diff = make_patch({"train.py": train}, {"train.py": train.replace("0.01", "0.03")})
    hid, _ = b.post(HypothesisIn(text="lr", patch=diff))
    c = b.claim("a1", "cpu:2c")
    assert c is not None
    b.register(AgentInfo(agent_id="a1", track="cpu:2c", host="box"))
    b.publish(
        ResultIn(
            result_id="r1",
            hypothesis_id=hid,
            token=c.token,
            agent_id="a1",
            track="cpu:2c",
            status="keep",
            metric=0.9,
            patch_hash=c.hypothesis.patch_hash,
        )
    )
    assert b.move_leader("cpu:2c", 0, 0.9, c.hypothesis.patch_hash or "", hid, "a1", "r1").accepted
    assert json.loads(run("results", "--json").stdout)[0]["result_id"] == "r1"
    assert "r1" in run("results").stdout
    assert json.loads(run("leader", "--track", "cpu:2c", "--json").stdout)["cpu:2c"]["generation"] == 1
    assert "cpu:2c" in run("leader").stdout
    run("best", "--export", "out")
    assert "0.03" in (tmp_path / "out" / "train.py").read_text()
    assert json.loads(run("agents", "--json").stdout)[0]["alive"] is True
    assert "alive" in run("agents").stdout
    assert "leader cpu:2c" in run("status").stdout


def test_enums_are_stored_and_printed_as_plain_values(run, redis_url: str, swarm_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A Result and a Hypothesis go through the board as the same msgpack bytes plain strings make (so
    boards and `swarm export` snapshots written before the enums read back the same), come back as the
    enums, and every CLI output shows the plain value ("crash"), never "Status.CRASH"."""
    from swarm.board import Board, HypothesisIn, ResultIn
    from swarm.board.keys import Keys
    from swarm.models import Direction, Kind, State, Status, pack

    run("init", "--arena", str(make_arena(tmp_path / "arena")))
    b, k = Board.connect(redis_url, swarm_name), Keys(swarm_name)
    h = HypothesisIn(text="confirm r0 seed 2", kind=Kind.CONFIRM, parent="r0", seed=2, track="cpu:2c")
    hid, _ = b.post(h)
    c = b.claim("a1", "cpu:2c")
    assert c is not None and c.hypothesis.id == hid
    res = ResultIn(
        result_id="r1", hypothesis_id=hid, token=c.token, agent_id="a1", track="cpu:2c", status=Status.CRASH,
        direction=Direction.MAXIMIZE, kind=Kind.CONFIRM, candidate_of="r0", seed=2, error="boom",
    )  # fmt: skip
    b.publish(res)
    assert b.complete(hid, c.token, State.FAILED)

    # stored: the bytes of the plain-string form (model_dump(mode="json") turns every enum into its value)
    plain_h = {**h.model_dump(mode="json", exclude={"patch"}), "patch_hash": None}
    assert b.r.hget(k.hyp(hid), "data") == pack(plain_h)
    assert b.r.hget(k.hyp(hid), "state") == b"failed" and b.r.zscore(k.state("failed"), hid) is not None
    with pytest.raises(ValueError, match="unknown state"):
        k.state("fialed")  # a typo never names a new key
    assert b.r.hget(k.results, "r1") == pack(res.model_dump(mode="json"))
    assert b.r.hget(k.settings, "direction") == b"minimize"  # the manifest's Direction, as Lua reads it
    # read back: equal, and the enums again
    got, hyp = b.result("r1"), b.get(hid)
    assert got.model_dump(exclude={"stale", "published_ms"}) == res.model_dump()
    assert (got.status, got.kind, got.direction) == (Status.CRASH, Kind.CONFIRM, Direction.MAXIMIZE)
    assert type(got.status) is Status and type(hyp.state) is State and type(hyp.kind) is Kind
    assert (hyp.state, hyp.kind) == (State.FAILED, Kind.CONFIRM)

    outs = {cmd: run(*cmd.split()).stdout for cmd in ("results --json", "hypotheses --json", "status --json")}
    outs |= {cmd: run(*cmd.split()).stdout for cmd in ("results", "hypotheses", "status")}
    for cmd, out in outs.items():
        assert not any(f"{e.__name__}." in out for e in (State, Kind, Status, Direction)), (cmd, out)
    (r,) = json.loads(outs["results --json"])
    assert (r["status"], r["kind"], r["direction"]) == ("crash", "confirm", "maximize")
    (hj,) = json.loads(outs["hypotheses --json"])
    assert (hj["state"], hj["kind"]) == ("failed", "confirm")
    counts = json.loads(outs["status --json"])["counts"]
    assert counts == {"open": 0, "claimed": 0, "done": 0, "failed": 1, "cancelled": 0}
    assert "crash" in outs["results"] and "failed" in outs["hypotheses"]
    assert "hypotheses: open=0 claimed=0 done=0 failed=1 cancelled=0" in outs["status"]


def test_cli_bad_inputs_write_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "empty" in one_line_error(run("post", "", ok=False))
    assert "8000 characters" in one_line_error(run("post", "x" * 9000, ok=False))
    (tmp_path / "bin.diff").write_bytes(b"@@ \x00\x01\x02")
    assert "binary" in one_line_error(run("post", "x", "--patch", "bin.diff", ok=False))
    (tmp_path / "big.diff").write_text("@@ -1 +1 @@\n" + "+x\n" * 200_000)
    assert "cap" in one_line_error(run("post", "x", "--patch", "big.diff", ok=False))
    assert "unknown state" in one_line_error(run("hypotheses", "--state", "nope", ok=False))
    assert "priority" in one_line_error(run("post", "x", "--priority", "99999", ok=False))
    folder = tmp_path / "hyps"
    folder.mkdir()
    (folder / "good.md").write_text("Good idea\n")
    (folder / "bad.md").write_text("---\npriority: high\n---\nBad\n")
    assert "bad.md" in one_line_error(run("post", "--file", str(folder), ok=False))
    (folder / "bad.md").write_text("---\ncolour: red\n---\nBad\n")
    assert "colour" in one_line_error(run("post", "--file", str(folder), ok=False))
    (folder / "bad.md").write_text("---\npriority: 1\nBad, never closed\n")
    assert "never closed" in one_line_error(run("post", "--file", str(folder), ok=False))
    assert json.loads(run("status", "--json").stdout)["counts"]["open"] == 0  # nothing was written
    assert "no hypothesis 'hnope'" in one_line_error(run("cancel", "hnope", ok=False))
    assert "no pinned arena" in one_line_error(run("best", "--export", "x", ok=False))


def test_cli_subprocess_json_and_bad_input(
    redis_url: str, swarm_name: str, clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(clean_env, SWARM_REDIS_URL=redis_url, SWARM_NAME=swarm_name)
    p = swarm_cli(["post", "from a subprocess"], env, tmp_path)
    assert p.returncode == 0, p.stderr
    p = swarm_cli(["hypotheses", "--json"], env, tmp_path)
    assert json.loads(p.stdout)[0]["text"] == "from a subprocess"
    assert "unknown state" in one_line_error(swarm_cli(["hypotheses", "--state", "zzz"], env, tmp_path))


def test_cli_unreachable_redis_is_one_line(clean_env: dict[str, str], tmp_path: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    line = one_line_error(swarm_cli(["--redis", url, "status"], clean_env, tmp_path))
    assert "127.0.0.1" in line and "hunter2" not in line and "***" in line


# --- log and brief --json, reopen, implementation failures, proposer health --------------------------


def _board(redis_url: str, swarm_name: str):  # type: ignore[no-untyped-def]
    from swarm.board import Board

    return Board.connect(redis_url, swarm_name)


def _fail_by_givebacks(board, text: str) -> str:  # type: ignore[no-untyped-def]
    """Post `text` and have it failed by implementation failures (the 4th giveback counts the 3 before)."""
    from swarm.board import HypothesisIn, State

    hid, _ = board.post(HypothesisIn(text=text, track="cpu:2c"))
    for i in range(4):
        c = board.claim("a1", "cpu:2c")
        assert c is not None and c.hypothesis.id == hid
        why = f"APIConnectionError: Connection refused ({i})" + ("\n  at line 3" + " y" * 100 if i == 3 else "")
        board.give_back(hid, c.token, "anthropic:claude-x", why)
        board.implemented("anthropic:claude-x")
    assert board.get(hid).state == State.FAILED
    return hid


def test_log_and_brief_show_json(run, redis_url: str, swarm_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(run("log", "--json").stdout) == []  # an empty swarm: an empty list, not an error
    assert json.loads(run("brief", "show", "--json").stdout) == {"version": 0, "text": ""}
    assert "no brief set" in one_line_error(run("brief", "show", ok=False))  # the text form still says so
    run("init", "--arena", str(make_arena(tmp_path / "arena")))
    hid = run("post", "Raise the LR").stdout.strip()
    run("cancel", hid)
    events = json.loads(run("log", "--json").stdout)
    assert [e["kind"] for e in events][-2:] == ["post", "cancel"]
    assert set(events[-1]) == {"id", "time_ms", "kind", "text", "fields"} and hid in events[-1]["text"]
    assert events[-1]["fields"]["hid"] == hid and isinstance(events[-1]["time_ms"], int)
    assert json.loads(run("log", "--json", "--limit", "1").stdout) == events[-1:]
    assert "--limit must be >= 0" in one_line_error(run("log", "--limit", "-1", ok=False))
    brief = json.loads(run("brief", "show", "--json").stdout)
    assert brief["version"] == 1 and "Brief" in brief["text"]
    (tmp_path / "b2.md").write_text("new brief\n")
    run("brief", "set", "b2.md")
    assert json.loads(run("brief", "show", "--json").stdout) == {"version": 2, "text": "new brief\n"}


def test_log_json_follow_prints_json_lines(
    redis_url: str, swarm_name: str, clean_env: dict[str, str], tmp_path: Path
) -> None:
    import signal

    from swarm.board import HypothesisIn

    board = _board(redis_url, swarm_name)
    first, _ = board.post(HypothesisIn(text="before the follow"))
    env = dict(clean_env, SWARM_REDIS_URL=redis_url, SWARM_NAME=swarm_name, PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm", "log", "--json", "--follow"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        old = json.loads(proc.stdout.readline())  # the existing events first, one object a line
        assert old["kind"] == "post" and old["fields"]["hid"] == first
        second, _ = board.post(HypothesisIn(text="after the follow started"))
        new = json.loads(proc.stdout.readline())
        assert new["kind"] == "post" and new["fields"]["hid"] == second
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        board.r.close()
    assert proc.returncode == 0, err  # Ctrl-C ends a follow cleanly
    assert "Traceback" not in err and "Aborted" not in err


def test_reopen(run, redis_url: str, swarm_name: str) -> None:  # type: ignore[no-untyped-def]
    board = _board(redis_url, swarm_name)
    hid = _fail_by_givebacks(board, "A hypothesis the outage failed")
    assert run("reopen", hid).stdout == f"reopened {hid} (was failed)\n"
    (h,) = json.loads(run("hypotheses", "--state", "open", "--json").stdout)
    assert h["id"] == hid and h["attempts"] == 0
    refused = run("reopen", hid, ok=False)
    assert "is open" in one_line_error(refused) and refused.returncode == 2  # a user error
    c = board.claim("a1", "cpu:2c")
    assert c is not None
    assert "is claimed" in one_line_error(run("reopen", hid, ok=False))
    board.complete(hid, c.token)
    assert run("reopen", hid).stdout.strip() == f"reopened {hid} (was done)"
    run("cancel", hid)
    assert run("reopen", hid).stdout.strip() == f"reopened {hid} (was cancelled)"
    missing = run("reopen", "hnope", ok=False)
    assert "no hypothesis 'hnope'" in one_line_error(missing) and missing.returncode == 4  # not found
    assert [e["kind"] for e in json.loads(run("log", "--json").stdout)].count("reopen") == 3
    board.r.close()


def test_reopen_in_a_subprocess(redis_url: str, swarm_name: str, clean_env: dict[str, str], tmp_path: Path) -> None:
    board = _board(redis_url, swarm_name)
    hid = _fail_by_givebacks(board, "Failed, then reopened by a human")
    env = dict(clean_env, SWARM_REDIS_URL=redis_url, SWARM_NAME=swarm_name)
    p = swarm_cli(["reopen", hid], env, tmp_path)
    assert p.returncode == 0 and p.stdout == f"reopened {hid} (was failed)\n", p.stderr
    assert "is open" in one_line_error(swarm_cli(["reopen", hid], env, tmp_path))
    board.r.close()


def test_hypotheses_show_implementation_failures(run, redis_url: str, swarm_name: str) -> None:  # type: ignore[no-untyped-def]
    from swarm.board import HypothesisIn

    board = _board(redis_url, swarm_name)
    hid = _fail_by_givebacks(board, "A hypothesis the outage failed")
    fine, _ = board.post(HypothesisIn(text="Never tried"))
    out = run("hypotheses").stdout.splitlines()
    row = next(i for i, ln in enumerate(out) if ln.startswith(hid))
    note = out[row + 1]
    assert note.startswith("    failures 4 (3 counted): last by anthropic:claude-x: APIConnectionError: Connection")
    assert "\n" not in note and note.endswith("...") and len(note) < 140  # the newest reason, one short line
    fine_row = next(i for i, ln in enumerate(out) if ln.startswith(fine))
    assert fine_row + 1 == len(out) or not out[fine_row + 1].startswith("    ")  # nothing under a clean one
    (h,) = json.loads(run("hypotheses", "--state", "failed", "--json").stdout)
    assert h["id"] == hid and len(h["failures"]) == 4
    assert h["failures"][0] == {
        "proposer": "anthropic:claude-x", "reason": "APIConnectionError: Connection refused (0)", "agent": "a1",
        "ms": h["failures"][0]["ms"], "ok_at": h["failures"][0]["ok_at"], "counted": True, "reopened": False,
    }  # fmt: skip
    assert [f["counted"] for f in h["failures"]] == [True, True, True, False]
    failed = run("hypotheses", "--state", "failed").stdout
    assert hid in failed and fine not in failed and "failures 4 (3 counted)" in failed
    opened = run("hypotheses", "--state", "open").stdout
    assert fine in opened and hid not in opened
    run("reopen", hid)
    assert "failures 4 (0 counted, 4 before a reopen)" in run("hypotheses", "--state", "open").stdout
    board.r.close()


def test_agents_show_unhealthy_proposers(run, redis_url: str, swarm_name: str) -> None:  # type: ignore[no-untyped-def]
    from swarm.models import AgentInfo, ProposerHealth

    board = _board(redis_url, swarm_name)
    for aid in ("a1", "a2"):
        board.register(AgentInfo(agent_id=aid, track="cpu:2c", proposers=["anthropic:x", "classical"]))
    paused = ProposerHealth(state="paused", reason="APIConnectionError: Connection error.", failures=3, until_ms=5)
    board.set_health("a1", {"anthropic:x": paused, "openai:y": ProposerHealth(state="backoff", failures=1)})
    out = run("agents").stdout.splitlines()
    a1 = next(i for i, ln in enumerate(out) if ln.startswith("a1 "))
    assert out[a1 + 1 : a1 + 3] == [
        "    paused anthropic:x (3 failures: APIConnectionError: Connection error.)",
        "    backoff openai:y (1 failure)",
    ]
    assert out[a1 + 3].startswith("a2 ") and len(out) == a1 + 4  # a healthy agent: no line under it
    recs = {a["agent_id"]: a for a in json.loads(run("agents", "--json").stdout)}
    assert recs["a1"]["health"]["anthropic:x"] == {
        "state": "paused", "reason": "APIConnectionError: Connection error.", "failures": 3, "until_ms": 5,
    }  # fmt: skip
    assert recs["a1"]["health"]["openai:y"]["state"] == "backoff" and recs["a2"]["health"] == {}
    board.set_health("a1", {})
    assert len(run("agents").stdout.splitlines()) == 3  # header and two agents
    board.r.close()
