"""The classical proposer: offline hyperparameter search over the editable file's constants.

It needs no API key, so it is the default proposer and what lets the whole swarm run and test
offline. It reads the *tunable constants* of the leader's editable files: top-level UPPER_CASE
assignments on one line whose value is a numeric literal, or a per-profile dict of numeric literals
(only the entry of the agent's profile is tuned):

    MATRIX_LR = 0.04                       # Muon learning rate
    WARMDOWN_RATIO = 0.5                   # fraction of the budget spent decaying the LR
    TOTAL_BATCH_SIZE = 2**19               # tokens per optimizer step
    DEPTH = {"cpu": 4, "gpu": 8}           # transformer blocks
    SOFTCAP = 15.0                         # [10, 30] linear   <- optional hint: range and scale
    SEED = 42                              # never tuned (a seed is noise, not a hyperparameter)

Each constant gets a search space derived from its current value (`search_space`, rules in
docs/classical.md); an inline `# [lo, hi] log|linear|int|pow2` hint overrides it and `# [fixed]`
excludes the constant. Booleans and strings are never tuned.

`ideate` replays the board's history into an in-memory Optuna study (classical results carry the
point they tried in `meta`; the current leader is one more observation), asks the TPE sampler for new
points, and keeps only 1-3 of the sampled changes per idea (those TPE moved furthest from the
leader), so every idea is a local move around the leader: under a noisy metric a small move is
attributable, and it composes with whatever other agents change meanwhile. Crashes and timeouts are
told as the worst value seen (TPE ignores failed trials, and an out-of-memory region must look bad);
`invalid` results and results without a metric are skipped (a patch that did not apply says nothing
about the point). Each idea carries a unified diff that edits only the value text of the chosen lines,
so comments and alignment survive. Output is deterministic given `seed` and the sequence of contexts.

    proposer = ClassicalProposer(seed=7)
    ideas, usage = proposer.ideate(ctx, n=3)
"""

from __future__ import annotations

import ast
import io
import json
import logging
import math
import random
import re
import tokenize
import warnings
from dataclasses import dataclass

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from swarm import defaults
from swarm.code.diff import make_patch
from swarm.errors import ProposerError
from swarm.models import Direction, Status
from swarm.proposers.base import Idea, ProposalContext, Usage

log = logging.getLogger(__name__)

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
META_CHANGED = "changed"  # comma-separated keys this idea changed; marks a result as classical
META_PROFILE = "profile"  # the profile whose per-profile entries the values belong to
FAILED_STATUSES = (Status.CRASH, Status.TIMEOUT)  # told as the worst value seen
SCORED_STATUSES = (Status.KEEP, Status.DISCARD)  # told with their metric


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


def _point_sig(point: dict[str, float | int]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in point.items()))


