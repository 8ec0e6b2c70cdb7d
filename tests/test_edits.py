"""SEARCH/REPLACE parsing and forgiving application (swarm.edits)."""

from __future__ import annotations

from swarm.proposers.edits import apply_blocks, parse_blocks

TRAIN = """import torch

LR = 0.02
WARMUP = 100


def step(model, opt):
    loss = model()
    loss.backward()
    opt.step()
    return loss


def evaluate(model):
    loss = model()
    return loss
"""


def block(search: str, replace: str, name: str | None = "train.py") -> str:
    head = f"{name}\n" if name else ""
    return f"{head}<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_exact_and_named_file_in_fence() -> None:
    reply = "Sure:\n```python\n" + block("LR = 0.02\n", "LR = 0.03\n") + "```\n"
    out = apply_blocks({"train.py": TRAIN}, reply)
    assert out.ok and out.how == {1: "exact"}
    assert "LR = 0.03\n" in out.files["train.py"] and "LR = 0.02" not in out.files["train.py"]
    assert out.files["train.py"].endswith("return loss\n")


def test_name_may_be_omitted_with_one_file_and_prose_above() -> None:
    reply = "Here is the change:\n" + block("WARMUP = 100\n", "WARMUP = 50\n", name=None)
    out = apply_blocks({"train.py": TRAIN}, reply)
    assert out.ok and "WARMUP = 50" in out.files["train.py"]


def test_trailing_whitespace_ignored() -> None:
    out = apply_blocks({"train.py": TRAIN}, block("LR = 0.02   \nWARMUP = 100\t\n", "LR = 1\nWARMUP = 2\n"))
    assert out.ok and out.how[1] == "whitespace"
    assert "LR = 1\nWARMUP = 2\n" in out.files["train.py"]


def test_indentation_drift_reindents_replacement() -> None:
    # The model dropped the 4-space body indentation in both SEARCH and REPLACE.
    search = "loss = model()\nloss.backward()\nopt.step()\n"
    clip = "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
    replace = "loss = model()\nloss.backward()\n" + clip + "opt.step()\n"
    out = apply_blocks({"train.py": TRAIN}, block(search, replace))
    assert out.ok, out.report()
    assert out.how[1] == "indent"
    assert (
        "    loss.backward()\n    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n    opt.step()\n"
        in (out.files["train.py"])
    )
    compile(out.files["train.py"], "train.py", "exec")


def test_fuzzy_unique_match() -> None:
    search = "def step(model, opt):\n    loss = model()\n    loss.backward()  # grads\n    opt.step()\n"
    replace = "def step(model, opt):\n    loss = model() * 2\n    loss.backward()\n    opt.step()\n"
    out = apply_blocks({"train.py": TRAIN}, block(search, replace))
    assert out.ok, out.report()
    assert out.how[1].startswith("fuzzy")
    assert "loss = model() * 2" in out.files["train.py"]
    compile(out.files["train.py"], "train.py", "exec")


def test_ambiguous_is_an_error_with_line_numbers() -> None:
    out = apply_blocks({"train.py": TRAIN}, block("    loss = model()\n", "    loss = 0\n"))
    assert not out.ok and out.files["train.py"] == TRAIN
    reason = out.failures[0].reason
    assert "block 1" in reason and "matches 2 places" in reason and "8, 15" in reason


def test_no_match_names_closest_lines_and_similarity() -> None:
    out = apply_blocks({"train.py": TRAIN}, block("BATCH_SIZE = 64\nDEPTH = 12\n", "BATCH_SIZE = 32\n"))
    assert not out.ok
    reason = out.failures[0].reason
    assert "block 1 (train.py): SEARCH matched nothing" in reason
    assert "Closest lines" in reason and "similarity 0." in reason


def test_failed_block_is_reported_and_others_still_apply() -> None:
    reply = block("LR = 0.02\n", "LR = 0.05\n") + "\n" + block("NOPE = 1\n", "NOPE = 2\n")
    out = apply_blocks({"train.py": TRAIN}, reply)
    assert out.applied == [1] and [f.index for f in out.failures] == [2]
    assert "LR = 0.05" in out.files["train.py"]
    assert out.report().startswith("1 block(s) applied, 1 failed:")


def test_later_blocks_see_earlier_edits() -> None:
    reply = block("LR = 0.02\n", "LR = 0.05\n") + block("LR = 0.05\n", "LR = 0.07\n")
    out = apply_blocks({"train.py": TRAIN}, reply)
    assert out.ok and "LR = 0.07" in out.files["train.py"]


def test_multiple_files_require_a_valid_name() -> None:
    files = {"train.py": TRAIN, "model.py": "X = 1\n"}
    reply = block("X = 1\n", "X = 2\n", name="model.py") + block("LR = 0.02\n", "LR = 9\n", name="other.py")
    out = apply_blocks(files, reply)
    assert out.files["model.py"] == "X = 2\n"
    assert len(out.failures) == 1 and "`other.py` is not an editable file" in out.failures[0].reason
    unnamed = apply_blocks(files, "<<<<<<< SEARCH\nX = 1\n=======\nX = 3\n>>>>>>> REPLACE\n")
    assert "no file name is not an editable file" in unnamed.failures[0].reason


def test_malformed_and_missing_blocks_are_never_silent() -> None:
    assert "no SEARCH/REPLACE blocks" in apply_blocks({"train.py": TRAIN}, "I changed LR.").failures[0].reason
    out = apply_blocks({"train.py": TRAIN}, "train.py\n<<<<<<< SEARCH\nLR = 0.02\n=======\nLR = 1\n")
    assert "no `>>>>>>> REPLACE`" in out.failures[0].reason
    blocks, failures = parse_blocks("<<<<<<< SEARCH\nLR\n>>>>>>> REPLACE\n", ["train.py"])
    assert not blocks and "no `=======`" in failures[0].reason


def test_empty_search_only_for_empty_file() -> None:
    out = apply_blocks({"new.py": ""}, block("", "print('hi')\n", name="new.py"))
    assert out.ok and out.files["new.py"] == "print('hi')\n"
    out = apply_blocks({"train.py": TRAIN}, block("", "x = 1\n"))
    assert "SEARCH is empty" in out.failures[0].reason


NESTED = """def f(x):
    if x:
        y = 1
    else:
        y = 0
    return y
"""


def test_two_space_model_on_four_space_file_maps_nested_indentation() -> None:
    # Not a constant shift (+2 at depth 1, +4 at depth 2): lines are re-indented one by one.
    search = "  if x:\n    y = 1\n  else:\n"
    replace = "  if x:\n    y = 2\n    z = 3\n  else:\n"
    out = apply_blocks({"f.py": NESTED}, block(search, replace, name="f.py"))
    assert out.ok and out.how[1] == "indent"
    assert out.files["f.py"] == NESTED.replace("        y = 1\n", "        y = 2\n        z = 3\n")


def test_flattened_block_is_restored_to_file_structure() -> None:
    search = "if x:\ny = 1\nelse:\ny = 0\n"
    replace = "if x:\ny = 1\nelse:\ny = -1\n"
    out = apply_blocks({"f.py": NESTED}, block(search, replace, name="f.py"))
    assert out.ok, out.report()
    assert out.files["f.py"] == NESTED.replace("y = 0", "y = -1")
