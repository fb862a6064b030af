"""``trunkline serve``: SIP (UDP+TCP), RTP, WebSocket media and the HTTP API in one process.

Everything shares one event loop and one pacer, so the process's media clock is single
and its cost grows with calls, not with timers.

Calls are routed (:mod:`trunkline.runtime.routing`): one app takes every call, or several
agents are chosen by the dialled number. A SIP call no route fits is answered 404; a
Media Stream is closed with 1008 and a reason. Every answered call runs through
``_run_call``, which counts its outcome for ``/metrics``. Calls that are not SIP
(WebSocket streams, the browser phone) are listed by the server itself while they last,
and summarised in ``sip.recent`` with the SIP calls when they end.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from trunkline.api.http import build_http_app
from trunkline.api.metrics import RuntimeMetrics
from trunkline.net.calls import CallSummary, SipCalls
from trunkline.net.leg import CallHandler, LegInfo, MediaLeg
from trunkline.net.pacer import HIST_BUCKET_S, Pacer
from trunkline.net.rtp_pool import RtpPortPool
from trunkline.net.ws_server import WsMediaLeg, WsMediaStats, add_media_route
from trunkline.runtime.routing import Router, sip_keys, ws_keys
from trunkline.runtime.stores.records import CallRecord
from trunkline.web.phone import add_phone_routes
from trunkline.wsmedia.errors import CloseCode

log = logging.getLogger(__name__)

#: Where Media Streams connect; ``/media/{MATCH}`` picks an agent by path.
MEDIA_PATH = "/media"


class RecordReader(Protocol):
    """Where ``GET /calls/{id}`` finds a finished call's record (a ``RecordBackend``)."""

    async def get(self, call_id: str) -> CallRecord | None: ...


@dataclass
class ServeConfig:
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    rtp_low: int = 20000
    rtp_high: int = 29999
    ring_ms: int = 0
    max_calls: int = 10_000


