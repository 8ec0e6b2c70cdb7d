"""`swarm arena prepare|run|noise|check`: thin wrappers around the arena's own harness CLI.

The swarm never imports arena code: each command runs `python -m harness ...` (this interpreter)
in the arena directory (`--arena`, default env SWARM_ARENA or ./arena) and relays its output. A
harness failure ends as one line (`ArenaError`) and a non-zero exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from swarm.cli.app import app, emit_json
from swarm.errors import ArenaError
from swarm.experiment.manifest import load_manifest

arena_app = typer.Typer(
    help="The experiment arena: prepare data, run train.py, measure noise, check.", no_args_is_help=True
)
app.add_typer(arena_app, name="arena")

ARENA_OPT = typer.Option(Path("arena"), "--arena", envvar="SWARM_ARENA", help="Arena directory.")


def _harness(arena: Path, args: list[str], capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m harness ARGS` in the arena, streaming its output (progress bars) unless
    `capture`; ArenaError (one line) when it fails."""
    load_manifest(arena)  # a clear error for a directory that is not an arena
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=arena, text=True, capture_output=capture)
    if proc.returncode:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines() if capture else []
        where = f": {lines[-1]}" if lines else "; see its output above"
        raise ArenaError(f"harness {args[0]} failed (exit {proc.returncode}){where}")
    return proc


@arena_app.command("prepare")
def prepare(
    arena: Path = ARENA_OPT,
    profile: str = typer.Option("cpu", help="cpu, gpu, auto or all (vocabulary follows the profile)."),
    corpus: str = typer.Option("shakespeare", help="shakespeare (offline, shipped) or climbmix (download)."),
    source: str | None = typer.Option(None, help="climbmix: base URL, shard directory or one parquet file."),
) -> None:
    """Prepare the corpus, tokenizer and token files (idempotent; cached under ARENA_CACHE)."""
    args = ["prepare", "--profile", profile, "--corpus", corpus]
    _harness(arena, [*args, "--source", source] if source else args)


@arena_app.command("run")
def run(
    arena: Path = ARENA_OPT,
    profile: str = typer.Option("auto", help="cpu, gpu or auto (gpu when CUDA is available)."),
    budget: float | None = typer.Option(None, help="Training seconds (default: the profile's budget)."),
    seed: int = typer.Option(0, help="Random seed (changes nothing else)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    out: Path | None = typer.Option(None, help="Result JSON path (default: a temporary file)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON instead of the --- block."),
) -> None:
    """Run train.py once under the harness and report val_bpb (status ok/crash/timeout/invalid)."""
    with tempfile.TemporaryDirectory(prefix="swarm-arena-") as tmp:
        path = (out or Path(tmp) / "result.json").resolve()
        args = ["run", "--profile", profile, "--seed", str(seed), "--device", device, "--out", str(path)]
        if budget is not None:
            args += ["--budget", str(budget)]
        proc = _harness(arena, args, capture=as_json)
        if as_json:
            emit_json(json.loads(path.read_text()))
        elif proc.stdout:
            typer.echo(proc.stdout, nl=False)


@arena_app.command("noise")
def noise(
    arena: Path = ARENA_OPT,
    runs: int = typer.Option(5, min=2, help="Runs, seeds 0..N-1."),
    profile: str = typer.Option("auto"),
    budget: float | None = typer.Option(None, help="Training seconds per run."),
    device: str = typer.Option("auto"),
) -> None:
    """Run the current train.py N times with different seeds; print mean and std of val_bpb."""
    args = ["noise", "--runs", str(runs), "--profile", profile, "--device", device]
    _harness(arena, [*args, "--budget", str(budget)] if budget is not None else args)


@arena_app.command("check")
def check(arena: Path = ARENA_OPT) -> None:
    """Verify the harness hashes and run the causality probe on the current train.py."""
    _harness(arena, ["check"])
