"""Retries, timeouts and metrics around a provider's streamed answer: one helper for all.

Theory of operation
-------------------
Every public provider method that streams (``TTS.synthesize``, ``LLM.chat``) is the same
shape: open an attempt, wait for its first item, then pass items on until it ends. Those
methods hand their ``_impl`` to :func:`retry_stream`, which is the only place that
decides when to try again:

- an attempt that fails *before its first item* with a ``ProviderError`` whose
  ``retryable`` is true is retried after a backoff, up to ``RetryPolicy.attempts``
  attempts in all; a non-retryable error, or the last attempt's, goes to the caller;
- once the first item has gone out, nothing is retried: the caller has already played
  audio or shown tokens, and a second attempt would repeat them. A failure after that
  point goes to the caller as it is;
- the wait for the first item is bounded by ``first_byte_timeout`` and every later wait
  by ``idle_timeout`` (an answer that stalls mid-stream must not leave a call silent);
  either expiry is an ``APITimeoutError``, which is retryable before the first item.

The helper times only its waits on the provider, never the caller's time between items,
so a caller that paces audio in real time does not trip ``idle_timeout``.

Metrics go to a ``ProviderMetrics`` (no-op methods a collector overrides): each attempt's
start and error, the first item's latency from the public call (what the caller feels,
retries included), and the end of the stream.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from trunkline.providers.errors import APITimeoutError, ProviderError, ProviderUsageError

__all__ = ["NO_METRICS", "ProviderMetrics", "RetryPolicy", "retry_stream"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    The n-th retry waits ``min(max_backoff, initial_backoff * multiplier ** (n - 1))``
    seconds less a random fraction of up to ``jitter`` of it (so calls that failed
    together do not retry in lock step, and the wait never exceeds ``max_backoff``).
    ``rng`` is injectable so tests get the same waits every run.

    Args:
        attempts: attempts in all, the first included (1 = never retry).
        initial_backoff: seconds before the first retry, before jitter.
        max_backoff: longest wait, before jitter.
        multiplier: growth of the wait per retry.
        jitter: fraction (0..1) of each wait that may be taken off at random.
        rng: the source of the jitter.
    """

    attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ProviderUsageError(f"attempts must be >= 1, got {self.attempts}")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ProviderUsageError("backoffs must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ProviderUsageError(f"jitter must be in 0..1, got {self.jitter}")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * (1.0 - self.jitter * self.rng.random())


class ProviderMetrics:
    """Callbacks for provider request metrics; the methods here do nothing.

    A collector (Prometheus, a per-call timeline, a test) subclasses this and overrides
    what it needs. Every method runs on the event loop and must not block. ``operation``
    is ``"asr"``, ``"tts"`` or ``"llm"``; times are seconds on the loop's clock.
    """

    def request_started(self, provider: str, operation: str, attempt: int) -> None:
        """An attempt began (``attempt`` counts from 1)."""

    def first_byte(self, provider: str, operation: str, latency: float) -> None:
        """The first item arrived ``latency`` seconds after the public call began."""

    def request_ended(self, provider: str, operation: str, duration: float) -> None:
        """The stream ended normally (or the caller closed it) after ``duration`` seconds."""

    def request_error(
        self, provider: str, operation: str, error: ProviderError, *, attempt: int, retrying: bool
    ) -> None:
        """An attempt failed with ``error``; ``retrying`` says whether another follows."""


#: The shared do-nothing collector.
NO_METRICS = ProviderMetrics()


async def _next_item(iterator: AsyncIterator[T], limit: float | None, provider: str) -> T:
    if limit is None:
        return await anext(iterator)
    try:
        async with asyncio.timeout(limit):
            return await anext(iterator)
    except TimeoutError:
        raise APITimeoutError(f"no answer within {limit:g} s", provider=provider) from None


async def _close(iterator: AsyncIterator[T]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def retry_stream(
    open_attempt: Callable[[], AsyncIterator[T]],
    *,
    provider: str,
    operation: str,
    policy: RetryPolicy,
    metrics: ProviderMetrics = NO_METRICS,
    first_byte_timeout: float | None = None,
    idle_timeout: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[T]:
    """Stream the items of ``open_attempt()``, retrying failures before the first item.

    Args:
        open_attempt: starts one attempt (typically ``lambda: self._impl(...)``).
        provider: label for errors and metrics.
        operation: ``"tts"``, ``"llm"``... for metrics.
        policy: attempts and backoff.
        metrics: the collector.
        first_byte_timeout: longest wait for an attempt's first item (None: no limit).
        idle_timeout: longest wait for each later item (None: no limit).
        sleep: awaited for backoffs (tests pass a fake that records the delays).

    Raises:
        ProviderError: the last attempt's error, a non-retryable one, or any error after
            the first item. Other exceptions from ``open_attempt`` are bugs and pass
            through unretried.
    """
    loop = asyncio.get_running_loop()
    began = loop.time()
    attempt = 0
    while True:
        attempt += 1
        metrics.request_started(provider, operation, attempt)
        iterator = open_attempt()
        try:
            first = await _next_item(iterator, first_byte_timeout, provider)
        except StopAsyncIteration:
            metrics.request_ended(provider, operation, loop.time() - began)
            return
        except ProviderError as exc:
            await _close(iterator)
            retrying = exc.retryable and attempt < policy.attempts
            metrics.request_error(provider, operation, exc, attempt=attempt, retrying=retrying)
            if not retrying:
                raise
            await sleep(policy.backoff(attempt))
            continue
        except BaseException:
            await _close(iterator)
            raise
        break

    metrics.first_byte(provider, operation, loop.time() - began)
    failed = False
    try:
        yield first
        while True:
            try:
                item = await _next_item(iterator, idle_timeout, provider)
            except StopAsyncIteration:
                break
            yield item
    except ProviderError as exc:
        failed = True
        metrics.request_error(provider, operation, exc, attempt=attempt, retrying=False)
        raise
    finally:
        # Also reached when the caller closes us early (barge-in): close the attempt.
        await _close(iterator)
        if not failed:
            metrics.request_ended(provider, operation, loop.time() - began)
