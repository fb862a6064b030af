"""OpenAI-compatible speech synthesis, streamed: ``OpenAITTS``.

One attempt is ``POST {base_url}/audio/speech`` with ``{"model", "input", "voice",
"response_format"}``; the answer's body is the audio, sent as it is rendered (chunked).
With ``response_format: "pcm"`` that is raw 24 kHz s16le mono samples (OpenAI's
documented format); with ``"wav"`` a WAV header comes first (its data size a streaming
placeholder). :class:`~trunkline.providers.pcm_stream.PcmStreamDecoder` turns the
chunks into 8 kHz PCM as they come, keeping a sample cut between two chunks whole and
resampling without seams at chunk boundaries, so the first audio goes out after the
first chunk, not the whole answer.

Failures are the provider family's (:mod:`.openai_http` maps statuses and transport
errors); a 200 whose body is JSON or text (a proxy's error page) or a WAV that is not
16-bit mono is a ``ProviderError``. The ``TTS`` base class retries before the first
chunk, bounds the waits, and re-cuts the output into whole 20 ms frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from trunkline.media.audio import SAMPLE_RATE
from trunkline.media.errors import WavError
from trunkline.providers.errors import ProviderError, ProviderUsageError
from trunkline.providers.openai_http import check_base_url, default_client, open_stream
from trunkline.providers.openai_llm import OPENAI_BASE_URL
from trunkline.providers.pcm_stream import PcmStreamDecoder
from trunkline.providers.retry import ProviderMetrics, RetryPolicy
from trunkline.providers.tts import (
    DEFAULT_FIRST_BYTE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    TTS,
    TTSCapabilities,
)

__all__ = ["OPENAI_PCM_RATE", "OpenAITTS"]

#: The rate of OpenAI's ``pcm`` response format (24 kHz s16le mono, no header).
OPENAI_PCM_RATE = 24_000
#: Longest input OpenAI's speech endpoint takes (characters); longer text is refused
#: here, with a clear error, rather than by a 400 from the far end.
MAX_INPUT_CHARS = 4096
_FORMATS = ("pcm", "wav")


class OpenAITTS(TTS):
    """Speech from an OpenAI-compatible ``/audio/speech`` endpoint, as 8 kHz PCM.

    Args:
        model: e.g. ``"gpt-4o-mini-tts"`` or ``"tts-1"``.
        voice: the default voice (``"alloy"``...); ``synthesize(voice=...)`` overrides it.
        api_key: sent as ``Authorization: Bearer ...``; None sends no header.
        base_url: the API root, ``.../v1``.
        response_format: ``"pcm"`` (24 kHz raw, the lowest latency) or ``"wav"``.
        pcm_rate: the rate of ``pcm`` answers (servers other than OpenAI may differ).
        speed: 0.25..4.0, or None for the server's default.
        instructions: a speaking-style hint (models that take one), or None.
        client: an ``httpx.AsyncClient`` to use (not closed by us); one is made otherwise.
        label: the provider's name in errors and metrics.
        retry, first_byte_timeout, idle_timeout, metrics: as for ``TTS``.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        api_key: str | None = None,
        base_url: str = OPENAI_BASE_URL,
        response_format: str = "pcm",
        pcm_rate: int = OPENAI_PCM_RATE,
        speed: float | None = None,
        instructions: str | None = None,
        client: httpx.AsyncClient | None = None,
        label: str = "openai-tts",
        retry: RetryPolicy | None = None,
        first_byte_timeout: float | None = DEFAULT_FIRST_BYTE_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label=label,
            capabilities=TTSCapabilities(streaming=True, sample_rate=SAMPLE_RATE),
            retry=retry,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            metrics=metrics,
        )
        if response_format not in _FORMATS:
            raise ProviderUsageError(f"response_format must be one of {_FORMATS}")
        if speed is not None and not 0.25 <= speed <= 4.0:
            raise ProviderUsageError(f"speed must be 0.25..4.0, got {speed}")
        self.model = model
        self.voice = voice
        self.response_format = response_format
        self.pcm_rate = pcm_rate
        self.speed = speed
        self.instructions = instructions
        self._url = check_base_url(base_url) + "/audio/speech"
        self._headers: dict[str, str] = {}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client if client is not None else default_client()

    async def aclose(self) -> None:
        """Close the HTTP client if we made it."""
        if self._owns_client:
            await self._client.aclose()

    def request_body(self, text: str, voice: str | None) -> dict[str, Any]:
        """The JSON body of one attempt."""
        body: dict[str, Any] = {
            "model": self.model,
            "input": text,
            "voice": voice or self.voice,
            "response_format": self.response_format,
        }
        if self.speed is not None:
            body["speed"] = self.speed
        if self.instructions is not None:
            body["instructions"] = self.instructions
        return body

    async def _synthesize_impl(self, text: str, *, voice: str | None) -> AsyncIterator[bytes]:
        text = text.strip()
        if not text:
            return  # nothing to say: no request (the endpoint refuses empty input)
        if len(text) > MAX_INPUT_CHARS:
            raise ProviderError(
                f"text of {len(text)} chars is over the {MAX_INPUT_CHARS}-char limit",
                provider=self.label,
            )
        async with open_stream(
            self._client,
            self._url,
            body=self.request_body(text, voice),
            headers=self._headers,
            provider=self.label,
        ) as response:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind.startswith(("application/json", "text/")):
                raise ProviderError(
                    f"answered 200 with {kind}, not audio", provider=self.label, retryable=True
                )
            decoder = PcmStreamDecoder(self.response_format, self.pcm_rate)
            try:
                async for chunk in response.aiter_bytes():
                    pcm = decoder.feed(chunk)
                    if pcm:
                        yield pcm
                tail = decoder.finish()
            except WavError as exc:
                raise ProviderError(f"unusable WAV answer: {exc}", provider=self.label) from None
            if tail:
                yield tail
