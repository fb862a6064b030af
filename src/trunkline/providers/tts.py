"""The speech synthesis interface: ``TTS.synthesize(text)`` streams 8 kHz PCM.

``synthesize`` is the public method: it wraps the provider's ``_synthesize_impl`` in
:func:`trunkline.providers.retry.retry_stream` (a first-chunk timeout, retries of
retryable failures before the first chunk, an idle timeout after it, metrics) and cuts
whatever the implementation yields into whole 20 ms frames, so implementations may
yield any even-length PCM chunks. The caller stops early with ``aclose()`` on the
iterator (barge-in); the implementation's generator is closed with it.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from trunkline.media.audio import FRAME_BYTES
from trunkline.providers.retry import NO_METRICS, ProviderMetrics, RetryPolicy, retry_stream

__all__ = ["DEFAULT_FIRST_BYTE_TIMEOUT", "DEFAULT_IDLE_TIMEOUT", "TTS", "TTSCapabilities"]

#: Longest wait for the first audio of an attempt: past 2 s a caller hears dead air, and
#: a retry (or the pipeline's fallback) is better than more waiting.
DEFAULT_FIRST_BYTE_TIMEOUT = 2.0
#: Longest gap between chunks once audio flows; a stalled stream is cut off after it.
DEFAULT_IDLE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    """What a TTS provider can do.

    Attributes:
        streaming: audio starts before the whole text is rendered.
        sample_rate: the rate of the PCM it yields (8000 for every provider here).
    """

    streaming: bool
    sample_rate: int


class TTS(abc.ABC):
    """A speech synthesis provider.

    Args:
        label: the provider's name in errors and metrics.
        capabilities: what it can do.
        retry: the retry policy (default: ``RetryPolicy()``).
        first_byte_timeout: see ``DEFAULT_FIRST_BYTE_TIMEOUT`` (None: no limit).
        idle_timeout: see ``DEFAULT_IDLE_TIMEOUT`` (None: no limit).
        metrics: the metrics collector.
    """

    def __init__(
        self,
        *,
        label: str,
        capabilities: TTSCapabilities,
        retry: RetryPolicy | None = None,
        first_byte_timeout: float | None = DEFAULT_FIRST_BYTE_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        self.label = label
        self._capabilities = capabilities
        self.retry = retry or RetryPolicy()
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout
        self._metrics = metrics or NO_METRICS

    @property
    def capabilities(self) -> TTSCapabilities:
        """What this provider can do."""
        return self._capabilities

    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """Speak ``text``: 8 kHz s16le mono PCM in chunks of whole 20 ms frames.

        The first chunk comes as early as the provider allows; the last frame is padded
        with silence.

        Args:
            text: what to say (plain text).
            voice: a provider-specific voice name; None for the provider's default.

        Raises:
            ProviderError: while iterating, when every allowed attempt failed before the
                first chunk, or the stream failed after it.
        """
        attempts = retry_stream(
            lambda: self._synthesize_impl(text, voice=voice),
            provider=self.label,
            operation="tts",
            policy=self.retry,
            metrics=self._metrics,
            first_byte_timeout=self.first_byte_timeout,
            idle_timeout=self.idle_timeout,
        )
        return _whole_frames(attempts)

    @abc.abstractmethod
    def _synthesize_impl(self, text: str, *, voice: str | None) -> AsyncIterator[bytes]:
        """One attempt: yield even-length PCM chunks (any size) as they are ready."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Release the provider's resources."""

    async def __aenter__(self) -> TTS:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _whole_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Re-cut chunks into whole frames; the tail is padded with silence at the end."""
    rest = b""
    try:
        async for chunk in chunks:
            if rest:
                chunk = rest + chunk
            cut = len(chunk) - len(chunk) % FRAME_BYTES
            rest = chunk[cut:]
            if cut:
                yield chunk if cut == len(chunk) else chunk[:cut]
        if rest:
            yield rest + bytes(FRAME_BYTES - len(rest))
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
