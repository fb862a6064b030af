"""The fakes do what their scripts say, through the same public wrappers as real providers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np
import pytest

from trunkline.media.audio import FRAME_BYTES
from trunkline.providers import (
    TTS,
    APIConnectionError,
    APIStatusError,
    ASREvent,
    Final,
    Partial,
    ProviderError,
    ProviderUsageError,
    RetryPolicy,
    TextDelta,
    ToolCallChunk,
    TTSCapabilities,
)
from trunkline.providers.fakes import FailurePlan, FakeASR, FakeLLM, FakeTTS

from .test_retry import Recorder

FRAME = bytes(FRAME_BYTES)
NO_WAIT = RetryPolicy(attempts=3, initial_backoff=0.0, jitter=0.0)


async def read_all(stream: AsyncIterator[ASREvent]) -> list[ASREvent]:
    return [event async for event in stream]


# -- FakeASR ------------------------------------------------------------------------------


async def test_fake_asr_partials_at_audio_offsets_then_final_after_flush() -> None:
    asr = FakeASR([(100, "order"), (300, "order status")], final_latency=0.05)
    stream = asr.stream(grammar="#JSGF V1.0;", call_id="c1")
    loop = asyncio.get_running_loop()
    for _ in range(4):  # 80 ms: no partial yet
        stream.push(FRAME)
    await asyncio.sleep(0)
    assert not stream._events
    for _ in range(16):  # 400 ms in all
        stream.push(FRAME)
    flushed = loop.time()
    stream.flush()
    events = [await anext(stream) for _ in range(3)]
    assert loop.time() - flushed >= 0.05
    assert events == [Partial("order"), Partial("order status"), Final("order status", 0.9)]
    assert asr.streams[0].grammar == "#JSGF V1.0;"
    assert asr.streams[0].call_id == "c1"
    assert asr.streams[0].audio_bytes == 20 * FRAME_BYTES
    await stream.aclose()


async def test_fake_asr_script_per_utterance_and_end_input_finishes() -> None:
    scripts = {0: [(0, "yes")], 1: [(0, "no")]}
    asr = FakeASR(lambda n, grammar: scripts[n])
    stream = asr.stream()
    stream.push(FRAME)
    stream.flush()
    stream.push(FRAME)
    stream.end_input()  # flushes the pending utterance
    events = await read_all(stream)
    assert [e for e in events if isinstance(e, Final)] == [Final("yes", 0.9), Final("no", 0.9)]
    with pytest.raises(ProviderUsageError):
        stream.push(FRAME)


async def test_fake_asr_flush_without_speech_gives_an_empty_final() -> None:
    stream = FakeASR([]).stream()
    stream.flush()
    stream.end_input()
    assert await read_all(stream) == [Final("", 0.0)]


async def test_fake_asr_injected_failure_mid_stream() -> None:
    error = APIConnectionError("worker died", provider="fake-asr")
    asr = FakeASR([(0, "hello")], failure=FailurePlan(error, at="mid", after_audio_ms=100))
    stream = asr.stream()
    stream.push(FRAME)  # 20 ms: a partial
    for _ in range(5):  # 120 ms: the failure
        stream.push(FRAME)
    got = []
    with pytest.raises(APIConnectionError):
        async for event in stream:
            got.append(event)
    assert got == [Partial("hello")]
    assert stream.failed
    stream.push(FRAME)  # a failed stream drops audio quietly (push never raises it)
    assert asr.stream().failed is False  # the plan was for one stream


async def test_fake_asr_aclose_ends_iteration() -> None:
    stream = FakeASR([(0, "x")], final_latency=10).stream()
    stream.push(FRAME)
    stream.flush()
    await stream.aclose()
    assert [e for e in await read_all(stream) if isinstance(e, Final)] == []


# -- FakeTTS ------------------------------------------------------------------------------


async def test_fake_tts_audio_length_framing_and_first_byte_latency() -> None:
    tts = FakeTTS(ms_per_char=50, first_byte_latency=0.03, chunk_ms=100)
    loop = asyncio.get_running_loop()
    began = loop.time()
    chunks = []
    first_at = None
    async for chunk in tts.synthesize("hello", voice="v"):
        first_at = first_at or loop.time()
        chunks.append(chunk)
    assert first_at is not None and first_at - began >= 0.03
    assert all(len(c) % FRAME_BYTES == 0 for c in chunks)
    assert sum(map(len, chunks)) == 250 // 20 * FRAME_BYTES + FRAME_BYTES  # 250 ms, 13 frames
    assert np.abs(np.frombuffer(b"".join(chunks), "<i2")).max() > 1000  # a tone, not silence
    assert tts.requests == [("hello", "v")]


async def test_fake_tts_chunk_pacing_is_on_the_loop_clock() -> None:
    tts = FakeTTS(ms_per_char=100, chunk_ms=100, chunk_interval=0.02)
    loop = asyncio.get_running_loop()
    began = loop.time()
    chunks = [c async for c in tts.synthesize("abcd")]
    assert len(chunks) == 4
    assert loop.time() - began >= 3 * 0.02


async def test_fake_tts_failure_before_first_byte_is_retried() -> None:
    error = APIStatusError("overloaded", provider="fake-tts", status=503)
    tts = FakeTTS(failure=FailurePlan(error, times=2), retry=NO_WAIT)
    chunks = [c async for c in tts.synthesize("hi")]
    assert chunks
    assert len(tts.requests) == 3


async def test_fake_tts_failure_mid_stream_is_not_retried() -> None:
    error = APIConnectionError("reset", provider="fake-tts")
    tts = FakeTTS(chunk_ms=20, failure=FailurePlan(error, at="mid"), retry=NO_WAIT)
    got = []
    with pytest.raises(APIConnectionError):
        async for chunk in tts.synthesize("hello"):
            got.append(chunk)
    assert len(got) == 1
    assert len(tts.requests) == 1


async def test_fake_tts_first_byte_timeout() -> None:
    tts = FakeTTS(first_byte_latency=1.0, first_byte_timeout=0.01, retry=RetryPolicy(attempts=1))
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in tts.synthesize("hi")]
    assert info.value.retryable


class OddChunksTTS(TTS):
    """Yields PCM in sizes that are not whole frames; records when an attempt is closed."""

    def __init__(self) -> None:
        super().__init__(label="odd", capabilities=TTSCapabilities(True, 8000))
        self.closed = 0

    async def _synthesize_impl(self, text: str, *, voice: str | None) -> AsyncIterator[bytes]:
        try:
            for size in (100, 500, 2, 398, 30):
                yield b"\x01\x00" * (size // 2)
        finally:
            self.closed += 1


async def test_tts_wrapper_yields_whole_frames_and_pads_the_tail() -> None:
    chunks = [c async for c in OddChunksTTS().synthesize("x")]
    assert all(len(c) % FRAME_BYTES == 0 and c for c in chunks)
    pcm = b"".join(chunks)
    assert len(pcm) == 4 * FRAME_BYTES  # 1030 bytes -> 3 frames and a padded fourth
    assert pcm[:1030] == b"\x01\x00" * 515
    assert pcm[1030:] == bytes(4 * FRAME_BYTES - 1030)


async def test_tts_early_close_closes_the_implementation() -> None:
    tts = OddChunksTTS()
    async with aclosing(tts.synthesize("x")) as audio:
        async for _chunk in audio:
            break  # barge-in after the first chunk
        assert tts.closed == 0
    assert tts.closed == 1


# -- FakeLLM ------------------------------------------------------------------------------


async def test_fake_llm_streams_words_with_ttft_and_token_delay() -> None:
    llm = FakeLLM(["Your order has shipped."], time_to_first_token=0.03, token_delay=0.01)
    loop = asyncio.get_running_loop()
    began = loop.time()
    chunks = []
    first_at = None
    async for chunk in llm.chat([{"role": "user", "content": "status?"}]):
        first_at = first_at or loop.time()
        chunks.append(chunk)
    assert first_at is not None and first_at - began >= 0.03
    assert loop.time() - first_at >= 3 * 0.01
    assert all(isinstance(c, TextDelta) for c in chunks)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "Your order has shipped."
    assert len(chunks) == 4


async def test_fake_llm_scripted_tool_call_then_text() -> None:
    call = ToolCallChunk("call_1", "lookup_order", json.dumps({"order": "12345"}))
    llm = FakeLLM([[call], "It shipped."])
    tools = [{"type": "function", "function": {"name": "lookup_order"}}]
    first = [c async for c in llm.chat([{"role": "user", "content": "12345"}], tools=tools)]
    assert first == [call]
    assert json.loads(call.arguments_json) == {"order": "12345"}
    second = [c async for c in llm.chat([])]
    assert second == [TextDelta("It "), TextDelta("shipped.")]
    assert llm.requests[0][1] == tools


async def test_fake_llm_failure_before_first_token_retries_same_reply() -> None:
    error = APIStatusError("rate limited", provider="fake-llm", status=429)
    llm = FakeLLM(["one", "two"], failure=FailurePlan(error), retry=NO_WAIT)
    assert [c async for c in llm.chat([])] == [TextDelta("one")]
    assert len(llm.requests) == 2


async def test_fake_llm_non_retryable_failure() -> None:
    error = APIStatusError("bad request", provider="fake-llm", status=400)
    llm = FakeLLM(["one"], failure=FailurePlan(error), retry=NO_WAIT)
    with pytest.raises(APIStatusError):
        _ = [c async for c in llm.chat([])]
    assert len(llm.requests) == 1


async def test_asr_stream_reports_metrics() -> None:
    metrics = Recorder()
    stream = FakeASR([(0, "yes")], metrics=metrics).stream()
    stream.push(FRAME)
    stream.end_input()
    assert [type(e) for e in await read_all(stream)] == [Partial, Final]
    assert metrics.events == [("started", 1), ("first_byte",), ("ended",)]
