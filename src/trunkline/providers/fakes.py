"""Fake ASR, TTS and LLM providers with scripted results, latency and failures.

For tests and benchmarks. Every latency is an ``asyncio`` sleep or timer on the running
loop's clock, so a benchmark can subtract the scripted latency from a measured one
exactly, and a test with a fast-forwarding clock sees it too. The fakes go through the
same public wrappers as real providers (``TTS.synthesize``, ``LLM.chat``), so retries,
timeouts and metrics behave as in production.

Failures are injected with a ``FailurePlan``: raise a given ``ProviderError`` before the
first chunk (``at="start"``) or after the first chunk (``at="mid"``), for the first
``times`` requests.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from trunkline.media.audio import FRAME_BYTES, FRAME_MS, SAMPLE_RATE
from trunkline.providers.asr import ASR, ASRCapabilities, ASRStream, Final, Partial
from trunkline.providers.errors import ProviderError
from trunkline.providers.llm import LLM, LLMCapabilities, LLMChunk, TextDelta
from trunkline.providers.retry import ProviderMetrics, RetryPolicy
from trunkline.providers.tts import TTS, TTSCapabilities

__all__ = ["FailurePlan", "FakeASR", "FakeASRStream", "FakeLLM", "FakeTTS"]

_BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 16 bytes of s16le PCM per millisecond


@dataclass
class FailurePlan:
    """Fail the next ``times`` requests with ``error``, before or after the first chunk.

    For ``FakeASR``, ``at="start"`` fails a stream on its first push and ``at="mid"``
    after ``after_audio_ms`` of audio.
    """

    error: ProviderError
    at: Literal["start", "mid"] = "start"
    times: int = 1
    after_audio_ms: int = 0

    def take(self) -> bool:
        """Whether this request fails (uses up one of ``times``)."""
        if self.times <= 0:
            return False
        self.times -= 1
        return True


#: One utterance's script: (audio ms into the utterance, hypothesis text) pairs.
UtteranceScript = Sequence[tuple[int, str]]


class FakeASR(ASR):
    """Scripted recognition: partials at given audio offsets, a Final after each flush.

    Args:
        script: what each utterance is heard as. A sequence of ``(after_audio_ms,
            text)``: once the utterance has that much audio a ``Partial(text)`` is
            emitted; the ``Final`` carries the last entry's text. Or a callable
            ``(utterance_index, grammar) -> sequence`` for a different script per
            utterance (``utterance_index`` counts flushes in the stream from 0).
        final_latency: seconds from ``flush()`` to the ``Final``.
        partial_latency: seconds from reaching an offset to its ``Partial``.
        confidence: the ``Final``'s confidence.
        failure: inject a failure (see ``FailurePlan``).
        metrics: the metrics collector.

    ``streams`` lists every stream opened, for assertions.
    """

    def __init__(
        self,
        script: UtteranceScript | Callable[[int, str | None], UtteranceScript] = (),
        *,
        final_latency: float = 0.0,
        partial_latency: float = 0.0,
        confidence: float = 0.9,
        failure: FailurePlan | None = None,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label="fake-asr",
            capabilities=ASRCapabilities(
                streaming=True, partial_results=True, grammar=True, sample_rates=(SAMPLE_RATE,)
            ),
            metrics=metrics,
        )
        self._script = script
        self.final_latency = final_latency
        self.partial_latency = partial_latency
        self.confidence = confidence
        self.failure = failure
        self.streams: list[FakeASRStream] = []

    def script_for(self, utterance: int, grammar: str | None) -> UtteranceScript:
        """The script of one utterance."""
        if callable(self._script):
            return self._script(utterance, grammar)
        return self._script

    def _stream_impl(self, *, grammar: str | None, call_id: str) -> ASRStream:
        fail = None
        if self.failure is not None and self.failure.take():
            fail = self.failure
        stream = FakeASRStream(self, grammar=grammar, call_id=call_id, failure=fail)
        self.streams.append(stream)
        return stream


class FakeASRStream(ASRStream):
    """A ``FakeASR`` stream; ``audio_bytes`` counts what was pushed, ``flushes`` the flushes."""

    def __init__(
        self, asr: FakeASR, *, grammar: str | None, call_id: str, failure: FailurePlan | None
    ) -> None:
        super().__init__(provider=asr.label, call_id=call_id, metrics=asr._metrics)
        self._asr = asr
        self.grammar = grammar
        self._failure = failure
        self.audio_bytes = 0
        self.flushes = 0
        self._utterance_bytes = 0
        self._script: list[tuple[int, str]] | None = None  # taken at an utterance's audio
        self._next = 0  # next script entry to emit
        self._timers: set[asyncio.TimerHandle] = set()

    def _later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = self._loop.call_later(delay, fire)
        self._timers.add(handle)

    def _push_impl(self, pcm: bytes) -> None:
        self.audio_bytes += len(pcm)
        self._utterance_bytes += len(pcm)
        failure = self._failure
        if failure is not None and (
            failure.at == "start" or self.audio_bytes >= failure.after_audio_ms * _BYTES_PER_MS
        ):
            self._failure = None
            self._later(0.0, self._fail, failure.error)
            return
        if self._script is None:
            self._script = list(self._asr.script_for(self.flushes, self.grammar))
        script = self._script
        heard_ms = self._utterance_bytes // _BYTES_PER_MS
        while self._next < len(script) and script[self._next][0] <= heard_ms:
            self._later(self._asr.partial_latency, self._emit, Partial(script[self._next][1]))
            self._next += 1

    def _flush_impl(self, *, then_finish: bool = False) -> None:
        text = self._script[-1][1] if self._script else ""
        final = Final(text, self._asr.confidence if text else 0.0)
        self._later(self._asr.final_latency, self._deliver_final, final, then_finish)
        self.flushes += 1
        self._utterance_bytes = 0
        self._script = None
        self._next = 0

    def _deliver_final(self, final: Final, then_finish: bool) -> None:
        self._emit(final)
        if then_finish:
            self._finish()

    def _end_input_impl(self) -> None:
        if self._utterance_bytes:
            self._flush_impl(then_finish=True)
        else:
            self._later(self._asr.final_latency, self._finish)

    async def _aclose_impl(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()


class FakeTTS(TTS):
    """Scripted synthesis: ``ms_per_char`` of audio per character of text.

    Args:
        ms_per_char: audio length per character (65 ms is about 160 words a minute).
        first_byte_latency: seconds before the first chunk.
        chunk_ms: audio per chunk (rounded down to whole frames, at least one).
        chunk_interval: seconds between chunks after the first (0: as fast as read).
        tone_hz: a sine tone at -12 dBFS, or None for digital silence.
        failure: inject a failure (see ``FailurePlan``).
        retry, first_byte_timeout, idle_timeout, metrics: as for ``TTS``.

    ``requests`` lists every attempt's ``(text, voice)``, retries included.
    """

    def __init__(
        self,
        *,
        ms_per_char: float = 65.0,
        first_byte_latency: float = 0.0,
        chunk_ms: int = 200,
        chunk_interval: float = 0.0,
        tone_hz: float | None = 440.0,
        failure: FailurePlan | None = None,
        retry: RetryPolicy | None = None,
        first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label="fake-tts",
            capabilities=TTSCapabilities(streaming=True, sample_rate=SAMPLE_RATE),
            retry=retry,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            metrics=metrics,
        )
        self.ms_per_char = ms_per_char
        self.first_byte_latency = first_byte_latency
        self.chunk_frames = max(1, chunk_ms // FRAME_MS)
        self.chunk_interval = chunk_interval
        self.tone_hz = tone_hz
        self.failure = failure
        self.requests: list[tuple[str, str | None]] = []

    def audio_for(self, text: str) -> bytes:
        """The whole PCM this fake yields for ``text`` (whole frames)."""
        frames = math.ceil(len(text) * self.ms_per_char / FRAME_MS)
        n = frames * FRAME_BYTES // 2
        if self.tone_hz is None:
            return bytes(2 * n)
        t = np.arange(n) / SAMPLE_RATE
        pcm: bytes = (np.sin(2 * np.pi * self.tone_hz * t) * 8192).astype("<i2").tobytes()
        return pcm

    async def _synthesize_impl(self, text: str, *, voice: str | None) -> AsyncIterator[bytes]:
        self.requests.append((text, voice))
        failure = self.failure if self.failure is not None and self.failure.take() else None
        await asyncio.sleep(self.first_byte_latency)
        if failure is not None and failure.at == "start":
            raise failure.error
        pcm = self.audio_for(text)
        step = self.chunk_frames * FRAME_BYTES
        for i, start in enumerate(range(0, len(pcm), step)):
            if i:
                if failure is not None:
                    raise failure.error
                if self.chunk_interval:
                    await asyncio.sleep(self.chunk_interval)
            yield pcm[start : start + step]


#: One scripted reply: plain text (streamed word by word) or explicit chunks.
FakeReply = str | Sequence[LLMChunk]


class FakeLLM(LLM):
    """Scripted chat: each ``chat`` call streams the next scripted reply.

    Args:
        replies: the replies in order (the last one repeats), or a callable from the
            messages to a reply. A ``str`` reply streams as word tokens (each word with
            its following space); a sequence of ``TextDelta``/``ToolCallChunk`` streams
            as given.
        time_to_first_token: seconds before the first chunk.
        token_delay: seconds between chunks after the first.
        failure: inject a failure (see ``FailurePlan``).
        retry, first_token_timeout, idle_timeout, metrics: as for ``LLM``.

    ``requests`` lists every attempt's ``(messages, tools)``, retries included.
    """

    def __init__(
        self,
        replies: Sequence[FakeReply] | Callable[[list[dict[str, Any]]], FakeReply] = ("OK.",),
        *,
        time_to_first_token: float = 0.0,
        token_delay: float = 0.0,
        failure: FailurePlan | None = None,
        retry: RetryPolicy | None = None,
        first_token_timeout: float | None = None,
        idle_timeout: float | None = None,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label="fake-llm",
            capabilities=LLMCapabilities(streaming=True, tool_calls=True),
            retry=retry,
            first_token_timeout=first_token_timeout,
            idle_timeout=idle_timeout,
            metrics=metrics,
        )
        self._replies = replies
        self._calls = 0
        self.time_to_first_token = time_to_first_token
        self.token_delay = token_delay
        self.failure = failure
        self.requests: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = []

    def _reply(self, messages: list[dict[str, Any]]) -> Sequence[LLMChunk]:
        if callable(self._replies):
            reply = self._replies(messages)
        else:
            reply = self._replies[min(self._calls, len(self._replies) - 1)]
        self._calls += 1
        if isinstance(reply, str):
            words = reply.split(" ")
            return [TextDelta(w + " ") for w in words[:-1]] + [TextDelta(words[-1])]
        return list(reply)

    async def _chat_impl(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[LLMChunk]:
        self.requests.append((messages, tools))
        failure = self.failure if self.failure is not None and self.failure.take() else None
        await asyncio.sleep(self.time_to_first_token)
        if failure is not None and failure.at == "start":
            raise failure.error  # before the reply is taken: the retry gets the same one
        for i, chunk in enumerate(self._reply(messages)):
            if i:
                if failure is not None:
                    raise failure.error
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
            yield chunk
