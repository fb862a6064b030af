"""HTTP API routes of ``trunkline serve``.

- ``GET /health``: 200 with the process's call counts while it serves, and each
  provider's state (``status`` is ``degraded`` while one is down, see :mod:`.health`).
- ``GET /calls``: the calls in progress, SIP and WebSocket (transport, from, to, started).
- ``GET /calls/recent``: summaries of the calls that ended (newest last): DTMF digits
  received, who hung up and why, RTP packet counts.
- ``GET /calls/{id}``: one call: its summary (``call``, null once it has left the recent
  list), ``live``, and for an agent call its ``record`` from the record store and its
  ``transcript`` (the record's, or the live conversation's so far). 404 when nothing is
  known of it; 503 when only the record store could tell and it does not answer.
- ``GET /stats``: pacer lateness percentiles and refusal counts, for operators and benchmarks.
- ``GET /metrics``: Prometheus metrics (text format 0.0.4, :mod:`trunkline.api.metrics`).

A record is written when its call ends, through a queue (``RecordWriter``), so it shows
up in ``/calls/{id}`` a moment after the call has.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from trunkline.api.prometheus import CONTENT_TYPE
from trunkline.runtime.stores.records import CallRecord, RecordStoreError

if TYPE_CHECKING:
    from trunkline.runtime.server import Server

log = logging.getLogger(__name__)

#: Longest wait for the record store on ``GET /calls/{id}``: a hung database must not
#: hang the API (the record is also kept in the spool until the database is back).
RECORD_LOOKUP_TIMEOUT_S = 2.0

SERVER_KEY: web.AppKey[Server] = web.AppKey("server")


async def health(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    providers = server.metrics.health
    return web.json_response(
        {
            # 200 either way: the server serves; "degraded" says a provider is down.
            "status": "ok" if providers.all_up else "degraded",
            "active_calls": server.active_calls,
            "sip_calls": server.sip.active,
            "providers": providers.as_dict(),
        }
    )


async def live_calls(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    calls = [call.summary.as_dict() for call in server.sip.calls.values()]
    calls += [summary.as_dict() for summary in server.live.values()]
    return web.json_response(calls)


async def call_detail(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    call_id = request.match_info["call_id"]
    summary, live = server.find_call(call_id)
    doc: dict[str, Any] = {
        "call_id": call_id,
        "live": live,
        "call": None if summary is None else summary.as_dict(),
        "record": None,
    }
    if live:
        view = server.live_view(call_id) if server.live_view is not None else None
        if view is not None:
            doc.update(view)
        return web.json_response(doc)
    if server.records is not None:
        try:
            async with asyncio.timeout(RECORD_LOOKUP_TIMEOUT_S):
                record = await server.records.get(call_id)
        except (RecordStoreError, TimeoutError) as exc:
            detail = str(exc) or f"no answer within {RECORD_LOOKUP_TIMEOUT_S:g} s"
            log.warning("record of %s: the record store failed: %s", call_id, detail)
            if summary is None:
                return web.json_response(
                    {"error": "the record store is unavailable", "detail": detail}, status=503
                )
            doc["record_error"] = detail
        else:
            if record is not None:
                doc["record"] = _record_doc(record)
                doc["transcript"] = doc["record"]["transcript"]
    if summary is None and doc["record"] is None:
        return web.json_response({"error": f"no call {call_id!r} is known"}, status=404)
    return web.json_response(doc)


def _record_doc(record: CallRecord) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(record.to_json())
    return doc


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


async def metrics(request: web.Request) -> web.Response:
    text = request.app[SERVER_KEY].metrics.render()
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


async def reset_stats(request: web.Request) -> web.Response:
    request.app[SERVER_KEY].pacer.lateness.reset()
    return web.json_response({"reset": True})


def build_http_app(server: Server) -> web.Application:
    app = web.Application()
    app[SERVER_KEY] = server
    app.router.add_get("/health", health)
    app.router.add_get("/calls", live_calls)
    app.router.add_get("/calls/recent", recent_calls)  # before {call_id}, which it would match
    app.router.add_get("/calls/{call_id}", call_detail)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/stats/reset", reset_stats)
    return app
