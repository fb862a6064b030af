"""Provider errors and the one retry helper: classification, retries, timeouts, metrics."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from trunkline.providers import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ProviderError,
    ProviderMetrics,
    ProviderUsageError,
    RetryPolicy,
    retry_stream,
)


class Recorder(ProviderMetrics):
    """Keeps every metrics callback as a tuple."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def request_started(self, provider: str, operation: str, attempt: int) -> None:
        self.events.append(("started", attempt))

    def first_byte(self, provider: str, operation: str, latency: float) -> None:
        self.events.append(("first_byte",))

    def request_ended(self, provider: str, operation: str, duration: float) -> None:
        self.events.append(("ended",))

    def request_error(
        self, provider: str, operation: str, error: ProviderError, *, attempt: int, retrying: bool
    ) -> None:
        self.events.append(("error", attempt, retrying))


class Sleeps:
    """A fake sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Script:
    """Attempts that fail (before or after their first item) then succeed."""

    def __init__(self, failures: list[tuple[ProviderError, int]], items: list[str]) -> None:
        self.failures = failures  # (error, items yielded before it) per failing attempt
        self.items = items
        self.attempts = 0
        self.closed = 0

    async def attempt(self) -> AsyncIterator[str]:
        self.attempts += 1
        try:
            if self.failures:
                error, after = self.failures.pop(0)
                for item in self.items[:after]:
                    yield item
                raise error
            for item in self.items:
                yield item
        finally:
            self.closed += 1


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [item async for item in stream]


# -- classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (422, False), (429, True),
     (500, True), (502, True), (503, True), (599, True)],
)  # fmt: skip
def test_status_errors_are_retryable_only_when_transient(status: int, retryable: bool) -> None:
    error = APIStatusError("failed", provider="x", status=status)
    assert error.retryable is retryable
    assert error.status == status
    assert str(status) in str(error)


def test_connection_and_timeout_errors_are_retryable() -> None:
    assert APIConnectionError(provider="x").retryable
    timeout = APITimeoutError(provider="x")
    assert timeout.retryable
    assert isinstance(timeout, APIConnectionError)
    assert isinstance(timeout, ProviderError)


def test_plain_provider_error_is_what_the_raiser_says() -> None:
    assert not ProviderError("binary missing", provider="espeak").retryable
    assert ProviderError("crashed", provider="espeak", retryable=True).retryable
    assert "espeak" in repr(ProviderError("m", provider="espeak"))


def test_usage_error_is_not_a_provider_error() -> None:
    # The pipeline's fallback catches ProviderError; our bugs must not be swallowed.
    assert not issubclass(ProviderUsageError, ProviderError)


# -- the policy ---------------------------------------------------------------------------


def test_backoff_grows_to_the_cap_and_jitter_only_shortens() -> None:
    policy = RetryPolicy(
        attempts=6, initial_backoff=0.1, max_backoff=0.5, jitter=0.0, rng=random.Random(1)
    )
    assert [policy.backoff(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    jittered = RetryPolicy(initial_backoff=1.0, max_backoff=1.0, jitter=0.5, rng=random.Random(7))
    delays = [jittered.backoff(1) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


def test_backoff_is_deterministic_with_a_seeded_rng() -> None:
    a = RetryPolicy(rng=random.Random(42))
    b = RetryPolicy(rng=random.Random(42))
    assert [a.backoff(n) for n in (1, 2, 3)] == [b.backoff(n) for n in (1, 2, 3)]


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"jitter": 1.5}, {"initial_backoff": -1.0}, {"multiplier": 0.5}],
)
def test_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ProviderUsageError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- the helper ---------------------------------------------------------------------------


def _policy(attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, initial_backoff=0.1, jitter=0.0)


async def test_retryable_failure_before_first_item_is_retried_with_backoff() -> None:
    script = Script([(APIStatusError("busy", provider="x", status=503), 0)] * 2, ["a", "b"])
    sleeps, metrics = Sleeps(), Recorder()
    stream = retry_stream(
        script.attempt, provider="x", operation="tts", policy=_policy(), metrics=metrics,
        sleep=sleeps,
    )  # fmt: skip
    assert await collect(stream) == ["a", "b"]
    assert script.attempts == 3
    assert sleeps.delays == pytest.approx([0.1, 0.2])
    assert script.closed == 3  # every attempt's generator was closed
    assert metrics.events == [
        ("started", 1), ("error", 1, True), ("started", 2), ("error", 2, True),
        ("started", 3), ("first_byte",), ("ended",),
    ]  # fmt: skip


async def test_attempts_run_out_and_the_last_error_is_raised() -> None:
    errors = [APIConnectionError(f"down {i}", provider="x") for i in range(3)]
    script = Script([(e, 0) for e in errors], ["a"])
    sleeps = Sleeps()
    stream = retry_stream(
        script.attempt, provider="x", operation="t", policy=_policy(), sleep=sleeps
    )
    with pytest.raises(APIConnectionError) as info:
        await collect(stream)
    assert info.value is errors[2]
    assert script.attempts == 3
    assert len(sleeps.delays) == 2


async def test_non_retryable_error_is_raised_at_once() -> None:
    script = Script([(APIStatusError("bad key", provider="x", status=401), 0)], ["a"])
    sleeps = Sleeps()
    stream = retry_stream(
        script.attempt, provider="x", operation="t", policy=_policy(), sleep=sleeps
    )
    with pytest.raises(APIStatusError):
        await collect(stream)
    assert script.attempts == 1
    assert sleeps.delays == []


async def test_no_retry_after_the_first_item() -> None:
    script = Script([(APIConnectionError("reset", provider="x"), 1)], ["a", "b"])
    sleeps, metrics = Sleeps(), Recorder()
    stream = retry_stream(
        script.attempt, provider="x", operation="t", policy=_policy(), metrics=metrics,
        sleep=sleeps,
    )  # fmt: skip
    got: list[str] = []
    with pytest.raises(APIConnectionError):
        async for item in stream:
            got.append(item)
    assert got == ["a"]
    assert script.attempts == 1
    assert sleeps.delays == []
    assert metrics.events[-1] == ("error", 1, False)


async def test_first_byte_timeout_is_a_retryable_timeout() -> None:
    calls = 0

    async def slow_then_fast() -> AsyncIterator[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)
        yield "a"

    sleeps = Sleeps()
    stream = retry_stream(
        slow_then_fast, provider="x", operation="t", policy=_policy(), first_byte_timeout=0.01,
        sleep=sleeps,
    )  # fmt: skip
    assert await collect(stream) == ["a"]
    assert calls == 2
    assert len(sleeps.delays) == 1


async def test_idle_timeout_mid_stream_raises_without_retry() -> None:
    async def stalls() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(10)
        yield "b"

    stream = retry_stream(
        stalls, provider="x", operation="t", policy=_policy(), idle_timeout=0.01, sleep=Sleeps()
    )
    got: list[str] = []
    with pytest.raises(APITimeoutError):
        async for item in stream:
            got.append(item)
    assert got == ["a"]


async def test_idle_timeout_does_not_count_the_callers_time() -> None:
    script = Script([], ["a", "b", "c"])
    stream = retry_stream(
        script.attempt, provider="x", operation="t", policy=_policy(), idle_timeout=0.02
    )
    got = []
    async for item in stream:
        got.append(item)
        await asyncio.sleep(0.05)  # a caller pacing audio, slower than idle_timeout
    assert got == ["a", "b", "c"]


async def test_closing_early_closes_the_attempt_and_reports_the_end() -> None:
    script = Script([], ["a", "b", "c"])
    metrics = Recorder()
    async with aclosing(
        retry_stream(script.attempt, provider="x", operation="t", policy=_policy(), metrics=metrics)
    ) as stream:
        async for _item in stream:
            break  # barge-in
    assert script.closed == 1
    assert metrics.events[-1] == ("ended",)


async def test_empty_stream_ends_cleanly() -> None:
    script = Script([], [])
    metrics = Recorder()
    stream = retry_stream(
        script.attempt, provider="x", operation="t", policy=_policy(), metrics=metrics
    )
    assert await collect(stream) == []
    assert metrics.events == [("started", 1), ("ended",)]


async def test_other_exceptions_are_bugs_and_pass_through_unretried() -> None:
    script = Script([(ValueError("bug"), 0)], ["a"])  # type: ignore[list-item]
    stream = retry_stream(script.attempt, provider="x", operation="t", policy=_policy())
    with pytest.raises(ValueError):
        await collect(stream)
    assert script.attempts == 1
