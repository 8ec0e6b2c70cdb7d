"""Pure patch functions: make_patch/apply_patch round trips, git compatibility, strict failures."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from swarm.code.diff import EMPTY_PATCH, apply_patch, check_patch_text, make_patch, patch_hash
from swarm.errors import UserError

BEFORE = {"train.py": "".join(f"line {i}\n" for i in range(30)), "x.py": "no newline", "gone.txt": "bye\n"}
AFTER = {
    "train.py": BEFORE["train.py"].replace("line 3\n", "LINE 3\n").replace("line 25\n", "") + "tail\n",
    "x.py": "no newline, changed\n",
    "new.py": "hello\nworld",
}


def test_round_trip_add_change_delete_and_no_newline() -> None:
    p = make_patch(BEFORE, AFTER)
    assert "--- /dev/null" in p and "+++ /dev/null" in p and "\\ No newline at end of file" in p
    assert apply_patch(BEFORE, p) == AFTER
    assert make_patch(BEFORE, BEFORE) == ""
    assert apply_patch(BEFORE, "") == BEFORE


def test_random_round_trips() -> None:
    rng = random.Random(7)
    for _ in range(300):
        old = [f"l{rng.randint(0, 5)}\n" for _ in range(rng.randint(0, 25))]
        new = list(old)
        for _ in range(rng.randint(0, 5)):
            op = rng.random()
            if op < 0.3 and new:
                del new[rng.randrange(len(new))]
            elif op < 0.6:
                new.insert(rng.randint(0, len(new)), f"n{rng.randint(0, 9)}\n")
            elif new:
                new[rng.randrange(len(new))] = "m\n"
        b, a = {"f": "".join(old)}, {"f": "".join(new)}
        if rng.random() < 0.3 and a["f"]:
            a["f"] = a["f"][:-1]
        assert apply_patch(b, make_patch(b, a)) == a


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_apply_accepts_our_patches(tmp_path: Path) -> None:
    for name, text in BEFORE.items():
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "p.diff").write_text(make_patch(BEFORE, AFTER))
    subprocess.run(["git", "apply", "p.diff"], cwd=tmp_path, check=True)
    for name, text in AFTER.items():
        assert (tmp_path / name).read_text() == text
    assert not (tmp_path / "gone.txt").exists()


def test_mismatch_names_file_and_hunk() -> None:
    p = make_patch(BEFORE, AFTER)
    changed = dict(BEFORE, **{"train.py": BEFORE["train.py"].replace("line 3\n", "other\n")})
    with pytest.raises(UserError, match=r"train\.py: hunk 1 .*does not apply"):
        apply_patch(changed, p)
    with pytest.raises(UserError, match=r"creates new\.py, which already exists"):
        apply_patch({**BEFORE, "new.py": "x"}, p)
    with pytest.raises(UserError, match=r"changes train\.py, which does not exist"):
        apply_patch({}, make_patch({"train.py": "a\n"}, {"train.py": "b\n"}))


def test_check_patch_text_and_hash() -> None:
    assert patch_hash("") == EMPTY_PATCH
    with pytest.raises(UserError, match="binary"):
        check_patch_text(b"@@ \x00\x01")
    with pytest.raises(UserError, match="not UTF-8"):
        check_patch_text(b"\xff\xfe@@")
    with pytest.raises(UserError, match="cap"):
        check_patch_text("@@" + "x" * 300_000)
    with pytest.raises(UserError, match="not a unified diff"):
        check_patch_text("just some text")
    with pytest.raises(UserError, match="malformed hunk header"):
        apply_patch({"f": "a\n"}, "--- a/f\n+++ b/f\n@@ nonsense @@\n-a\n")
