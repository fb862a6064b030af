"""The HTTP API of a running server: health, stats, calls of both transports, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.api.exposition import ParsedFamily, parse
from tests.net.helpers import (
    HOST,
    SERVER_RTP,
    RecordingEcho,
    dial,
    eventually,
    running_server,
    sip_caller,
    target,
    tone,
)
from trunkline.net.calls import CallFailedError
from trunkline.net.leg import CallHandler
from trunkline.net.ws_client import WsMediaCaller
from trunkline.runtime.routing import Route, Router
from trunkline.runtime.server import ServeConfig, Server
from trunkline.wsmedia import events as wire
from trunkline.wsmedia.codec import encode


async def get_json(base: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(base + path) as resp:
        return resp.status, await resp.json()


async def scrape(base: str) -> dict[str, ParsedFamily]:
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(await resp.text())


def base_of(server: Server) -> str:
    host, port = server.http_address
    return f"http://{host}:{port}"


@asynccontextmanager
async def routed_server(router: Router[CallHandler]) -> AsyncIterator[Server]:
    """A server routing by number, on free ports."""
    config = ServeConfig(
        sip_host=HOST, sip_port=0, http_host=HOST, http_port=0,
        rtp_low=SERVER_RTP[0], rtp_high=SERVER_RTP[1],
    )  # fmt: skip
    server = Server(config, router=router)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def ws_refusal(url: str, params: dict[str, str]) -> tuple[int | None, str]:
    """Start a Media Stream at ``url``; the close code and reason the server answers with."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(encode(wire.Connected()))
        start = wire.Start(
            stream_sid="MZ1", call_sid="CA-refused", account_sid="AC1",
            custom_parameters=params, sequence_number=1,
        )  # fmt: skip
        await ws.send_str(encode(start))
        for _ in range(100):  # media may come first; the close is what we are after
            msg = await ws.receive(timeout=10)
            if msg.type is WSMsgType.CLOSE:
                return ws.close_code, str(msg.extra)
            if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                return ws.close_code, ""
    raise AssertionError("the server did not close the stream")


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


async def test_live_calls_of_both_transports_and_metrics_after_them() -> None:
    async with running_server() as server, sip_caller() as caller:
        base = base_of(server)
        before = await scrape(base)
        assert before["trunkline_active_calls"].value(transport="sip") == 0
        assert {v for _, _, v in before["trunkline_calls_total"].samples} <= {0}

        leg, rec = await dial(caller, server)
        ws = await WsMediaCaller.connect(
            f"ws://{HOST}:{server.http_address[1]}/media", server.pacer,
            custom_parameters={"from": "+15550001", "to": "+15550100"},
        )  # fmt: skip
        await eventually(lambda: server.ws_calls == 1, "the WS call to start")
        status, live = await get_json(base, "/calls")
        during = await scrape(base)
        status_ws, one = await get_json(base, f"/calls/{ws.call_id}")

        leg.send_audio(tone(200))
        await eventually(lambda: rec.tone_frames() >= 5, "the SIP echo")
        await leg.hangup()
        await ws.hangup()
        await eventually(lambda: len(server.sip.recent) == 2, "both calls to end")
        after = await scrape(base)
        status_ended, ended = await get_json(base, f"/calls/{ws.call_id}")
        status_unknown, unknown = await get_json(base, "/calls/no-such-call")

    assert status == 200
    by_transport = {c["transport"]: c for c in live}
    assert set(by_transport) == {"sip", "ws"}
    assert by_transport["ws"]["call_id"] == ws.call_id
    assert (by_transport["ws"]["from_uri"], by_transport["ws"]["to_uri"]) == (
        "+15550001",
        "+15550100",
    )
    assert by_transport["sip"]["call_id"] == leg.call_id
    assert by_transport["sip"]["to_uri"].startswith("<sip:echo@")
    assert all(c["started"] > 0 and c["ended"] is None for c in live)
    assert during["trunkline_active_calls"].value(transport="sip") == 1
    assert during["trunkline_active_calls"].value(transport="ws") == 1

    assert status_ws == 200 and one["live"] is True and one["call"]["transport"] == "ws"
    assert one["record"] is None and "transcript" not in one  # echo keeps no record

    active = after["trunkline_active_calls"]
    assert (active.value(transport="sip"), active.value(transport="ws")) == (0, 0)
    total = after["trunkline_calls_total"]
    # The caller hung up both: the SIP BYE, the WebSocket hangup event and close.
    assert total.value(transport="sip", outcome="caller_hangup") == 1
    assert total.value(transport="ws", outcome="caller_hangup") == 1
    assert after["trunkline_pacer_lateness_seconds"].value("_count") > 0

    assert status_ended == 200 and ended["live"] is False
    assert ended["call"]["ended_by"] == "remote"
    assert status_unknown == 404 and "no-such-call" in unknown["error"]


