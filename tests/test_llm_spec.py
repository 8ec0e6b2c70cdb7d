"""Proposer specs, the proposers config file, and building proposers (swarm.proposers.spec)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_server import Scripted, ScriptedServer

from swarm.errors import UserError
from swarm.models import Direction
from swarm.proposers.base import Idea, ProposalContext, Usage
from swarm.proposers.llm import LLMProposer
from swarm.proposers.providers import AnthropicClient, OpenAIClient
from swarm.proposers.select import Selector
from swarm.proposers.spec import build_proposers, load_config, parse_spec, resolve_specs


class FakeClassical:
    name = "classical"
    can_implement = False

    def ideate(self, ctx: ProposalContext, n: int) -> tuple[list[Idea], Usage]:
        return [], Usage()

    def implement(self, hypothesis: str, ctx: ProposalContext) -> tuple[dict[str, str], Usage]:
        raise NotImplementedError

    def repair(
        self, hypothesis: str, ctx: ProposalContext, files: dict[str, str], error_tail: str
    ) -> tuple[dict[str, str] | None, Usage]:
        return None, Usage()


def test_parse_specs() -> None:
    assert parse_spec("classical").kind == "classical"
    assert parse_spec("classical=0.7").weight == 0.7
    s = parse_spec("anthropic:claude-sonnet-4-5=0.3")
    assert (s.kind, s.model, s.weight, s.name) == (
        "anthropic",
        "claude-sonnet-4-5",
        0.3,
        "anthropic:claude-sonnet-4-5",
    )
    s = parse_spec("openai:gpt-5?key_env=TEAM_KEY")
    assert (s.model, s.key_env, s.weight) == ("gpt-5", "TEAM_KEY", 1.0)
    s = parse_spec("openai-compatible:qwen3:8b@http://127.0.0.1:8000/v1?key_env=MY_KEY=2")
    assert (s.model, s.base_url, s.key_env, s.weight) == (
        "qwen3:8b",
        "http://127.0.0.1:8000/v1",
        "MY_KEY",
        2.0,
    )
    assert s.name == "openai-compatible:qwen3:8b@http://127.0.0.1:8000/v1"
    s = parse_spec("openai-compatible:m@https://gw.example/v1?tenant=a")
    assert s.base_url == "https://gw.example/v1?tenant=a" and s.key_env is None


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("gemini:pro", "expected classical"),
        ("anthropic", "expected classical"),
        ("anthropic:", "missing or malformed model"),
        ("openai-compatible:qwen", "needs <model>@http"),
        ("openai-compatible:qwen@localhost:8000", "needs <model>@http"),
        ("openai:gpt?key_env=1BAD", "not an environment variable name"),
        ("openai:gpt?temperature=1", "the only option is"),
    ],
)
def test_bad_specs_are_one_line_user_errors(spec: str, why: str) -> None:
    with pytest.raises(UserError, match="bad proposer spec") as info:
        parse_spec(spec)
    assert why in str(info.value) and "\n" not in str(info.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proposers.toml"
    path.write_text(text)
    return path


def test_config_file_and_cli_override(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
bandit = true
[limits]
max_retries = 1
timeout_s = 30
max_edit_attempts = 4
context_tokens = 8000

[[proposer]]
spec = "anthropic:claude-sonnet-4-5"
weight = 0.3
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0

[[proposer]]
spec = "classical=0.7"
""",
        )
    )
    assert cfg.bandit and cfg.limits.max_retries == 1 and cfg.limits.max_edit_attempts == 4
    assert cfg.limits.max_repairs == 2  # default kept
    specs = resolve_specs([], cfg)
    assert [(s.name, s.weight) for s in specs] == [("anthropic:claude-sonnet-4-5", 0.3), ("classical", 0.7)]
    # A CLI spec of the same name keeps the file's prices; its own weight wins.
    (s,) = resolve_specs(["anthropic:claude-sonnet-4-5=5"], cfg)
    assert (s.weight, s.input_usd_per_mtok, s.output_usd_per_mtok) == (5.0, 3.0, 15.0)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[limits]\nmax_retries = -1\n", "limits.max_retries"),
        ("[limits]\nmax_retrys = 1\n", "max_retrys"),
        ("[[proposer]]\nweight = 1\n", "needs a `spec`"),
        ('[[proposer]]\nspec = "openai:x"\nprice = 1\n', "price"),
        ("bandit = [\n", "not valid TOML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(UserError, match="proposers config") as info:
        load_config(write(tmp_path, text))
    assert why in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read proposers config"):
        load_config(tmp_path / "nope.toml")


def test_duplicates_and_zero_weights_rejected() -> None:
    cfg = load_config(None)
    with pytest.raises(UserError, match="more than once"):
        resolve_specs(["openai:gpt=1", "openai:gpt=2"], cfg)
    with pytest.raises(UserError, match="not all be zero"):
        resolve_specs(["openai:gpt=0"], cfg)


def test_missing_key_is_a_clear_error_at_start() -> None:
    specs = resolve_specs(["classical", "anthropic:claude-x"], load_config(None))
    with pytest.raises(UserError, match="set ANTHROPIC_API_KEY"):
        build_proposers(specs, load_config(None), FakeClassical, env={})
    specs = resolve_specs(["openai-compatible:q@http://127.0.0.1:1/v1?key_env=VLLM_KEY"], load_config(None))
    with pytest.raises(UserError, match="set VLLM_KEY"):
        build_proposers(specs, load_config(None), FakeClassical, env={"OPENAI_API_KEY": "sk"})


def test_build_proposers() -> None:
    cfg = load_config(None)
    specs = resolve_specs(
        ["classical=2", "anthropic:claude-x", "openai:gpt-x", "openai-compatible:q@http://127.0.0.1:1/v1"],
        cfg,
    )
    env = {"ANTHROPIC_API_KEY": "sk-a", "OPENAI_API_KEY": "sk-o"}
    built = build_proposers(specs, cfg, FakeClassical, env=env)
    assert [p.name for p in built] == [s.name for s in specs]
    assert isinstance(built[0], FakeClassical) and not built[0].can_implement
    llms = [p for p in built if isinstance(p, LLMProposer)]
    assert isinstance(llms[0].client, AnthropicClient) and isinstance(llms[1].client, OpenAIClient)
    local = llms[2].client
    assert isinstance(local, OpenAIClient) and local.compatible
    # The local server never gets the user's OpenAI key.
    assert local.sdk.api_key == "EMPTY" and str(local.sdk.base_url).startswith("http://127.0.0.1:1/v1")
    for p in llms:
        p.close()


def test_spec_to_server_end_to_end() -> None:
    with ScriptedServer() as srv:
        cfg = load_config(None)
        specs = resolve_specs(["classical=0", f"openai-compatible:qwen@{srv.url}/v1?key_env=LOCAL_KEY"], cfg)
        built = build_proposers(specs, cfg, FakeClassical, env={"LOCAL_KEY": "sk-local"})
        sel = Selector(built, [s.weight for s in specs], seed=0)
        chosen = sel.choose(need_implement=True)
        srv.push(Scripted(text="train.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n"))
        ctx = ProposalContext("cpu:2c", "cpu", "val_bpb", Direction.MINIMIZE, {"train.py": "A = 1\n"}, None, 0)
        files, usage = chosen.implement("Set A to 2", ctx)
        assert isinstance(chosen, LLMProposer)
        chosen.close()
    assert files == {"train.py": "A = 2\n"} and usage.calls == 1 and usage.cost_usd == 0.0
    (req,) = srv.requests
    assert req.path == "/v1/chat/completions" and req.headers["authorization"] == "Bearer sk-local"
    assert req.body["max_tokens"] > 0 and "max_completion_tokens" not in req.body
