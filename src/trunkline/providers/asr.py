"""The speech recognition interface: ``ASR`` opens ``ASRStream``s that yield events.

Theory of operation
-------------------
The pipeline opens one stream per call (or per flow state, when the grammar changes)
with ``asr.stream(grammar=..., call_id=...)`` and then, on the event loop:

- ``push(pcm)`` for every inbound 20 ms frame (8 kHz s16le). It never blocks and never
  raises a provider error: a stream that has failed drops the audio and reports the
  failure through iteration;
- ``flush()`` when endpointing decides the caller has finished an utterance: the stream
  answers with one ``Final`` for the audio since the previous flush (an empty ``text``
  when nothing was recognised) and is then ready for the next utterance;
- ``end_input()`` when no more audio will come: pending audio is flushed, and the
  iteration ends after the last ``Final``;
- ``aclose()`` to drop the stream at once (hang-up, barge-in into another state).

Events are read with ``async for event in stream``: ``Partial`` hypotheses while the
caller speaks (when the provider has them), a ``Final`` per flush. A provider failure
ends the iteration by raising its ``ProviderError`` (``retryable`` says whether opening
a new stream may help). Streams are not retried inside: the audio already pushed is
gone, so the pipeline decides (reprompt, reopen, fall back to DTMF).

Implementations subclass ``ASRStream`` and implement ``_push_impl``, ``_flush_impl``,
``_end_input_impl`` and ``_aclose_impl``; they deliver results with ``_emit``,
``_fail`` and ``_finish``, on the event loop thread.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from trunkline.providers.errors import ProviderError, ProviderUsageError
from trunkline.providers.retry import NO_METRICS, ProviderMetrics

__all__ = ["ASR", "ASRCapabilities", "ASREvent", "ASRStream", "Final", "Partial", "WordTiming"]


@dataclass(frozen=True, slots=True)
class ASRCapabilities:
    """What an ASR provider can do.

    Attributes:
        streaming: results arrive while audio is still being pushed.
        partial_results: ``Partial`` events come before the ``Final``.
        grammar: a JSGF grammar passed to ``stream()`` constrains recognition; providers
            without it ignore the grammar and the pipeline matches the text itself.
        sample_rates: input rates accepted (the pipeline pushes 8000).
    """

    streaming: bool
    partial_results: bool
    grammar: bool
    sample_rates: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Partial:
    """The current hypothesis for the utterance in progress; later ones replace it."""

    text: str


@dataclass(frozen=True, slots=True)
class WordTiming:
    """One recognised word, with times in seconds from the start of its utterance."""

    word: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Final:
    """The result for one utterance (one ``flush``).

    ``text`` is lower-case words separated by single spaces, empty when nothing was
    recognised; ``confidence`` is in 0..1; ``words`` may be empty when the provider
    gives no timings.
    """

    text: str
    confidence: float
    words: tuple[WordTiming, ...] = ()


ASREvent = Partial | Final


class ASRStream(abc.ABC):
    """One call's recognition stream; see the module docstring for the protocol."""

    def __init__(self, *, provider: str, call_id: str, metrics: ProviderMetrics) -> None:
        self.provider = provider
        self.call_id = call_id
        self._metrics = metrics
        self._events: deque[ASREvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: ProviderError | None = None
        self._finished = False  # no more events will come
        self._input_ended = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._began = self._loop.time()
        self._answered = False
        metrics.request_started(provider, "asr", 1)

    # -- the caller's side ---------------------------------------------------------------

    @property
    def failed(self) -> bool:
        """True once the stream has failed (its iteration raises the error)."""
        return self._error is not None

    def push(self, pcm: bytes) -> None:
        """Add audio: 8 kHz s16le mono, normally one 20 ms frame. Never blocks.

        Raises:
            ProviderUsageError: after ``end_input()`` or ``aclose()``.
        """
        if self._input_ended or self._closed:
            raise ProviderUsageError("push() after end_input() or aclose()")
        if self._error is None:
            self._push_impl(pcm)

    def flush(self) -> None:
        """End the current utterance: a ``Final`` for the audio since the last flush follows.

        Raises:
            ProviderUsageError: after ``end_input()`` or ``aclose()``.
        """
        if self._input_ended or self._closed:
            raise ProviderUsageError("flush() after end_input() or aclose()")
        if self._error is None:
            self._flush_impl()

    def end_input(self) -> None:
        """No more audio: pending audio is flushed, then the iteration ends."""
        if self._input_ended or self._closed:
            return
        self._input_ended = True
        if self._error is None:
            self._end_input_impl()

    async def aclose(self) -> None:
        """Drop the stream now; pending results are discarded and iteration ends."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._aclose_impl()
        finally:
            if not self._finished and self._error is None:
                self._finish()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self

    async def __anext__(self) -> ASREvent:
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._finished:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    async def __aenter__(self) -> ASRStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the implementation's side -------------------------------------------------------

    @abc.abstractmethod
    def _push_impl(self, pcm: bytes) -> None:
        """Take one chunk of audio; must not block."""

    @abc.abstractmethod
    def _flush_impl(self) -> None:
        """End the utterance; ``_emit`` a ``Final`` for it later (or now)."""

    @abc.abstractmethod
    def _end_input_impl(self) -> None:
        """Flush what is pending (if any audio came since the last flush), then ``_finish``."""

    @abc.abstractmethod
    async def _aclose_impl(self) -> None:
        """Release the stream's resources; no more events are wanted."""

    def _emit(self, event: ASREvent) -> None:
        """Deliver an event to the reader (on the loop thread)."""
        if self._finished or self._error is not None or self._closed:
            return
        if not self._answered:
            self._answered = True
            self._metrics.first_byte(self.provider, "asr", self._loop.time() - self._began)
        self._events.append(event)
        self._wake()

    def _fail(self, error: ProviderError) -> None:
        """End the stream with ``error``: queued events are still read first."""
        if self._finished or self._error is not None:
            return
        self._error = error
        self._metrics.request_error(self.provider, "asr", error, attempt=1, retrying=False)
        self._wake()

    def _finish(self) -> None:
        """End the iteration normally once queued events are read."""
        if self._finished or self._error is not None:
            return
        self._finished = True
        self._metrics.request_ended(self.provider, "asr", self._loop.time() - self._began)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class ASR(abc.ABC):
    """A speech recognition provider.

    Args:
        label: the provider's name in errors and metrics.
        capabilities: what it can do.
        metrics: the metrics collector (no-op by default).
    """

    def __init__(
        self,
        *,
        label: str,
        capabilities: ASRCapabilities,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        self.label = label
        self._capabilities = capabilities
        self._metrics = metrics or NO_METRICS

    @property
    def capabilities(self) -> ASRCapabilities:
        """What this provider can do."""
        return self._capabilities

    def stream(self, *, grammar: str | None = None, call_id: str = "") -> ASRStream:
        """Open a recognition stream.

        Args:
            grammar: a JSGF grammar (the flow state's); None for open vocabulary.
                Ignored by providers whose capabilities lack ``grammar``.
            call_id: the call's id, for logs and for pinning a call to one worker.

        Raises:
            ProviderUsageError: the provider is closed or not started.
            ProviderError: the stream could not be opened (e.g. a grammar that does not
                compile is reported on the stream, by its iteration, not here).
        """
        if not self._capabilities.grammar:
            grammar = None
        return self._stream_impl(grammar=grammar, call_id=call_id)

    @abc.abstractmethod
    def _stream_impl(self, *, grammar: str | None, call_id: str) -> ASRStream:
        """Open a stream (called on the event loop)."""

    async def start(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Start what the provider runs (worker processes); a no-op for most."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Release the provider's resources (worker processes, connections)."""

    async def __aenter__(self) -> ASR:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
