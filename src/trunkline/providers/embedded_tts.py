"""Embedded TTS: espeak-ng in subprocesses, streamed sentence by sentence, with a cache.

Theory of operation
-------------------
``synthesize(text)`` splits the text into sentences and renders each with one
``espeak-ng --stdout`` process (``asyncio.create_subprocess_exec``, no shell; the text is
an argument after ``--`` so a leading dash is not read as an option). espeak-ng writes a
22.05 kHz WAV with a streaming header; ``media.wav.decode_wav`` reads it and resamples it
to 8 kHz. The first sentence's frames go out as soon as it is rendered, and the next
sentence is already rendering while they play (``LOOKAHEAD`` sentences ahead), so the
time to first audio is one short sentence's render, not the whole text's.

Rendered sentences go into an LRU cache keyed by (voice, rate, pitch, sentence): fixed
prompts (greetings, reprompts) cost one render in the life of the process, and
``prewarm`` renders them before the first call. Concurrent requests for the same
sentence share one render. A semaphore bounds the espeak-ng processes alive at once
(rendering is CPU-bound; more processes than cores only add latency to all of them).

Failures are ``ProviderError``: the binary missing is not retryable (no attempt will
find it), a voice espeak-ng does not know is not retryable (exit status 1), output that
is not a WAV or a process killed by a signal is retryable.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable

from trunkline.media.audio import FRAME_BYTES, SAMPLE_RATE
from trunkline.media.errors import WavError
from trunkline.media.wav import decode_wav
from trunkline.providers.errors import ProviderError, ProviderUsageError
from trunkline.providers.retry import ProviderMetrics, RetryPolicy
from trunkline.providers.tts import (
    DEFAULT_FIRST_BYTE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    TTS,
    TTSCapabilities,
)

__all__ = ["EspeakTTS", "split_sentences"]

#: Sentences rendered ahead of the one playing: one hides the next render behind the
#: current audio (espeak-ng renders ~20x faster than real time); more would only hold
#: processes that a barge-in then throws away.
LOOKAHEAD = 1
#: A "sentence" longer than this is cut at a comma or space: an unpunctuated paragraph
#: (LLM output) would otherwise delay the first audio by its whole render.
MAX_SENTENCE_CHARS = 240
#: Frames per yielded chunk (100 ms): fewer hops through the wrappers than per frame.
CHUNK_FRAMES = 5
#: stderr kept for an error message; espeak-ng's messages are one line.
_MAX_STDERR = 500

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-/]{0,63}$")


def split_sentences(text: str) -> list[str]:
    """Cut ``text`` into sentences (whitespace normalised; long ones cut at commas)."""
    sentences: list[str] = []
    for part in _SENTENCE_END.split(text):
        part = " ".join(part.split())
        while len(part) > MAX_SENTENCE_CHARS:
            cut = part.rfind(", ", 0, MAX_SENTENCE_CHARS)
            if cut <= 0:
                cut = part.rfind(" ", 0, MAX_SENTENCE_CHARS)
            if cut <= 0:
                cut = MAX_SENTENCE_CHARS
            sentences.append(part[: cut + 1].strip())
            part = part[cut + 1 :].strip()
        if part:
            sentences.append(part)
    return sentences


class EspeakTTS(TTS):
    """espeak-ng speech, streamed sentence by sentence (see the module docstring).

    Args:
        voice: espeak-ng voice (``espeak-ng --voices``), e.g. ``"en-us"``, ``"en-us+f2"``.
        rate_wpm: speaking rate in words per minute.
        pitch: 0..99.
        cache_size: rendered sentences kept (LRU).
        max_concurrency: espeak-ng processes at once (default: the CPU count).
        binary: the executable to run.
        retry, first_byte_timeout, idle_timeout, metrics: as for ``TTS``.

    ``renders`` counts espeak-ng runs, ``cache_hits`` sentences served from the cache.
    """

    def __init__(
        self,
        voice: str = "en-us",
        rate_wpm: int = 160,
        pitch: int = 50,
        cache_size: int = 256,
        max_concurrency: int | None = None,
        *,
        binary: str = "espeak-ng",
        retry: RetryPolicy | None = None,
        first_byte_timeout: float | None = DEFAULT_FIRST_BYTE_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label="espeak",
            capabilities=TTSCapabilities(streaming=True, sample_rate=SAMPLE_RATE),
            retry=retry,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            metrics=metrics,
        )
        if not 80 <= rate_wpm <= 450:  # espeak-ng's own range
            raise ProviderUsageError(f"rate_wpm must be 80..450, got {rate_wpm}")
        if not 0 <= pitch <= 99:
            raise ProviderUsageError(f"pitch must be 0..99, got {pitch}")
        if cache_size < 0:
            raise ProviderUsageError(f"cache_size must be >= 0, got {cache_size}")
        self.voice = _check_voice(voice)
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.cache_size = cache_size
        self.binary = binary
        self._slots = asyncio.Semaphore(max_concurrency or os.cpu_count() or 1)
        self._cache: OrderedDict[tuple[str, int, int, str], bytes] = OrderedDict()
        self._inflight: dict[tuple[str, int, int, str], asyncio.Future[bytes]] = {}
        self.renders = 0
        self.cache_hits = 0

    async def _synthesize_impl(self, text: str, *, voice: str | None) -> AsyncIterator[bytes]:
        voice = self.voice if voice is None else _check_voice(voice)
        sentences = split_sentences(text)
        pending: list[asyncio.Future[bytes]] = []
        try:
            for i in range(len(sentences)):
                # Keep LOOKAHEAD renders going beyond the sentence about to play.
                while len(pending) <= LOOKAHEAD and i + len(pending) < len(sentences):
                    pending.append(self._sentence(voice, sentences[i + len(pending)]))
                pcm = await pending.pop(0)
                step = CHUNK_FRAMES * FRAME_BYTES
                for start in range(0, len(pcm), step):
                    yield pcm[start : start + step]
        finally:
            # Stopped early (barge-in, an error): drop the renders nobody will play.
            for fut in pending:
                fut.cancel()
            if pending:
                await asyncio.wait(pending)
                for fut in pending:
                    if not fut.cancelled():
                        fut.exception()  # retrieved: a lookahead failure nobody heard

    async def aclose(self) -> None:
        """Cancel renders in flight (their callers get ``CancelledError``)."""
        renders = list(self._inflight.values())
        for fut in renders:
            fut.cancel()
        if renders:
            await asyncio.wait(renders)

    async def prewarm(self, texts: Iterable[str], *, voice: str | None = None) -> None:
        """Render every sentence of ``texts`` into the cache (fixed prompts).

        Raises:
            ProviderError: a render failed.
        """
        voice = self.voice if voice is None else _check_voice(voice)
        futures = [self._sentence(voice, s) for text in texts for s in split_sentences(text)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _sentence(self, voice: str, sentence: str) -> asyncio.Future[bytes]:
        """A future of one sentence's 8 kHz PCM: cached, shared, or a new render."""
        key = (voice, self.rate_wpm, self.pitch, sentence)
        loop = asyncio.get_running_loop()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            done: asyncio.Future[bytes] = loop.create_future()
            done.set_result(cached)
            return done
        shared = self._inflight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._render(key))
            self._inflight[key] = shared
            shared.add_done_callback(lambda f: self._rendered(key, f))
        # Each waiter gets its own future: one caller's cancel (barge-in) must not
        # cancel the render another caller waits for.
        return asyncio.ensure_future(_shield(shared))

    def _rendered(self, key: tuple[str, int, int, str], fut: asyncio.Future[bytes]) -> None:
        self._inflight.pop(key, None)
        if fut.cancelled() or fut.exception() is not None or self.cache_size == 0:
            return
        self._cache[key] = fut.result()
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _render(self, key: tuple[str, int, int, str]) -> bytes:
        voice, rate, pitch, sentence = key
        args = ["--stdout", "-v", voice, "-s", str(rate), "-p", str(pitch), "--", sentence]
        async with self._slots:
            self.renders += 1
            try:
                proc = await asyncio.create_subprocess_exec(
                    self.binary,
                    *args,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            except FileNotFoundError:
                raise ProviderError(
                    f"{self.binary} is not installed", provider=self.label, retryable=False
                ) from None
            except OSError as exc:
                raise ProviderError(
                    f"cannot run {self.binary}: {exc}", provider=self.label, retryable=True
                ) from exc
            try:
                wav, err = await proc.communicate()
            except asyncio.CancelledError:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                raise
        message = err.decode("utf-8", "replace").strip()[:_MAX_STDERR]
        if proc.returncode != 0:
            # A signal (negative status) is a crash worth retrying; an exit status is
            # espeak-ng refusing the request (unknown voice), which will not change.
            raise ProviderError(
                f"{self.binary} exited with {proc.returncode}: {message or 'no message'}",
                provider=self.label,
                retryable=proc.returncode is not None and proc.returncode < 0,
            )
        try:
            pcm = decode_wav(wav)
        except WavError as exc:
            raise ProviderError(
                f"{self.binary} wrote no usable WAV: {exc}", provider=self.label, retryable=True
            ) from None
        if len(pcm) % FRAME_BYTES:
            pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
        return pcm


async def _shield(fut: asyncio.Future[bytes]) -> bytes:
    return await asyncio.shield(fut)


def _check_voice(voice: str) -> str:
    # A voice name goes to argv; refuse anything that is not a plain name (or a path
    # under espeak-ng's voices, which may contain '/').
    if not _VOICE_NAME.match(voice):
        raise ProviderUsageError(f"bad espeak-ng voice name {voice!r}")
    return voice
