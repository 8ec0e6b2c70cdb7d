"""SEARCH/REPLACE edit blocks: parse them from an LLM reply and apply them with forgiving matching.

The block format is the conventional one (aider, OpenEvolve, ShinkaEvolve), plain text so that it works
with every OpenAI-compatible server, tool calling or not:

    train.py
    <<<<<<< SEARCH
    lr = 0.02
    =======
    lr = 0.03
    >>>>>>> REPLACE

The line before `<<<<<<< SEARCH` names the file (Markdown fences, backticks and `#`/`*` decoration are
ignored); with a single editable file the name may be omitted. Each block is matched against the file as
it stands after the earlier blocks, trying in order:

1. exact lines;
2. lines equal once trailing whitespace is ignored;
3. lines equal once indentation is ignored, if the indentation differs by one constant amount; the
   replacement is then re-indented by that amount;
4. a unique fuzzy match (difflib ratio >= threshold) over windows the size of the SEARCH text.

Several matches at one level are an error (ambiguous), never a guess. A block that cannot be applied is
returned as a `BlockFailure` with a reason the model can act on (which block, why, the closest lines and
their similarity); no block is ever silently dropped. OpenEvolve's silent drops are the failure this
module exists to avoid.

    outcome = apply_blocks({"train.py": text}, reply)
    if outcome.failures: feedback = outcome.report()
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from swarm.defaults import PROPOSER_FUZZY_THRESHOLD

SEARCH_RE = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
DIVIDER_RE = re.compile(r"^\s*={5,9}\s*$")
REPLACE_RE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
FENCE_RE = re.compile(r"^\s*(```|~~~)")
CLOSEST_TRIES = 64  # exact scores spent finding the closest lines once no match is possible
SHOWN_LINES = 12  # lines of a closest candidate quoted back to the model: enough to see the drift


@dataclass
class Block:
    """One parsed block. `index` is 1-based, in reply order, as the model is told in failures."""

    index: int
    path: str | None
    search: list[str]
    replace: list[str]


@dataclass
class BlockFailure:
    """Why block `index` was not applied (index 0: the reply as a whole, e.g. no blocks at all)."""

    index: int
    path: str | None
    reason: str


@dataclass
class EditOutcome:
    """Result of applying one reply: the new files (failed blocks left out) and the failures."""

    files: dict[str, str]
    applied: list[int] = field(default_factory=list)
    failures: list[BlockFailure] = field(default_factory=list)
    how: dict[int, str] = field(default_factory=dict)  # block index -> exact/whitespace/indent/fuzzy

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        """Model-readable summary of what failed and why (empty when everything applied)."""
        if not self.failures:
            return ""
        head = f"{len(self.applied)} block(s) applied, {len(self.failures)} failed:"
        return "\n\n".join([head, *(f.reason for f in self.failures)])


# --- parsing -------------------------------------------------------------------------------------


def _clean_name(line: str) -> str:
    name = line.strip().strip("`*#:").strip()
    return name.removeprefix("a/").removeprefix("b/") if name.startswith(("a/", "b/")) else name


def _resolve_path(candidate: str | None, paths: list[str]) -> str | None:
    if candidate is None:
        return None
    if candidate in paths:
        return candidate
    by_base = [p for p in paths if p.rsplit("/", 1)[-1] == candidate.rsplit("/", 1)[-1]]
    return by_base[0] if len(by_base) == 1 else None


def parse_blocks(reply: str, paths: list[str]) -> tuple[list[Block], list[BlockFailure]]:
    """Blocks in `reply` for the editable `paths`, plus failures for blocks that are malformed or name
    a file that is not editable."""
    lines = reply.splitlines()
    blocks: list[Block] = []
    failures: list[BlockFailure] = []
    i = 0
    index = 0
    while i < len(lines):
        if not SEARCH_RE.match(lines[i]):
            i += 1
            continue
        index += 1
        # The file name: the nearest non-blank, non-fence line above the marker.
        named: str | None = None
        j = i - 1
        while j >= 0 and (not lines[j].strip() or FENCE_RE.match(lines[j])):
            j -= 1
        if j >= 0 and not REPLACE_RE.match(lines[j]):
            named = _clean_name(lines[j]) or None
        start = i + 1
        k = start
        while k < len(lines) and not DIVIDER_RE.match(lines[k]) and not SEARCH_RE.match(lines[k]):
            k += 1
        if k >= len(lines) or not DIVIDER_RE.match(lines[k]):
            failures.append(BlockFailure(index, named, f"block {index}: no `=======` line after SEARCH."))
            i = k
            continue
        m = k + 1
        while m < len(lines) and not REPLACE_RE.match(lines[m]) and not SEARCH_RE.match(lines[m]):
            m += 1
        if m >= len(lines) or not REPLACE_RE.match(lines[m]):
            failures.append(
                BlockFailure(index, named, f"block {index}: no `>>>>>>> REPLACE` line ends the block.")
            )
            i = m
            continue
        path = _resolve_path(named, paths)
        if path is None and len(paths) == 1 and (named is None or _resolve_path(named, paths) is None):
            # One editable file: the line above may be prose ("Here is the change:"), not a name.
            path = paths[0]
        if path is None:
            shown = f"`{named}`" if named else "no file name"
            failures.append(
                BlockFailure(
                    index,
                    named,
                    f"block {index}: {shown} is not an editable file; put one of "
                    f"{', '.join(paths)} on the line before `<<<<<<< SEARCH`.",
                )
            )
        else:
            blocks.append(Block(index, path, lines[start:k], lines[k + 1 : m]))
        i = m + 1
    if index == 0:
        failures.append(
            BlockFailure(
                0,
                None,
                "the reply contains no SEARCH/REPLACE blocks (`<<<<<<< SEARCH` ... `=======` ... "
                "`>>>>>>> REPLACE`).",
            )
        )
    return blocks, failures


# --- matching ------------------------------------------------------------------------------------


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _windows_equal(hay: list[str], needle: list[str], key: Callable[[str], str]) -> list[int]:
    n = len(needle)
    want = [key(x) for x in needle]
    got = [key(x) for x in hay]
    return [i for i in range(len(hay) - n + 1) if got[i : i + n] == want]


def _indent_delta(found: list[str], search: list[str]) -> tuple[str, int] | None:
    """(prefix to add, chars to remove) turning `search`'s indentation into `found`'s, if constant."""
    pairs = [(f, s) for f, s in zip(found, search, strict=True) if s.strip()]
    if not pairs:
        return ("", 0)
    deltas = set()
    for f, s in pairs:
        fi, si = _indent(f), _indent(s)
        if fi.endswith(si):
            deltas.add((fi[: len(fi) - len(si)], 0))
        elif si.endswith(fi):
            deltas.add(("", len(si) - len(fi)))
        else:
            return None
    return deltas.pop() if len(deltas) == 1 else None


def _reindent(lines: list[str], delta: tuple[str, int]) -> list[str]:
    add, remove = delta
    out = []
    for line in lines:
        if not line.strip():
            out.append(line)
            continue
        cut = min(remove, len(_indent(line)))
        out.append(add + line[cut:])
    return out


def _fit_indent(found: list[str], search: list[str], replace: list[str]) -> list[str]:
    """`replace` re-indented to sit where `search` was found as `found`.

    A constant shift (the model indented the whole block 4 spaces too little) is applied to every line.
    Otherwise (the model flattened or mangled a nested block) lines are mapped one by one: a replacement
    line equal to a SEARCH line, ignoring indentation, takes the indentation of the file line it stands
    for; a new line whose indent width the SEARCH lines used takes the file indentation that width
    stood for; any other line keeps its offset, as the model wrote it, from the nearest mapped line.
    """
    if len(found) == len(search):
        delta = _indent_delta(found, search)
        if delta is not None:
            return _reindent(replace, delta)
    strip_s = [x.strip() for x in search]
    file_of: dict[int, int] = {}  # search line -> found line
    sm = difflib.SequenceMatcher(None, strip_s, [x.strip() for x in found], autojunk=False)
    for tag, i1, i2, j1, _ in sm.get_opcodes():
        if tag in ("equal", "replace"):  # replace: same position, changed text (fuzzy drift)
            for k in range(i2 - i1):
                file_of[i1 + k] = j1 + k
    widths: dict[int, set[str]] = {}
    for i, f in file_of.items():
        if search[i].strip() and f < len(found):
            widths.setdefault(len(_indent(search[i])), set()).add(_indent(found[f]))
    width_to_indent = {w: next(iter(v)) for w, v in widths.items() if len(v) == 1}
    search_of: dict[int, int] = {}  # replacement line -> search line
    sm = difflib.SequenceMatcher(None, strip_s, [x.strip() for x in replace], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):  # a changed line in place
            for k in range(i2 - i1):
                search_of[j1 + k] = i1 + k
    first_s = next((x for x in search if x.strip()), "")
    first_f = next((x for x in found if x.strip()), "")
    anchor = (len(_indent(first_s)), _indent(first_f))  # (model's indent width, file's indent string)
    out = []
    for j, line in enumerate(replace):
        if not line.strip():
            out.append(line)
            continue
        src = search_of.get(j)
        dst = file_of.get(src) if src is not None else None
        if dst is not None and dst < len(found) and found[dst].strip():
            anchor = (len(_indent(line)), _indent(found[dst]))
            out.append(anchor[1] + line.lstrip())
            continue
        if len(_indent(line)) in width_to_indent:  # the model's indent widths map onto the file's
            out.append(width_to_indent[len(_indent(line))] + line.lstrip())
            continue
        width, ind = anchor
        diff = len(_indent(line)) - width
        out.append((ind + " " * diff if diff >= 0 else ind[: max(0, len(ind) + diff)]) + line.lstrip())
    return out


def _ranked_windows(hay: list[str], needle: list[str], threshold: float) -> list[tuple[float, int]]:
    """(similarity, start) of the windows of len(needle) lines that matter, best first: the best one and
    every one at or above `threshold` (exact difflib ratios; others are left out).

    Branch and bound: `quick_ratio` is an upper bound of `ratio` and costs a fraction of it, so windows
    are scored exactly in descending order of their bound until no remaining bound can matter. On a
    10,000-line file this is the difference between seconds and tens of milliseconds.
    """
    n = len(needle)
    target = "\n".join(x.strip() for x in needle)
    sm = difflib.SequenceMatcher(None, "", target, autojunk=False)
    stripped = [x.strip() for x in hay]
    texts = ["\n".join(stripped[i : i + n]) for i in range(max(1, len(hay) - n + 1))]
    bounds = []
    for i, text in enumerate(texts):
        sm.set_seq1(text)
        bounds.append((sm.quick_ratio(), i))
    bounds.sort(key=lambda t: (-t[0], t[1]))
    scored: list[tuple[float, int]] = []
    best = 0.0
    below = 0
    for bound, i in bounds:
        if bound < threshold:
            # No match is possible from here on; a few more exact scores find the closest lines
            # for the failure message, which need not be the very best on a huge file.
            below += 1
            if bound <= best or below > CLOSEST_TRIES:
                break
        sm.set_seq1(texts[i])
        score = sm.ratio()
        best = max(best, score)
        scored.append((score, i))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(sc, i) for sc, i in scored if sc >= threshold or sc == best]


def _quote(hay: list[str], start: int, n: int) -> str:
    shown = hay[start : start + min(n, SHOWN_LINES)]
    more = "\n    ..." if n > SHOWN_LINES else ""
    return "\n".join(f"    {start + 1 + j:>4}| {line}" for j, line in enumerate(shown)) + more


def _locate(hay: list[str], block: Block, threshold: float) -> tuple[int, list[str], str] | str:
    """(start line, replacement lines to put over len(block.search) lines, how) or a failure reason."""
    search, n = block.search, len(block.search)
    where = f"block {block.index} ({block.path})"

    def ambiguous(starts: list[int], level: str) -> str:
        listed = ", ".join(str(s + 1) for s in starts[:8])
        return (
            f"{where}: SEARCH matches {len(starts)} places ({level}) starting at lines {listed}; "
            "include more surrounding lines so it matches exactly one place."
        )

    for level, key in (("exact", lambda s: s), ("whitespace", str.rstrip)):
        starts = _windows_equal(hay, search, key)
        if len(starts) == 1:
            return starts[0], block.replace, level
        if len(starts) > 1:
            return ambiguous(starts, level)
    starts = _windows_equal(hay, search, str.strip)
    if len(starts) > 1:
        return ambiguous(starts, "ignoring indentation")
    if len(starts) == 1:
        start = starts[0]
        return start, _fit_indent(hay[start : start + n], search, block.replace), "indent"
    ranked = _ranked_windows(hay, search, threshold)
    if not ranked or not hay:
        return f"{where}: SEARCH matched nothing (the file is empty)."
    best_score, best = ranked[0]
    if best_score >= threshold:
        rivals = [s for score, s in ranked[1:] if score >= threshold and abs(s - best) >= max(1, n)]
        if rivals:
            return ambiguous([best, *rivals], f"fuzzy, similarity >= {threshold:.2f}")
        found = hay[best : best + n]
        return best, _fit_indent(found, search, block.replace), f"fuzzy {best_score:.2f}"
    return (
        f"{where}: SEARCH matched nothing (not exactly, not ignoring whitespace or indentation, and no "
        f"fuzzy match with similarity >= {threshold:.2f}). Closest lines {best + 1}-{best + n} "
        f"(similarity {best_score:.2f}):\n{_quote(hay, best, n)}\n"
        "Copy the SEARCH lines exactly from the current file."
    )


def apply_blocks(
    files: dict[str, str], reply: str, threshold: float = PROPOSER_FUZZY_THRESHOLD
) -> EditOutcome:
    """Apply every block of `reply` to `files` (path -> text), in order; failed blocks are reported."""
    paths = list(files)
    blocks, failures = parse_blocks(reply, paths)
    out = dict(files)
    outcome = EditOutcome(files=out, failures=failures)
    for block in blocks:
        assert block.path is not None  # parse_blocks only returns resolved blocks
        text = out[block.path]
        hay = text.splitlines()
        if not any(x.strip() for x in block.search):
            if text.strip():
                outcome.failures.append(
                    BlockFailure(
                        block.index,
                        block.path,
                        f"block {block.index} ({block.path}): SEARCH is empty but the file is not; quote "
                        "the lines to replace.",
                    )
                )
                continue
            out[block.path] = "\n".join(block.replace) + ("\n" if block.replace else "")
            outcome.applied.append(block.index)
            outcome.how[block.index] = "create"
            continue
        found = _locate(hay, block, threshold)
        if isinstance(found, str):
            outcome.failures.append(BlockFailure(block.index, block.path, found))
            continue
        start, replacement, how = found
        hay[start : start + len(block.search)] = replacement
        trailing = "\n" if text.endswith("\n") or not text else ""
        out[block.path] = "\n".join(hay) + (trailing if hay else "")
        outcome.applied.append(block.index)
        outcome.how[block.index] = how
    outcome.failures.sort(key=lambda f: f.index)
    return outcome
