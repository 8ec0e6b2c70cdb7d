"""The live web view (`swarm web`): every page of a populated board over real HTTP, escaping, the token,
paging, a board that is down, the CLI, the speed on a large board, and a real headless browser.

The board is built through the Board API on the session's redis-server: an arena pinned, agents
registered (one running a claim, one with a paused proposer, one dead), a baseline and a dozen ideas
claimed, run and completed with leader moves and a confirmation run, a hypothesis whose text, patch
and failure reason carry HTML, and open and claimed hypotheses left on the queue.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import free_port
from redis.backoff import NoBackoff
from redis.retry import Retry
from test_board_core import make_arena

from swarm.board import Board
from swarm.code.diff import make_patch
from swarm.models import AgentInfo, HypothesisIn, ProposerHealth, ResultIn, State
from swarm.observe.web import WebView, make_server
from swarm.observe.web_html import chart_svg
from swarm.observe.web_index import ResultIndex, Row

REPO = Path(__file__).resolve().parents[1]
T = "cpu:2c"
CLAUDE = "llm:anthropic/claude-sonnet-4-5"
BASE = "LR = 0.01\nSTEPS = 10\nprint('val_bpb', 1.0)\n"
XSS = '<script>alert("pwned")</script> Warm up <b>20</b> steps & "quote"'
IDEAS = [  # title, proposer, status, metric (None: failed), moves the leader
    ("Raise the learning rate to 0.02", "classical", "keep", 0.985, True),
    ("Halve the batch size: more optimizer steps in the same budget", CLAUDE, "discard", 0.992, False),
    ("Deeper model: 6 layers", CLAUDE, "crash", None, False),
    ("Cosine decay to 10% of the peak LR", "classical", "discard", 0.988, False),
    ("Tie the embedding and output weights", CLAUDE, "keep", 0.971, True),
    ("Warmup 50 steps", "human", "discard", 0.979, False),
    ("Muon momentum 0.95", "classical", "timeout", None, False),
    ("Weight decay 0.1 on matrices only", CLAUDE, "discard", 0.975, False),
    ("Rotary base 20000", "classical", "discard", 0.974, False),
    ("QK-norm before attention", CLAUDE, "keep", 0.958, True),
    ("Gradient clipping at 1.0", "classical", "discard", 0.962, False),
]


def _patch(i: int) -> str:
    return make_patch({"train.py": BASE}, {"train.py": BASE.replace("LR = 0.01", f"LR = 0.01  # idea {i}")})


def _run(board: Board, hid: str, agent: str, proposer: str, status: str, metric: float | None, **kw: Any) -> str:
    """Claim `hid` (the top of the queue), publish its result, complete it; returns the result id."""
    claim = board.claim(agent, T)
    assert claim is not None and claim.hypothesis.id == hid
    rid = uuid.uuid4().hex
    out = board.publish(
        ResultIn(result_id=rid, hypothesis_id=hid, token=claim.token, agent_id=agent, proposer=proposer,
                 track=T, status=status, metric=metric, metric_name="val_bpb", **kw)  # type: ignore[arg-type]
    )  # fmt: skip
    assert out.stored and not out.stale
    board.complete(hid, claim.token, State.FAILED if metric is None else State.DONE)
    return rid


def populate(board: Board, tmp_path: Path) -> dict[str, Any]:
    """The board every page test reads (see the module docstring); returns the ids the tests look for."""
    board.init(make_arena(tmp_path / "arena"))
    for aid, gpu in (("node1-gpu0", "NVIDIA H100 80GB HBM3"), ("node2-gpu0", "NVIDIA H100 80GB HBM3")):
        board.register(AgentInfo(agent_id=aid, host=aid.split("-")[0], gpu=gpu, track=T,
                                 proposers=["classical", "anthropic:claude-sonnet-4-5"], sandbox="bwrap"))  # fmt: skip
    board.register(AgentInfo(agent_id="old-laptop", host="laptop", track=T, proposers=["classical"]), ttl_s=0.001)
    ids: dict[str, Any] = {"moves": []}
    base = uuid.uuid4().hex
    board.publish(ResultIn(result_id=base, agent_id="node1-gpu0", track=T, status="keep", metric=1.0,  # type: ignore[arg-type]
                           kind="baseline", seed=0, patch_hash=board.put_patch("")))  # fmt: skip
    gen = board.move_leader(T, 0, 1.0, board.put_patch(""), None, "node1-gpu0", base).leader
    assert gen is not None
    for i, (title, proposer, status, metric, moves) in enumerate(IDEAS):
        source = proposer if proposer != "human" else "human"
        hid, _ = board.post(HypothesisIn(text=f"{title}\n\nWhy: idea {i} of the test board.", source=source, track=T))
        agent = ("node1-gpu0", "node2-gpu0")[i % 2]
        phash = board.put_patch(_patch(i))
        llm = {"llm_input_tokens": 1000, "llm_output_tokens": 200, "llm_cost_usd": 0.01} if proposer == CLAUDE else {}
        rid = _run(board, hid, agent, proposer, status, metric, seed=i, patch_hash=phash, **llm)
        time.sleep(0.02)  # the chart spreads the results over a little time
        if moves and metric is not None:
            out = board.move_leader(T, gen.generation, metric, phash, hid, agent, rid)
            assert out.accepted, out
            assert out.leader is not None
            gen = out.leader
            ids["moves"].append(hid)
            ids.setdefault("mover", hid)
            ids.setdefault("mover_rid", rid)
    # a confirmation run of the first candidate, under its own confirm hypothesis
    confirm = HypothesisIn(text=f"confirm {ids['mover_rid']} with seed 7", source="classical", track=T,
                           kind="confirm", seed=7, parent=ids["mover_rid"], priority=900)  # fmt: skip
    chid, _ = board.post(confirm)
    ids["confirm_rid"] = _run(board, chid, "node2-gpu0", "classical", "keep", 0.9861, kind="confirm", seed=7,
                              candidate_of=ids["mover_rid"])  # fmt: skip
    # HTML everywhere a user or an LLM writes: text, patch, failure reason, proposer label
    evil_patch = make_patch({"train.py": BASE}, {"train.py": BASE + "# <img src=x onerror=alert(1)>\n"})
    xhid, _ = board.post(HypothesisIn(text=XSS + "\n\n<i>body</i>", source=CLAUDE, track=T, patch=evil_patch))
    claim = board.claim("node1-gpu0", T)
    assert claim is not None and claim.hypothesis.id == xhid
    board.give_back(xhid, claim.token, "anthropic:claude-sonnet-4-5", "edits never applied: <b>SEARCH</b> not found")
    _run(board, xhid, "node2-gpu0", "<i>evil-proposer</i>", "discard", 0.99, patch_hash=board.put_patch(evil_patch))
    ids["xss"] = xhid
    # the queue: one claimed by a running agent, open ones at several priorities
    rhid, _ = board.post(HypothesisIn(text="Label smoothing 0.1\n\nRunning now.", source="human", track=T))
    claim = board.claim("node1-gpu0", T)
    assert claim is not None and claim.hypothesis.id == rhid
    board.heartbeat("node1-gpu0", "running", current=rhid)
    ids["running"] = rhid
    ids["open"] = [
        board.post(HypothesisIn(text=f"{t}\n\nqueued", source="human", priority=p, track=T))[0]
        for t, p in (("Swap GELU for ReLU squared", 5), ("Untie the LM head", 0), ("Batch size warmup", -3))
    ]
    board.set_health("node2-gpu0", {"anthropic:claude-sonnet-4-5": ProposerHealth(
        state="paused", reason="APIConnectionError: Connection refused", failures=3)})  # fmt: skip
    board.add_usage("anthropic:claude-sonnet-4-5", calls=9, failures=2, input_tokens=6000, output_tokens=1200,
                    cost_usd=0.06)  # fmt: skip
    return ids


# --- HTTP helpers ---------------------------------------------------------------------------------


def get(base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Any, str]:
    """(status, headers, body) of one request; redirects are not followed."""
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read().decode("utf-8")
    finally:
        conn.close()


@pytest.fixture()
def board(redis_url: str, swarm_name: str) -> Iterator[Board]:
    b = Board.connect(redis_url, swarm_name)
    yield b
    b.r.close()


def serve(view: WebView, host: str = "127.0.0.1") -> tuple[str, Any]:
    server = make_server(view, host, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{host}:{server.server_port}", server


@pytest.fixture()
def site(board: Board, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    ids = populate(board, tmp_path)
    url, server = serve(WebView(board))
    yield url, ids
    server.shutdown()
    server.server_close()


# --- pages ----------------------------------------------------------------------------------------


def test_every_page_shows_the_board(site: tuple[str, dict[str, Any]], board: Board) -> None:
    url, ids = site
    code, headers, page = get(url, "/")
    assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in headers[
        "Content-Security-Policy"]  # fmt: skip
    for text in ("track cpu:2c", "leader: generation 4", "0.958000", "QK-norm before attention", "<svg",
                 "Tie the embedding and output weights", "+0.015000", "open 3", "claimed 1", "done 11", "failed 2",
                 "Label smoothing 0.1", "node1-gpu0", "Swap GELU for ReLU squared", "Recent results",
                 'http-equiv="refresh"', "kept (5)"):  # fmt: skip
        assert text in page, text
    lineage = page[page.index("lineage") : page.index("<h2>Queue")]
    assert [int(g) for g in re.findall(r"<tr><td class=\"n\">(\d+)</td>", lineage)] == [4, 3, 2, 1]

    code, _, page = get(url, f"/h/{ids['mover']}")
    assert code == 200
    for text in ("Raise the learning rate to 0.02", "Why: idea 0", "<b>done</b>", "Results (2)", "0.985000",
                 "0.986100", "confirm", "leader</span> generation 2", "Final diff of its best result",
                 "LR = 0.01  # idea 0", "node1-gpu0", "$0.0000"):  # fmt: skip
        assert text in page, text
    assert 'http-equiv="refresh"' not in page  # one reads diffs there

    code, _, page = get(url, "/agents")
    assert code == 200
    for text in ("2 alive, 1 dead", "old-laptop", "DEAD", "running", "Label smoothing 0.1",
                 f'href="/h/{ids["running"]}"', "paused anthropic:claude-sonnet-4-5 (3 failures: APIConnectionError",
                 "bwrap"):  # fmt: skip
        assert text in page, text
    row = page[page.index(">node2-gpu0<") :].split("</tr>")[0]
    assert re.findall(r'<td class="n">([^<]*)</td>', row)[:2] == ["7", "7"]  # results, in the last hour

    code, _, page = get(url, "/proposers")
    assert code == 200
    claude = page[page.index(f">{CLAUDE}<") :].split("</tr>")[0]
    cells = re.findall(r'<td class="n">([^<]*)</td>', claude)
    assert cells[:6] == ["9", "2", "5", "2", "2", "40%"]  # calls, failed, experiments, kept, promoted, acceptance
    assert "$0.0600" in claude and cells[-1] == "1"  # cost (usage totals); one live agent paused it

    code, _, page = get(url, "/hypotheses?state=done")
    assert code == 200 and page.count('class="id" href="/h/') == 11


def test_overview_links_reach_every_hypothesis(site: tuple[str, dict[str, Any]]) -> None:
    url, ids = site
    _, _, page = get(url, "/")
    links = set(re.findall(r'href="(/h/[^"]+)"', page))
    assert {f"/h/{h}" for h in [*ids["moves"], ids["running"], *ids["open"]]} <= links
    for link in links:
        code, _, body = get(url, link)
        assert code == 200 and "<h1>Hypothesis" in body, link


def test_board_content_is_escaped(site: tuple[str, dict[str, Any]]) -> None:
    url, ids = site
    pages = [get(url, p)[2] for p in ("/", f"/h/{ids['xss']}", "/proposers", "/hypotheses?state=done")]
    for page in pages:
        assert "<script" not in page and "<img" not in page and "<i>" not in page and "<b>SEARCH" not in page
    _, _, hyp = get(url, f"/h/{ids['xss']}")
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; Warm up &lt;b&gt;20&lt;/b&gt; steps &amp;" in hyp
    assert "# &lt;img src=x onerror=alert(1)&gt;" in hyp  # the patch, as a diff line
    assert "&lt;b&gt;SEARCH&lt;/b&gt; not found" in hyp and "Implementation failures (1)" in hyp
    assert "&lt;i&gt;evil-proposer&lt;/i&gt;" in hyp and "&lt;i&gt;evil-proposer&lt;/i&gt;" in pages[2]
    assert "&lt;script&gt;" in pages[0]  # its title in the recent results


def test_paging_and_errors(board: Board, tmp_path: Path) -> None:
    board.init(make_arena(tmp_path / "arena"))
    posted = [board.post(HypothesisIn(text=f"idea {i}", priority=i % 7))[0] for i in range(120)]
    url, server = serve(WebView(board))
    try:
        seen: list[str] = []
        for page, want in ((1, 50), (2, 50), (3, 20)):
            code, _, body = get(url, f"/?page={page}")
            assert code == 200 and f"page {page} of 3" in body
            open_rows = body[body.index("<h3>open") :]
            ids = re.findall(r'class="id" href="/h/([^"]+)"', open_rows)
            assert len(ids) == want
            seen += ids
        assert seen == posted[::-1]  # newest first, each once
        assert get(url, "/hypotheses?state=open&page=3")[2].count('class="id"') == 20
        assert get(url, "/?page=abc")[0] == 400
        assert get(url, "/hypotheses?state=nope")[0] == 400
        code, _, body = get(url, "/h/h0000000000000000")
        assert code == 404 and "no hypothesis" in body
        assert get(url, "/h/%3Cscript%3E")[0] == 404
        assert get(url, "/nowhere")[0] == 404
        assert get(url, "/", method="POST")[0] == 405
        code, headers, body = get(url, "/", method="HEAD")
        assert code == 200 and body == "" and int(headers["Content-Length"]) > 1000
        assert get(url, "/", {"Host": "attacker.example:80"})[0] == 403  # a DNS-rebound name, no token
        assert get(url, "/", {"Host": "localhost:1"})[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_is_enforced(board: Board, tmp_path: Path) -> None:
    hid, _ = board.post(HypothesisIn(text="a secret idea"))
    url, server = serve(WebView(board, token="s3cret"))
    try:
        for path in ("/", f"/h/{hid}", "/agents", "/proposers", "/?token=wrong", "/?token="):
            code, _, body = get(url, path)
            assert code == 401 and "secret idea" not in body, path
        assert get(url, "/", {"Authorization": "Bearer nope"})[0] == 401
        assert get(url, "/", {"Cookie": "swarm_web=forged"})[0] == 401
        code, _, body = get(url, "/", {"Authorization": "Bearer s3cret"})
        assert code == 200 and "a secret idea" in body
        code, headers, _ = get(url, f"/h/{hid}?token=s3cret&x=1")
        assert code == 303 and headers["Location"] == f"/h/{hid}?x=1"  # the token leaves the address bar
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "s3cret" not in cookie and "HttpOnly" in headers["Set-Cookie"]
        code, _, body = get(url, f"/h/{hid}", {"Cookie": cookie})
        assert code == 200 and "a secret idea" in body
        assert get(url, "/", {"Host": "attacker.example"})[0] == 401  # with a token any Host may ask, with it
    finally:
        server.shutdown()
        server.server_close()


def test_a_board_that_is_down_is_a_503(swarm_name: str) -> None:
    dead = Board(redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5), swarm_name)
    url, server = serve(WebView(dead))
    try:
        code, _, body = get(url, "/")
        assert code == 503 and "unreachable" in body
    finally:
        server.shutdown()
        server.server_close()
        dead.r.close()


def test_the_index_reads_only_what_is_new(board: Board) -> None:
    def pub(n: int) -> None:
        for _ in range(n):
            board.publish(ResultIn(result_id=uuid.uuid4().hex, agent_id="a", track=T, status="keep", metric=1.0,  # type: ignore[arg-type]
                                   hypothesis_id="h1"))  # fmt: skip

    pub(30)
    index = ResultIndex(max_rows=20)
    assert index.refresh(board) == 20 and index.dropped == 10  # a long board: its newest max_rows
    assert index.refresh(board) == 0
    pub(5)
    assert index.refresh(board) == 5 and len(index) == 25 and index.dropped == 10  # within the slack
    pub(1)
    assert index.refresh(board) == 1 and len(index) == 20 and index.dropped == 16  # over it: the oldest go
    assert len(index.of_hypothesis("h1")) == 20 and index.newest(1)[0].ms >= index.newest(20)[-1].ms


def test_the_chart_of_edge_cases() -> None:
    assert "no results" in chart_svg([], [], {}, "t")

    def row(i: int, metric: float | None, status: str = "discard") -> Row:
        return Row(f"r{i}", None, None, T, 1_000 + i, metric, status, "explore", "a", "")

    svg = chart_svg([row(0, 1.0, "keep")], [], {}, "t")  # one result: no division by a zero span or range
    assert svg.count("<svg") == 1 and "kept (1)" in svg
    bulk = [row(i, 1.0 - i * 1e-3) for i in range(100)]
    svg = chart_svg([*bulk, row(100, 1e9), row(101, None)], [], {}, "<b>t</b>")
    assert "e+" not in svg and ">1.0048<" in svg  # the diverged run sits on the edge: the axis keeps the bulk's range
    assert "failed, no metric (1)" in svg and "&lt;b&gt;t&lt;/b&gt;" in svg


# --- the command ----------------------------------------------------------------------------------


def test_swarm_web_command_serves(redis_url: str, swarm_name: str, board: Board, clean_env: dict[str, str]) -> None:
    board.post(HypothesisIn(text="Served by the command"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm", "--redis", redis_url, "--swarm", swarm_name, "web", "--port", "0",
         "--token", "tok"],
        env=clean_env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 30
        while "serving" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        m = re.search(r"serving (http://127\.0\.0\.1:\d+)/ \(token required\)", line)
        assert m, line
        assert get(m.group(1), "/")[0] == 401
        code, _, body = get(m.group(1), "/?page=1", {"Authorization": "Bearer tok"})
        assert code == 200 and "Served by the command" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        rest = proc.stderr.read()
        assert "tok" not in rest.replace("token", "") and "Traceback" not in rest  # never logged
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# --- speed ----------------------------------------------------------------------------------------


def test_pages_stay_fast_on_a_large_board(redis_url: str, tmp_path: Path) -> None:
    """scripts/bench_web.py on 20,000 results (docs/web.md has the 100,000 figure): every warm page under 1 s."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_web.py"), "--redis", redis_url, "--results", "20000",
         "--repeat", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["results"] == res["indexed"] == 20010  # and the 10 baseline results that moved the leader
    for page, ms in res["warm_ms"].items():
        assert ms < 1000, (page, ms)


