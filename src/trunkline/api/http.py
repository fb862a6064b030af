"""HTTP API routes of ``trunkline serve``.

- ``GET /health``: 200 with the process's call counts while it serves.
- ``GET /calls``: the calls in progress.
- ``GET /calls/recent``: summaries of the calls that ended (newest last): DTMF digits
  received, who hung up and why, RTP packet counts.
- ``GET /stats``: pacer lateness percentiles and refusal counts, for operators and benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from trunkline.runtime.server import Server

SERVER_KEY: web.AppKey[Server] = web.AppKey("server")


async def health(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.json_response(
        {"status": "ok", "active_calls": server.active_calls, "sip_calls": server.sip.active}
    )


async def live_calls(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    calls = [call.summary.as_dict() for call in server.sip.calls.values()]
    return web.json_response(calls)


async def recent_calls(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.json_response([summary.as_dict() for summary in server.sip.recent])


async def stats(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    lateness = server.pacer.lateness
    return web.json_response(
        {
            "active_calls": server.active_calls,
            "paced_streams": server.pacer.stream_count,
            "pacer_ticks": lateness.total,
            "lateness_p50_ms": lateness.percentile(50) * 1000,
            "lateness_p99_ms": lateness.percentile(99) * 1000,
            "lateness_max_ms": lateness.percentile(100) * 1000,
            "late_over_20ms_share": lateness.share_over(0.020),
            "refused": {str(k): v for k, v in server.sip.refused.items()},
            "rtp_ports_in_use": server.pool.in_use,
            "sip_dropped_datagrams": server.sip.endpoint.dropped_datagrams
            if server.sip.endpoint
            else 0,
        }
    )


async def reset_stats(request: web.Request) -> web.Response:
    request.app[SERVER_KEY].pacer.lateness.reset()
    return web.json_response({"reset": True})


def build_http_app(server: Server) -> web.Application:
    app = web.Application()
    app[SERVER_KEY] = server
    app.router.add_get("/health", health)
    app.router.add_get("/calls", live_calls)
    app.router.add_get("/calls/recent", recent_calls)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", reset_stats)
    return app
