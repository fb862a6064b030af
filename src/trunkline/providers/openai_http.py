"""What the OpenAI-compatible adapters share: the HTTP client, the request, error mapping.

``OpenAILLM`` and ``OpenAITTS`` both ``POST`` JSON to ``{base_url}/...`` with a bearer
key and stream the answer. :func:`open_stream` sends the request and turns every way it
can fail into the provider error family (``errors.py`` decides retryability):

- an answer with a status other than 2xx: ``APIStatusError`` with the service's own
  message when its body is the usual ``{"error": {"message": ...}}`` (408, 429, 5xx are
  retryable; 401, 400, 404 are not);
- no answer (refused, reset, DNS): ``APIConnectionError``; too slow: ``APITimeoutError``;
- the connection breaking while the body streams: :func:`transport_error` maps it the
  same way, for the adapters' read loops.

The client's own timeouts are a backstop only: the retry helper's first-byte and idle
timeouts are what bound a call's silence.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from trunkline.providers.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ProviderError,
    ProviderUsageError,
)

__all__ = ["MAX_ERROR_BODY", "default_client", "open_stream", "transport_error"]

#: Error bodies read for their message: an error page larger than this is not worth
#: holding (the status says enough).
MAX_ERROR_BODY = 64 * 1024
#: Backstop timeouts of the shared client: connecting (a dead host must fail fast and be
#: retried) and each read (far above the retry helper's limits, so it only catches a
#: provider configured without them).
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
#: Connections kept per client: one per concurrent call's request is the steady state.
MAX_CONNECTIONS = 1000


def default_client() -> httpx.AsyncClient:
    """An ``AsyncClient`` for streaming provider requests (see the module docstring)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
        follow_redirects=False,
    )


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash.

    Raises:
        ProviderUsageError: not an http(s) URL.
    """
    if not base_url.startswith(("http://", "https://")):
        raise ProviderUsageError(f"base_url must be http:// or https://, got {base_url!r}")
    return base_url.rstrip("/")


def transport_error(exc: httpx.HTTPError, provider: str) -> ProviderError:
    """The provider error for an httpx failure (no answer, a broken or slow stream)."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{type(exc).__name__}: {exc}", provider=provider)
    if isinstance(exc, httpx.TransportError):
        return APIConnectionError(f"{type(exc).__name__}: {exc}", provider=provider)
    # DecodingError (a bad gzip body), a redirect we do not follow, ...: the answer
    # itself is wrong, and asking again is worth one more try at most.
    return ProviderError(f"{type(exc).__name__}: {exc}", provider=provider, retryable=True)


def _error_message(body: bytes) -> tuple[str, object]:
    """The service's error message from an error body, and the body as parsed."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError):
        text = body.decode("utf-8", "replace").strip()
        return (text[:200] or "no message"), text
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:500], doc
    if isinstance(error, str):
        return error[:500], doc
    return "no message", doc


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(chunks)[:MAX_ERROR_BODY]


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    provider: str,
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` as JSON and yield the 2xx response, its body not yet read.

    Raises:
        APIStatusError: the service answered with another status.
        APIConnectionError, APITimeoutError: no answer.
    """
    try:
        async with client.stream("POST", url, json=dict(body), headers=dict(headers)) as response:
            if not 200 <= response.status_code < 300:
                try:
                    raw = await _read_limited(response)
                except httpx.HTTPError:
                    raw = b""
                message, parsed = _error_message(raw)
                raise APIStatusError(
                    f"{url} answered {response.status_code}: {message}",
                    provider=provider,
                    status=response.status_code,
                    body=parsed,
                )
            yield response
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider) from exc
