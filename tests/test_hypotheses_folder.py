"""The starter library in hypotheses/: every file follows the documented format and parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "hypotheses"
KEYS = {"priority", "tags", "track", "patch", "author"}  # hypotheses/README.md, "Format"


def files() -> list[Path]:
    return sorted(p for p in FOLDER.glob("*.md") if p.name.lower() != "readme.md")


def parse(path: Path) -> tuple[dict[str, str], str, str]:
    """A deliberately small reading of the format: (front matter, title, rationale)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fm: dict[str, str] = {}
    if lines and lines[0].strip() == "---":
        end = lines.index("---", 1)  # ValueError when the block is never closed
        for raw in lines[1:end]:
            line = raw.split(" #", 1)[0].strip()
            if not line:
                continue
            key, sep, value = line.partition(":")
            assert sep and key.strip() in KEYS, f"{path.name}: bad front matter line {raw!r}"
            assert key.strip() not in fm, f"{path.name}: {key} given twice"
            fm[key.strip()] = value.strip()
        lines = lines[end + 1 :]
    body = list(lines)
    while body and not body[0].strip():
        body.pop(0)
    assert body, f"{path.name}: empty body"
    return fm, body[0].strip(), "\n".join(body[1:]).strip()


def test_at_least_15_hypotheses_with_readme() -> None:
    assert (FOLDER / "README.md").is_file()
    assert len(files()) >= 15


@pytest.mark.parametrize("path", files(), ids=lambda p: p.name)
def test_each_file_follows_the_format(path: Path) -> None:
    fm, title, rationale = parse(path)
    assert title and len(title) <= 120 and not title.startswith("#")
    assert len(rationale) > 200, "say what to change, why, and what the published session saw"
    assert "Seen before:" in rationale
    assert re.fullmatch(r"-?\d+", fm.get("priority", "0"))
    assert all(t.strip() for t in fm.get("tags", "x").split(","))
    if "patch" in fm:
        assert (path.parent / fm["patch"]).is_file()


def test_no_duplicate_titles_and_wins_rank_above_failures() -> None:
    parsed = [parse(p) for p in files()]
    titles = [t.lower() for _, t, _ in parsed]
    assert len(set(titles)) == len(titles)
    prios = {p.name: int(fm.get("priority", "0")) for p, (fm, _, _) in zip(files(), parsed, strict=True)}
    assert prios["01-halve-batch.md"] > prios["13-lm-head-weight-decay.md"] > prios["17-parallel-block.md"]


def test_folder_parses_with_the_board_parser() -> None:
    hypofile = pytest.importorskip("swarm.cli.hypofile")
    parsed = hypofile.parse_path(FOLDER)
    assert [p.name for p, _ in parsed] == [p.name for p in files()]  # README.md skipped
    for path, hyp in parsed:
        fm, title, _ = parse(path)
        assert hyp.text.splitlines()[0] == title
        assert hyp.priority == int(fm.get("priority", "0"))
        assert hyp.patch is None
