"""Chaos benchmark: real agent processes on a real Redis, with faults on a schedule, then the invariants.

    .venv/bin/python scripts/chaos.py --agents 4 --seconds 300 --kill-every 10 --redis-restarts 2
    .venv/bin/python scripts/chaos.py --arena cpu --agents 2 --seconds 600 --kill-every 60 --budget 20

What runs: a redis-server on a loopback port with AOF (`swarm.board.embedded.RedisProcess`), a fresh
swarm on the synthetic arena (tests/arenas/synth: a quadratic bowl with seed noise; fast) or the CPU
arena (`--arena cpu`: real training), `--hypotheses` human hypotheses with patches posted first, and
`--agents` `swarm agent` processes (classical proposer, each with its own work dir) started from the
command line as a user would. Faults, on a schedule:

- every `--kill-every` seconds a random agent is killed with SIGKILL (as the OOM killer does) and
  started again on the same work dir 1 s later (its outbox and leftover run are its successor's);
- `--redis-restarts` graceful Redis restarts (SIGTERM; AOF keeps the data), each down for `--down`
  seconds, spread evenly over the run;
- with `--sentinel` the board is a primary, one replica and three sentinels on loopback
  (`swarm.board.embedded.SentinelGroup`; agents get the `redis+sentinel://` URL), and each of those
  faults is instead a kill -9 of the primary: the sentinels promote the replica, and the old primary is
  started again `--down` seconds later (the sentinels make it a replica of the new one).

At the end every agent gets SIGTERM (a graceful stop: drain the outbox, release claims), and the
script reports (JSON with `--json`, a summary on stderr), each checked against its target:

- hypotheses lost (posted, no longer on the board) and stuck (claimed once every agent stopped);
- results lost: lines left in an outbox after the graceful stop, or set aside as unreadable;
- duplicates: hypotheses with two results that are not stale (fencing must prevent it), and
  re-executions (a hypothesis run again after its claim was requeued: expected after a kill);
- leases left after the graceful stop; whether each track's leader history only improves;
- tracebacks in the agents' logs; agents that died without being killed;
- claims of killed agents: how long until each was back on the board (or done by another agent);
- time to recover: from Redis answering again (single Redis) or the primary's kill (Sentinel) to the
  next result published.

Exit status 0 when every target holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm.board import Board, HypothesisIn
from swarm.board.connection import BOARD_DOWN
from swarm.board.embedded import RedisProcess, SentinelGroup
from swarm.code.diff import make_patch
from swarm.errors import NotFound
from swarm.models import State

REPO = Path(__file__).resolve().parents[1]
ARENAS = {"synth": REPO / "tests" / "arenas" / "synth", "cpu": REPO / "arena"}
SLOTS = 64  # comment lines added to the arena copy's train.py: the human hypotheses edit one each
CLAIMS_BACK_S = 120.0  # target: a killed agent's claims are back on the board within 2 minutes
RECOVER_S = 15.0  # target: the swarm runs experiments again within 15 s of Redis returning


@dataclass
class Incarnation:
    """One agent process: the index of its work dir, the process, its log."""

    index: int
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    killed: bool = False


@dataclass
class Chaos:
    args: argparse.Namespace
    root: Path
    redis: RedisProcess | SentinelGroup
    swarm: str
    arena: Path
    agents: list[Incarnation] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)  # {time, agent_id, claims, back_s}
    restarts: list[dict[str, Any]] = field(default_factory=list)  # {down_at, up_at, recovered_s}
    posted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def board(self) -> Board:
        return Board.connect(self.redis.url, self.swarm)

    # --- setup -------------------------------------------------------------------------------------
    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "swarm.cli", "--redis", self.redis.url, "--swarm", self.swarm, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)

    def setup(self) -> None:
        self.cli("init", "--arena", str(self.arena), *shlex.split(self.args.init))
        board = self.board()
        files = {p: b.decode() for p, b in board.arena_files().items() if p in board.require_settings().editable}
        for i in range(self.args.hypotheses):
            # A comment-only edit of one of the arena copy's SLOTS comment lines: it merges onto whatever
            # the leader became (an edit of X or Y made on the baseline would conflict with the first
            # leader that moved them, and end `invalid` at once without a run; edits at one place would
            # conflict once one of them led), so each is claimed, run, published and judged.
            slot = f"# slot {i % SLOTS}\n"
            after = dict(files)
            after["train.py"] = files["train.py"].replace(slot, f"# slot {i % SLOTS}: chaos hypothesis {i}\n")
            title = f"human {i}: a comment-only change (no effect)"
            hid, _ = board.post(HypothesisIn(text=title, priority=10, patch=make_patch(files, after)))
            self.posted.append(hid)

    def spawn(self, index: int) -> Incarnation:
        workdir = self.root / f"a{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        n = sum(1 for a in self.agents if a.index == index)
        log = workdir / f"agent-{n}.log"
        cmd = [
            sys.executable, "-m", "swarm.cli", "--redis", self.redis.url, "--swarm", self.swarm, "agent",
            "--arena", str(self.arena), "--workdir", str(workdir), "--no-metrics", "--proposer", "classical",
            "--seed", str(index * 1000 + n), "--track", f"chaos:{self.args.arena}",
            *(["--budget", str(self.args.budget)] if self.args.budget else []),
        ]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // self.args.agents)))
        with log.open("wb") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        inc = Incarnation(index, proc, log, time.monotonic())
        with self.lock:
            self.agents.append(inc)
        return inc

    # --- faults ------------------------------------------------------------------------------------
    def kill_one(self, rng: random.Random) -> None:
        live = [a for a in self.agents if not a.killed and a.proc.poll() is None]
        if not live:
            return
        victim = rng.choice(live)
        agent_id, claims = None, []
        try:
            board = self.board()
            agent_id = next((a.agent_id for a in board.agents() if a.pid == victim.proc.pid), None)
            claims = [h.id for h in board.list_hypotheses(state=State.CLAIMED, limit=1000) if h.claimed_by == agent_id]
        except BOARD_DOWN:
            pass  # Redis is restarting right now: the claims are read after it returns
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        victim.killed = True
        with self.lock:
            self.kills.append({"time": time.monotonic(), "agent_id": agent_id, "claims": claims, "back_s": {}})
        time.sleep(1.0)
        self.spawn(victim.index)

    def restart_redis(self) -> None:
        down_at = time.monotonic()
        if isinstance(self.redis, SentinelGroup):  # kill -9 the primary; the sentinels promote the replica
            old = self.redis.kill_primary()
            up_at = down_at  # the swarm may go on as soon as the replica is promoted
            time.sleep(self.args.down)
            old.start()  # back as a replica of the new primary
        else:
            self.redis.stop()  # SIGTERM: a graceful shutdown, the AOF is flushed
            time.sleep(self.args.down)
            self.redis.start()
            up_at = time.monotonic()
        with self.lock:
            self.restarts.append({"down_at": down_at, "up_at": up_at, "recovered_s": None})

    # --- watching ----------------------------------------------------------------------------------
    def watch(self, stop: threading.Event) -> None:
        """Once a second: which killed agents' claims are back, and when results flow after a restart."""
        while not stop.wait(1.0):
            try:
                board = self.board()
                claimed = {h.id: h.claimed_by for h in board.list_hypotheses(state=State.CLAIMED, limit=5000)}
                newest = board.results(limit=1)
                now_server = board.server_ms()
            except BOARD_DOWN:
                continue
            now = time.monotonic()
            with self.lock:
                for k in self.kills:
                    for hid in k["claims"]:
                        if hid not in k["back_s"] and claimed.get(hid) != k["agent_id"]:
                            k["back_s"][hid] = now - k["time"]
                for r in self.restarts:
                    if r["recovered_s"] is None and newest:
                        published_ago_s = (now_server - newest[0].published_ms) / 1000
                        if now - published_ago_s > r["up_at"]:
                            r["recovered_s"] = max(0.0, now - published_ago_s - r["up_at"])

    def all_claims_back(self) -> bool:
        with self.lock:
            return all(len(k["back_s"]) == len(k["claims"]) for k in self.kills)

    # --- the run -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        a = self.args
        self.setup()
        for i in range(a.agents):
            self.spawn(i)
        stop = threading.Event()
        watcher = threading.Thread(target=self.watch, args=(stop,), daemon=True)
        watcher.start()
        rng = random.Random(a.seed)
        t0 = time.monotonic()
        restart_at = [t0 + a.seconds * (k + 1) / (a.redis_restarts + 1) for k in range(a.redis_restarts)]
        next_kill = t0 + a.kill_every
        while time.monotonic() < t0 + a.seconds:
            now = time.monotonic()
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                self.restart_redis()
            elif a.kill_every and now >= next_kill:
                next_kill = now + a.kill_every
                self.kill_one(rng)
            time.sleep(0.2)
        died = [x for x in self.agents if not x.killed and x.proc.poll() is not None]
        if self.kills:  # the claims target: every claim of a killed agent back within --claims-within
            deadline = self.kills[-1]["time"] + a.claims_within
            while time.monotonic() < deadline and not self.all_claims_back():
                time.sleep(0.5)
        for x in self.agents:
            if x.proc.poll() is None:
                x.proc.send_signal(signal.SIGTERM)
        for x in self.agents:
            if x.proc.poll() is None:
                try:
                    x.proc.wait(timeout=a.stop_timeout)
                except subprocess.TimeoutExpired:
                    x.proc.kill()
                    died.append(x)
        stop.set()
        watcher.join(timeout=5)
        return self.report(died, time.monotonic() - t0)

    def report(self, died: list[Incarnation], wall_s: float) -> dict[str, Any]:
        board = self.board()
        lost = 0
        for hid in self.posted:
            try:
                board.get(hid)
            except NotFound:
                lost += 1
        claimed = board.list_hypotheses(state=State.CLAIMED, limit=5000)
        dead_ids = {k["agent_id"] for k in self.kills}
        left = [h for h in claimed if h.claimed_by not in dead_ids]  # held by agents stopped gracefully
        results = board.results(limit=100_000)
        outbox_left = rejected = 0
        for workdir in sorted(self.root.glob("a*")):
            ob = workdir / "outbox.jsonl"
            if ob.exists():
                outbox_left += sum(1 for line in ob.read_text().splitlines() if line.strip())
            rj = workdir / "outbox.rejected.jsonl"
            if rj.exists():
                rejected += sum(1 for line in rj.read_text().splitlines() if line.strip())
        runs = Counter(r.hypothesis_id for r in results if r.hypothesis_id)
        fresh = Counter(r.hypothesis_id for r in results if r.hypothesis_id and not r.stale)
        monotone = {}
        for track in board.leaders():
            metrics = [m.metric for m in board.leader_history(track)]
            settings = board.require_settings()
            monotone[track] = all(settings.direction.gain(a, b) > 0 for a, b in itertools.pairwise(metrics))
        tracebacks = sum(inc.log.read_text(errors="replace").count("Traceback") for inc in self.agents)
        back = [s for k in self.kills for s in k["back_s"].values()]
        held = sum(len(k["claims"]) for k in self.kills)
        recovered = [r["recovered_s"] for r in self.restarts]
        out: dict[str, Any] = {
            "config": {k: v for k, v in vars(self.args).items() if k != "json"},
            "wall_s": round(wall_s, 1),
            "experiments": len(results),
            "agent_kills": len(self.kills),
            "redis_restarts": len(self.restarts),
            "hypotheses_lost": lost,
            "hypotheses_stuck": len(claimed),  # still claimed at the end, by anyone
            "leases_left_after_stop": len(left),
            "results_lost": outbox_left + rejected,
            "duplicates": sum(1 for n in fresh.values() if n > 1),
            "re_executions": sum(1 for n in runs.values() if n > 1),
            "leader_histories_monotone": monotone,
            "tracebacks": tracebacks,
            "agents_died_unkilled": len(died),
            "killed_claims": held,
            "killed_claims_back": len(back),
            "killed_claims_back_s": {"max": round(max(back), 1), "median": round(statistics.median(back), 1)}
            if back
            else None,
            "redis_recovered_s": [None if r is None else round(r, 1) for r in recovered],
            "kills": [
                {"agent_id": k["agent_id"], "claims": len(k["claims"]),
                 "back_s": sorted(round(s, 1) for s in k["back_s"].values())}
                for k in self.kills
            ],
        }  # fmt: skip
        out["targets_met"] = (
            lost == 0
            and not claimed
            and out["results_lost"] == 0
            and out["duplicates"] == 0
            and all(monotone.values())
            and tracebacks == 0
            and not died
            and len(back) == held
            and (not back or max(back) <= self.args.claims_within)
            and all(r is not None and r <= RECOVER_S for r in recovered)
        )
        return out


