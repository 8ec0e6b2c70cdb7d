"""LLMProposer through the real anthropic and openai SDKs, against the scripted server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from conftest import free_port
from llm_server import Scripted, ScriptedServer  # tests/ is on sys.path (rootdir conftest, no __init__)

from swarm.errors import ProposerError
from swarm.models import Direction, Status
from swarm.proposers.base import PastResult, ProposalContext
from swarm.proposers.llm import LLMCallFailed, LLMLimits, LLMProposer
from swarm.proposers.providers import AnthropicClient, OpenAIClient, Prices
from swarm.proposers.select import IMPLEMENT, Selector

TRAIN = """import torch

LR = 0.02


def step(model, opt):
    loss = model()
    loss.backward()
    opt.step()
    return loss
"""

PRICES = Prices(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)


@pytest.fixture()
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


def ctx(history: list[PastResult] | None = None) -> ProposalContext:
    return ProposalContext(
        track="cpu:2c",
        profile="cpu",
        metric_name="val_bpb",
        direction=Direction.MINIMIZE,
        files={"train.py": TRAIN},
        leader_metric=1.5,
        leader_generation=3,
        brief="Make val_bpb lower within the time budget.",
        brief_version=2,
        history=history or [],
    )


def make(kind: str, srv: ScriptedServer, **kw: object) -> LLMProposer:
    timeout_s = float(kw.pop("timeout_s", 5.0))  # type: ignore[arg-type]
    retries = int(kw.pop("max_retries", 2))  # type: ignore[call-overload]
    client: AnthropicClient | OpenAIClient
    if kind == "anthropic":
        client = AnthropicClient(
            "anthropic:claude-test", "claude-test", "sk-test", base_url=srv.url,
            timeout_s=timeout_s, max_retries=retries, prices=PRICES,
        )  # fmt: skip
    else:
        client = OpenAIClient(
            "openai-compatible:qwen@" + srv.url + "/v1", "qwen", "EMPTY", base_url=srv.url + "/v1",
            timeout_s=timeout_s, max_retries=retries, prices=PRICES, compatible=True,
        )  # fmt: skip
    return LLMProposer(client.name, client, LLMLimits(**kw))  # type: ignore[arg-type]


def blocks(search: str, replace: str) -> str:
    return f"train.py\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


IDEAS = json.dumps(
    {
        "ideas": [
            {"title": "Raise the learning rate to 0.03", "rationale": "Loss still falls fast at the end."},
            {"title": "Clip gradients at 1.0", "rationale": "Spikes early in training."},
        ]
    }
)

KINDS = ["anthropic", "openai-compatible"]


@pytest.mark.parametrize("kind", KINDS)
def test_ideation_reply_and_accounting(server: ScriptedServer, kind: str) -> None:
    history = [
        PastResult("Lower LR to 0.01", Status.DISCARD, 1.52, 0.02, True, "openai:x"),
        PastResult("Bigger batch", Status.CRASH, None, None, False, "classical", error="CUDA out of memory"),
        PastResult("TPE trial 7", Status.KEEP, 1.45, -0.05, False, "classical", meta={"lr": 0.031, "depth": 4}),
    ]
    server.push(
        Scripted(text="Here you go:\n```json\n" + IDEAS + "\n```", input_tokens=1200, output_tokens=300)
    )
    p = make(kind, server)
    ideas, usage = p.ideate(ctx(history), 3)
    p.close()
    assert [i.title for i in ideas] == ["Raise the learning rate to 0.03", "Clip gradients at 1.0"]
    assert ideas[0].rationale == "Loss still falls fast at the end."
    assert (usage.input_tokens, usage.output_tokens, usage.calls) == (1200, 300, 1)
    assert usage.cost_usd == pytest.approx((1200 * 3.0 + 300 * 15.0) / 1e6)
    assert usage.latency_s > 0
    (req,) = server.requests
    assert req.path == ("/v1/messages" if kind == "anthropic" else "/v1/chat/completions")
    prompt = req.last_user_text()
    assert "Make val_bpb lower" in prompt and "LR = 0.02" in prompt
    assert "Lower LR to 0.01" in prompt and "CUDA out of memory" in prompt and "depth=4, lr=0.031" in prompt
    assert req.body["model"] == ("claude-test" if kind == "anthropic" else "qwen")


@pytest.mark.parametrize("kind", KINDS)
def test_implementation_with_indentation_drift(server: ScriptedServer, kind: str) -> None:
    # The model lost the function body's indentation; the edit must still land, re-indented.
    reply = "Plan: clip.\n" + blocks(
        "loss.backward()\nopt.step()\n",
        "loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\nopt.step()\n",
    )
    server.push(Scripted(text=reply))
    p = make(kind, server)
    files, usage = p.implement("Clip gradients at 1.0", ctx())
    p.close()
    assert "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n    opt.step()" in files["train.py"]
    compile(files["train.py"], "train.py", "exec")
    assert usage.calls == 1
    assert "Clip gradients at 1.0" in server.requests[0].last_user_text()


@pytest.mark.parametrize("kind", KINDS)
def test_unmatched_block_is_explained_and_retried(server: ScriptedServer, kind: str) -> None:
    server.push(
        Scripted(
            text=blocks("LEARNING_RATE = 0.02\nWARMUP = 10\n", "LEARNING_RATE = 0.03\n"), input_tokens=500
        ),
        Scripted(text=blocks("LR = 0.02\n", "LR = 0.03\n"), input_tokens=700),
    )
    p = make(kind, server)
    files, usage = p.implement("Raise the learning rate", ctx())
    p.close()
    assert "LR = 0.03" in files["train.py"]
    assert usage.calls == 2 and usage.input_tokens == 1200
    second = server.requests[1]
    feedback = second.last_user_text()
    assert "block 1 (train.py): SEARCH matched nothing" in feedback and "Closest lines" in feedback
    roles = [m["role"] for m in second.body["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]  # the failed reply stays in the conversation


def test_edit_attempts_exhausted_raises_with_usage(server: ScriptedServer) -> None:
    server.push(*[Scripted(text=blocks("NOPE = 1\n", "NOPE = 2\n"), input_tokens=10, output_tokens=5)] * 2)
    p = make("openai-compatible", server, max_edit_attempts=2)
    with pytest.raises(LLMCallFailed) as info:
        p.implement("x", ctx())
    p.close()
    assert "after 2 attempts" in str(info.value)
    assert info.value.usage.calls == 2 and info.value.usage.input_tokens == 20


@pytest.mark.parametrize("kind", KINDS)
def test_429_then_success(server: ScriptedServer, kind: str) -> None:
    server.push(Scripted(status=429), Scripted(status=503), Scripted(text=IDEAS))
    p = make(kind, server, max_retries=2)
    ideas, usage = p.ideate(ctx(), 2)
    p.close()
    assert len(ideas) == 2 and usage.calls == 1
    assert len(server.requests) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_is_retried_then_gives_up(server: ScriptedServer, kind: str) -> None:
    server.push(Scripted(text=IDEAS, delay_s=1.5), Scripted(text=IDEAS))
    p = make(kind, server, timeout_s=0.4, max_retries=1)
    ideas, _ = p.ideate(ctx(), 2)
    assert len(ideas) == 2 and len(server.requests) == 2
    server.push(Scripted(text=IDEAS, delay_s=1.5), Scripted(text=IDEAS, delay_s=1.5))
    with pytest.raises(ProposerError, match="Timeout"):
        p.ideate(ctx(), 2)
    p.close()


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_ideation_retried_once_with_the_error(server: ScriptedServer, kind: str) -> None:
    server.push(Scripted(text="I think you should {raise the LR"), Scripted(text=IDEAS))
    p = make(kind, server)
    ideas, usage = p.ideate(ctx(), 2)
    assert len(ideas) == 2 and usage.calls == 2
    assert "could not be parsed" in server.requests[1].last_user_text()
    server.push(Scripted(text="no ideas here"), Scripted(text="still nothing"))
    with pytest.raises(LLMCallFailed, match="malformed ideation reply") as info:
        p.ideate(ctx(), 2)
    assert info.value.usage.calls == 2
    p.close()


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_wire_body_is_a_proposer_error(server: ScriptedServer, kind: str) -> None:
    server.push(Scripted(raw=b"<html>bad gateway</html>"))
    p = make(kind, server, max_retries=0)
    with pytest.raises(ProposerError):
        p.ideate(ctx(), 2)
    server.push(Scripted(raw=b'{"content": 3, "choices": "x"}'))
    with pytest.raises(ProposerError, match="malformed reply"):
        p.ideate(ctx(), 2)
    p.close()


@pytest.mark.parametrize("kind", KINDS)
def test_crash_repaired_on_second_try(server: ScriptedServer, kind: str) -> None:
    broken = TRAIN.replace("opt.step()", "opt.stepp()")
    tail = "Traceback (most recent call last):\nAttributeError: 'SGD' object has no attribute 'stepp'"
    server.push(
        Scripted(text=blocks("    opt.stepp()\n", "    opt.step_all()\n")),  # applies, but still crashes
        Scripted(text=blocks("    opt.step_all()\n", "    opt.step()\n")),
    )
    p = make(kind, server, max_repairs=2)
    c = ctx()
    first, u1 = p.repair("Clip gradients", c, {"train.py": broken}, tail)
    assert first is not None and "opt.step_all()" in first["train.py"] and u1.calls == 1
    assert "has no attribute 'stepp'" in server.requests[0].last_user_text()
    # The agent re-runs, it crashes again, and the second repair sees the files as they ran.
    tail2 = "AttributeError: 'SGD' object has no attribute 'step_all'"
    second, u2 = p.repair("Clip gradients", c, first, tail2)
    assert second is not None and second["train.py"] == TRAIN and u2.calls == 1
    assert "opt.step_all()" in server.requests[1].last_user_text()
    # The repair limit is per hypothesis: a third crash gives up without calling the model.
    third, u3 = p.repair("Clip gradients", c, second, tail)
    assert third is None and u3.calls == 0 and len(server.requests) == 2
    p.close()


def test_usage_estimated_when_server_omits_it(server: ScriptedServer) -> None:
    server.push(Scripted(text=IDEAS, usage=False))
    p = make("openai-compatible", server)
    _, usage = p.ideate(ctx(), 2)
    p.close()
    assert usage.input_tokens > 100 and usage.output_tokens > 10


def test_base_url_env_vars_are_honoured(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    a = AnthropicClient("anthropic:m", "m", "sk-a", max_retries=0)
    o = OpenAIClient("openai:m", "m", "sk-o", max_retries=0)
    server.push(Scripted(text="from anthropic"), Scripted(text="from openai"))
    assert a.complete("s", [{"role": "user", "content": "hi"}], 64).text == "from anthropic"
    assert o.complete("s", [{"role": "user", "content": "hi"}], 64).text == "from openai"
    a.close()
    o.close()
    assert [r.path for r in server.requests] == ["/v1/messages", "/v1/chat/completions"]
    assert server.requests[1].body["max_completion_tokens"] == 64  # OpenAI's own models


OUTAGES = {
    # mode: (scripted replies for one implementation, the failure is the endpoint's)
    "connection refused": (None, True),
    "HTTP 500": ([Scripted(status=500)] * 2, True),
    "HTTP 429 with retry-after": ([Scripted(status=429, headers={"retry-after-ms": "50"})] * 2, True),
    "timeout": ([Scripted(text="late", delay_s=1.0)] * 2, True),
    "a reply in prose": ([Scripted(text="Sure, I would lower the learning rate a little.")] * 3, False),
    "edits that never match": ([Scripted(text=blocks("NOT IN THE FILE\n", "LR = 0.03\n"))] * 3, False),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", list(OUTAGES))
def test_each_outage_fails_costed_and_backs_the_proposer_off(server: ScriptedServer, kind: str, mode: str) -> None:
    """Each outage, through the real SDK: LLMCallFailed with what it cost (the failed request counted as a
    call), marked as the endpoint's fault or the reply's; three in a row pause the proposer."""
    replies, transport = OUTAGES[mode]
    if replies is None:  # a port nothing listens on
        p = make(kind, SimpleNamespace(url=f"http://127.0.0.1:{free_port()}"), max_retries=1, timeout_s=0.3)  # type: ignore[arg-type]
    else:
        p = make(kind, server, max_retries=1, timeout_s=0.3, max_edit_attempts=3)
    sel = Selector([p], [1.0], seed=0)
    for _ in range(3):
        if replies is not None:
            server.push(*replies)
        with pytest.raises(LLMCallFailed) as info:
            p.implement("Raise the learning rate", ctx())
        err = info.value
        assert err.transport is transport
        assert err.usage.calls == (1 if transport else 3)
        if not transport:
            assert err.usage.input_tokens > 0 and err.usage.cost_usd > 0  # billed replies are costed
        sel.failed(p.name, str(err), IMPLEMENT)
    p.close()
    assert sel.state(p.name).state == "paused" and not sel.can_implement_now()
    if replies is not None and transport:
        assert len(server.requests) == 3 * 2  # each try: the request and the SDK's one retry
