"""Proposer specs (`--proposer SPEC[=WEIGHT]`), the proposers config file, and building proposers.

Spec grammar (the name of a proposer is its spec without the weight):

    classical
    anthropic:<model>                          key from ANTHROPIC_API_KEY
    openai:<model>                             key from OPENAI_API_KEY
    openai-compatible:<model>@<base_url>       no key needed; `?key_env=VAR` names the variable to read
    ... =WEIGHT                                relative share of experiments (default 1)

e.g. `openai-compatible:qwen3@http://127.0.0.1:8000/v1?key_env=VLLM_KEY=0.3`. For anthropic/openai,
`?key_env=VAR` also works (`anthropic:claude-sonnet-4-5?key_env=TEAM_KEY`).

The config file (`--proposers-config FILE`, TOML) holds the same plus prices and limits:

    bandit = false                 # cost-aware bandit instead of fixed weights
    [limits]                       # all optional; defaults in swarm.defaults
    max_retries = 3
    timeout_s = 120
    max_edit_attempts = 3
    max_repairs = 2
    context_tokens = 24000
    [[proposer]]
    spec = "anthropic:claude-sonnet-4-5"
    weight = 0.3
    input_usd_per_mtok = 3.0
    output_usd_per_mtok = 15.0
    key_env = "ANTHROPIC_API_KEY"  # optional

Specs given on the command line replace the file's list but take prices/key_env from a file entry of
the same name. A bad spec or file is a one-line UserError; a named provider whose key variable is unset
is a UserError at start (`build_proposers`), not a failure at the first call.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swarm.defaults import (
    PROPOSER_BACKOFF_S,
    PROPOSER_CONTEXT_TOKENS,
    PROPOSER_FUZZY_THRESHOLD,
    PROPOSER_MAX_EDIT_ATTEMPTS,
    PROPOSER_MAX_OUTPUT_TOKENS,
    PROPOSER_MAX_REPAIRS,
    PROPOSER_MAX_RETRIES,
    PROPOSER_PAUSE_AFTER,
    PROPOSER_PAUSE_MAX_S,
    PROPOSER_PAUSE_S,
    PROPOSER_TIMEOUT_S,
)
from swarm.errors import UserError
from swarm.proposers.base import Proposer
from swarm.proposers.health import HealthPolicy
from swarm.proposers.llm import LLMLimits, LLMProposer
from swarm.proposers.providers import AnthropicClient, ChatClient, OpenAIClient, Prices

Kind = Literal["classical", "anthropic", "openai", "openai-compatible"]
DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
# vLLM/Ollama/llama.cpp ignore the key, but the openai SDK refuses an empty one. Never the user's
# OPENAI_API_KEY: that would send a real secret to whatever URL the spec names.
LOCAL_PLACEHOLDER_KEY = "EMPTY"
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WEIGHT_RE = re.compile(r"^(?P<body>.+)=(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")


class ProposerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    model: str = Field(default="", max_length=200)
    base_url: str | None = Field(default=None, max_length=1000)
    key_env: str | None = Field(default=None, max_length=200)
    weight: float = Field(default=1.0, ge=0.0, le=1e6)
    input_usd_per_mtok: float = Field(default=0.0, ge=0.0)
    output_usd_per_mtok: float = Field(default=0.0, ge=0.0)

    @property
    def name(self) -> str:
        if self.kind == "classical":
            return "classical"
        if self.kind == "openai-compatible":
            return f"openai-compatible:{self.model}@{self.base_url}"
        return f"{self.kind}:{self.model}"


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(default=PROPOSER_MAX_RETRIES, ge=0, le=20)
    timeout_s: float = Field(default=PROPOSER_TIMEOUT_S, gt=0, le=3600)
    max_edit_attempts: int = Field(default=PROPOSER_MAX_EDIT_ATTEMPTS, ge=1, le=10)
    max_repairs: int = Field(default=PROPOSER_MAX_REPAIRS, ge=0, le=10)
    context_tokens: int = Field(default=PROPOSER_CONTEXT_TOKENS, ge=1000, le=2_000_000)
    max_output_tokens: int = Field(default=PROPOSER_MAX_OUTPUT_TOKENS, ge=256, le=200_000)
    fuzzy_threshold: float = Field(default=PROPOSER_FUZZY_THRESHOLD, gt=0.5, le=1.0)
    backoff_s: float = Field(default=PROPOSER_BACKOFF_S, ge=0, le=3600)
    pause_after: int = Field(default=PROPOSER_PAUSE_AFTER, ge=1, le=100)
    pause_s: float = Field(default=PROPOSER_PAUSE_S, ge=0, le=86_400)
    pause_max_s: float = Field(default=PROPOSER_PAUSE_MAX_S, ge=0, le=86_400)

    def health(self) -> HealthPolicy:
        return HealthPolicy(self.backoff_s, self.pause_after, self.pause_s, max(self.pause_s, self.pause_max_s))


class ProposersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bandit: bool = False
    limits: Limits = Limits()
    proposers: list[ProposerSpec] = Field(default_factory=list, max_length=64)


def parse_spec(text: str) -> ProposerSpec:
    """`SPEC[=WEIGHT]` -> ProposerSpec, or a one-line UserError saying what is wrong."""
    raw = text.strip()
    weight = 1.0
    m = WEIGHT_RE.match(raw)
    if m:
        raw, weight = m.group("body"), float(m.group("weight"))
    if raw == "classical":
        return ProposerSpec(kind="classical", weight=weight)
    kind, sep, rest = raw.partition(":")
    if not sep or kind not in ("anthropic", "openai", "openai-compatible"):
        raise UserError(
            f"bad proposer spec {text!r}: expected classical, anthropic:<model>, openai:<model> or "
            "openai-compatible:<model>@<base_url>, optionally =WEIGHT"
        )
    key_env: str | None = None
    base_url: str | None = None
    if kind == "openai-compatible":
        model, at, url = rest.partition("@")
        if not at or not url.startswith(("http://", "https://")):
            raise UserError(
                f"bad proposer spec {text!r}: openai-compatible needs <model>@http(s)://host[:port]/v1"
            )
        base_url, key_env = _split_key_env(url, text)
    else:
        model, q, query = rest.partition("?")
        if q:
            params = dict(parse_qsl(query))
            if set(params) != {"key_env"}:
                raise UserError(f"bad proposer spec {text!r}: the only option is ?key_env=VAR")
            key_env = params["key_env"]
    if not model or any(c.isspace() for c in model):
        raise UserError(f"bad proposer spec {text!r}: missing or malformed model name")
    if key_env is not None and not ENV_NAME_RE.match(key_env):
        raise UserError(
            f"bad proposer spec {text!r}: key_env {key_env!r} is not an environment variable name"
        )
    try:
        return ProposerSpec(kind=kind, model=model, base_url=base_url, key_env=key_env, weight=weight)
    except ValidationError as err:
        raise UserError(f"bad proposer spec {text!r}: {err.errors()[0]['msg']}") from err


def _split_key_env(url: str, text: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    if not parts.netloc:
        raise UserError(f"bad proposer spec {text!r}: base URL {url!r} has no host")
    params = parse_qsl(parts.query, keep_blank_values=True)
    key_env = next((v for k, v in params if k == "key_env"), None)
    rest = urlencode([(k, v) for k, v in params if k != "key_env"])
    return urlunsplit(parts._replace(query=rest)), key_env


def load_config(path: Path | str | None) -> ProposersConfig:
    """The proposers config file (TOML), or the defaults when `path` is None."""
    if path is None:
        return ProposersConfig()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read proposers config {p}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"proposers config {p} is not valid TOML: {err}") from err
    entries = data.pop("proposer", [])
    if not isinstance(entries, list):
        raise UserError(f"proposers config {p}: `proposer` must be an array of tables ([[proposer]])")
    specs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "spec" not in entry:
            raise UserError(f"proposers config {p}: [[proposer]] #{i + 1} needs a `spec`")
        base = parse_spec(str(entry.pop("spec")))
        try:
            specs.append(ProposerSpec.model_validate({**base.model_dump(), **entry}))
        except ValidationError as err:
            e = err.errors()[0]
            raise UserError(
                f"proposers config {p}: [[proposer]] #{i + 1}: {e['loc'][0]}: {e['msg']}"
            ) from err
    try:
        return ProposersConfig.model_validate({**data, "proposers": specs})
    except ValidationError as err:
        e = err.errors()[0]
        raise UserError(f"proposers config {p}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from err


def resolve_specs(cli_specs: list[str], config: ProposersConfig) -> list[ProposerSpec]:
    """The specs to run: the command line's (enriched from same-named file entries) or the file's."""
    by_name = {s.name: s for s in config.proposers}
    if not cli_specs:
        specs = list(config.proposers)
    else:
        specs = []
        for text in cli_specs:
            s = parse_spec(text)
            known = by_name.get(s.name)
            if known is not None:
                s = known.model_copy(update={"weight": s.weight, "key_env": s.key_env or known.key_env})
            specs.append(s)
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"proposer {dupes[0]} is given more than once")
    if specs and sum(s.weight for s in specs) <= 0:
        raise UserError("proposer weights must not all be zero")
    return specs


def api_key(spec: ProposerSpec, env: Mapping[str, str]) -> str:
    """The key for `spec` from `env`; UserError naming the variable when a named provider lacks one."""
    var = spec.key_env or DEFAULT_KEY_ENV.get(spec.kind)
    if var is None:
        return LOCAL_PLACEHOLDER_KEY
    value = env.get(var, "").strip()
    if not value:
        raise UserError(
            f"proposer {spec.name} needs an API key: set {var} (or name another with ?key_env=VAR)"
        )
    return value


def make_client(spec: ProposerSpec, limits: Limits, env: Mapping[str, str]) -> ChatClient:
    key = api_key(spec, env)
    prices = Prices(spec.input_usd_per_mtok, spec.output_usd_per_mtok)
    common = {"timeout_s": limits.timeout_s, "max_retries": limits.max_retries, "prices": prices}
    if spec.kind == "anthropic":
        return AnthropicClient(spec.name, spec.model, key, **common)  # type: ignore[arg-type]
    if spec.kind == "openai":
        return OpenAIClient(spec.name, spec.model, key, **common)  # type: ignore[arg-type]
    return OpenAIClient(spec.name, spec.model, key, base_url=spec.base_url, compatible=True, **common)  # type: ignore[arg-type]


def build_proposers(
    specs: list[ProposerSpec],
    config: ProposersConfig,
    classical_factory: Callable[[], Proposer],
    env: Mapping[str, str] | None = None,
) -> list[Proposer]:
    """One Proposer per spec, in order (weights: `[s.weight for s in specs]`). Keys are checked for all
    specs before any client is built, so a missing key fails at start with nothing half-built."""
    env = os.environ if env is None else env
    for s in specs:
        if s.kind != "classical":
            api_key(s, env)
    lim = config.limits
    llm_limits = LLMLimits(
        lim.max_edit_attempts, lim.max_repairs, lim.context_tokens, lim.max_output_tokens, lim.fuzzy_threshold
    )
    out: list[Proposer] = []
    for s in specs:
        if s.kind == "classical":
            out.append(classical_factory())
        else:
            out.append(LLMProposer(s.name, make_client(s, lim, env), llm_limits))
    return out
