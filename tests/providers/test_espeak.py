"""EspeakTTS with the real espeak-ng: audio, sentence streaming, the cache, failures."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from trunkline.media.audio import FRAME_BYTES
from trunkline.media.tones import rms_dbfs
from trunkline.providers import ProviderError, ProviderUsageError, RetryPolicy
from trunkline.providers.embedded_tts import MAX_SENTENCE_CHARS, EspeakTTS, split_sentences

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

FOUR = "Thanks for calling. Your order has shipped. It arrives on Monday. Goodbye."
ONCE = RetryPolicy(attempts=1)


def test_split_sentences() -> None:
    assert split_sentences(FOUR) == [
        "Thanks for calling.",
        "Your order has shipped.",
        "It arrives on Monday.",
        "Goodbye.",
    ]
    assert split_sentences("  one\n\ntwo?  three!  ") == ["one", "two?", "three!"]
    assert split_sentences("") == []
    long = ", ".join(["word " * 10] * 10)
    parts = split_sentences(long)
    assert len(parts) > 1
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in parts)
    assert " ".join(parts).split() == long.split()


async def test_audio_is_8k_frames_and_not_silent() -> None:
    tts = EspeakTTS()
    chunks = [c async for c in tts.synthesize("Hello, this is a test.")]
    assert chunks and all(len(c) % FRAME_BYTES == 0 for c in chunks)
    pcm = b"".join(chunks)
    seconds = len(pcm) / 16000
    assert 0.8 < seconds < 4.0  # a short sentence at 8 kHz, not 22.05 kHz samples
    assert rms_dbfs(pcm) > -40
    # Speech energy sits in the telephone band; the 8 kHz signal has no aliased hiss.
    spectrum = np.abs(np.fft.rfft(np.frombuffer(pcm, "<i2").astype(float)))
    freqs = np.fft.rfftfreq(len(pcm) // 2, 1 / 8000)
    assert spectrum[(freqs > 200) & (freqs < 3400)].sum() > 10 * spectrum[freqs > 3800].sum()


async def test_first_chunk_comes_before_the_whole_text_is_rendered() -> None:
    tts = EspeakTTS(cache_size=0)
    audio = tts.synthesize(FOUR)
    first = await anext(audio)
    assert first
    # Sentence one is rendered and two is rendering ahead; three and four are not started.
    assert tts.renders < len(split_sentences(FOUR))
    rest = [c async for c in audio]
    assert rest
    assert tts.renders == 4


async def test_second_call_is_served_from_the_cache() -> None:
    tts = EspeakTTS()
    first = b"".join([c async for c in tts.synthesize(FOUR)])
    assert tts.renders == 4 and tts.cache_hits == 0
    second = b"".join([c async for c in tts.synthesize(FOUR)])
    assert tts.renders == 4
    assert tts.cache_hits == 4
    assert second == first
    # A different rate is a different key.
    other = EspeakTTS(rate_wpm=200)
    other._cache = tts._cache
    _ = [c async for c in other.synthesize("Goodbye.")]
    assert other.renders == 1


async def test_prewarm_and_concurrent_requests_share_renders() -> None:
    tts = EspeakTTS()
    await tts.prewarm(["Welcome to Acme.", "Sorry, I did not catch that."])
    assert tts.renders == 2
    _ = [c async for c in tts.synthesize("Welcome to Acme.")]
    assert tts.renders == 2
    # Ten callers asking for the same new prompt at once cost one render per sentence.
    texts = await asyncio.gather(
        *(_collect(tts, "Please hold. Connecting you now.") for _ in range(10))
    )
    assert tts.renders == 4
    assert len(set(texts)) == 1


async def _collect(tts: EspeakTTS, text: str) -> bytes:
    return b"".join([c async for c in tts.synthesize(text)])


async def test_cache_is_bounded() -> None:
    tts = EspeakTTS(cache_size=2)
    for text in ("One.", "Two.", "Three."):
        await tts.prewarm([text])
    assert len(tts._cache) == 2
    _ = [c async for c in tts.synthesize("One.")]  # evicted: rendered again
    assert tts.renders == 4


async def test_unknown_voice_is_a_non_retryable_provider_error() -> None:
    tts = EspeakTTS(voice="xx-nosuchvoice", retry=RetryPolicy(attempts=3, initial_backoff=0))
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in tts.synthesize("Hello.")]
    assert not info.value.retryable
    assert "exited with 1" in str(info.value)
    assert tts.renders == 1  # not retried


async def test_missing_binary_is_a_non_retryable_provider_error() -> None:
    tts = EspeakTTS(binary="trunkline-no-such-espeak", retry=ONCE)
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in tts.synthesize("Hello.")]
    assert not info.value.retryable
    assert "not installed" in str(info.value)


async def test_voice_per_call_and_leading_dash_text() -> None:
    tts = EspeakTTS()
    female = b"".join([c async for c in tts.synthesize("-5 degrees.", voice="en-us+f2")])
    assert rms_dbfs(female) > -40  # "-5" was spoken, not taken for an option
    with pytest.raises(ProviderUsageError):
        _ = [c async for c in tts.synthesize("x", voice="en; rm -rf /")]


def test_settings_are_checked() -> None:
    with pytest.raises(ProviderUsageError):
        EspeakTTS(rate_wpm=5)
    with pytest.raises(ProviderUsageError):
        EspeakTTS(pitch=120)
    with pytest.raises(ProviderUsageError):
        EspeakTTS(voice="--help")
