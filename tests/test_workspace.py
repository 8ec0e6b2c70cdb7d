"""The workspace: a run that leaves the tree alone costs no git; anything a run changed outside the
editable files is restored before the next one, however it tried to hide it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from swarm.experiment.workspace import Workspace

SYNTH = Path(__file__).parent / "arenas" / "synth"


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    files = {p.name: p.read_bytes() for p in SYNTH.iterdir() if p.is_file()}
    w = Workspace.create(tmp_path / "ws", files, ["train.py"])
    w.prepare_run(w.baseline_files())  # the first run always restores (nothing noted yet)
    w.record("first", w.baseline_files())
    return w


def edited(ws: Workspace) -> dict[str, str]:
    return {"train.py": ws.baseline_files()["train.py"].replace("X = 0.2 ", "X = 0.61")}


def test_an_untouched_tree_needs_no_restore(ws: Workspace) -> None:
    before = ws.restores
    for _ in range(3):
        ws.prepare_run(edited(ws))
        assert (ws.dir / "train.py").read_text() == edited(ws)["train.py"]
        ws.record("explore", edited(ws))
        assert ws.files() == ws.baseline_files()  # between runs the tree is the leader's code
    assert ws.restores == before
    lines = [json.loads(x) for x in (ws.root / "history.jsonl").read_text().splitlines()]
    assert [x["message"] for x in lines] == ["first", "explore", "explore", "explore"]
    assert "X = 0.61" in lines[-1]["patch"]


def test_a_changed_harness_file_is_restored_even_with_its_old_mtime(ws: Workspace) -> None:
    target = ws.dir / "objective.py"
    original = target.read_bytes()
    st = target.stat()
    target.write_bytes(original.replace(b"0.7", b"0.9")[: len(original)].ljust(len(original)))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime differs
    before = ws.restores
    ws.prepare_run(edited(ws))
    assert ws.restores == before + 1
    assert target.read_bytes() == original


@pytest.mark.parametrize("what", ["stray file", "bytecode", "removed file", "symlinked editable"])
def test_anything_a_run_left_behind_is_gone_before_the_next(ws: Workspace, what: str) -> None:
    if what == "stray file":
        (ws.dir / "notes.txt").write_text("left by a run")
    elif what == "bytecode":  # a planted .pyc would be imported by the next run's harness
        (ws.dir / "__pycache__").mkdir()
        (ws.dir / "__pycache__" / "objective.cpython-311.pyc").write_bytes(b"\x00" * 16)
    elif what == "removed file":
        (ws.dir / "program.md").unlink()
    else:  # writing the next train.py would go through the link into the harness
        (ws.dir / "train.py").unlink()
        (ws.dir / "train.py").symlink_to(ws.dir / "objective.py")
    objective = (SYNTH / "objective.py").read_bytes()
    ws.prepare_run(edited(ws))
    assert not (ws.dir / "notes.txt").exists()
    assert not (ws.dir / "__pycache__").exists()
    assert (ws.dir / "program.md").read_bytes() == (SYNTH / "program.md").read_bytes()
    assert not (ws.dir / "train.py").is_symlink()
    assert (ws.dir / "train.py").read_text() == edited(ws)["train.py"]
    assert (ws.dir / "objective.py").read_bytes() == objective
