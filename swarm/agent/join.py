"""Joining a swarm: the swarm created or checked against the local arena, the agent's workspace,
its arena profile and its hardware track. What the agent's collaborators are then built on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swarm.board import Board
from swarm.errors import Conflict, UserError
from swarm.experiment.manifest import Manifest, load_manifest
from swarm.experiment.workspace import Workspace
from swarm.models import SwarmSettings


@dataclass(frozen=True)
class Seat:
    """Where an agent sits in its swarm: the settings, its workspace and arena, its profile and track."""

    settings: SwarmSettings
    ws: Workspace
    manifest: Manifest
    profile: str
    track: str
    device: str  # "cuda" or "cpu"


def detect_track(profile: str, gpu: str) -> str:
    """profile + ':' + hardware, as the default arena's harness names it (cpu:<threads>c or the GPU name)."""
    import torch  # here, not at the top: the CLI and the board never need it

    if gpu != "cpu" and torch.cuda.is_available():
        return f"{profile}:{torch.cuda.get_device_name(0).replace(' ', '-')}"
    return f"{profile}:{torch.get_num_threads()}c"


def take_seat(
    board: Board, workdir: Path, arena: Path | None, gpu: str, profile: str | None, track: str | None
) -> Seat:
    """Create the swarm from `arena` (or check `arena` against its pin), build the workspace under
    `workdir`, pick the profile ("auto": gpu when CUDA is asked for) and the track."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = board.settings()
    if settings is None:
        if arena is None:
            raise UserError(f"swarm {board.swarm!r} does not exist; pass --arena PATH to create it")
        settings = board.init(arena)
    elif arena is not None and (differ := board.arena_diff(arena)):
        raise Conflict(
            f"local arena {arena} differs from the arena pinned on swarm {board.swarm!r}: {', '.join(differ[:10])}"
        )
    ws = Workspace.create(workdir / "ws", board.arena_files(), settings.editable)
    manifest = load_manifest(ws.dir)
    cuda = gpu != "cpu"
    profile = profile or manifest.run.default_profile
    if profile == "auto":
        profile = "gpu" if cuda and "gpu" in manifest.profiles else next(iter(manifest.profiles))
    manifest.profile(profile)  # ArenaError if unknown
    return Seat(settings, ws, manifest, profile, track or detect_track(profile, gpu), "cuda" if cuda else "cpu")