class ClassicalProposer:
    """Optuna-TPE local search over the editable files' numeric constants (see module docstring).

    `seed`: makes the sequence of ideate calls reproducible (give each agent its own seed, or agents
    sharing a leader propose the same points and rely on board dedup). `sampler`: "tpe" (default) or
    "random" (same local moves, uniform draws: the baseline of scripts/bench_classical.py).
    `max_changes`: constants changed per idea (1..max_changes)."""

    name = "classical"
    can_implement = False

    def __init__(
        self,
        seed: int | None = None,
        *,
        sampler: str = "tpe",
        max_changes: int = defaults.CLASSICAL_MAX_CHANGES,
        n_startup_trials: int = defaults.CLASSICAL_STARTUP_TRIALS,
    ) -> None:
        if sampler not in ("tpe", "random"):
            raise ProposerError(f"classical: unknown sampler {sampler!r} (tpe or random)")
        if max_changes < 1:
            raise ProposerError("classical: max_changes must be >= 1")
        self.seed = seed
        self.sampler = sampler
        self.max_changes = max_changes
        self.n_startup_trials = n_startup_trials
        self._rng = random.Random(seed)

    # --- the Proposer protocol -------------------------------------------------------------------
    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        constants = [c for c in parse_constants(ctx.files, ctx.profile) if search_space(c) is not None]
        if not constants:
            raise ProposerError(
                "classical: no tunable constants in the editable files (top-level UPPER_CASE numeric "
                "literals, one per line)"
            )
        spaces = {c.key: s for c in constants if (s := search_space(c)) is not None}
        leader = {c.key: c.value for c in constants}
        call_seed = self._rng.randrange(2**31)
        with warnings.catch_warnings():
            # TPE's options are marked experimental in some Optuna versions; the warning is noise
            # here and pytest turns warnings into errors.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            ideas = self._ideate(ctx, n, constants, spaces, leader, call_seed)
        return ideas, Usage()

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        raise ProposerError(
            "the classical proposer cannot implement free text: it only claims hypotheses that carry a patch"
        )

    def repair(
        self, hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str
    ) -> tuple[dict[str, str] | None, Usage]:
        return None, Usage()

    # --- internals -------------------------------------------------------------------------------
    def _ideate(
        self,
        ctx: ProposalContext,
        n: int,
        constants: list[Constant],
        spaces: dict[str, Space],
        leader: dict[str, float | int],
        call_seed: int,
    ) -> list[Idea]:
        dists = {k: s.distribution() for k, s in spaces.items()}
        sampler: optuna.samplers.BaseSampler
        if self.sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=call_seed, n_startup_trials=self.n_startup_trials)
        else:
            sampler = optuna.samplers.RandomSampler(seed=call_seed)
        direction = StudyDirection.MAXIMIZE if ctx.direction is Direction.MAXIMIZE else StudyDirection.MINIMIZE
        study = optuna.create_study(direction=direction, sampler=sampler)
        n_obs, n_failed, tried, best = self._replay(study, ctx, spaces, leader)
        rng = random.Random(call_seed)
        by_key = {c.key: c for c in constants}
        ideas: list[Idea] = []
        seen = set(tried) | {_point_sig(leader)}
        for _ in range(max(1, n) * defaults.CLASSICAL_TRIES_PER_IDEA):
            if len(ideas) >= n:
                break
            trial = study.ask(dists)
            proposal = {k: spaces[k].to_value(trial.params[k]) for k in spaces}
            study.tell(trial, state=TrialState.FAIL)  # only the chosen local move stays in the study
            chosen = self._choose(proposal, leader, spaces, rng)
            if not chosen:
                continue
            point = {**leader, **{k: proposal[k] for k in chosen}}
            sig = _point_sig(point)
            if sig in seen:
                continue
            seen.add(sig)
            # Pending (constant liar): the next ask in this batch steers away from this point.
            self._add(study, spaces, point, None, TrialState.RUNNING)
            ideas.append(self._idea(ctx, [by_key[k] for k in chosen], point, n_obs, n_failed, best))
        return ideas

    def _replay(
        self,
        study: optuna.Study,
        ctx: ProposalContext,
        spaces: dict[str, Space],
        leader: dict[str, float | int],
    ) -> tuple[int, int, set[tuple[tuple[str, float], ...]], tuple[float, dict[str, float | int]] | None]:
        """Tell the study every observation: the leader and each classical result of this profile.
        Returns (#observations, #crash/timeout, points tried on the current leader, best (value, point))."""
        obs: list[tuple[dict[str, float | int], float | None]] = []
        tried: set[tuple[tuple[str, float], ...]] = set()
        if ctx.leader_metric is not None and math.isfinite(ctx.leader_metric):
            obs.append((dict(leader), ctx.leader_metric))
        for r in ctx.history:
            if META_CHANGED not in r.meta or r.meta.get(META_PROFILE, ctx.profile) != ctx.profile:
                continue
            point = {**leader, **{k: v for k, v in r.meta.items() if k in spaces and not isinstance(v, str)}}
            if r.on_current_leader:
                tried.add(_point_sig(point))  # whatever its outcome, it was tried here
            if r.status in SCORED_STATUSES and r.metric is not None and math.isfinite(r.metric):
                obs.append((point, r.metric))
            elif r.status in FAILED_STATUSES:
                obs.append((point, None))
        values = [v for _, v in obs if v is not None]
        n_failed = sum(1 for _, v in obs if v is None)
        if not values:
            return 0, n_failed, tried, None
        worst = min(values, key=lambda v: ctx.direction.gain(0.0, v))
        for point, value in obs:
            self._add(study, spaces, point, worst if value is None else value, TrialState.COMPLETE)
        scored = [(v, p) for p, v in obs if v is not None]
        best = max(scored, key=lambda vp: ctx.direction.gain(0.0, vp[0]))
        return len(obs), n_failed, tried, best

    @staticmethod
    def _add(
        study: optuna.Study,
        spaces: dict[str, Space],
        point: dict[str, float | int],
        value: float | None,
        state: TrialState,
    ) -> None:
        params: dict[str, float | int] = {}
        dists: dict[str, BaseDistribution] = {}
        for k, s in spaces.items():
            x = s.to_internal(point[k]) if k in point else None
            if x is not None:  # a value outside today's space (the leader moved) informs nothing here
                params[k] = x
                dists[k] = s.distribution()
        if params:
            study.add_trial(create_trial(state=state, value=value, params=params, distributions=dists))

    def _choose(
        self,
        proposal: dict[str, float | int],
        leader: dict[str, float | int],
        spaces: dict[str, Space],
        rng: random.Random,
    ) -> list[str]:
        """1..max_changes keys to change, drawn with weight = how far the sampler moved each one
        (normalised on its own scale): TPE moves a constant far when its good region lies away from the
        leader's value, so those moves are the informative ones."""
        weights: dict[str, float] = {}
        for k, s in spaces.items():
            if proposal[k] == leader[k]:
                continue
            a, b = s.to_internal(proposal[k]), s.to_internal(leader[k])
            if a is None:
                continue
            if b is None:
                weights[k] = 1.0
                continue
            if s.log and s.kind != "pow2":
                span, dist = math.log(s.high / s.low), abs(math.log(float(a) / float(b)))
            else:
                span, dist = s.high - s.low, abs(float(a) - float(b))
            weights[k] = 0.05 + dist / span
        if not weights:
            return []
        size = min(len(weights), rng.randint(1, self.max_changes))
        keys = sorted(weights)
        chosen: list[str] = []
        for _ in range(size):
            k = rng.choices(keys, weights=[weights[x] for x in keys])[0]
            chosen.append(k)
            keys.remove(k)
        return sorted(chosen, key=list(spaces).index)

    def _idea(
        self,
        ctx: ProposalContext,
        chosen: list[Constant],
        point: dict[str, float | int],
        n_obs: int,
        n_failed: int,
        best: tuple[float, dict[str, float | int]] | None,
    ) -> Idea:
        new_text = {c: format_value(c, point[c.key]) for c in chosen}
        after = apply_values(ctx.files, new_text)
        before = {p: ctx.files[p] for p in sorted({c.path for c in chosen})}
        patch = make_patch(before, {p: after[p] for p in before})
        moves = ", ".join(f"{c.label} {c.text} -> {new_text[c]}" for c in chosen)
        sampler = "Optuna TPE" if self.sampler == "tpe" else "uniform random"
        if self.sampler == "tpe" and n_obs - n_failed < self.n_startup_trials:
            basis = (
                f"{n_obs - n_failed} scored observations on this track are fewer than the "
                f"{self.n_startup_trials} TPE needs, so this is a random draw around the leader"
            )
        elif self.sampler == "tpe":
            basis = f"TPE's model of the {n_obs} observations ranks this region among the promising ones"
        else:
            basis = f"a uniform draw over the search space ({n_obs} observations ignored)"
        if best is not None:
            leader = {**point, **{c.key: c.value for c in chosen}}
            diff = [f"{k}={v:g}" for k, v in best[1].items() if v != leader.get(k)]
            leader_best = ctx.leader_metric is not None and best[0] == ctx.leader_metric
            basis += (
                f"; the leader is the best observation ({ctx.metric_name} {best[0]:.6g})"
                if leader_best or not diff
                else f"; best observed {ctx.metric_name} {best[0]:.6g} had {', '.join(diff[:6])}"
            )
        if n_failed:
            basis += f"; {n_failed} crashed/timed-out points were told as the worst value"
        rationale = (
            f"{sampler} sampler over {len(point)} tunable constants: {basis}. "
            f"Changes {len(chosen)} constant(s) and keeps the rest at the leader's values: a local move "
            "whose effect stays attributable under seed noise."
        )
        meta: dict[str, float | int | str] = {
            META_CHANGED: ",".join(c.key for c in chosen),
            META_PROFILE: ctx.profile,
            **point,
        }
        if len(json.dumps(meta)) > defaults.META_MAX_BYTES:  # keep only what changed
            meta = {
                META_CHANGED: meta[META_CHANGED],
                META_PROFILE: ctx.profile,
                **{c.key: point[c.key] for c in chosen},
            }
        return Idea(
            title=f"classical: {moves}", rationale=rationale, patch=patch, tags=["classical"], meta=meta
        )
