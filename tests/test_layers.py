"""The package's layers, read from the import graph: imports flow one way.

    foundation (errors, defaults, models) < code < experiment | proposers < board < observe < agent < cli

A module may import its own package and the layers below it, never a layer above nor a peer of its
own rank (experiment and proposers do not know each other). So `code`, `proposers` and `experiment`
never import the board, and nothing outside the CLI imports it (`__main__` entry points aside). Every
import counts: module level, inside a function, and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

SWARM = Path(__file__).resolve().parents[1] / "swarm"
RANK = {"foundation": 0, "code": 1, "experiment": 2, "proposers": 2, "board": 3, "observe": 4, "agent": 5, "cli": 6}


def layer(module: str) -> str:
    """`swarm.board.claims` -> board; `swarm.models`, `swarm` -> foundation."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else "foundation"


def imports(source: str, module: str) -> set[str]:
    """Every swarm module `source` imports (absolute names; `from swarm import defaults` -> swarm.defaults)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "swarm")
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolve against the importing module's package
                base = ".".join([*module.split(".")[: -node.level], node.module])
            if base.split(".")[0] == "swarm":
                out.update(f"{base}.{a.name}" if base == "swarm" else base for a in node.names)
    return out


def violations(source: str, module: str) -> list[str]:
    mine = layer(module)
    bad = []
    for target in sorted(imports(source, module)):
        theirs = layer(target)
        if theirs == mine:
            continue
        if theirs == "cli" or RANK[theirs] >= RANK[mine]:
            bad.append(f"{module} ({mine}) imports {target} ({theirs})")
    return bad


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SWARM.rglob("*.py")):
        rel = path.relative_to(SWARM.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        if rel.name != "__main__":  # entry points run the CLI on purpose
            out.append((name, path))
    return out


def test_imports_flow_one_way() -> None:
    found = [v for name, path in modules() for v in violations(path.read_text(encoding="utf-8"), name)]
    assert found == []
    assert len(modules()) > 50 and {layer(n) for n, _ in modules()} == set(RANK)


def test_the_checker_sees_a_wrong_import() -> None:
    assert violations("from swarm.board import Board\n", "swarm.proposers.llm") == [
        "swarm.proposers.llm (proposers) imports swarm.board (board)"
    ]
    assert violations("def f():\n    from swarm.cli.app import app\n", "swarm.agent.loop") != []
    assert violations("from swarm.proposers.base import Usage\n", "swarm.experiment.runner") != []  # peers
    assert violations("from swarm import defaults, models\n", "swarm.code.diff") == []
    assert violations("from .keys import Keys\n", "swarm.board.claims") == []
    assert violations("from ..cli import app\n", "swarm.board.claims") != []
