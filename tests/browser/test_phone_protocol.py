"""The page's side of Media Streams, checked message by message against a scripted app.

The app here is a bare aiohttp WebSocket handler that decodes everything the page sends
with the runtime's own codec (so the page speaks exactly what the runtime parses) and
sends what a real app may send, garbage included. The failure paths a caller can meet
(no microphone, an unreachable or full runtime) end the call with a visible reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from aiohttp import WSMsgType, web

from tests.net.helpers import eventually, running_server
from trunkline.media.tones import sine
from trunkline.rtp.g711 import ulaw_encode
from trunkline.web.phone import add_phone_routes
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import decode, encode
from trunkline.wsmedia.errors import WsMediaProtocolError

from .cdp import HEADLESS_ARGS, Chromium, Page, open_page
from .conftest import Launch
from .test_phone_routes import serving

E = TypeVar("E")
CALL_ID = re.compile(r"CA[0-9a-f]{32}")
TONE = ulaw_encode(sine(1000, 1000, 0.3))  # a second of 1 kHz at -13 dBFS, as u-law
NO_TRANSFER = "a browser phone cannot transfer"
RECORD = {
    "transcript": [
        {"role": "agent", "text": "", "interrupted": True, "played_text": "Hello, how"},
        {"role": "caller", "text": "hi"},
    ]
}
TRANSCRIPT_LINES = "Array.from(document.querySelectorAll('#transcript p'), p => p.textContent)"


class ScriptedApp:
    """The app side of Media Streams at ``/media``, driven by the test."""

    def __init__(self) -> None:
        self.events: list[wire.Event] = []
        self.undecodable: list[str] = []
        self.close_codes: list[int | None] = []
        self._ws: web.WebSocketResponse | None = None

    async def media_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                self.undecodable.append(f"{msg.type!r} frame")
                continue
            try:
                self.events.append(decode(msg.data))
            except WsMediaProtocolError as exc:
                self.undecodable.append(f"{exc}: {msg.data[:80]}")
        self.close_codes.append(ws.close_code)
        return ws

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def marks(self) -> list[str]:
        return [m.name for m in self.of(wire.Mark)]

    async def send(self, message: str | wire.Event) -> None:
        assert self._ws is not None
        await self._ws.send_str(message if isinstance(message, str) else encode(message))


async def call_record(request: web.Request) -> web.Response:
    """What ``GET /calls/{id}`` may one day serve: a record with a transcript."""
    if not CALL_ID.fullmatch(request.match_info["call_id"]):
        raise web.HTTPNotFound()
    return web.json_response(RECORD)


@asynccontextmanager
async def scripted_runtime() -> AsyncIterator[tuple[ScriptedApp, str]]:
    """The phone's routes, the scripted app at ``/media`` and records at ``/calls/{id}``."""
    app = ScriptedApp()
    web_app = web.Application()
    add_phone_routes(web_app)
    web_app.router.add_get("/media", app.media_stream)
    web_app.router.add_get("/calls/{call_id}", call_record)
    async with serving(web_app) as base:
        yield app, base


async def until(predicate: Callable[[], Any], what: str) -> None:
    await eventually(lambda: bool(predicate()), what)


async def click(page: Page, selector: str) -> None:
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


async def test_the_page_speaks_media_streams(page: Page) -> None:
    async with scripted_runtime() as (app, base):
        await page.navigate(f"{base}/phone?autostart=1")
        await until(lambda: len(app.of(wire.Media)) >= 10, "ten frames from the page")
        connected, start = app.events[:2]
        assert isinstance(connected, wire.Connected) and isinstance(start, wire.Start)
        sid = start.stream_sid
        assert start.media_format == wire.MediaFormat()  # u-law, 8000 Hz, mono
        assert CALL_ID.fullmatch(start.call_sid) and re.fullmatch(r"MZ[0-9a-f]{32}", sid)
        assert start.custom_parameters == {"source": "browser-phone"}
        media = app.of(wire.Media)[:10]
        assert [(m.chunk, m.timestamp) for m in media] == [(i, 20 * (i - 1)) for i in range(1, 11)]
        assert {(len(m.payload), m.track, m.stream_sid) for m in media} == {(160, "inbound", sid)}

        # Garbage from the app is counted and ignored; the call goes on.
        for garbage in ["not json", "[]", '{"event": "bogus"}',
                        '{"event": "media", "media": {"payload": "%%%"}}']:  # fmt: skip
            await app.send(garbage)
        await page.wait_for("phoneState.badMessages === 4", "the garbage to be counted")

        # Audio in messages of any size, then a mark: echoed once that audio has played.
        for i in range(0, 1600, 160):
            await app.send(wire.Media(sid, TONE[i : i + 160]))
        await app.send(wire.Media(sid, TONE[1600:4000]))
        await app.send(wire.Mark(sid, "m1"))
        await until(lambda: app.marks() == ["m1"], "the echo of m1")
        state = await page.evaluate("phoneState")
        assert (state["framesReceived"], state["framesAudible"]) == (25, 25)

        # A mark behind a minute of audio waits for it; `clear` drops the audio and echoes
        # the mark at once. A mark after that has nothing to wait for.
        for _ in range(60):
            await app.send(wire.Media(sid, TONE))
        await app.send(wire.Mark(sid, "m2"))
        await page.wait_for("phoneState.framesReceived === 3025", "the minute of audio")
        assert app.marks() == ["m1"]  # a minute of audio has not played yet
        await app.send(wire.Clear(sid))
        await until(lambda: app.marks() == ["m1", "m2"], "m2, echoed by the clear")
        await app.send(wire.Mark(sid, "m3"))
        await until(lambda: app.marks() == ["m1", "m2", "m3"], "m3: the clear emptied playback")

        # The keypad sends DTMF; a transfer is refused (a page cannot transfer).
        await click(page, '[data-digit="1"]')
        await click(page, '[data-digit="#"]')
        await until(lambda: len(app.of(wire.Dtmf)) == 2, "two key presses")
        assert [(d.digit, d.track) for d in app.of(wire.Dtmf)] == [
            ("1", "inbound_track"),
            ("#", "inbound_track"),
        ]
        await app.send(wire.Transfer(sid, "sip:agent@127.0.0.1"))
        await until(lambda: app.of(wire.TransferResult), "the transfer's answer")
        refused = wire.TransferResult(sid, "sip:agent@127.0.0.1", False, 501, NO_TRANSFER)
        assert app.of(wire.TransferResult) == [refused]

        # The app hangs up: the page ends the call and closes normally.
        await app.send(wire.Hangup(sid, "done"))
        await until(lambda: app.close_codes, "the page to close the socket")
        state = await page.evaluate("phoneState")
        # The transcript comes from GET /calls/{id} (served here; optional in the runtime).
        transcript = await page.wait_for(TRANSCRIPT_LINES, "the transcript")
    assert app.close_codes == [1000]
    assert transcript == ["agent: Hello, how... (interrupted)", "caller: hi"]
    assert state["ended"] and state["endReason"] == "the agent hung up (done)"
    assert (state["cleared"], state["marks"], state["dtmfSent"]) == (1, 3, "1#")
    numbered = [getattr(e, "sequence_number", None) for e in app.events]
    numbered = [n for n in numbered if n is not None]
    assert numbered == list(range(1, len(numbered) + 1))  # every message the page numbers
    assert app.undecodable == []
    assert state["errors"] == [] and page.errors == []


