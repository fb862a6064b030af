"""OpenAI-compatible chat completions, streamed: ``OpenAILLM``.

One attempt is ``POST {base_url}/chat/completions`` with ``"stream": true``; the answer
is a server-sent event stream (:mod:`trunkline.providers.sse`) of
``chat.completion.chunk`` objects ended by ``data: [DONE]``. Every server that speaks
this dialect works: OpenAI, vLLM, llama.cpp's server, Ollama's ``/v1``, LiteLLM...

Theory of operation
-------------------
Each chunk carries ``choices[0].delta``: ``content`` text, which is yielded at once as a
``TextDelta``, and/or ``tool_calls`` fragments. A tool call arrives in pieces keyed by
``index``: the first piece has the call's ``id`` and ``function.name``, later pieces
append to ``function.arguments``. :class:`ToolCallAssembler` joins them and the whole
calls are yielded, in index order, when the choice's ``finish_reason`` arrives (or at
``[DONE]``), since the pipeline acts on calls, not fragments.

Failures, all ``ProviderError``s (the retry helper retries only before the first chunk):

- an error status, no connection, a timeout: see :mod:`.openai_http`;
- a line that is not SSE, a ``data`` that is not a JSON object, a tool call without a
  name: a non-retryable ``ProviderError`` naming what was wrong (the server is broken);
- ``{"error": ...}`` inside the stream (OpenAI's way to report a failure after the 200):
  a ``ProviderError``, retryable when the server calls it a server error;
- the stream ending, or the connection closing, before ``[DONE]``: a retryable
  ``ProviderError`` after whatever text already went out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from trunkline.providers.errors import ProviderError
from trunkline.providers.llm import (
    DEFAULT_FIRST_TOKEN_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    LLM,
    LLMCapabilities,
    LLMChunk,
    TextDelta,
    ToolCallChunk,
)
from trunkline.providers.openai_http import check_base_url, default_client, open_stream
from trunkline.providers.retry import ProviderMetrics, RetryPolicy
from trunkline.providers.sse import SseDecoder, SseError

__all__ = ["OPENAI_BASE_URL", "OpenAILLM", "ToolCallAssembler"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
#: Tool calls accepted in one answer: models make one or two; hundreds would be a
#: runaway generation whose fragments we would otherwise buffer without bound.
MAX_TOOL_CALLS = 16
#: Longest arguments text of one call (a CRM lookup's arguments are a few dozen bytes).
MAX_ARGUMENTS_CHARS = 64 * 1024
_DONE = "[DONE]"
#: Longest wait for the start-up check: a server start must not hang on a dead API.
PROBE_TIMEOUT_S = 3.0


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class ToolCallAssembler:
    """Joins ``delta.tool_calls`` fragments into whole ``ToolCallChunk``s.

    Args:
        provider: the label for errors.
    """

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._calls: dict[int, _PartialCall] = {}

    def add(self, fragments: Any) -> None:
        """Take one delta's ``tool_calls`` list.

        Raises:
            ProviderError: a fragment is not shaped as OpenAI's, or there are too many.
        """
        if not isinstance(fragments, list):
            raise self._bad("delta.tool_calls is not a list")
        for fragment in fragments:
            if not isinstance(fragment, dict):
                raise self._bad("a tool call fragment is not an object")
            index = fragment.get("index", 0)
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise self._bad(f"tool call index {index!r} is not a number")
            call = self._calls.get(index)
            if call is None:
                if len(self._calls) >= MAX_TOOL_CALLS:
                    raise self._bad(f"more than {MAX_TOOL_CALLS} tool calls")
                call = self._calls[index] = _PartialCall()
            if isinstance(fragment.get("id"), str) and fragment["id"]:
                call.id = fragment["id"]
            function = fragment.get("function") or {}
            if not isinstance(function, dict):
                raise self._bad("tool call 'function' is not an object")
            name = function.get("name")
            if isinstance(name, str) and name:
                call.name = name  # some servers repeat the name in every fragment
            arguments = function.get("arguments")
            if arguments is not None:
                if not isinstance(arguments, str):
                    raise self._bad("tool call arguments are not text")
                call.size += len(arguments)
                if call.size > MAX_ARGUMENTS_CHARS:
                    raise self._bad(f"tool call arguments over {MAX_ARGUMENTS_CHARS} chars")
                call.arguments.append(arguments)

    def take(self) -> list[ToolCallChunk]:
        """The calls assembled so far, in index order; the assembler is then empty.

        Raises:
            ProviderError: a call never got its name.
        """
        out: list[ToolCallChunk] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.name:
                raise self._bad(f"tool call {index} has no function name")
            arguments = "".join(call.arguments).strip() or "{}"
            # A server that sends no id (some local servers) still gets calls the chat
            # history can refer to: the id only has to be unique within the answer.
            out.append(ToolCallChunk(call.id or f"call_{index}", call.name, arguments))
        self._calls.clear()
        return out

    def _bad(self, what: str) -> ProviderError:
        return ProviderError(f"malformed stream: {what}", provider=self._provider)


class OpenAILLM(LLM):
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the model name sent with every request (an agent's ``llm.model``).
        api_key: sent as ``Authorization: Bearer ...``; None sends no header (local
            servers).
        base_url: the API root, ``.../v1``.
        temperature: sampling temperature (an agent's ``llm.temperature``); None leaves
            the server's default.
        max_tokens: a cap on the reply's length; None for the server's default.
        client: an ``httpx.AsyncClient`` to use (not closed by us); one is made and owned
            otherwise.
        label: the provider's name in errors and metrics.
        retry, first_token_timeout, idle_timeout, metrics: as for ``LLM``.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = OPENAI_BASE_URL,
        temperature: float | None = None,
        max_tokens: int | None = None,
        client: httpx.AsyncClient | None = None,
        label: str = "openai",
        retry: RetryPolicy | None = None,
        first_token_timeout: float | None = DEFAULT_FIRST_TOKEN_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label=label,
            capabilities=LLMCapabilities(streaming=True, tool_calls=True),
            retry=retry,
            first_token_timeout=first_token_timeout,
            idle_timeout=idle_timeout,
            metrics=metrics,
        )
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._url = check_base_url(base_url) + "/chat/completions"
        self._headers = {"Accept": "text/event-stream"}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client if client is not None else default_client()

    async def probe(self, limit_s: float = PROBE_TIMEOUT_S) -> str | None:
        """Check at start that the API answers and takes the key: None when it does,
        else what is wrong (for a log line and ``/health``; never raises).

        ``GET {base_url}/models`` costs no tokens. Any answer but 401 or 403 counts as
        reachable: a local server without that route (404) is still up.
        """
        url = self._url.removesuffix("/chat/completions") + "/models"
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        try:
            response = await self._client.get(url, headers=headers, timeout=limit_s)
        except httpx.HTTPError as exc:
            return f"{url} is unreachable: {type(exc).__name__}: {exc}".rstrip(": ")
        if response.status_code in (401, 403):
            return f"{url} refused the API key (HTTP {response.status_code})"
        return None

    async def aclose(self) -> None:
        """Close the HTTP client if we made it."""
        if self._owns_client:
            await self._client.aclose()

    def request_body(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """The JSON body of one attempt."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if tools:
            body["tools"] = tools
        return body

    async def _chat_impl(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[LLMChunk]:
        body = self.request_body(messages, tools)
        async with open_stream(
            self._client, self._url, body=body, headers=self._headers, provider=self.label
        ) as response:
            decoder = SseDecoder()
            calls = ToolCallAssembler(self.label)
            async for raw in response.aiter_bytes():
                try:
                    events = decoder.feed(raw)
                except SseError as exc:
                    raise ProviderError(f"malformed stream: {exc}", provider=self.label) from None
                for event in events:
                    if event.data.strip() == _DONE:
                        for call in calls.take():
                            yield call
                        return
                    for chunk in self._chunks(event.data, calls):
                        yield chunk
        raise ProviderError("the stream ended before [DONE]", provider=self.label, retryable=True)

    def _chunks(self, data: str, calls: ToolCallAssembler) -> list[LLMChunk]:
        """What one ``data:`` event contributes: text, and whole calls at a finish."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ProviderError(
                f"malformed stream: data is not JSON: {data[:80]!r}", provider=self.label
            ) from None
        if not isinstance(doc, dict):
            raise ProviderError("malformed stream: data is not an object", provider=self.label)
        if "error" in doc:
            raise _stream_error(doc["error"], self.label)
        choices = doc.get("choices")
        if choices is None or choices == []:
            return []  # a usage-only chunk (stream_options.include_usage)
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ProviderError("malformed stream: choices is not a list", provider=self.label)
        choice = choices[0]
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise ProviderError("malformed stream: delta is not an object", provider=self.label)
        out: list[LLMChunk] = []
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(TextDelta(content))
        elif content is not None and not isinstance(content, str):
            raise ProviderError("malformed stream: content is not text", provider=self.label)
        if delta.get("tool_calls") is not None:
            calls.add(delta["tool_calls"])
        if choice.get("finish_reason"):
            out.extend(calls.take())
        return out


def _stream_error(error: Any, provider: str) -> ProviderError:
    """An ``{"error": ...}`` event: the server failed after answering 200."""
    if isinstance(error, dict):
        message = str(error.get("message") or "no message")[:500]
        kind = str(error.get("type") or error.get("code") or "")
    else:
        message, kind = str(error)[:500], ""
    retryable = kind in ("server_error", "rate_limit_exceeded", "overloaded_error")
    return ProviderError(
        f"error in stream ({kind or 'unknown'}): {message}", provider=provider, retryable=retryable
    )