class Server:
    """A running ``trunkline serve``. ``start`` binds everything; ``stop`` ends every call.

    Args:
        config: addresses and limits.
        handler: the app for every call; or
        router: the apps by dialled number (exactly one of the two).
        metrics: where the server's metrics go (a new set if None; one set per server,
            which adds its own scrape-time families to it).
        records: where finished calls' records are read for ``GET /calls/{id}``.
        live_view: what an app knows of a live call (its transcript so far), or None.

    Raises:
        ValueError: neither or both of ``handler`` and ``router``.
    """

    def __init__(
        self,
        config: ServeConfig,
        handler: CallHandler | None = None,
        *,
        router: Router[CallHandler] | None = None,
        metrics: RuntimeMetrics | None = None,
        records: RecordReader | None = None,
        live_view: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        if router is None:
            if handler is None:
                raise ValueError("Server needs a handler or a router")
            router = Router.single(handler)
        elif handler is not None:
            raise ValueError("give Server a handler or a router, not both")
        self.config = config
        self.router = router
        self.handler = handler if handler is not None else router.default
        self.metrics = metrics if metrics is not None else RuntimeMetrics()
        self.records = records
        self.live_view = live_view
        self.pacer = Pacer()
        self.pool = RtpPortPool(config.sip_host, config.rtp_low, config.rtp_high)
        self.sip = SipCalls(
            host=config.sip_host,
            port=config.sip_port,
            pool=self.pool,
            pacer=self.pacer,
            handler=self.run_call,
            ring_ms=config.ring_ms,
            admit=self.admit,
            route=self._route_sip,
        )
        self.ws_calls = 0  # calls that are not SIP, in progress (WebSocket, browser)
        self.live: dict[int, CallSummary] = {}  # those calls, by id() of their leg
        self.unrouted: dict[str, int] = {}  # non-SIP calls refused for want of a route
        self._media_stats: list[WsMediaStats] = []
        self.metrics.watch_calls(self._live_counts, self._refused_counts)
        self.metrics.watch_pacer(self.pacer.lateness, HIST_BUCKET_S)
        self._runner: web.AppRunner | None = None
        self.sip_address: tuple[str, int] = (config.sip_host, config.sip_port)
        self.http_address: tuple[str, int] = (config.http_host, config.http_port)

    def admit(self) -> bool:
        """Whether one more call fits (RTP port capacity is checked separately)."""
        return self.active_calls < self.config.max_calls

    @property
    def active_calls(self) -> int:
        return self.sip.active + self.ws_calls

    async def start(self) -> None:
        self.pacer.start()
        self.sip_address = await self.sip.start()
        app = build_http_app(self)
        self._add_media_routes(app)
        add_phone_routes(app, media_path=MEDIA_PATH)  # GET /phone: a browser calls /media
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.http_host, self.config.http_port)
        await site.start()
        self._runner = runner
        if runner.addresses:  # the bound address, which differs when port 0 was asked for
            name = runner.addresses[0]
            self.http_address = (str(name[0]), int(name[1]))
        self.metrics.loop_monitor.start()
        log.info(
            "serving: SIP udp+tcp %s:%d, HTTP %s:%d, RTP %d-%d",
            *self.sip_address,
            *self.http_address,
            self.config.rtp_low,
            self.config.rtp_high,
        )

    def _add_media_routes(self, app: web.Application) -> None:
        """``/media``, and with routes by number ``/media/{MATCH}`` for each MATCH plus
        ``/media/{other}`` (routed as ``/media``: by ``to``, else the default)."""
        add = functools.partial(add_media_route, app, pacer=self.pacer, admit=self.admit)
        self._media_stats.append(add(self._ws_handler, path=MEDIA_PATH))
        matches = self.router.matches
        for match in matches:  # plain paths: registered first, they win over {other}
            handler = functools.partial(self.run_call, path_match=match)
            self._media_stats.append(add(handler, path=f"{MEDIA_PATH}/{match}"))
        if matches:
            self._media_stats.append(add(self._ws_handler, path=MEDIA_PATH + "/{other}"))

    def _route_sip(self, info: LegInfo) -> CallHandler | None:
        target = self.router.select(sip_keys(info.extra.get("request_uri", ""), info.to_uri))
        if target is None:
            log.info("%s: no agent for %s; refusing", info.call_id, info.extra.get("request_uri"))
            return None
        return functools.partial(self._run_call, target)

    async def _ws_handler(self, leg: MediaLeg) -> None:
        await self.run_call(leg)

    async def run_call(self, leg: MediaLeg, *, path_match: str | None = None) -> None:
        """Route a call that did not come in over SIP and run its app until it ends.

        The app is chosen by ``path_match`` (the MATCH of ``/media/{MATCH}``), then by
        the ``to`` custom parameter, else the default; with none, the stream is closed
        with 1008 (a leg of another kind is hung up) and counted as refused. The call is
        listed in ``GET /calls`` while it lasts and in ``/calls/recent`` after.
        """
        info = leg.info
        keys = ws_keys(path_match, info.extra)
        target = self.router.select(keys)
        if target is None:
            self.unrouted[info.kind] = self.unrouted.get(info.kind, 0) + 1
            wanted = next((k for k in keys if k is not None), None)
            reason = "no agent for this call" if wanted is None else f"no agent for {wanted!r}"
            if isinstance(leg, WsMediaLeg):
                await leg.close_stream(reason, CloseCode.POLICY_VIOLATION)
            else:
                await leg.hangup(reason)
            return
        self.ws_calls += 1
        extra = info.extra
        summary = CallSummary(
            call_id=leg.call_id, direction="in", started=time.time(), transport=info.kind,
            from_uri=extra.get("from", info.from_uri), to_uri=extra.get("to", info.to_uri),
        )  # fmt: skip
        self.live[id(leg)] = summary
        try:
            await self._run_call(target, leg)
        finally:
            self.ws_calls -= 1
            del self.live[id(leg)]
            summary.ended = time.time()
            if leg.closed.done() and not leg.closed.cancelled():
                hangup = leg.closed.result()
                summary.ended_by, summary.reason = hangup.by, hangup.reason
            else:
                summary.ended_by, summary.reason = "local", "app finished"
            self.sip.recent.append(summary)

    async def _run_call(self, handler: CallHandler, leg: MediaLeg) -> None:
        """Run ``handler`` on ``leg`` and count how the call ended."""
        outcome = ""
        try:
            await handler(leg)
        except Exception:
            outcome = "app_error"
            raise
        finally:  # also when cancelled, after the caller hung up: the hangup says who
            if not outcome:
                closed = leg.closed
                remote = closed.done() and not closed.cancelled() and closed.result().by == "remote"
                outcome = "caller_hangup" if remote else "local_hangup"
            self.metrics.call_ended(leg.info.kind, outcome)

    def _live_counts(self) -> dict[str, int]:
        counts = {"sip": self.sip.active}
        for summary in self.live.values():
            counts[summary.transport] = counts.get(summary.transport, 0) + 1
        return counts

    def _refused_counts(self) -> dict[str, int]:
        counts = dict(self.unrouted)
        counts["sip"] = sum(self.sip.refused.values())
        counts["ws"] = counts.get("ws", 0) + sum(s.refused for s in self._media_stats)
        return counts

    def find_call(self, call_id: str) -> tuple[CallSummary | None, bool]:
        """The summary of call ``call_id`` and whether it is live (None: not known here)."""
        for call in self.sip.calls.values():
            if call.summary.call_id == call_id:
                return call.summary, True
        for summary in self.live.values():
            if summary.call_id == call_id:
                return summary, True
        for summary in reversed(self.sip.recent):
            if summary.call_id == call_id:
                return summary, False
        return None, False

    async def stop(self) -> None:
        await self.sip.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.metrics.loop_monitor.aclose()
        self.pacer.stop()