async def test_event_loop_lag_is_measured_while_serving() -> None:
    async with running_server() as server:
        lag = server.metrics.loop_lag.labels()
        await eventually(lambda: lag.count >= 2, "two samples of the loop monitor (0.1 s apart)")
        families = await scrape(base_of(server))
    assert families["trunkline_event_loop_lag_seconds"].value("_count") >= 2
    assert "trunkline_event_loop_lag_max_seconds" in families


async def test_sip_calls_are_routed_by_number_and_unknown_numbers_get_404() -> None:
    billing, sales = RecordingEcho(), RecordingEcho()
    router: Router[CallHandler] = Router([Route("1001", billing), Route("sales", sales)])
    async with routed_server(router) as server, sip_caller() as caller:
        for user in ("1001", "Sales"):
            uri, peer = target(server.sip_address, user=user)
            leg = await caller.dial(uri, peer, answer_timeout_s=10)
            await leg.hangup()
        uri, peer = target(server.sip_address, user="9999")
        try:
            await caller.dial(uri, peer, answer_timeout_s=10)
        except CallFailedError as exc:
            refused = exc.status
        else:
            raise AssertionError("a call to an unrouted number was answered")
        await eventually(lambda: len(server.sip.recent) == 2, "both calls to end")
        families = await scrape(base_of(server))
    assert (len(billing.legs), len(sales.legs)) == (1, 1)
    assert billing.legs[0].info.extra["request_uri"].startswith("sip:1001@")
    assert refused == 404 and server.sip.refused == {404: 1}
    assert families["trunkline_calls_total"].value(transport="sip", outcome="refused") == 1


async def test_ws_calls_are_routed_by_path_then_to_then_default() -> None:
    main, billing = RecordingEcho(), RecordingEcho()
    router: Router[CallHandler] = Router([Route(None, main), Route("+15550100", billing)])
    async with routed_server(router) as server:
        url = f"ws://{HOST}:{server.http_address[1]}/media"
        callers = [
            await WsMediaCaller.connect(url + "/+15550100", server.pacer),
            await WsMediaCaller.connect(url, server.pacer, custom_parameters={"to": "+1 555 0100"}),
            await WsMediaCaller.connect(url + "/777", server.pacer),  # unknown path
            await WsMediaCaller.connect(url, server.pacer),  # no key at all
        ]
        await eventually(lambda: len(main.legs) + len(billing.legs) == 4, "four calls")
        for caller in callers:
            await caller.hangup()
        await eventually(lambda: server.ws_calls == 0, "the calls to end")
    assert sorted(leg.call_id for leg in billing.legs) == sorted(c.call_id for c in callers[:2])
    assert sorted(leg.call_id for leg in main.legs) == sorted(c.call_id for c in callers[2:])


async def test_ws_call_without_a_route_is_closed_with_a_reason() -> None:
    router: Router[CallHandler] = Router([Route("1001", RecordingEcho())])
    async with routed_server(router) as server:
        url = f"ws://{HOST}:{server.http_address[1]}/media"
        code, reason = await ws_refusal(url, {"to": "2002"})
        code_path, _ = await ws_refusal(url + "/3003", {})
        families = await scrape(base_of(server))
        assert server.ws_calls == 0 and not server.live
    assert (code, reason) == (1008, "no agent for '2002'")
    assert code_path == 1008
    assert families["trunkline_calls_total"].value(transport="ws", outcome="refused") == 2


def test_a_server_takes_a_handler_or_a_router() -> None:
    router: Router[CallHandler] = Router.single(RecordingEcho())
    with pytest.raises(ValueError, match="needs a handler or a router"):
        Server(ServeConfig())
    with pytest.raises(ValueError, match="not both"):
        Server(ServeConfig(), RecordingEcho(), router=router)
