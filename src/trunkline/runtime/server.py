"""``trunkline serve``: SIP (UDP+TCP), RTP, WebSocket media and the HTTP API in one process.

Everything shares one event loop and one pacer, so the process's media clock is single
and its cost grows with calls, not with timers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiohttp import web

from trunkline.api.http import build_http_app
from trunkline.net.calls import CallSummary, SipCalls
from trunkline.net.leg import CallHandler, MediaLeg
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_pool import RtpPortPool
from trunkline.net.ws_server import add_media_route

log = logging.getLogger(__name__)


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
    """A running ``trunkline serve``. ``start`` binds everything; ``stop`` ends every call."""

    def __init__(self, config: ServeConfig, handler: CallHandler) -> None:
        self.config = config
        self.handler = handler
        self.pacer = Pacer()
        self.pool = RtpPortPool(config.sip_host, config.rtp_low, config.rtp_high)
        self.sip = SipCalls(
            host=config.sip_host,
            port=config.sip_port,
            pool=self.pool,
            pacer=self.pacer,
            handler=handler,
            ring_ms=config.ring_ms,
            admit=self.admit,
        )
        self.ws_calls = 0
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
        add_media_route(app, self._ws_handler, self.pacer, path="/media", admit=self.admit)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.http_host, self.config.http_port)
        await site.start()
        self._runner = runner
        if runner.addresses:  # the bound address, which differs when port 0 was asked for
            name = runner.addresses[0]
            self.http_address = (str(name[0]), int(name[1]))
        log.info(
            "serving: SIP udp+tcp %s:%d, HTTP %s:%d, RTP %d-%d",
            *self.sip_address,
            *self.http_address,
            self.config.rtp_low,
            self.config.rtp_high,
        )

    async def _ws_handler(self, leg: MediaLeg) -> None:
        self.ws_calls += 1
        summary = CallSummary(call_id=leg.call_id, direction="in", started=time.time())
        summary.transport = "ws"
        try:
            await self.handler(leg)
        finally:
            self.ws_calls -= 1
            summary.ended = time.time()
            if leg.closed.done() and not leg.closed.cancelled():
                hangup = leg.closed.result()
                summary.ended_by, summary.reason = hangup.by, hangup.reason
            else:
                summary.ended_by, summary.reason = "local", "app finished"
            self.sip.recent.append(summary)

    async def stop(self) -> None:
        await self.sip.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self.pacer.stop()
