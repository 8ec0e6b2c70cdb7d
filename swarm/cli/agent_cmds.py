"""Agent commands: `swarm agent` (one agent, one GPU), `swarm launch` (one per GPU here), `swarm demo`."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from swarm import defaults
from swarm.agent.join import hold_workdir, host_cores, take_cpu_share
from swarm.agent.launch import Launcher, LaunchPlan
from swarm.cli.app import app, state
from swarm.errors import UserError
from swarm.observe.discovery import check_advertise

if TYPE_CHECKING:
    from swarm.proposers.base import Proposer
    from swarm.proposers.select import Selector

PROPOSER_HELP = (
    "SPEC[=WEIGHT], repeatable: classical, anthropic:<model>, openai:<model>, "
    "openai-compatible:<model>@<base_url>. Default: classical, plus the hybrid share of an LLM per key set."
)


def default_specs(env: dict[str, str] | os._Environ[str]) -> list[str]:
    """Without --proposer: the classical optimizer runs most trials, an LLM a minority share when a key
    is set (the hybrid that beat both pure approaches on this task; giving an LLM 80% of trials hurt)."""
    specs = [f"classical={defaults.CLASSICAL_WEIGHT}"]
    if env.get("ANTHROPIC_API_KEY"):
        specs.append(f"anthropic:{defaults.ANTHROPIC_MODEL}=1")
    if env.get("OPENAI_API_KEY"):
        specs.append(f"openai:{defaults.OPENAI_MODEL}=1")
    return specs


def make_selector(
    specs_text: list[str], config_path: Path | None, bandit: bool, seed: int
) -> tuple[list[Proposer], Selector]:
    """Proposers and the selector that picks one per experiment (missing keys fail here, at start)."""
    # Imported here, not at the top: the LLM SDKs take ~2 s to import, and every other `swarm`
    # command (post, status, ...) would pay that on each call.
    from swarm.proposers.classical import ClassicalProposer
    from swarm.proposers.select import Selector
    from swarm.proposers.spec import build_proposers, load_config, resolve_specs

    config = load_config(config_path)
    specs = resolve_specs(specs_text or ([] if config.proposers else default_specs(os.environ)), config)
    proposers = build_proposers(specs, config, lambda: ClassicalProposer(seed=seed))
    return proposers, Selector(
        proposers, [s.weight for s in specs], bandit=bandit or config.bandit, seed=seed, health=config.limits.health()
    )


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def agent(
    ctx: typer.Context,
    arena: Path | None = typer.Option(None, help="Local arena: checked against the pin, or creates the swarm."),
    proposer: list[str] = typer.Option([], "--proposer", help=PROPOSER_HELP),
    proposers_config: Path | None = typer.Option(None, help="TOML file with proposer specs, prices, limits."),
    bandit: bool = typer.Option(False, help="Pick proposers by a cost-aware bandit instead of fixed weights."),
    gpu: str = typer.Option("cpu", help="CUDA device index to pin this agent to, or cpu."),
    profile: str | None = typer.Option(None, help="Arena profile (default: the manifest's, auto = gpu if CUDA)."),
    budget: float | None = typer.Option(None, min=0.01, help="Training budget in seconds (overrides the profile)."),
    max_experiments: int | None = typer.Option(None, min=1, help="Stop after this many experiments."),
    workdir: Path | None = typer.Option(
        None, help="Private work dir (default .swarm/<swarm>/agent-<gpu>; agent-cpu-<k> for the k-th CPU agent here)."
    ),
    metrics_port: int | None = typer.Option(
        None, min=0, max=65535, help="Serve /metrics on exactly this port (in use: an error)."
    ),
    metrics_base_port: int = typer.Option(
        defaults.METRICS_BASE_PORT,
        min=1,
        max=65535,
        help="Without --metrics-port: try this port + the GPU index first, then the next free one.",
    ),
    metrics_advertise: str | None = typer.Option(
        None,
        help="HOST:PORT Prometheus reaches this agent's /metrics at, registered on the board for discovery "
        "(behind NAT, in a container; default: this hostname and the port served).",
    ),
    no_metrics: bool = typer.Option(False, help="Do not serve /metrics."),
    threads: str | None = typer.Option(
        None,
        help="CPU threads of a CPU agent: a number, or 'all' for every core this process may use (default: "
        "as many as the CPU agents already on this host, or 1).",
    ),
    track: str | None = typer.Option(None, help="Override the detected hardware track."),
    no_pipeline: bool = typer.Option(False, help="Do not prepare the next experiment while one runs."),
    seed: int = typer.Option(0, help="Seed of the proposer choice and the classical optimizer."),
    sandbox: str = typer.Option(
        "auto",
        help="Run each experiment in bubblewrap: auto (when this host and the arena allow it, else warn on "
        "every result), required (refuse to start without it), off.",
    ),
    log_level: str = typer.Option("info", help="debug, info, warning."),
) -> None:
    """Join the swarm and run experiments until stopped (SIGTERM/Ctrl-C release the claims held)."""
    setup_logging(log_level)
    st = state(ctx)
    if gpu != "cpu" and not gpu.isdigit():
        raise UserError(f"--gpu must be a device index or cpu, not {gpu!r}")
    if sandbox not in ("auto", "required", "off"):
        raise UserError(f"--sandbox must be auto, required or off, not {sandbox!r}")
    if metrics_advertise is not None:
        check_advertise(metrics_advertise)
        if no_metrics:
            raise UserError("--metrics-advertise needs /metrics served: drop --no-metrics")
    # Before torch and numpy are imported (they size their thread pools from OMP_NUM_THREADS once):
    # a CPU agent takes its share of this host's cores, held until the process ends; the training
    # child inherits OMP_NUM_THREADS through the runner's allow-list, so the track says what ran.
    default_dir = Path(".swarm") / st.swarm / f"agent-{gpu}"
    n_threads = parse_threads(threads)
    if gpu == "cpu":
        share = take_cpu_share(n_threads)
        n_threads = share.threads
        if share.index:  # agents started by hand in one directory: agent-cpu, agent-cpu-1, ...
            default_dir = default_dir.with_name(f"agent-cpu-{share.index}")
    if n_threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(n_threads)
    workdir = workdir or default_dir
    hold_workdir(workdir)
    from swarm.agent.loop import Agent, AgentOptions  # heavy (torch, SDKs): see make_selector

    proposers, selector = make_selector(proposer, proposers_config, bandit, seed)
    port, scan = None, 1
    if metrics_port is not None:
        port = metrics_port  # the user's port: in use is an error
    else:
        port, scan = metrics_base_port + (int(gpu) if gpu.isdigit() else 0), defaults.METRICS_PORT_SCAN
    if no_metrics:
        port = None
    opts = AgentOptions(
        workdir=workdir,
        arena=arena,
        gpu=gpu,
        profile=profile,
        budget_s=budget,
        max_experiments=max_experiments,
        track=track,
        metrics_port=port,
        metrics_scan=scan,
        metrics_advertise=metrics_advertise,
        pipeline=not no_pipeline,
        seed=seed,
        sandbox=sandbox,
    )
    runner = Agent(st.board(), opts, proposers, selector)

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ran = runner.run()
    typer.echo(f"agent {runner.agent_id}: {ran} experiment(s)")


def parse_threads(text: str | None) -> int | None:
    """--threads: a count of at least 1, or 'all' (the cores this process may use)."""
    if text is None:
        return None
    if text == "all":
        return host_cores()
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"--threads must be a number of at least 1 or 'all', not {text!r}")
    return int(text)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launch(
    ctx: typer.Context,
    agents: int | None = typer.Option(None, min=1, help="Number of agents (default: one per visible GPU)."),
    workdir: Path = typer.Option(Path(".swarm/launch"), help="Parent of the agents' work dirs and logs."),
    metrics_base_port: int = typer.Option(
        defaults.METRICS_BASE_PORT, min=1, max=65535, help="Agent i tries /metrics on base+i first, then the next free."
    ),
) -> None:
    """One agent per visible GPU on this machine (or N CPU agents), kept running: an agent that fails is
    restarted with a growing wait, one that keeps failing at start is given up; Ctrl-C/SIGTERM stop all.
    Other options go to every agent. Exit 0 when every agent ended cleanly, 1 when one was given up.

    Example: swarm launch --agents 2 --proposer classical --budget 30
    """
    st = state(ctx)
    plan = LaunchPlan(st.redis_url, st.swarm, workdir, agents, list(ctx.args), metrics_base_port)
    launcher = Launcher(plan, echo=lambda line: typer.echo(f"launch: {line}"))
    launcher.start()
    typer.echo(f"launch: {len(launcher.children)} agent(s), logs in {workdir}; Ctrl-C stops them all")
    raise typer.Exit(launcher.supervise())


@app.command()
def demo(
    ctx: typer.Context,
    minutes: float = typer.Option(defaults.DEMO_MINUTES, min=0.1, help="How long the agents run."),
    agents: int = typer.Option(defaults.DEMO_AGENTS, min=1, help="CPU agents to launch."),
    budget: float = typer.Option(defaults.DEMO_BUDGET_S, min=1, help="Training budget per experiment (s)."),
    arena: Path = typer.Option(Path("arena"), help="The arena to optimize."),
    workdir: Path = typer.Option(Path(".swarm/demo"), help="Where the demo keeps Redis, work dirs and logs."),
    redis: str | None = typer.Option(None, "--redis", help="Use this Redis instead of an embedded one."),
    proposer: list[str] = typer.Option([], "--proposer", help=PROPOSER_HELP),
) -> None:
    """The embedded demo: local Redis, CPU agents, no API key needed; ends with the leaderboard and best diff."""
    from swarm.agent.demo import DemoPlan, run_demo

    args: list[str] = []
    for spec in proposer:
        args += ["--proposer", spec]
    plan = DemoPlan(
        arena=arena, workdir=workdir, minutes=minutes, agents=agents, budget_s=budget, redis_url=redis, agent_args=args
    )
    ran = run_demo(plan, typer.echo)
    typer.echo(f"demo done: {ran} experiments")
