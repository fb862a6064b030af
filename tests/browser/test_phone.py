"""A call to the Acme agent from the browser phone, end to end.

The runtime runs in this process as ``trunkline serve --agent`` does (``agent_runtime``:
pocketsphinx, espeak-ng, the demo CRM, the SQLite record writer) and headless Chromium
opens ``/phone``. Its fake microphone plays an espeak-ng rendering of "order status"
after a second and a half of silence, so the caller talks over the greeting; the test
then presses 1 2 3 4 5 on the page's keypad. Nothing in the runtime knows it is a
browser: the page is one more Media Streams leg.

The page's voice processing is off (``processing=off``): the microphone is a clean file,
and Chrome's noise suppressor takes espeak's steady voice for noise (measured: 11 dB
quieter, and pocketsphinx then hears nothing).
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from tests.net.helpers import HOST, SERVER_RTP, eventually
from trunkline.agent import AgentSpec, FlowBrain
from trunkline.apps.agent import AgentApp, agents_runtime
from trunkline.media.tones import silence
from trunkline.media.wav import decode_wav, write_wav
from trunkline.providers.embedded_asr import PocketsphinxASR
from trunkline.providers.embedded_tts import EspeakTTS
from trunkline.runtime.server import ServeConfig, Server
from trunkline.runtime.stores import SqliteRecordBackend

from .cdp import Chromium, open_page
from .conftest import Launch

pytestmark = pytest.mark.slow

WAIT_S = 20.0  # speech runs in real time, and pocketsphinx shares two busy cores
# The lines of the page's transcript area, once the agent's answer is among them.
SHIPPED = """(() => {
    const lines = Array.from(document.querySelectorAll('#transcript p'), p => p.textContent);
    return lines.some(line => line.includes('Order 1 2 3 4 5 is shipped.')) && lines;
})()"""


@pytest.fixture
def caller_browser(launch_chromium: Launch, tmp_path: pathlib.Path) -> Chromium:
    """Chromium whose microphone says "order status" once, 1.5 s after it opens."""
    voice = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", "order status"], capture_output=True, check=True
    ).stdout
    wav = tmp_path / "caller.wav"
    write_wav(wav, silence(1500) + decode_wav(voice) + silence(3000))
    return launch_chromium(f"--use-file-for-fake-audio-capture={wav}%noloop")


@asynccontextmanager
async def acme_serve(
    spec: AgentSpec, tmp_path: pathlib.Path
) -> AsyncIterator[tuple[AgentApp, Server]]:
    """``trunkline serve --agent acme.yaml --demo-crm``, in this process on free ports."""
    config = ServeConfig(
        sip_host=HOST, sip_port=0, http_host=HOST, http_port=0,
        rtp_low=SERVER_RTP[0], rtp_high=SERVER_RTP[1],
    )  # fmt: skip
    async with agents_runtime(
        [spec], asr=PocketsphinxASR(workers=1), tts=EspeakTTS(),
        records_db=tmp_path / "records.sqlite3", spool_dir=tmp_path / "spool", demo_crm=True,
    ) as runtime:  # fmt: skip
        server = Server(
            config, runtime.apps[0], records=runtime.writer.backend, live_view=runtime.live_view
        )
        await server.start()
        try:
            yield runtime.apps[0], server
        finally:
            await server.stop()


async def test_call_the_acme_agent_from_the_browser(
    acme_spec: AgentSpec, caller_browser: Chromium, tmp_path: pathlib.Path
) -> None:
    async with acme_serve(acme_spec, tmp_path) as (app, server), open_page(caller_browser) as page:
        host, port = server.http_address
        await page.navigate(f"http://{host}:{port}/phone?autostart=1&processing=off")
        call_id = await page.wait_for("phoneState.connected && phoneState.callSid", "a call")
        await eventually(lambda: call_id in app.live, "the agent to answer", WAIT_S)
        brain = cast(FlowBrain, app.live[call_id].brain)  # Acme is a flow agent
        await eventually(lambda: brain.state == "order_status", "'order status'", WAIT_S)
        heard = await page.evaluate("phoneState.framesAudible")
        for digit in "12345":
            await page.evaluate(f"document.querySelector('[data-digit=\"{digit}\"]').click()")
        await eventually(lambda: brain.state == "anything_else", "the order's status", WAIT_S)
        await page.wait_for(
            f"phoneState.framesAudible >= {heard + 50}", "a second of the reply", WAIT_S
        )
        await page.evaluate("document.querySelector('#hangup').click()")
        await page.wait_for("phoneState.ended", "the call to end")
        # The page shows the transcript: live from GET /calls/{id}, then the record's.
        shown = await page.wait_for(SHIPPED, "the transcript on the page", WAIT_S)
        state: dict[str, Any] = await page.evaluate("phoneState")
        png = await page.screenshot()
    db = tmp_path / "records.sqlite3"
    backend = SqliteRecordBackend(db)  # the writer drained into it on the way out
    try:
        record = await backend.get(call_id)
    finally:
        await backend.aclose()

    assert state["errors"] == [] and page.errors == []
    assert state["endReason"] == "you hung up" and state["dtmfSent"] == "12345"
    # The caller talked over the greeting: the agent cleared the page's playback, and
    # the page echoed the marks the agent placed after its sentences.
    assert state["cleared"] >= 1 and state["marks"] >= 1
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "caller: order status" in shown
    assert record is not None and record.outcome == "caller_hangup"
    callers = [t["text"] for t in record.transcript if t["role"] == "caller"]
    assert "order status" in callers  # heard by pocketsphinx through the page
    assert any("Order 1 2 3 4 5 is shipped." in t["text"] for t in record.transcript)
