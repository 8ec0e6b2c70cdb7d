"""Proposer health benchmark: what a failing LLM costs, what happens to human work, what the bandit learns.

    .venv/bin/python scripts/bench_proposer_health.py --minutes 11 --json out.json
    .venv/bin/python scripts/bench_proposer_health.py --minutes 0 --bandit-experiments 120   # bandit only

Part 1, outages (`--minutes` > 0): for each mode, one real `swarm agent` process on its own swarm (the
synthetic arena, 0.2 s runs, the default health policy) whose only proposer is an OpenAI-compatible
model behind a scripted server on loopback that fails every call in that way, all modes at once:

    refused   nothing listens on the port (connection refused)
    http500   HTTP 500 on every request
    http429   HTTP 429 with Retry-After: 2
    timeout   no answer within the client's timeout (timeout_s = 2)
    prose     a 200 reply in prose, for ideation and implementation alike
    edits     valid JSON ideas, but SEARCH/REPLACE blocks that never match the file

Each swarm gets the starter library (`hypotheses/`, text only: it needs an implementer) first. The
script counts HTTP requests at the server (SDK retries included) and the SDK-level calls the agent
recorded on the board (`Board.proposer_usage`, sampled every 5 s; the only count for `refused`), and
at the end every human hypothesis' state. Targets: at most 20 calls in the first 5 minutes, at most 1
per minute after (the mean over the minutes after the fifth; the per-minute counts are reported too:
a probe is one try, whose 2-3 replies can fall in one minute), 0 human hypotheses lost (each still
open, or failed after max attempts counted across proposers with reasons). Calls are HTTP requests
at the server (SDK retries included) where there is a server, SDK calls for `refused`.

Part 2, the bandit (`--bandit-experiments` > 0): one in-process `Agent` on a real board with two
scripted proposers, one whose every idea improves the metric by 0.01 (5x the noise) and one whose ideas
change nothing, simulated runs; once with `--bandit` and once with equal fixed weights, side by side.
Target: at least 70% of the last half of the explorations go to the improving one under the bandit.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from llm_server import Request, Scripted, ScriptedServer  # noqa: E402  (the tests' scripted server)
from scripted_proposers import Marker, marker_run  # noqa: E402  (the tests' scripted proposers)

from swarm.agent.loop import Agent, AgentOptions  # noqa: E402
from swarm.board import Board  # noqa: E402
from swarm.board.embedded import RedisProcess, free_port  # noqa: E402
from swarm.models import Kind, State  # noqa: E402
from swarm.proposers.select import Selector  # noqa: E402

SYNTH = REPO / "tests" / "arenas" / "synth"
TRACK = "bench:synth"
MODES = ["refused", "http500", "http429", "timeout", "prose", "edits"]
IDEAS = json.dumps({"ideas": [{"title": f"Idea {i}", "rationale": "Scripted."} for i in range(3)]})
NEVER = "train.py\n<<<<<<< SEARCH\nTHIS LINE IS NOT IN THE FILE\n=======\nX = 0.5\n>>>>>>> REPLACE\n"
FIRST_S, TARGET_FIRST, TARGET_PER_MIN = 300.0, 20, 1


def reply(mode: str, req: Request) -> Scripted:
    if mode == "http500":
        return Scripted(status=500)
    if mode == "http429":
        return Scripted(status=429, headers={"retry-after": "2", "retry-after-ms": "2000"})
    if mode == "timeout":
        return Scripted(text="late", delay_s=3.0)
    if mode == "prose":
        return Scripted(text="Sure! I would tune the learning rate a bit; it should help.")
    wants_ideas = '"ideas"' in req.last_user_text()
    return Scripted(text=IDEAS if wants_ideas else NEVER)


class Outage:
    """One mode: its scripted server (None for `refused`), swarm, agent process and counts."""

    def __init__(self, mode: str, redis_url: str, root: Path) -> None:
        self.mode, self.redis_url, self.swarm = mode, redis_url, f"health-{mode}-{uuid.uuid4().hex[:6]}"
        self.times: list[float] = []  # server-side request arrival times (monotonic)
        self.samples: list[tuple[float, int, int]] = []  # (time, calls, failures) from the board
        self.server: ScriptedServer | None = None
        if mode != "refused":
            self.server = ScriptedServer(responder=self.answer)
            self.server.__enter__()
        url = self.server.url if self.server else f"http://127.0.0.1:{free_port()}"
        self.name = f"openai-compatible:scripted@{url}/v1"
        self.workdir = root / mode
        self.workdir.mkdir(parents=True)
        config = self.workdir / "proposers.toml"
        config.write_text(f'[limits]\ntimeout_s = 2\n\n[[proposer]]\nspec = "{self.name}"\n')
        self.cli("init", "--arena", str(SYNTH))
        self.cli("post", "--file", str(REPO / "hypotheses"))
        self.board = Board.connect(redis_url, self.swarm)
        self.human = [h.id for h in self.board.list_hypotheses(limit=1000)]
        self.log = self.workdir / "agent.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "swarm.cli", "--redis", redis_url, "--swarm", self.swarm, "agent", "--arena",
                 str(SYNTH), "--workdir", str(self.workdir / "w"), "--no-metrics", "--track", TRACK, "--budget", "0.2",
                 "--proposers-config", str(config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip
        self.t0 = time.monotonic()

    def answer(self, req: Request) -> Scripted:
        self.times.append(time.monotonic())
        return reply(self.mode, req)

    def cli(self, *argv: str) -> None:
        cmd = [sys.executable, "-m", "swarm.cli", "--redis", self.redis_url, "--swarm", self.swarm, *argv]
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)

    def sample(self) -> None:
        u = self.board.proposer_usage().get(self.name)
        self.samples.append((time.monotonic(), u.calls if u else 0, u.failures if u else 0))

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        if self.server is not None:
            self.server.__exit__(None, None, None)
        self.sample()
        return self.report(rc)

    def report(self, rc: int) -> dict[str, Any]:
        # the clock starts at the first call (the agent measured its baseline before)
        first_call = next((t for t, c, _ in self.samples if c > 0), None)
        t0 = min([*self.times[:1], first_call or float("inf")])
        end = self.samples[-1][0]
        req_first = sum(1 for t in self.times if t - t0 < FIRST_S)
        minutes = int((end - t0 - FIRST_S) // 60)
        req_per_min = [sum(1 for t in self.times if FIRST_S + 60 * m <= t - t0 < FIRST_S + 60 * (m + 1))
                       for m in range(max(0, minutes))]  # fmt: skip
        calls_at = lambda s: max((c for t, c, _ in self.samples if t - t0 <= s), default=0)  # noqa: E731
        calls_first = calls_at(FIRST_S)
        calls_per_min = [calls_at(FIRST_S + 60 * (m + 1)) - calls_at(FIRST_S + 60 * m) for m in range(max(0, minutes))]
        hyps = [self.board.get(h) for h in self.human]
        states = Counter(str(h.state) for h in hyps)
        lost = [h.id for h in hyps if h.state in (State.DONE, State.CANCELLED)
                or (h.state == State.FAILED and sum(f.counted for f in h.failures) + h.attempts < 3)]  # fmt: skip
        text = self.log.read_text(errors="replace")
        usage = self.board.proposer_usage().get(self.name)
        counted = self.server is not None
        first = req_first if counted else calls_first
        per_min = req_per_min if counted else calls_per_min
        return {
            "mode": self.mode,
            "exit_code": rc,
            "minutes_after_first_call": round((end - t0) / 60, 2),
            "http_requests_first_5_min": req_first if counted else None,
            "http_requests_per_minute_after": req_per_min if counted else None,
            "sdk_calls_first_5_min": calls_first,
            "sdk_calls_per_minute_after": calls_per_min,
            "failures": usage.failures if usage else 0,
            "cost_usd": usage.cost_usd if usage else 0.0,
            "human_hypotheses": len(hyps),
            "human_states": dict(states),
            "human_with_failures_recorded": sum(1 for h in hyps if h.failures),
            "human_lost": len(lost),
            "paused_log_lines": text.count(" paused after "),
            "waiting_log_lines": text.count("waiting: "),
            "tracebacks": text.count("Traceback"),
            "sdk_calls_per_minute_after_mean": round(sum(calls_per_min) / max(1, len(calls_per_min)), 2),
            "target_first_5_min": first <= TARGET_FIRST,
            # the mean rate after minute 5 (a probe, one try, can put its 2-3 replies in one minute)
            "target_per_minute_after": bool(per_min) and sum(per_min) / len(per_min) <= TARGET_PER_MIN,
            "target_none_lost": not lost,
        }


def outages(minutes: float, modes: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis")
        redis.start()
        try:
            runs = [Outage(m, redis.url, Path(tmp)) for m in modes]
            end = time.monotonic() + minutes * 60
            while time.monotonic() < end:
                for r in runs:
                    r.sample()
                time.sleep(5)
            return [r.stop() for r in runs]
        finally:
            redis.stop()


# --- part 2: the bandit ------------------------------------------------------------------------------


def bandit(experiments: int, seeds: int) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-bandit-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis")
        redis.start()
        try:
            for seed in range(seeds):
                for use_bandit in (True, False):
                    swarm = f"bandit-{use_bandit}-{seed}-{uuid.uuid4().hex[:6]}"
                    subprocess.run([sys.executable, "-m", "swarm.cli", "--redis", redis.url, "--swarm", swarm, "init",
                                    "--arena", str(SYNTH)], check=True, capture_output=True, cwd=REPO)  # fmt: skip
                    board = Board.connect(redis.url, swarm)
                    props = [Marker("openai:improving", "good"), Marker("openai:useless", "bad")]
                    opts = AgentOptions(workdir=Path(tmp) / swarm, arena=SYNTH, track=TRACK, runner=marker_run,
                                        max_experiments=experiments, pipeline=False, seed=seed)  # fmt: skip
                    sel = Selector(props, [1.0, 1.0], bandit=use_bandit, seed=seed)  # type: ignore[arg-type]
                    Agent(board, opts, props, sel).run()  # type: ignore[arg-type]
                    explore = sorted((r for r in board.results(limit=10_000, track=TRACK) if r.kind == Kind.EXPLORE),
                                     key=lambda r: r.finished_ms)  # fmt: skip
                    late = Counter(r.proposer for r in explore[len(explore) // 2 :])
                    share = late["llm:openai/improving"] / max(1, sum(late.values()))
                    leader = board.leader(TRACK)
                    out.append({"bandit": use_bandit, "seed": seed, "experiments": experiments,
                                "explorations": len(explore), "improving_share_last_half": round(share, 3),
                                "leader_generation": leader.generation if leader else 0,
                                "leader_metric": round(leader.metric, 4) if leader else None})  # fmt: skip
        finally:
            redis.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=11.0, help="outage part: how long the agents run (0: skip)")
    ap.add_argument("--modes", default=",".join(MODES), help="outage modes, comma-separated")
    ap.add_argument("--bandit-experiments", type=int, default=120, help="bandit part: experiments per run (0: skip)")
    ap.add_argument("--bandit-seeds", type=int, default=3, help="bandit part: runs per arm of the comparison")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if unknown := sorted(set(modes) - set(MODES)):
        ap.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    report: dict[str, Any] = {"config": vars(args) | {"json": str(args.json) if args.json else None}}
    if args.bandit_experiments > 0:
        report["bandit"] = bandit(args.bandit_experiments, args.bandit_seeds)
        for r in report["bandit"]:
            print(f"bandit={r['bandit']!s:5} seed={r['seed']}: improving share of the last half "
                  f"{r['improving_share_last_half']:.2f} ({r['explorations']} explorations, leader gen "
                  f"{r['leader_generation']})", file=sys.stderr)  # fmt: skip
    if args.minutes > 0:
        report["outages"] = outages(args.minutes, modes)
        for r in report["outages"]:
            print(json.dumps(r), file=sys.stderr)
    met = all(r["target_first_5_min"] and r["target_none_lost"] and (r["target_per_minute_after"] or args.minutes < 6)
              for r in report.get("outages", []))  # fmt: skip
    met = met and all(r["improving_share_last_half"] >= 0.7 for r in report.get("bandit", []) if r["bandit"])
    report["targets_met"] = met
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
