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
