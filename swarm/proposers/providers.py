"""Thin chat clients on the official SDKs, with accounting.

- `AnthropicClient`: `anthropic.Anthropic(...).messages.create`.
- `OpenAIClient`: `openai.OpenAI(...).chat.completions.create`, for `openai:` and, with a base URL, for
  `openai-compatible:` servers (vLLM, Ollama, llama.cpp, gateways).

Base URLs: when none is passed, the SDKs read `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL` themselves (checked
against anthropic 2.x and openai 3.x: `base_url=None` falls back to the variable), so users behind
gateways and proxies get the behaviour they expect. Retries with exponential backoff on 429, 5xx,
connection errors and timeouts are the SDKs' own (`max_retries`; they honour `Retry-After`).

A call that still fails raises `ProviderError`; what follows (back-off, pause, probing again) is the
proposer's health (swarm.proposers.health), which also counts replies that parse but are useless.

Every call returns a `Reply`: text, input/output tokens (as the server reports them; estimated with
swarm.proposers.tokens when a local server omits usage), latency and cost from the configured prices.
Errors are raised as `ProviderError` (a ProposerError); messages never include the API key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import anthropic
import openai

from swarm.defaults import (
    PROPOSER_MAX_RETRIES,
    PROPOSER_TIMEOUT_S,
)
from swarm.errors import ProposerError
from swarm.proposers.tokens import count_tokens

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "user" | "assistant", "content": text}


class ProviderError(ProposerError):
    """A call failed after the SDK's retries, or its reply had no usable text."""


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens (0 for local servers)."""

    input_usd_per_mtok: float = 0.0
    output_usd_per_mtok: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6


@dataclass
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    cost_usd: float


class ChatClient(Protocol):
    """What LLMProposer needs from a provider."""

    name: str

    def complete(self, system: str, messages: list[Message], max_tokens: int) -> Reply: ...

    def close(self) -> None: ...


class _BaseClient:
    """Shared accounting logic; subclasses implement `_call` with their SDK."""

    name: str

    def __init__(self, name: str, prices: Prices) -> None:
        self.name = name
        self.prices = prices

    def _call(
        self, system: str, messages: list[Message], max_tokens: int
    ) -> tuple[str, int | None, int | None]:
        raise NotImplementedError

    def _sdk_errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def complete(self, system: str, messages: list[Message], max_tokens: int) -> Reply:
        t0 = time.perf_counter()
        try:
            text, tin, tout = self._call(system, messages, max_tokens)
        except self._sdk_errors() as err:
            # The SDK's messages name status and body, never the key.
            log.warning("provider call failed: proposer=%s error=%s", self.name, type(err).__name__)
            raise ProviderError(f"{self.name}: {type(err).__name__}: {_short(str(err))}") from err
        latency = time.perf_counter() - t0
        if tin is None:
            tin = count_tokens(system) + sum(count_tokens(m["content"]) for m in messages)
        if tout is None:
            tout = count_tokens(text)
        return Reply(text, tin, tout, latency, self.prices.cost(tin, tout))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AnthropicClient(_BaseClient):
    """Claude models through `anthropic.Anthropic().messages.create`."""

    def __init__(
        self,
        name: str,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = PROPOSER_TIMEOUT_S,
        max_retries: int = PROPOSER_MAX_RETRIES,
        prices: Prices | None = None,
    ) -> None:
        super().__init__(name, prices or Prices())
        self.model = model
        # base_url=None lets the SDK read ANTHROPIC_BASE_URL.
        self.sdk = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def _sdk_errors(self) -> tuple[type[BaseException], ...]:
        return (anthropic.APIError, ValueError)

    def _call(
        self, system: str, messages: list[Message], max_tokens: int
    ) -> tuple[str, int | None, int | None]:
        resp = self.sdk.messages.create(
            model=self.model,
            max_tokens=max_tokens,
            system=system,
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],  # type: ignore[misc]
        )
        try:  # the SDK builds response objects leniently; a malformed body surfaces here
            blocks = list(resp.content or [])
            parts = [getattr(b, "text", "") for b in blocks if getattr(b, "type", "") == "text"]
        except (TypeError, AttributeError) as err:
            raise ProviderError(f"{self.name}: malformed reply: {err}") from err
        text = "".join(p for p in parts if isinstance(p, str))
        if not text.strip():
            raise ProviderError(f"{self.name}: the reply had no text content")
        usage = getattr(resp, "usage", None)
        tin = getattr(usage, "input_tokens", None)
        tout = getattr(usage, "output_tokens", None)
        return text, tin if isinstance(tin, int) else None, tout if isinstance(tout, int) else None

    def close(self) -> None:
        self.sdk.close()


class OpenAIClient(_BaseClient):
    """OpenAI models, or any OpenAI-compatible server when `base_url` is given."""

    def __init__(
        self,
        name: str,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = PROPOSER_TIMEOUT_S,
        max_retries: int = PROPOSER_MAX_RETRIES,
        prices: Prices | None = None,
        compatible: bool = False,
    ) -> None:
        super().__init__(name, prices or Prices())
        self.model = model
        self.compatible = compatible
        # base_url=None lets the SDK read OPENAI_BASE_URL.
        self.sdk = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def _sdk_errors(self) -> tuple[type[BaseException], ...]:
        return (openai.OpenAIError, ValueError)

    def _call(
        self, system: str, messages: list[Message], max_tokens: int
    ) -> tuple[str, int | None, int | None]:
        chat = [{"role": "system", "content": system}, *messages]
        # OpenAI's own models take max_completion_tokens (max_tokens is deprecated there); local
        # servers (vLLM, Ollama, llama.cpp) all understand max_tokens, not all the newer name.
        limit = {"max_tokens": max_tokens} if self.compatible else {"max_completion_tokens": max_tokens}
        resp = self.sdk.chat.completions.create(model=self.model, messages=chat, **limit)  # type: ignore[call-overload]
        try:  # the SDK builds response objects leniently; a malformed body surfaces here
            choices = list(getattr(resp, "choices", None) or [])
            message = choices[0].message if choices else None
            text = message.content if message is not None else None
        except (TypeError, AttributeError, IndexError) as err:
            raise ProviderError(f"{self.name}: malformed reply: {err}") from err
        if not choices:
            raise ProviderError(f"{self.name}: the reply had no choices")
        if not isinstance(text, str) or not text.strip():
            raise ProviderError(f"{self.name}: the reply had no text content")
        usage = getattr(resp, "usage", None)
        tin = getattr(usage, "prompt_tokens", None)
        tout = getattr(usage, "completion_tokens", None)
        return text, tin if isinstance(tin, int) else None, tout if isinstance(tout, int) else None

    def close(self) -> None:
        self.sdk.close()
