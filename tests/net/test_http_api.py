"""The HTTP API of a running server: health, stats, and recent calls of both transports."""

from __future__ import annotations

import aiohttp

from tests.net.helpers import dial, eventually, running_server, sip_caller, tone
from trunkline.net.ws_client import WsMediaCaller


async def test_recent_calls_list_sip_and_websocket_calls() -> None:
    async with running_server() as server, sip_caller() as caller:
        host, port = server.http_address
        base = f"http://{host}:{port}"
        leg, rec = await dial(caller, server)
        leg.send_audio(tone(200))
        await eventually(lambda: rec.tone_frames() >= 5, "the SIP echo")
        await leg.hangup()
        await eventually(lambda: len(server.sip.recent) == 1, "the SIP call to end")

        ws = await WsMediaCaller.connect(f"ws://{host}:{port}/media", server.pacer)
        await eventually(lambda: server.ws_calls == 1, "the WS call to start")
        await ws.hangup()
        await eventually(lambda: len(server.sip.recent) == 2, "the WS call to end")

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as resp:
                assert resp.status == 200
                health = await resp.json()
            async with http.get(f"{base}/calls/recent") as resp:
                recent = await resp.json()
            async with http.get(f"{base}/stats") as resp:
                stats = await resp.json()
    assert health["status"] == "ok" and health["active_calls"] == 0
    assert [(c["transport"], c["ended_by"]) for c in recent] == [
        ("sip", "remote"),
        ("ws", "remote"),
    ]
    assert recent[1]["call_id"] == ws.call_id
    assert stats["pacer_ticks"] > 0 and stats["lateness_p99_ms"] >= stats["lateness_p50_ms"]
