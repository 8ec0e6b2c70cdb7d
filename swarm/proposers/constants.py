"""The tunable constants of an editable file, the search space of each, and editing their values.

    constants = parse_constants(files, profile)      # top-level UPPER_CASE numeric literals (or the
                                                     # profile's entry of a per-profile dict)
    space = search_space(constants[0])               # None: not tuned (a seed, a bool, `# [fixed]`)
    new_files = apply_values(files, {c: format_value(c, 0.03)})   # only the value text changes

A space is derived from the constant's current value and name (rules in docs/classical.md); an
inline `# [lo, hi] log|linear|int|pow2` hint overrides it and `# [fixed]` excludes the constant.
Used by the classical proposer (`swarm.proposers.classical`).
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from swarm import defaults
from swarm.errors import ProposerError

NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Never tuned: a seed moves the metric by noise only, and chasing that is what the loop must not do.
UNTUNED_RE = re.compile(r"SEED")
# Names that read as a share of something in [0, 1]: tuned on a linear scale.
FRACTION_RE = re.compile(r"FRAC|RATIO|WARMUP|WARMDOWN|COOLDOWN|DROPOUT|MOMENTUM|BETA|PROB|PCT|SHARE")
# Names that read as a rate or a scale even when they lie in [0, 1]: tuned on a log scale.
LOGNAME_RE = re.compile(r"LR|LEARNING_RATE|EPS|STD|WD|WEIGHT_DECAY|DECAY|SCALE|INIT|TEMP|CLIP")
HINT_RE = re.compile(
    r"\[\s*([-+]?[0-9][0-9_.eE+-]*)\s*,\s*([-+]?[0-9][0-9_.eE+-]*)\s*\]\s*(log|linear|int|pow2)?"
)
FIXED_HINT_RE = re.compile(r"\[\s*fixed\s*\]")


@dataclass(frozen=True)
class Constant:
    """One tunable constant as it appears in an editable file."""

    path: str  # editable file, relative to the arena
    name: str  # the UPPER_CASE name
    key: str  # unique id across files: the name, or "path:NAME" when two files share a name
    value: float | int
    text: str  # the literal as written: "3e-3", "2**19", "-0.5"
    line: int  # 1-based line number
    col: int  # character offsets of `text` within the line
    end_col: int
    profile_entry: str | None  # the dict key for a per-profile constant, else None
    comment: str  # the trailing comment, without "#"

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)

    @property
    def label(self) -> str:
        return f"{self.name}[{self.profile_entry}]" if self.profile_entry else self.name


@dataclass(frozen=True)
class Space:
    """Where a constant may move. `kind`: float (optionally log, optionally negated), int, pow2."""

    kind: str  # "float", "int" or "pow2"
    low: float  # bounds of the value (pow2: of the exponent; negative floats: of the magnitude)
    high: float
    log: bool = False
    negative: bool = False  # negative floats are searched on their magnitude

    def distribution(self) -> BaseDistribution:
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        return IntDistribution(int(self.low), int(self.high), log=self.log and self.kind == "int")

    @property
    def span(self) -> float:
        """The width of the space in its natural coordinate (`coordinate`)."""
        if self.log and self.kind != "pow2":
            return math.log(self.high / self.low)
        return float(self.high - self.low)  # pow2: the bounds are exponents already

    def coordinate(self, value: float) -> float | None:
        """The natural coordinate of a constant value, the one distances in this space are measured in:
        log for log spaces, the exponent for powers of two, else the value (negative floats: the
        magnitude). None where it has none (a log of a value <= 0)."""
        v = abs(float(value)) if self.negative else float(value)
        if self.kind == "pow2":
            return math.log2(v) if v > 0 else None
        if self.log:
            return math.log(v) if v > 0 else None
        return v

    def to_internal(self, value: float) -> float | int | None:
        """The Optuna parameter for a constant value, or None when it lies outside this space."""
        if self.kind == "pow2":
            v = int(value)
            if v != value or v < 1 or v & (v - 1):
                return None
            x: float = v.bit_length() - 1
        elif self.kind == "int":
            if int(value) != value:
                return None
            x = int(value)
        else:
            x = -float(value) if self.negative else float(value)
        return x if self.low <= x <= self.high else None

    def to_value(self, x: float) -> float | int:
        """The rounded constant value for an Optuna parameter."""
        if self.kind == "pow2":
            return int(2 ** int(x))
        if self.kind == "int":
            return round(x)
        if self.log:
            v = _round_sig(x, defaults.CLASSICAL_SIG_DIGITS)
        else:  # linear: two decimal steps finer than the width of the range
            step = 10.0 ** (math.floor(math.log10(self.high - self.low)) - 1)
            v = round(round(x / step) * step, 12)
        v = min(max(v, self.low), self.high)
        return -v if self.negative else v


def _round_sig(x: float, digits: int) -> float:
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _numeric(node: ast.expr) -> tuple[float | int, bool] | None:
    """(value, written as 2**k) for a numeric literal expression, else None. Booleans are not numbers."""
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value, False
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _numeric(node.operand)
        if inner is not None and not inner[1]:
            return (-inner[0] if isinstance(node.op, ast.USub) else inner[0]), False
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Pow)
        and isinstance(node.left, ast.Constant)
        and node.left.value == 2
        and type(node.left.value) is int
        and isinstance(node.right, ast.Constant)
        and type(node.right.value) is int
        and 0 <= node.right.value < 64
    ):
        return 2**node.right.value, True
    return None


def _comments(text: str) -> dict[int, tuple[int, str]]:
    """Line number -> (character column of '#', comment text) for every comment in the file."""
    out: dict[int, tuple[int, str]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = (tok.start[1], tok.string[1:].strip())
    return out


def _char_col(line: str, byte_col: int) -> int:
    """ast reports UTF-8 byte offsets; edits need character offsets."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def parse_constants(files: dict[str, str], profile: str) -> list[Constant]:
    """Every tunable constant of the editable files, in file then line order (see module docstring).
    Raises ProposerError if a file does not parse."""
    found: list[Constant] = []
    for path, text in sorted(files.items()):
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(text)
            comments = _comments(text)
        except (SyntaxError, tokenize.TokenError) as e:
            raise ProposerError(f"classical: cannot parse {path}: {e}") from e
        lines = text.splitlines(keepends=True)
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            else:
                continue
            if not isinstance(target, ast.Name) or not NAME_RE.match(target.id):
                continue
            if stmt.lineno != stmt.end_lineno:  # one constant per line, or we could not edit it safely
                continue
            node: ast.expr | None = value
            entry: str | None = None
            if isinstance(value, ast.Dict):
                node, entry = None, profile
                for k, v in zip(value.keys, value.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == profile:
                        node = v
                if node is None:
                    continue
            parsed = _numeric(node) if node is not None else None
            if node is None or parsed is None or node.end_col_offset is None:
                continue
            line = lines[stmt.lineno - 1]
            col, end = _char_col(line, node.col_offset), _char_col(line, node.end_col_offset)
            found.append(
                Constant(
                    path=path,
                    name=target.id,
                    key=target.id,
                    value=parsed[0],
                    text=line[col:end],
                    line=stmt.lineno,
                    col=col,
                    end_col=end,
                    profile_entry=entry,
                    comment=comments.get(stmt.lineno, (0, ""))[1],
                )
            )
    names = [c.name for c in found]
    return [
        Constant(**{**c.__dict__, "key": f"{c.path}:{c.name}"}) if names.count(c.name) > 1 else c
        for c in found
    ]


def _hinted_space(c: Constant) -> Space | None:
    m = HINT_RE.search(c.comment)
    if m is None:
        return None
    try:
        low, high = float(m.group(1)), float(m.group(2))
    except ValueError:
        return None
    scale = m.group(3)
    if not low < high:
        return None
    if scale == "pow2" or (scale is None and c.is_int and _is_pow2(c.value) and c.value >= 2):
        if low < 1:
            return None
        lo_k, hi_k = math.ceil(math.log2(low)), math.floor(math.log2(high))
        return Space("pow2", lo_k, hi_k) if lo_k < hi_k else None
    log_scale = scale == "log" or (scale is None and low > 0 and high / low >= 10)
    if c.is_int or scale == "int":
        lo_i, hi_i = math.ceil(low), math.floor(high)
        if lo_i >= hi_i or (log_scale and lo_i < 1):
            return None
        return Space("int", lo_i, hi_i, log=log_scale)
    if log_scale and low <= 0:
        if high < 0:  # a negative range on a log scale: search the magnitude
            return Space("float", -high, -low, log=True, negative=True)
        return Space("float", low, high)
    return Space("float", low, high, log=log_scale)


def _is_pow2(v: float | int) -> bool:
    return isinstance(v, int) and v >= 1 and v & (v - 1) == 0


def search_space(c: Constant) -> Space | None:
    """The search space of one constant, or None when it is not tuned. Rules (docs/classical.md):
    a `# [lo, hi] scale` hint wins and `# [fixed]` or a SEED name excludes; ints <= 1 are flags or
    counts of one and stay; powers of two >= CLASSICAL_POW2_MIN move by up to CLASSICAL_POW2_STEPS
    doublings; other ints >= 2 on a log scale within x/2..x*2; floats named or valued like a
    fraction of [0, 1] linearly within +-0.25 and halfway to 0 or 1; other floats on a log scale
    within x/4..x*4 (negative ones on their magnitude)."""
    if FIXED_HINT_RE.search(c.comment) or UNTUNED_RE.search(c.name):
        return None
    hinted = _hinted_space(c)
    if hinted is not None or HINT_RE.search(c.comment):
        return hinted
    v = c.value
    if isinstance(v, int):
        if v <= 1:
            return None
        if _is_pow2(v) and v >= defaults.CLASSICAL_POW2_MIN:
            k = v.bit_length() - 1
            return Space("pow2", max(0, k - defaults.CLASSICAL_POW2_STEPS), k + defaults.CLASSICAL_POW2_STEPS)
        f = defaults.CLASSICAL_INT_FACTOR
        return Space("int", max(1, math.ceil(v / f)), math.floor(v * f), log=True)
    fraction_named = bool(FRACTION_RE.search(c.name))
    rate_named = bool(LOGNAME_RE.search(c.name)) and not fraction_named
    if 0.0 <= v <= 1.0 and (v == 0.0 or fraction_named or (v >= 0.1 and v < 1.0 and not rate_named)):
        d = defaults.CLASSICAL_FRACTION_STEP
        low = max(v - d, v / 2) if v > 0 else 0.0
        high = min(v + d, (1 + v) / 2) if v < 1 else 1.0
        return Space("float", low, high)
    f = defaults.CLASSICAL_FLOAT_FACTOR
    if v < 0:
        return Space("float", -v / f, -v * f, log=True, negative=True)
    return Space("float", v / f, v * f, log=True)


def format_value(c: Constant, value: float | int) -> str:
    """The literal for a new value, in the style of the old one (2**k stays 2**k, 3e-3 stays 3e-3)."""
    if c.is_int:
        if c.text.replace(" ", "").startswith("2**") and _is_pow2(value):
            return f"2**{int(value).bit_length() - 1}"
        return str(int(value))
    x = float(value)
    exp = math.floor(math.log10(abs(x))) if x != 0 else 0
    if "e" in c.text.lower() and exp != 0:
        mant = round(x / 10**exp, 10)
        mant_text = f"{mant:g}"
        if "." not in mant_text and "." in c.text.lower().split("e")[0]:
            mant_text += ".0"
        return f"{mant_text}e{exp}"
    return repr(x)


def apply_values(files: dict[str, str], changes: dict[Constant, str]) -> dict[str, str]:
    """New file contents with each constant's value text replaced. Only those lines change; the gap
    before a trailing comment absorbs the length difference so comment columns stay aligned."""
    out = dict(files)
    by_path: dict[str, list[tuple[Constant, str]]] = {}
    for c, new in changes.items():
        by_path.setdefault(c.path, []).append((c, new))
    for path, items in by_path.items():
        lines = out[path].splitlines(keepends=True)
        comments = _comments(out[path])
        for c, new in items:
            line = lines[c.line - 1]
            if line[c.col : c.end_col] != c.text:
                raise ProposerError(f"classical: {path}:{c.line} no longer holds {c.name} = {c.text}")
            edited = line[: c.col] + new + line[c.end_col :]
            delta = len(new) - len(c.text)
            hash_col = comments.get(c.line, (-1, ""))[0]
            if hash_col > c.end_col and delta != 0:
                gap_end = hash_col + delta
                gap_start = len(edited[:gap_end].rstrip())
                gap = gap_end - gap_start
                keep = 2 if gap >= 2 else 1
                new_gap = max(keep, gap - delta)
                edited = edited[:gap_start] + " " * new_gap + edited[gap_end:]
            lines[c.line - 1] = edited
        out[path] = "".join(lines)
    return out