async def test_hanging_up_sends_stop_and_calling_again_opens_a_new_stream(page: Page) -> None:
    async with scripted_runtime() as (app, base):
        await page.navigate(f"{base}/phone?autostart=1")
        await until(lambda: app.of(wire.Media), "the first call's audio")
        await click(page, "#hangup")
        await until(lambda: app.close_codes, "the first call to end")
        first, stop = app.of(wire.Start)[0], app.events[-1]
        assert isinstance(stop, wire.Stop) and stop.sequence_number is not None
        assert stop == wire.Stop(
            first.stream_sid, first.account_sid, first.call_sid, stop.sequence_number
        )
        await click(page, "#call")
        await until(lambda: len(app.of(wire.Start)) == 2, "the second call")
        second = app.of(wire.Start)[1]
        await until(
            lambda: [m for m in app.of(wire.Media) if m.stream_sid == second.stream_sid],
            "the second call's audio",
        )
        await click(page, "#hangup")
        await until(lambda: len(app.close_codes) == 2, "the second call to end")
        state = await page.evaluate("phoneState")
    assert second.call_sid != first.call_sid and state["callSid"] == second.call_sid
    # The page's state is the second call's alone.
    sent = [m for m in app.of(wire.Media) if m.stream_sid == second.stream_sid]
    assert state["framesSent"] == len(sent) and sent[0].chunk == 1
    assert isinstance(app.events[-1], wire.Stop) and app.close_codes == [1000, 1000]
    assert state["endReason"] == "you hung up" and state["errors"] == []


async def ended_with(page: Page, url: str) -> dict[str, Any]:
    await page.navigate(url)
    await page.wait_for("phoneState.ended", "the call to end")
    state: dict[str, Any] = await page.evaluate("phoneState")
    return state


async def test_a_full_runtime_is_reported_not_retried(page: Page) -> None:
    async with running_server(max_calls=0) as server:
        host, port = server.http_address
        state = await ended_with(page, f"http://{host}:{port}/phone?autostart=1")
    assert state["errors"] == ["the line dropped (1013: try again later)"]
    assert state["ended"] and state["status"] == "ended: the line closed (1013: try again later)"


async def test_an_unreachable_media_endpoint_is_reported(page: Page) -> None:
    web_app = web.Application()
    add_phone_routes(web_app, media_path="/nowhere")
    async with serving(web_app) as base:
        state = await ended_with(page, f"{base}/phone?autostart=1")
    assert state["errors"] == ["could not reach the runtime (1006)"]


@pytest.fixture
def denying_browser(launch_chromium: Launch) -> Chromium:
    """A Chromium that answers every permission prompt with no."""
    no_prompt = [arg for arg in HEADLESS_ARGS if arg != "--use-fake-ui-for-media-stream"]
    return launch_chromium("--deny-permission-prompts", base_args=no_prompt)


async def test_a_denied_microphone_is_reported(denying_browser: Chromium) -> None:
    async with scripted_runtime() as (app, base), open_page(denying_browser) as page:
        state = await ended_with(page, f"{base}/phone?autostart=1")
    assert state["errors"] == ["cannot start the call: the microphone permission was denied"]
    assert state["endReason"] == "could not start: the microphone permission was denied"
    assert app.events == []  # no call was placed
