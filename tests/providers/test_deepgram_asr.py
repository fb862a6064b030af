"""DeepgramASR against the local Deepgram-protocol server: events, control messages, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from trunkline.media.audio import FRAME_BYTES
from trunkline.providers import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ASREvent,
    Final,
    Partial,
    ProviderError,
    ProviderUsageError,
)
from trunkline.providers.deepgram_asr import DeepgramASR, DeepgramStream
from trunkline.providers.deepgram_results import (
    Segment,
    ServerError,
    Utterance,
    normalize,
    parse_result,
)
from trunkline.providers.testing import DeepgramServer

FRAME = b"\x10\x00" * (FRAME_BYTES // 2)  # 20 ms of audio (its content is not listened to)
#: Upper bound on any wait for an event in these tests (a bound, not a timing check).
WAIT_S = 5.0


@pytest.fixture
async def server() -> AsyncIterator[DeepgramServer]:
    async with DeepgramServer(["my order is one two three", "yes please"]) as srv:
        yield srv


def make_asr(server: DeepgramServer, **kwargs: object) -> DeepgramASR:
    options: dict[str, object] = {"api_key": "test-key", "url": server.url}
    options.update(kwargs)
    return DeepgramASR(**options)  # type: ignore[arg-type]


def speak(stream: DeepgramStream, ms: int) -> None:
    for _ in range(ms // 20):
        stream.push(FRAME)


async def until_final(stream: DeepgramStream) -> tuple[list[Partial], Final]:
    partials: list[Partial] = []
    async with asyncio.timeout(WAIT_S):
        async for event in stream:
            if isinstance(event, Final):
                return partials, event
            partials.append(event)
    raise AssertionError("the stream ended without a Final")


async def rest(stream: DeepgramStream) -> list[ASREvent]:
    async with asyncio.timeout(WAIT_S):
        return [event async for event in stream]


async def until(predicate: object, what: str) -> None:
    for _ in range(500):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


# -- the protocol ---------------------------------------------------------------------------


async def test_partials_then_a_final_per_flush_then_close(server: DeepgramServer) -> None:
    async with make_asr(server, model="nova-3", params={"endpointing": "false"}) as asr:
        stream = asr.stream(grammar="#JSGF V1.0;", call_id="c1")  # no grammar support: ignored
        for step in range(1, 7):  # a word per 200 ms of audio: the whole script in 1.2 s
            speak(stream, 200)
            await until(lambda n=step: server.stats.audio_bytes >= n * 10 * FRAME_BYTES, "audio")
        partials, final = await until_partials_then_flush(stream)
        assert [p.text for p in partials][:2] == ["my", "my order"]
        assert partials[-1].text == "my order is one two three"
        assert final.text == "my order is one two three" and final.confidence == 0.95
        assert [w.word for w in final.words] == final.text.split()
        assert final.words[0].start == 0.0 and final.words[-1].end == pytest.approx(1.2, abs=0.01)

        speak(stream, 400)
        stream.flush()
        _, second = await until_final(stream)
        assert second.text == "yes please"
        assert second.words[0].start == 0.0  # times are from the utterance's start
        assert second.words[-1].end == pytest.approx(0.4, abs=0.01)

        stream.end_input()
        assert await rest(stream) == []
        await stream.aclose()
    stats = server.stats
    assert (stats.connections, stats.finalizes, stats.close_streams) == (1, 2, 1)
    assert stats.audio_bytes == 80 * FRAME_BYTES
    query = stats.queries[0]
    assert query["model"] == "nova-3" and query["endpointing"] == "false"
    assert (query["encoding"], query["sample_rate"], query["channels"]) == ("linear16", "8000", "1")
    assert query["interim_results"] == "true"


async def until_partials_then_flush(stream: DeepgramStream) -> tuple[list[Partial], Final]:
    """Read partials until the whole script is heard, then flush and read the Final."""
    partials: list[Partial] = []
    async with asyncio.timeout(WAIT_S):
        while not partials or partials[-1].text != "my order is one two three":
            event = await anext(stream)
            assert isinstance(event, Partial)
            partials.append(event)
    stream.flush()
    more, final = await until_final(stream)
    return partials + more, final


async def test_a_flush_without_audio_is_an_empty_final_without_a_message(
    server: DeepgramServer,
) -> None:
    async with make_asr(server) as asr:
        stream = asr.stream(call_id="c2")
        stream.flush()
        _, final = await until_final(stream)
        assert final == Final("", 0.0)
        await stream.aclose()
    assert server.stats.finalizes == 0


async def test_end_input_flushes_pending_audio_with_close_stream(server: DeepgramServer) -> None:
    async with make_asr(server) as asr:
        stream = asr.stream(call_id="c3")
        speak(stream, 600)
        stream.end_input()
        events = await rest(stream)
        await stream.aclose()
    assert isinstance(events[-1], Final) and events[-1].text == "my order is one two three"
    assert server.stats.close_streams == 1 and server.stats.finalizes == 0


async def test_final_segments_covering_the_utterance_need_no_finalize_answer() -> None:
    server = DeepgramServer(["one two three four five"], segment_ms=200, answer_finalize=False)
    async with server, make_asr(server, finalize_timeout=60.0) as asr:
        stream = asr.stream(call_id="c4")
        for step in range(1, 6):
            speak(stream, 200)
            await until(lambda n=step: server.stats.audio_bytes >= n * 10 * FRAME_BYTES, "audio")
        await until(lambda: stream._current and stream._current.segments[-1:]
                    and stream._current.segments[-1].end > 0.99, "segments up to 1 s")  # fmt: skip
        assert len(stream._current.segments) >= 4  # type: ignore[union-attr]
        stream.flush()
        _, final = await until_final(stream)  # within WAIT_S: not the 60 s timer
        assert final.text == "one two three four five"
        await stream.aclose()


async def test_an_unanswered_finalize_falls_back_to_the_last_guess() -> None:
    server = DeepgramServer(["one two three"], answer_finalize=False)
    async with server, make_asr(server, finalize_timeout=0.2) as asr:
        stream = asr.stream(call_id="c5")
        speak(stream, 600)
        async with asyncio.timeout(WAIT_S):
            while (await anext(stream)) != Partial("one two three"):
                pass
        stream.flush()
        _, final = await until_final(stream)
        assert final.text == "one two three"
        # A result for audio that was already answered is dropped, not given to the next.
        stream._on_segment(Segment(0.0, 0.6, "late", 0.9, (), True, True))
        assert asr.late_results == 1
        speak(stream, 200)
        stream._on_segment(Segment(0.6, 0.8, "next", 0.9, (), False, False))
        assert (await anext(stream)) == Partial("next")
        await stream.aclose()


async def test_keepalive_is_sent_while_no_audio_flows(server: DeepgramServer) -> None:
    async with make_asr(server, keepalive_interval=0.02) as asr:
        stream = asr.stream(call_id="c6")
        await until(lambda: server.stats.keepalives >= 2, "two KeepAlive messages")
        assert not stream.failed
        await stream.aclose()


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "code"), [("close", 1011), ("drop", None)])
async def test_the_server_closing_the_socket_fails_the_stream(
    server: DeepgramServer, kind: str, code: int | None
) -> None:
    server.fail(kind, status=1011, after=200)  # type: ignore[arg-type]
    async with make_asr(server) as asr:
        stream = asr.stream(call_id="c7")
        speak(stream, 600)
        with pytest.raises(ProviderError) as info:
            await rest(stream)
        assert stream.failed
        stream.push(FRAME)  # a failed stream drops audio without raising
        await stream.aclose()
    assert info.value.retryable
    if code is not None:
        assert f"code {code}" in str(info.value)


async def test_an_idle_socket_is_closed_by_the_server_and_reported() -> None:
    server = DeepgramServer(idle_close_s=0.2)
    async with server, make_asr(server, keepalive_interval=30.0) as asr:
        stream = asr.stream(call_id="c8")
        with pytest.raises(ProviderError, match="1011") as info:
            await rest(stream)
        await stream.aclose()
    assert info.value.retryable


async def test_garbage_from_the_server_fails_the_stream(server: DeepgramServer) -> None:
    server.fail("garbage", after=100)
    async with make_asr(server) as asr:
        stream = asr.stream(call_id="c9")
        speak(stream, 400)
        with pytest.raises(ProviderError, match="malformed") as info:
            await rest(stream)
        await stream.aclose()
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("key", "status", "retryable"), [("bad", 401, False), ("test-key", 503, True)]
)
async def test_a_refused_handshake_is_a_status_error(
    server: DeepgramServer, key: str, status: int, retryable: bool
) -> None:
    server.fail("status", status=503)
    async with make_asr(server, api_key=key) as asr:
        stream = asr.stream(call_id="c10")
        with pytest.raises(APIStatusError) as info:
            await rest(stream)
        await stream.aclose()
    assert info.value.status == status and info.value.retryable is retryable


async def test_a_silent_peer_times_out_and_audio_backlog_is_bounded() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # never answers the handshake

    tcp = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        async with DeepgramASR(api_key="k", url=f"ws://127.0.0.1:{port}/v1/listen",
                               connect_timeout=0.3) as asr:  # fmt: skip
            stream = asr.stream(call_id="c11")
            speak(stream, 10_020)  # more than MAX_BACKLOG_S waiting for the socket
            with pytest.raises(ProviderError, match="backlog") as info:
                await rest(stream)
            assert info.value.retryable
            await stream.aclose()
            slow = asr.stream(call_id="c12")
            with pytest.raises(APITimeoutError):
                await rest(slow)
            await slow.aclose()
    finally:
        for writer in accepted:
            writer.close()
        tcp.close()
        await tcp.wait_closed()


async def test_nothing_listening_is_a_connection_error_and_misuse_is_refused(
    server: DeepgramServer,
) -> None:
    port = server.port
    await server.close()
    async with DeepgramASR(api_key="k", url=f"ws://127.0.0.1:{port}/v1/listen") as asr:
        stream = asr.stream(call_id="c13")
        with pytest.raises(APIConnectionError):
            await rest(stream)
        await stream.aclose()
    with pytest.raises(ProviderUsageError):
        asr.stream(call_id="after close")
    with pytest.raises(ProviderUsageError):
        DeepgramASR(api_key="k", url="http://x")


# -- message parsing, sans-IO -------------------------------------------------------------


def test_parse_result_shapes() -> None:
    doc = {
        "type": "Results", "start": 1.0, "duration": 0.5, "is_final": True,
        "from_finalize": True, "channel": {"alternatives": [{
            "transcript": "Order 12345, please.", "confidence": 0.9,
            "words": [{"word": "order", "start": 1.0, "end": 1.2, "confidence": 0.9}],
        }]},
    }  # fmt: skip
    seg = parse_result(json.dumps(doc))
    assert seg is not None
    assert (seg.text, seg.start, seg.end, seg.is_final, seg.from_finalize) == (
        "order 12345 please", 1.0, 1.5, True, True,
    )  # fmt: skip
    assert parse_result('{"type": "Metadata", "duration": 3}') is None
    with pytest.raises(ServerError, match="bad audio"):
        parse_result('{"type": "Error", "description": "bad audio"}')
    for bad in ("nope", "[1]", '{"type": "Results"}', '{"type": "Results", "start": "x",'
                ' "channel": {"alternatives": []}}'):  # fmt: skip
        with pytest.raises(ValueError):
            parse_result(bad)
    assert normalize("  Hello,   WORLD! It's  twenty-one. ") == "hello world it's twenty-one"


def test_utterance_final_joins_segments_and_offsets_words() -> None:
    utt = Utterance(start=2.0, end=3.0)
    utt.add(Segment(2.0, 2.5, "my order", 0.8, (), True, False))
    utt.add(Segment(2.5, 2.9, "is", 0.6, (), False, False))
    assert utt.text() == "my order" and not utt.covered(0.05)
    assert utt.final(with_interim=True) == Final("my order is", pytest.approx(0.7))
    utt.add(Segment(2.5, 3.0, "is late", 1.0, (), True, True))
    assert utt.covered(0.05) and utt.interim is None
    assert utt.final() == Final("my order is late", pytest.approx(0.9))
