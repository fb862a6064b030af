"""OpenAITTS against the local server, and the chunk-by-chunk decoder beneath it."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest

from trunkline.media.audio import FRAME_BYTES
from trunkline.media.errors import MediaUsageError, WavError
from trunkline.media.resample import resample
from trunkline.providers import APIStatusError, APITimeoutError, ProviderError, RetryPolicy
from trunkline.providers.openai_tts import OpenAITTS
from trunkline.providers.pcm_stream import PcmStreamDecoder, StreamResampler, WavHeader
from trunkline.providers.testing import OpenAIServer

NO_WAIT = RetryPolicy(attempts=3, initial_backoff=0.0, jitter=0.0)
TEXT = "Your order has shipped."


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as srv:
        yield srv


def make_tts(server: OpenAIServer, **kwargs: object) -> OpenAITTS:
    options: dict[str, object] = {
        "api_key": "test-key", "base_url": server.base_url, "retry": NO_WAIT,
        "first_byte_timeout": 2.0, "idle_timeout": 2.0,
    }  # fmt: skip
    options.update(kwargs)
    return OpenAITTS(**options)  # type: ignore[arg-type]


def tone(rate: int, ms: int) -> bytes:
    """A 440 Hz sine with noise at ``rate`` (content in and above the telephone band)."""
    n = rate * ms // 1000
    rng = np.random.default_rng(rate)
    x = np.sin(2 * np.pi * 440 * np.arange(n) / rate) * 9000 + rng.normal(0, 3000, n)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def expected_8k(server: OpenAIServer, text: str) -> bytes:
    """What the whole answer resampled at once gives, padded to whole frames."""
    pcm = resample(server.speech_audio(text), 24_000, 8_000)
    return pcm + bytes(-len(pcm) % FRAME_BYTES)


async def synth(tts: OpenAITTS, text: str = TEXT, voice: str | None = None) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, voice=voice)]


# -- through the server -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pcm", "wav"])
async def test_streamed_audio_is_the_whole_answer_resampled(server: OpenAIServer, fmt: str) -> None:
    assert server.speech_chunk_bytes % 2  # chunks cut samples in two
    async with make_tts(server, response_format=fmt, voice="nova") as tts:
        chunks = await synth(tts)
    assert len(chunks) > 1  # streamed, not one blob
    assert all(len(c) % FRAME_BYTES == 0 for c in chunks)
    audio = b"".join(chunks)
    assert audio == expected_8k(server, TEXT)
    samples_24k = len(server.speech_audio(TEXT)) // 2
    assert len(audio) // 2 - samples_24k / 3 < 160  # a third of the samples, + frame padding
    request = server.requests[0]
    assert request.path == "/v1/audio/speech"
    assert request.body == {
        "model": "gpt-4o-mini-tts", "input": TEXT, "voice": "nova", "response_format": fmt,
    }  # fmt: skip


async def test_voice_per_call_speed_and_instructions_are_sent(server: OpenAIServer) -> None:
    async with make_tts(server, speed=1.25, instructions="calm") as tts:
        await synth(tts, "Hi.", voice="echo")
        assert await synth(tts, "   ") == []  # nothing to say: no request
    assert len(server.requests) == 1
    body = server.requests[0].body
    assert (body["voice"], body["speed"], body["instructions"]) == ("echo", 1.25, "calm")


async def test_5xx_and_429_are_retried_before_the_first_byte(server: OpenAIServer) -> None:
    server.fail("status", status=500)
    server.fail("status", status=429)
    async with make_tts(server) as tts:
        audio = b"".join(await synth(tts))
    assert audio == expected_8k(server, TEXT)
    assert len(server.requests) == 3


async def test_a_bad_request_is_not_retried(server: OpenAIServer) -> None:
    async with make_tts(server, model=None) as tts:  # the server wants a model name
        with pytest.raises(APIStatusError) as info:
            await synth(tts)
    assert info.value.status == 400 and not info.value.retryable
    assert len(server.requests) == 1


async def test_a_hang_times_out_then_the_retry_succeeds(server: OpenAIServer) -> None:
    server.fail("hang")
    async with make_tts(server, first_byte_timeout=0.2) as tts:
        audio = b"".join(await synth(tts))
    assert audio == expected_8k(server, TEXT)
    assert len(server.requests) == 2


async def test_a_cut_after_audio_raises_and_is_not_retried(server: OpenAIServer) -> None:
    server.fail("cut", after=30_001)  # mid-answer, mid-sample
    got: list[bytes] = []
    async with make_tts(server) as tts:
        with pytest.raises(ProviderError):
            async for chunk in tts.synthesize(TEXT):
                got.append(chunk)
    assert got and len(b"".join(got)) < len(expected_8k(server, TEXT))
    assert len(server.requests) == 1


async def test_a_stall_hits_the_idle_timeout(server: OpenAIServer) -> None:
    server.fail("stall", after=20_000)
    async with make_tts(server, idle_timeout=0.2) as tts:
        with pytest.raises(APITimeoutError):
            await synth(tts)
    assert len(server.requests) == 1


async def test_a_json_body_with_200_is_not_audio(server: OpenAIServer) -> None:
    server.fail("garbage", times=3)
    async with make_tts(server) as tts:
        with pytest.raises(ProviderError, match="not audio"):
            await synth(tts)


# -- the decoder, sans-IO ---------------------------------------------------------------


@pytest.mark.parametrize("rate", [24_000, 22_050, 16_000, 48_000, 11_025, 8_000, 6_000])
def test_stream_resampler_equals_resampling_the_whole(rate: int) -> None:
    pcm = tone(rate, 300)[:-2]
    whole = resample(pcm, rate, 8_000)
    rng = random.Random(rate)
    for _ in range(2):
        resampler = StreamResampler(rate)
        out, pos = [], 0
        while pos < len(pcm):
            step = 2 * rng.randint(1, 1500)
            out.append(resampler.feed(pcm[pos : pos + step]))
            pos += step
        out.append(resampler.finish())
        assert b"".join(out) == whole


def test_decoder_takes_one_byte_at_a_time_and_odd_chunks() -> None:
    rng = np.random.default_rng(1)
    pcm = rng.integers(-20000, 20000, 1201, dtype="<i2").tobytes()
    whole = resample(pcm, 24_000, 8_000)
    decoder = PcmStreamDecoder("pcm")
    out = b"".join(decoder.feed(pcm[i : i + 1]) for i in range(len(pcm))) + decoder.finish()
    assert out == whole
    decoder = PcmStreamDecoder("pcm")
    out = decoder.feed(pcm + b"\x01") + decoder.finish()  # a dangling half sample
    assert out == whole


def test_wav_header_parsing() -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 16_000, 32_000, 2, 16)
    head = b"RIFF\xff\xff\xff\xffWAVE" + b"LIST\x03\x00\x00\x00abc\x00"  # odd chunk, padded
    head += b"fmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff"
    pcm = tone(16_000, 100)
    decoder = PcmStreamDecoder("wav")
    stream = head + pcm
    out = b"".join(decoder.feed(stream[i : i + 5]) for i in range(0, len(stream), 5))
    assert out + decoder.finish() == resample(pcm, 16_000, 8_000)

    stereo = head.replace(fmt, struct.pack("<HHIIHH", 1, 2, 16_000, 64_000, 4, 16))
    with pytest.raises(WavError, match="mono"):
        WavHeader().feed(stereo)
    with pytest.raises(WavError, match="RIFF"):
        WavHeader().feed(b"ID3\x03" + bytes(20))
    with pytest.raises(WavError, match="inside its header"):
        cut = PcmStreamDecoder("wav")
        cut.feed(head[:20])
        cut.finish()
    with pytest.raises(WavError, match="before the data"):
        WavHeader().feed(b"RIFF\0\0\0\0WAVEjunk" + struct.pack("<I", 1 << 30))
    with pytest.raises(MediaUsageError):
        PcmStreamDecoder("mp3")
