"""Bad input against the running media server: each bad peer gets the right close code (or
is tolerated), and a healthy call on the same server keeps its audio flowing throughout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from trunkline.net.leg import Dtmf, Hangup
from trunkline.net.ws_server import MAX_CONSECUTIVE_GARBAGE, MAX_MESSAGE_BYTES
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import encode

from .test_ws_calls import App, Recorder, Served, close_code, eventually, serve, tone_frames


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, App, Recorder]]:
    """A server with an echo app, and one healthy caller whose echo we count."""
    app = App(echo=True)
    async with serve(app, handshake_timeout_s=0.3) as served:
        caller, heard = await served.caller("CA-healthy")
        caller.send_audio(b"".join(tone_frames(5)))
        yield served, app, heard


async def assert_still_flowing(heard: Recorder) -> None:
    before = len(heard.frames)
    await eventually(lambda: len(heard.frames) >= before + 10, "the healthy call's audio")


async def test_garbage_is_counted_and_ignored(served: tuple[Served, App, Recorder]) -> None:
    server, app, heard = served
    ws = await server.raw("CA2")
    for text in ("not json", '{"event": "ring"}', '{"event": "media"}', "[]"):
        await ws.send_str(text)
    await ws.send_str(encode(wire.Media("MZCA2", bytes(160))))
    await ws.send_str(encode(wire.Dtmf("MZCA2", "3")))
    _, rec = await app.call("CA2")
    await eventually(lambda: bool(rec.of(Dtmf)), "the DTMF after the garbage")
    assert len(rec.frames) == 1
    assert server.stats.garbage_messages == 4
    assert not ws.closed
    await assert_still_flowing(heard)
    await ws.close()


async def test_a_run_of_garbage_is_closed_with_1007(served: tuple[Served, App, Recorder]) -> None:
    server, app, heard = served
    ws = await server.raw("CA2")
    for _ in range(MAX_CONSECUTIVE_GARBAGE + 1):
        await ws.send_str("{")
    assert await close_code(ws) == 1007
    _, rec = await app.call("CA2")
    await eventually(lambda: bool(rec.of(Hangup)), "the leg to end")
    assert rec.of(Hangup)[0].by == "local"
    await assert_still_flowing(heard)


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([encode(wire.Connected()), encode(wire.Media("MZ1", bytes(160)))], 1008),
        ([encode(wire.Connected()), "not json"], 1007),
        ([encode(wire.Start("MZ1", "CA2", media_format=wire.MediaFormat("audio/l16")))], 1003),
        ([], 1008),  # says nothing: the handshake times out
    ],
    ids=["media-before-start", "garbage-before-start", "not-mulaw", "silent"],
)
async def test_a_bad_handshake_is_refused(
    served: tuple[Served, App, Recorder], messages: list[str], code: int
) -> None:
    server, app, heard = served
    ws = await server.raw(call_sid=None)
    for text in messages:
        await ws.send_str(text)
    assert await close_code(ws) == code
    await eventually(lambda: server.stats.handshake_failures == 1, "the failure to be counted")
    assert set(app.calls) == {"CA-healthy"}
    await assert_still_flowing(heard)


@pytest.mark.parametrize("during", ["handshake", "call"])
async def test_a_binary_frame_is_closed_with_1003(
    served: tuple[Served, App, Recorder], during: str
) -> None:
    server, _, heard = served
    ws = await server.raw("CA2" if during == "call" else None)
    await ws.send_bytes(b"\x00\x01")
    assert await close_code(ws) == 1003
    await assert_still_flowing(heard)


async def test_a_huge_message_is_closed_with_1009(served: tuple[Served, App, Recorder]) -> None:
    server, app, heard = served
    ws = await server.raw("CA2")
    await ws.send_str('{"event": "media", "x": "' + "a" * MAX_MESSAGE_BYTES + '"}')
    assert await close_code(ws) == 1009
    _, rec = await app.call("CA2")
    await eventually(lambda: bool(rec.of(Hangup)), "the leg to end")
    await assert_still_flowing(heard)


async def test_a_full_server_closes_with_1013() -> None:
    app = App()
    async with serve(app, admit=lambda: False) as server:
        ws = await server.raw("CA2")
        assert await close_code(ws) == 1013
        assert server.stats.refused == 1
        assert app.calls == {}


async def test_the_caller_sees_1013_as_a_remote_hangup() -> None:
    async with serve(App(), admit=lambda: False) as server:
        caller, rec = await server.caller()
        await eventually(lambda: caller.closed.done(), "the refusal")
        assert caller.close_code == 1013
        assert rec.of(Hangup) == [Hangup("closed (1013)", "remote")]


async def test_server_shutdown_closes_live_streams_with_1001() -> None:
    app = App()
    async with serve(app) as server:
        ws = await server.raw("CA2")
        _, rec = await app.call("CA2")
        stopping = asyncio.ensure_future(server.stop_server())
        assert await close_code(ws) == 1001
        await stopping
        assert rec.of(Hangup) == [Hangup("server shutdown", "local")]
        assert server.stats.active == 0
