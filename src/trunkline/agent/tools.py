"""HTTP tools: the integrations a flow calls (a CRM lookup, a booking).

``ToolRunner.call`` never raises for anything the far end does. Each attempt has the
tool's own deadline (``timeout_ms``, the whole request and body, not httpx's per-phase
timeouts, so a server that trickles bytes cannot hold a caller in silence). Retryable
failures (timeouts, connection errors, 408, 429, 5xx) are retried ``retries`` times with
exponential backoff; a 4xx answer is the far end saying no (``REJECTED``), which a retry
would not change; a 2xx whose body is not JSON or lacks a mapped field is ``GARBAGE``.
The flow then says the tool's fallback message and the call goes on.

Retryability is decided in one place, :func:`_retryable_status`.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import httpx

from trunkline.agent.spec import ToolSpec

_log = logging.getLogger(__name__)

# A CRM answer for a phone call is a few hundred bytes; a megabyte is a bug or an attack,
# and parsing it would stall the event loop that carries hundreds of calls.
MAX_TOOL_RESPONSE_BYTES = 1 << 20
DEFAULT_BACKOFF_S = 0.1
MAX_BACKOFF_S = 1.0


class ToolOutcome(enum.StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # a 4xx answer: not found, forbidden, bad request
    TIMEOUT = "timeout"  # the last attempt ran past timeout_ms
    ERROR = "error"  # connection failure, 5xx, or a request we could not build
    GARBAGE = "garbage"  # 2xx with a body that is not JSON or lacks a mapped field


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A rendered request: templates already filled in."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """How a tool call ended, with the mapped variables when it succeeded."""

    tool: str
    outcome: ToolOutcome
    values: Mapping[str, Any]
    status: int | None
    attempts: int
    duration_ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is ToolOutcome.OK


class ToolCaller(Protocol):
    """What the flow engine needs to run a tool; tests may pass a fake."""

    async def call(self, tool: ToolSpec, request: ToolRequest) -> ToolResult:
        """Run the request; never raises for the far end's faults."""
        ...


class _TooLarge(Exception):
    pass


class ToolRunner:
    """Runs tool requests over one shared ``httpx.AsyncClient``.

    Args:
        client: a client to use (not closed by us); by default one is made and owned.
        backoff_s: first retry delay; doubles per retry up to ``max_backoff_s``.
        sleep, clock: injectable for tests.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        backoff_s: float = DEFAULT_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(follow_redirects=False)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock

    async def __aenter__(self) -> ToolRunner:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if we made it."""
        if self._owns_client:
            await self._client.aclose()

    async def call(self, tool: ToolSpec, request: ToolRequest) -> ToolResult:
        """Run ``request`` with the tool's timeout, retries and response mapping."""
        started = self._clock()
        outcome, status, error = ToolOutcome.ERROR, None, ""
        values: Mapping[str, Any] = {}
        attempts = 0
        for attempt in range(tool.retries + 1):
            attempts = attempt + 1
            if attempt:
                delay = min(self._max_backoff_s, self._backoff_s * 2 ** (attempt - 1))
                await self._sleep(delay)
            outcome, status, values, error, retry = await self._attempt(tool, request)
            if not retry:
                break
        if outcome is not ToolOutcome.OK:
            _log.warning("tool %s: %s after %d attempt(s): %s", tool.name, outcome, attempts, error)
        return ToolResult(
            tool.name, outcome, values, status, attempts, (self._clock() - started) * 1000, error
        )

    async def _attempt(
        self, tool: ToolSpec, request: ToolRequest
    ) -> tuple[ToolOutcome, int | None, Mapping[str, Any], str, bool]:
        """One try: (outcome, status, values, error, worth retrying)."""
        try:
            async with asyncio.timeout(tool.timeout_ms / 1000):
                status, body = await self._send(request)
        except TimeoutError:
            return ToolOutcome.TIMEOUT, None, {}, f"no answer within {tool.timeout_ms} ms", True
        except _TooLarge:
            return (
                ToolOutcome.GARBAGE,
                None,
                {},
                f"answer over {MAX_TOOL_RESPONSE_BYTES} bytes",
                False,
            )
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.TimeoutException) as exc:
            # The connection failed or broke: the far end may be back on the next try.
            return ToolOutcome.ERROR, None, {}, f"{type(exc).__name__}: {exc}", True
        except (
            Exception
        ) as exc:  # a bad URL after templating, an odd header: not the caller's problem
            return ToolOutcome.ERROR, None, {}, f"{type(exc).__name__}: {exc}", False
        if 200 <= status < 300:
            try:
                return ToolOutcome.OK, status, map_result(tool, body), "", False
            except ValueError as exc:
                return ToolOutcome.GARBAGE, status, {}, str(exc), False
        if _retryable_status(status):
            return ToolOutcome.ERROR, status, {}, f"HTTP {status}", True
        if 400 <= status < 500:
            return ToolOutcome.REJECTED, status, {}, f"HTTP {status}", False
        return ToolOutcome.ERROR, status, {}, f"HTTP {status}", False

    async def _send(self, request: ToolRequest) -> tuple[int, bytes]:
        async with self._client.stream(
            request.method,
            request.url,
            headers=dict(request.headers),
            json=dict(request.json) if request.json is not None else None,
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_TOOL_RESPONSE_BYTES:
                    raise _TooLarge
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)


def _retryable_status(status: int) -> bool:
    """408 and 429 ask us to come back; 5xx is the far end failing, maybe briefly."""
    return status in (408, 429) or status >= 500


def map_result(tool: ToolSpec, body: bytes) -> dict[str, Any]:
    """Pick the tool's ``result`` fields out of a JSON body.

    Raises:
        ValueError: the body is not JSON, or a mapped path is missing.
    """
    if not tool.result:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"answer is not JSON ({type(exc).__name__})") from None
    out: dict[str, Any] = {}
    for var, path in tool.result.items():
        value: Any = data
        for seg in path:
            if isinstance(value, dict) and seg in value:
                value = value[seg]
            elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
                value = value[int(seg)]
            else:
                raise ValueError(f"answer has no {'.'.join(path)!r}")
        out[var] = value
    return out