# --- a real browser -------------------------------------------------------------------------------

CHROMIUM = os.environ.get("SWARM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS_ENV = "SWARM_WEB_SHOTS"  # a folder: the screenshots are copied there too (docs/web-*.png: SWARM_WEB_SHOTS=docs)


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, timeout=90)


def png_colours(path: Path) -> int:
    """How many distinct colours the screenshot has (a blank page has one or two)."""
    import matplotlib.image as mpimg  # matplotlib is a dependency already (the report's chart)

    pixels = mpimg.imread(str(path))
    flat = (pixels[..., :3] * 255).astype("uint8").reshape(-1, 3)
    return len({tuple(p) for p in flat[:: max(1, len(flat) // 200_000)]})


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_a_real_browser_renders_the_pages(site: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, ids = site
    shots = {"web-overview.png": ("/", "1280,1700"), "web-hypothesis.png": (f"/h/{ids['mover']}", "1280,1300")}
    for name, (path, size) in shots.items():
        png = tmp_path / name
        proc = chromium([f"--screenshot={png}", f"--window-size={size}", url + path], tmp_path / "profile")
        assert proc.returncode == 0 and png.exists(), proc.stderr.decode()[-2000:]
        assert png.stat().st_size > 30_000, png.stat().st_size  # a blank page is ~5 KB
        assert png_colours(png) > 50
        if os.environ.get(SHOTS_ENV):
            shutil.copy(png, Path(os.environ[SHOTS_ENV]) / name)
    dom = chromium(["--dump-dom", url + "/"], tmp_path / "profile").stdout.decode()
    for text in ("leader: generation 4", "QK-norm before attention", "Label smoothing 0.1", "Swap GELU"):
        assert text in dom, text
    assert "&lt;script&gt;" in dom and "<script>" not in dom  # escaped in what the browser built too
    dom = chromium(["--dump-dom", url + f"/h/{ids['mover']}"], tmp_path / "profile").stdout.decode()
    assert "Raise the learning rate to 0.02" in dom and "LR = 0.01  # idea 0" in dom