def arena_copy(src: Path, dest: Path) -> Path:
    """The arena with SLOTS comment lines at the end of its editable train.py (what the hypotheses edit)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    train = dest / "train.py"
    train.write_text(train.read_text() + "".join(f"# slot {k}\n" for k in range(SLOTS)))
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arena", choices=sorted(ARENAS), default="synth")
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=300.0, help="how long the faults go on")
    ap.add_argument("--kill-every", type=float, default=10.0, help="seconds between agent kills (0: none)")
    ap.add_argument("--redis-restarts", type=int, default=2)
    ap.add_argument("--down", type=float, default=5.0, help="seconds Redis stays down at each restart")
    ap.add_argument("--sentinel", action="store_true",
                    help="a primary, a replica and 3 sentinels; each Redis fault kills the primary (a failover)")
    ap.add_argument("--hypotheses", type=int, default=600,
                    help="human hypotheses with patches posted first (enough to keep the agents busy: the "
                    "classical optimizer alone runs out of new points on the synthetic arena)")
    ap.add_argument("--budget", type=float, default=None, help="training budget per run (the profile's if unset)")
    ap.add_argument("--claims-within", type=float, default=CLAIMS_BACK_S,
                    help="target: a killed agent's claims back on the board within this many seconds; the graceful "
                    "stop waits for them up to that long after the last kill")
    ap.add_argument("--stop-timeout", type=float, default=60.0)
    ap.add_argument("--init", default="", help="extra `swarm init` options in one string, e.g. '--lease-s 30'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="swarm-chaos-"))
    redis_proc: RedisProcess | SentinelGroup = (
        SentinelGroup(root / "ha", replicas=1) if args.sentinel else RedisProcess(root / "redis", persist=True)
    )
    redis_proc.start()
    chaos = Chaos(args, root, redis_proc, f"chaos-{int(time.time())}", arena_copy(ARENAS[args.arena], root / "arena"))
    try:
        out = chaos.run()
    finally:
        for inc in chaos.agents:
            if inc.proc.poll() is None:
                inc.proc.kill()
        redis_proc.stop()
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    print(f"chaos: {'all targets met' if out['targets_met'] else 'TARGETS NOT MET'} (work dir {root})", file=sys.stderr)
    return 0 if out["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
