"""`swarm report` from a recorded board: a small swarm built through the real board API, then reported.

`record_board` is also used by test_snapshot.py and test_metrics.py (the exporter): two tracks,
baselines, kept/discarded/failed experiments from three proposers, three leader moves on one track and
two on the other, two agents.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from swarm.board import Board
from swarm.code.diff import EMPTY_PATCH, make_patch
from swarm.errors import NotFound
from swarm.models import AgentInfo, Direction, HypothesisIn, Leader, ResultIn, State, Status, SwarmSettings
from swarm.observe.report import ReportData, collect, render_markdown, write_report

REPO = Path(__file__).resolve().parents[1]
TRAIN = "LR = 0.04\nWARMUP = 10\nDEPTH = 4\n"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_arena(root: Path) -> Path:
    """A minimal valid arena: one pinned harness file, one editable train.py, a brief."""
    root.mkdir(parents=True, exist_ok=True)
    harness = "import json, sys\nprint(json.dumps({'score': 1.0}))\n"
    (root / "harness.py").write_text(harness)
    (root / "train.py").write_text(TRAIN)
    (root / "program.md").write_text("Lower the score.\n")
    pin = hashlib.sha256(harness.encode()).hexdigest()
    (root / "arena.toml").write_text(
        '[arena]\nname = "mini"\neditable = ["train.py"]\nbrief = "program.md"\nharness = ["harness.py"]\n\n'
        '[metric]\nname = "score"\ndirection = "minimize"\n\n'
        '[run]\ncommand = ["{python}", "harness.py"]\nresult = "json"\nmetric_key = "score"\n'
        'default_profile = "cpu"\n\n[profiles.cpu]\nbudget_s = 1\ntimeout_s = 10\n\n'
        f'[pins]\n"harness.py" = "{pin}"\n'
    )
    return root


@dataclass
class Recording:
    """What record_board wrote, for the tests to check against."""

    moves: dict[str, list[str]] = field(default_factory=dict)  # track -> titles of leader moves ("baseline")
    results: list[str] = field(default_factory=list)  # result ids in publish order
    statuses: dict[str, int] = field(default_factory=dict)


def _edit(text: str) -> str:
    return make_patch({"train.py": TRAIN}, {"train.py": text})


def record_board(board: Board, tmp_path: Path) -> Recording:
    board.init(make_arena(tmp_path / "arena"))
    rec = Recording()
    now = board.server_ms()
    clock = iter(range(now - 3_000_000, now, 60_000))  # one experiment a minute, over the last 50 min

    def run(
        agent: str,
        track: str,
        proposer: str,
        status: str,
        metric: float | None,
        *,
        title: str | None = None,
        code: str | None = None,
        kind: str = "explore",
        cost: float = 0.0,
        error: str = "",
    ) -> str:
        hid, token, phash = None, None, EMPTY_PATCH
        if title is not None:
            patch = _edit(code) if code is not None else None
            source = {"claude": "llm:anthropic/claude-sonnet", "tpe": "classical"}.get(proposer, "human")
            hid, _ = board.post(HypothesisIn(text=title, source=source, patch=patch, track=track))
            claim = board.claim(agent, track)
            assert claim is not None and claim.hypothesis.id == hid
            token, phash = claim.token, claim.hypothesis.patch_hash or EMPTY_PATCH
        started = next(clock)
        rid = uuid.uuid4().hex
        board.publish(
            ResultIn(
                result_id=rid,
                hypothesis_id=hid,
                token=token,
                agent_id=agent,
                proposer=proposer,
                track=track,
                status=status,
                metric=metric,
                metric_name="score",
                patch_hash=phash,
                training_s=45.0,
                started_ms=started,
                finished_ms=started + 50_000,
                kind=kind,
                llm_cost_usd=cost,
                llm_input_tokens=int(cost * 100_000),
                llm_output_tokens=int(cost * 10_000),
                error=error,
            )
        )
        if hid is not None and token is not None:
            board.complete(hid, token, State.FAILED if Status(status).failed else State.DONE)
        rec.results.append(rid)
        rec.statuses[status] = rec.statuses.get(status, 0) + 1
        if status == "keep" and metric is not None:
            lead = board.leader(track)
            out = board.move_leader(track, lead.generation if lead else 0, metric, phash, hid, agent, rid)
            assert out.accepted, out
            rec.moves.setdefault(track, []).append(title or "baseline")
        return rid

    for aid, track, gpu in (("node1-gpu0", "gpu:H100", "NVIDIA H100"), ("laptop-cpu", "cpu:2c", "cpu")):
        board.register(
            AgentInfo(agent_id=aid, host=aid.split("-")[0], gpu=gpu, track=track, proposers=["claude", "tpe"])
        )
    h, c = "gpu:H100", "cpu:2c"
    run("node1-gpu0", h, "", "keep", 1.000, kind="baseline")
    run("laptop-cpu", c, "", "keep", 1.500, kind="baseline")
    run(
        "node1-gpu0",
        h,
        "claude",
        "keep",
        0.970,
        title="Raise the LR to 0.06",
        code=TRAIN.replace("0.04", "0.06"),
        cost=0.05,
    )
    run(
        "node1-gpu0",
        h,
        "tpe",
        "discard",
        0.990,
        title="Deeper model: 6 layers",
        code=TRAIN.replace("= 4", "= 6"),
    )
    run("laptop-cpu", c, "tpe", "discard", 1.520, title="Warmup 20 steps", code=TRAIN.replace("10", "20"))
    run(
        "node1-gpu0",
        h,
        "claude",
        "crash",
        None,
        title="Drop the warmup entirely",
        code=TRAIN.replace("10", "0"),
        cost=0.04,
        error="Traceback (most recent call last):\nRuntimeError: CUDA out of memory",
    )
    run(
        "laptop-cpu",
        c,
        "human",
        "keep",
        1.450,
        title="Shallower model for the CPU",
        code=TRAIN.replace("= 4", "= 2"),
    )
    run(
        "node1-gpu0",
        h,
        "claude",
        "keep",
        0.950,
        title="LR 0.06 with warmup 20",
        code=TRAIN.replace("0.04", "0.06").replace("10", "20"),
        cost=0.06,
    )
    run(
        "laptop-cpu",
        c,
        "tpe",
        "timeout",
        None,
        title="Depth 3, LR 0.05",
        code=TRAIN.replace("= 4", "= 3").replace("0.04", "0.05"),
        error="killed at the 10 s deadline",
    )
    board.set_noise(h, [1.0, 1.001, 0.999])
    board.set_brief("Lower the score; keep runs under budget.")
    board.heartbeat("node1-gpu0", "running", None)
    return rec


def test_report_from_recorded_board(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_url, swarm_name)
    rec = record_board(board, tmp_path)
    data = collect(board)
    assert len(data.results) == len(rec.results)
    paths = write_report(data, tmp_path / "report")

    png = paths.chart.read_bytes()
    assert png[:8] == PNG_MAGIC
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1440, 1008)  # 12 x 4.2 inches per track, two tracks, at 120 dpi
    assert len(png) > 20_000  # dots, lines and labels drawn, not an empty canvas

    md = paths.markdown.read_text()
    assert "![progress](progress.png)" in md
    history = md.split("## Leader history", 1)[1].split("## Proposers", 1)[0]
    for track, titles in rec.moves.items():
        section = history.split(f"### Track {track}", 1)[1].split("### Track", 1)[0]
        rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| gen")]
        assert len(rows) == len(titles), section
        for gen, (row, title) in enumerate(zip(rows, titles, strict=True), start=1):
            assert row.startswith(f"| {gen} |") and title in row
    # diffs: each move shows the change from the previous leader, not from the baseline
    assert "-LR = 0.04\n+LR = 0.06" in md  # gen 2 on the GPU track
    gen3 = md.split("generation 3: LR 0.06 with warmup 20", 1)[1].split("</details>", 1)[0]
    assert "-WARMUP = 10\n+WARMUP = 20" in gen3 and "LR = 0.04" not in gen3
    # proposers: claude kept 2 of 3 explore runs, one promotion each time, its cost summed
    claude = next(ln for ln in md.splitlines() if ln.startswith("| claude |"))
    assert claude.startswith("| claude | 3 | 2 | 67% | 2 | 1 | 0.1500 |")
    tpe = next(ln for ln in md.splitlines() if ln.startswith("| tpe |"))
    assert tpe.startswith("| tpe | 3 | 0 | 0% | 0 | 1 |")
    # agents: throughput and duty cycle; failures by kind with the last error line
    agent = next(ln for ln in md.splitlines() if ln.startswith("| node1-gpu0 |"))
    assert "| yes | 5 |" in agent
    assert "| crash | gpu:H100 | 1 |" in md and "| timeout | cpu:2c | 1 |" in md
    assert "RuntimeError: CUDA out of memory" in md


def test_report_reads_only_the_titles_it_shows(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    """The titles of leader moves and of the latest failures, not one hypothesis read per result (at
    100,000 results those reads were most of the report's time); the failures still show theirs."""
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    data = collect(board)
    assert set(data.titles.values()) == {
        "Raise the LR to 0.06",
        "LR 0.06 with warmup 20",
        "Shallower model for the CPU",
        "Drop the warmup entirely",
        "Depth 3, LR 0.05",
    }  # not the discarded "Deeper model: 6 layers" nor "Warmup 20 steps"
    md = render_markdown(data)
    assert "- crash · Drop the warmup entirely · node1-gpu0: RuntimeError: CUDA out of memory" in md
    assert "- timeout · Depth 3, LR 0.05 · laptop-cpu: killed at the 10 s deadline" in md


@pytest.mark.parametrize(
    ("direction", "improvement"), [(Direction.MINIMIZE, "-0.5 (-50%)"), (Direction.MAXIMIZE, "0.5 (50%)")]
)
def test_the_leaders_improvement_follows_the_direction(direction: Direction, improvement: str) -> None:
    settings = SwarmSettings(
        name="s", arena_name="a", arena_hash="0" * 64, metric_name="score", direction=direction, editable=[],
        min_delta=0, lease_s=1, max_attempts=1, created_ms=0,
    )  # fmt: skip
    moves = [
        Leader(track="t", generation=g, metric=m, patch_hash="0" * 64, agent_id="a", result_id=f"r{g}", time_ms=g)
        for g, m in ((1, 1.0), (2, 1.5))
    ]
    md = render_markdown(ReportData("s", settings, [], {"t": moves}, {}, []))
    assert f"| t | 2 | 1.5 | 1 | {improvement} |" in md
    assert f"metric `score` ({direction.value})" in md


def test_report_of_an_empty_swarm(redis_url: str, swarm_name: str, tmp_path: Path) -> None:
    board = Board.connect(redis_url, swarm_name)
    with pytest.raises(NotFound, match="does not exist"):
        collect(board)
    board.init(make_arena(tmp_path / "arena"))
    paths = write_report(collect(board), tmp_path / "out")
    assert paths.chart.read_bytes()[:8] == PNG_MAGIC
    md = paths.markdown.read_text()
    assert "0 experiments" in md and "no leader yet" in md


def test_report_cli_live_and_from_snapshot(
    redis_url: str, swarm_name: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    board = Board.connect(redis_url, swarm_name)
    record_board(board, tmp_path)
    env = {**clean_env, "SWARM_REDIS_URL": redis_url, "SWARM_NAME": swarm_name}
    cli = [sys.executable, "-c", "from swarm.cli import main; main()"]
    live = subprocess.run(
        [*cli, "report", "--out", str(tmp_path / "live")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert live.returncode == 0, live.stderr
    snap = tmp_path / "board.swarm.gz"
    exp = subprocess.run(
        [*cli, "export", "--out", str(snap)], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert exp.returncode == 0, exp.stderr
    # from the snapshot: no board needed (the URL points nowhere)
    off = {**env, "SWARM_REDIS_URL": "redis://127.0.0.1:1/0"}
    arch = subprocess.run(
        [*cli, "report", "--out", str(tmp_path / "arch"), "--snapshot", str(snap)],
        env=off,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert arch.returncode == 0, arch.stderr
    live_md = (tmp_path / "live" / "report.md").read_text()
    arch_md = (tmp_path / "arch" / "report.md").read_text()
    strip = lambda md: [ln for ln in md.splitlines() if "generated" not in ln]  # noqa: E731
    assert strip(live_md) == strip(arch_md)
    assert (tmp_path / "arch" / "progress.png").read_bytes()[:8] == PNG_MAGIC
