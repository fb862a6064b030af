"""The chat model interface: ``LLM.chat(messages, tools=...)`` streams text and tool calls.

``chat`` is the public method: it wraps the provider's ``_chat_impl`` in
:func:`trunkline.providers.retry.retry_stream` (time-to-first-token timeout, retries of
retryable failures before the first chunk, an idle timeout after it, metrics).

Messages and tools use the OpenAI chat shapes (``{"role": "user", "content": ...}``,
``{"type": "function", "function": {...}}``), which every OpenAI-compatible server and
most others accept. A tool call is delivered whole, once its arguments are complete: the
pipeline acts on calls, not on argument fragments, so adapters assemble the fragments.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from trunkline.providers.retry import NO_METRICS, ProviderMetrics, RetryPolicy, retry_stream

__all__ = ["LLM", "LLMCapabilities", "LLMChunk", "TextDelta", "ToolCallChunk"]

#: Longest wait for the first token of an attempt (a chat model thinking longer leaves
#: the caller in silence; the pipeline then plays a filler or falls back).
DEFAULT_FIRST_TOKEN_TIMEOUT = 5.0
#: Longest gap between chunks once tokens flow.
DEFAULT_IDLE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class LLMCapabilities:
    """What a chat provider can do.

    Attributes:
        streaming: tokens arrive as they are generated.
        tool_calls: the model can call the tools passed to ``chat``.
    """

    streaming: bool
    tool_calls: bool


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the assistant's reply text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    """A complete tool call: ``arguments_json`` is the whole JSON object as text."""

    id: str
    name: str
    arguments_json: str


LLMChunk = TextDelta | ToolCallChunk


class LLM(abc.ABC):
    """A chat model provider.

    Args:
        label: the provider's name in errors and metrics.
        capabilities: what it can do.
        retry: the retry policy (default: ``RetryPolicy()``).
        first_token_timeout: see ``DEFAULT_FIRST_TOKEN_TIMEOUT`` (None: no limit).
        idle_timeout: see ``DEFAULT_IDLE_TIMEOUT`` (None: no limit).
        metrics: the metrics collector.
    """

    def __init__(
        self,
        *,
        label: str,
        capabilities: LLMCapabilities,
        retry: RetryPolicy | None = None,
        first_token_timeout: float | None = DEFAULT_FIRST_TOKEN_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        self.label = label
        self._capabilities = capabilities
        self.retry = retry or RetryPolicy()
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self._metrics = metrics or NO_METRICS

    @property
    def capabilities(self) -> LLMCapabilities:
        """What this provider can do."""
        return self._capabilities

    def chat(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMChunk]:
        """Stream the assistant's reply to ``messages``.

        Args:
            messages: the conversation, OpenAI chat format.
            tools: tool definitions, OpenAI format; None or empty for none.

        Raises:
            ProviderError: while iterating, when every allowed attempt failed before the
                first chunk, or the stream failed after it.
        """
        return retry_stream(
            lambda: self._chat_impl(messages, tools=tools or None),
            provider=self.label,
            operation="llm",
            policy=self.retry,
            metrics=self._metrics,
            first_byte_timeout=self.first_token_timeout,
            idle_timeout=self.idle_timeout,
        )

    @abc.abstractmethod
    def _chat_impl(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[LLMChunk]:
        """One attempt: yield text deltas and whole tool calls as they come."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Release the provider's resources (HTTP clients)."""

    async def __aenter__(self) -> LLM:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
