"""Calls over SIP: turns UA events into legs and runs an app on each.

Theory of operation
-------------------
``SipCalls`` owns the process's ``UserAgent`` (through ``SipEndpoint``), the RTP port
pool and the pacer. For an incoming INVITE it:

1. refuses with 503 + Retry-After when the app's ``admit`` says no or the port pool is
   empty (an exhausted pool is an answer, not a crash);
2. negotiates SDP (RFC 3264): a malformed body gets 400, no common codec gets 488;
3. binds the RTP socket and builds a ``SipRtpLeg``;
4. optionally rings for ``ring_ms`` (180 first), then answers 200 with our SDP;
5. runs the app on the leg in one task per call (never per frame). When the app returns
   the call is hung up; when the caller hangs up the leg reports ``Hangup`` and the app
   task is cancelled after a grace period.

For outgoing calls (``dial``) it makes the offer, sends INVITE and returns the leg once
the far end answers. Re-INVITEs renegotiate the same leg (hold, unhold, new address).
REFER sent by ``leg.transfer`` completes when the NOTIFY sipfrag reports a final status.

Every call that ends is summarised in ``recent`` (DTMF digits, who ended it, why), which
the HTTP API exposes for tests and operators.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trunkline.net.leg import CallHandler, Dtmf, HoldChanged, LegInfo, TransferResult
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.net.rtp_pool import PortPoolExhausted, RtpPortPool
from trunkline.net.sip_endpoint import SipEndpoint
from trunkline.sdp.errors import SdpError, SdpNegotiationError
from trunkline.sdp.model import SessionDescription
from trunkline.sdp.offer_answer import (
    PCMA,
    PCMU,
    NegotiatedMedia,
    answer_offer,
    make_offer,
    read_answer,
)
from trunkline.sip import events as ev
from trunkline.sip.ua import Peer, UserAgent

log = logging.getLogger(__name__)

# Retry-After (RFC 3261 §20.33) when we are out of capacity: long enough for a few calls
# to end, short enough that a trunk retries soon.
RETRY_AFTER_S = 5
# How long an app may keep running after its caller hung up before it is cancelled.
APP_GRACE_S = 2.0
# How many ended calls ``recent`` keeps.
RECENT_CALLS = 500


@dataclass
class CallSummary:
    """What ``GET /calls`` and ``GET /calls/recent`` report of a call."""

    call_id: str
    direction: str
    started: float
    transport: str = "sip"  # "sip" or "ws"
    ended: float | None = None
    ended_by: str | None = None
    reason: str = ""
    dtmf: str = ""
    status: int | None = None
    from_uri: str = ""
    to_uri: str = ""
    rtp_received: int = 0
    rtp_sent: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Call:
    sip: Any  # the UA's call handle
    summary: CallSummary
    sock: socket.socket | None = None
    port: int = 0
    leg: SipRtpLeg | None = None
    task: asyncio.Task[None] | None = None
    session_id: int = 0
    session_version: int = 1
    answered: asyncio.Future[NegotiatedMedia] | None = None
    answered_at: float = 0.0  # time.monotonic() when the 200 OK to our INVITE arrived
    transfer: asyncio.Future[TransferResult] | None = None
    pending_offer: SessionDescription | None = None


class SipCalls:
    """Incoming and outgoing SIP calls for one process."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        pool: RtpPortPool,
        pacer: Pacer,
        handler: CallHandler,
        ring_ms: int = 0,
        admit: Callable[[], bool] | None = None,
        rand: random.Random | None = None,
        leg_class: type[SipRtpLeg] = SipRtpLeg,
        on_refer: Callable[[SipRtpLeg, str], tuple[int, str]] | None = None,
        route: Callable[[LegInfo], CallHandler | None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.pool = pool
        self.pacer = pacer
        self.handler = handler
        self.ring_ms = ring_ms
        self.admit = admit
        self.rand = rand or random.Random()
        # The lab's callers use their own leg (no jitter buffer, pre-encoded audio) and
        # accept the agent's REFER; the runtime keeps the defaults.
        self.leg_class = leg_class
        self.on_refer = on_refer
        # Several apps by dialled number: the app for an incoming call, None for 404.
        self.route = route
        self.calls: dict[int, _Call] = {}
        self.recent: deque[CallSummary] = deque(maxlen=RECENT_CALLS)
        self.refused: dict[int, int] = {}
        self.ua: UserAgent | None = None
        self.endpoint: SipEndpoint | None = None

    async def start(self) -> tuple[str, int]:
        ua = UserAgent(local_host=self.host, local_port=self.port, rand=self.rand)
        self.ua = ua
        self.endpoint = SipEndpoint(ua, self._on_event)
        host, port = await self.endpoint.start(self.host, self.port)
        if port != self.port:
            # Port 0 asked for a free port: the UA must put the real one in Via/Contact.
            self.port = port
            ua.local_port = port
        return host, port

    async def close(self) -> None:
        for call in list(self.calls.values()):
            if call.leg is not None:
                await call.leg.hangup("shutdown")
        if self.endpoint is not None:
            self.endpoint.pump()
            await self.endpoint.close()

    @property
    def active(self) -> int:
        return len(self.calls)

    # --- UA events -----------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _incoming(self, event: ev.IncomingCall) -> None:
        call_id = event.call.call_id
        info = LegInfo(
            kind="sip", call_id=call_id, from_uri=event.from_, to_uri=event.to,
            extra={"request_uri": event.request_uri},
        )  # fmt: skip
        handler = self.handler if self.route is None else self.route(info)
        if handler is None:  # RFC 3261 §21.4.5: no such user here
            self._refuse(event.call, 404, "No agent for this number")
            return
        if self.admit is not None and not self.admit():
            self._refuse(event.call, 503)
            return
        try:
            sock = self.pool.acquire()
        except PortPoolExhausted as exc:
            log.warning("refusing call: %s", exc)
            self._refuse(event.call, 503)
            return
        port = int(sock.getsockname()[1])
        session_id = self.rand.getrandbits(32)
        try:
            answer, media = answer_offer(
                SessionDescription.parse(event.sdp),
                local_host=self.host,
                local_port=port,
                codecs=[PCMU, PCMA],
                session_id=session_id,
                session_version=1,
            )
        except SdpError as exc:
            sock.close()
            self.pool.release(port)
            if isinstance(exc, SdpNegotiationError):
                log.info("refusing call: %s", exc)
                self._refuse(event.call, 488, str(exc))
            else:
                log.info("refusing call with malformed SDP: %s", exc)
                self._refuse(event.call, 400, f"Malformed SDP: {exc}")
            return
        summary = CallSummary(
            call_id=call_id, direction="in", started=time.time(), from_uri=event.from_,
            to_uri=event.to,
        )  # fmt: skip
        call = _Call(sip=event.call, summary=summary, sock=sock, port=port, session_id=session_id)
        self.calls[id(event.call)] = call
        call.task = asyncio.get_running_loop().create_task(
            self._run_incoming(call, info, media, bytes(answer), handler)
        )

    async def _run_incoming(
        self,
        call: _Call,
        info: LegInfo,
        media: NegotiatedMedia,
        answer: bytes,
        handler: CallHandler,
    ) -> None:
        try:
            leg = self._make_leg(call, info, media)
            leg.start()
        except Exception:
            # Our fault, not the caller's: 500 with Retry-After (RFC 3261 §21.5.1) so a
            # trunk tries again or elsewhere, and nothing of the call is left behind.
            log.exception("%s: cannot set up media; refusing the call", info.call_id)
            self._refuse(call.sip, 500, "Media setup failed")
            self._pump()
            self._cleanup(call, "local", "media setup failed")
            return
        ua = self._ua()
        if self.ring_ms > 0:
            ua.ring(call.sip, now=self._now())
            self._pump()
            await asyncio.sleep(self.ring_ms / 1000)
        ua.answer(call.sip, answer, now=self._now())
        self._pump()
        await self._run_app(call, leg, handler)

    def _make_leg(self, call: _Call, info: LegInfo, media: NegotiatedMedia) -> SipRtpLeg:
        assert call.sock is not None, "a call gets its RTP socket before its leg"
        r = self.rand
        leg = self.leg_class(
            info,
            media,
            call.sock,
            self,
            self.pacer,
            ssrc=r.getrandbits(32),
            initial_seq=r.getrandbits(16),
            initial_ts=r.getrandbits(32),
        )
        call.leg = leg
        return leg

    async def _run_app(self, call: _Call, leg: SipRtpLeg, handler: CallHandler) -> None:
        try:
            await handler(leg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: app failed; hanging up", leg.call_id)
        if not leg.closed.done():
            await leg.hangup("app finished")

    def _refuse(self, sip_call: Any, status: int, reason: str | None = None) -> None:
        retry = RETRY_AFTER_S if status in (500, 503) else None
        self._ua().reject(sip_call, status, reason, retry_after=retry, now=self._now())
        self.refused[status] = self.refused.get(status, 0) + 1

    def _ended(self, event: ev.CallEnded | ev.CallCancelled | ev.CallFailed) -> None:
        call = self.calls.get(id(event.call))
        if call is None:
            return
        if isinstance(event, ev.CallEnded):
            by, reason = event.by, event.reason
        elif isinstance(event, ev.CallCancelled):
            by, reason = "remote", "cancelled"
        else:
            by, reason = "remote", f"{event.status} {event.reason}"
            call.summary.status = event.status
            if call.answered is not None and not call.answered.done():
                call.answered.set_exception(CallFailedError(event.status, event.reason))
        self._cleanup(call, by, reason)

    def _cleanup(self, call: _Call, by: str, reason: str) -> None:
        if self.calls.pop(id(call.sip), None) is None:
            return  # already cleaned up (a local hangup is reported by the UA at once)
        summary = call.summary
        summary.ended = time.time()
        summary.ended_by = summary.ended_by or by
        summary.reason = summary.reason or reason
        leg = call.leg
        if leg is not None:
            summary.rtp_received = leg.stats.received
            summary.rtp_sent = leg.stats.sent
            summary.dtmf = leg.digits
            leg._finish(reason, "remote" if by == "remote" else "local")
            leg.close_media()
        elif call.sock is not None:
            call.sock.close()
        if call.port:
            self.pool.release(call.port)
        if call.transfer is not None and not call.transfer.done():
            call.transfer.set_result(TransferResult(False, 487, "call ended"))
        task = call.task
        if task is not None and not task.done() and by == "remote":
            asyncio.get_running_loop().call_later(APP_GRACE_S, task.cancel)
        self.recent.append(summary)

    def _reinvite(self, event: ev.ReinviteReceived) -> None:
        call = self.calls.get(id(event.call))
        ua = self._ua()
        if call is None or call.leg is None:
            ua.reject_reinvite(event.call, 481, now=self._now())
            return
        try:
            offer = SessionDescription.parse(event.sdp)
            call.session_version += 1
            answer, media = answer_offer(
                offer,
                local_host=self.host,
                local_port=call.port,
                codecs=[PCMU, PCMA],
                session_id=call.session_id,  # RFC 3264 §8: o= id stays, version grows
                session_version=call.session_version,
            )
        except SdpError as exc:
            status = 488 if isinstance(exc, SdpNegotiationError) else 400
            ua.reject_reinvite(event.call, status, now=self._now())
            return
        was_held = call.leg.media.on_hold
        call.leg.apply_media(media)
        ua.answer_reinvite(event.call, bytes(answer), now=self._now())
        if media.on_hold != was_held:
            call.leg._emit(HoldChanged(media.on_hold))

    def _dtmf(self, event: ev.DtmfReceived) -> None:
        call = self.calls.get(id(event.call))
        if call is not None and call.leg is not None:
            call.leg.emit_dtmf(Dtmf(event.digit, event.duration_ms))

    def _refer_received(self, event: ev.ReferReceived) -> None:
        # Acting on a REFER means placing a new call for the peer; the runtime does not
        # do that on a caller's behalf, so it declines through the NOTIFY (RFC 3515 §2.4.5).
        # A lab caller (``on_refer``) records the request and reports its own answer.
        call = self.calls.get(id(event.call))
        if self.on_refer is not None and call is not None and call.leg is not None:
            status, reason = self.on_refer(call.leg, event.target)
        else:
            status, reason = 603, "Decline"
        self._ua().notify_refer(event.call, status, reason, now=self._now())

    def _refer_progress(self, event: ev.ReferProgress) -> None:
        call = self.calls.get(id(event.call))
        if call is None or call.transfer is None or call.transfer.done():
            return
        if event.final:
            ok = 200 <= event.status < 300
            call.transfer.set_result(TransferResult(ok, event.status))

    def _answered(self, event: ev.CallAnswered) -> None:
        call = self.calls.get(id(event.call))
        if call is None or call.answered is None or call.answered.done():
            return
        try:
            assert call.pending_offer is not None
            media = read_answer(call.pending_offer, SessionDescription.parse(event.sdp))
        except SdpError as exc:
            call.answered.set_exception(CallFailedError(488, str(exc)))
            self._ua().hangup(call.sip, "bad answer", now=self._now())
            return
        call.answered_at = time.monotonic()
        call.answered.set_result(media)

    # --- SipCallControl ----------------------------------------------------------------

    def hangup_leg(self, leg: SipRtpLeg, reason: str) -> None:
        for call in self.calls.values():
            if call.leg is leg:
                call.summary.ended_by = "local"
                call.summary.reason = reason
                self._ua().hangup(call.sip, reason, now=self._now())
                self._pump()
                # The UA reports CallEnded once the BYE completes; clean up now anyway so
                # the port and the pacer slot are free at once.
                self._cleanup(call, "local", reason)
                return

    def dtmf_info_leg(self, leg: SipRtpLeg, digit: str, duration_ms: int) -> None:
        for call in self.calls.values():
            if call.leg is leg:
                self._ua().send_dtmf_info(call.sip, digit, duration_ms, now=self._now())
                self._pump()
                return

    async def transfer_leg(self, leg: SipRtpLeg, target: str) -> TransferResult:
        for call in self.calls.values():
            if call.leg is leg:
                call.transfer = asyncio.get_running_loop().create_future()
                self._ua().refer(call.sip, target, now=self._now())
                self._pump()
                return await call.transfer
        return TransferResult(False, 481, "no such call")

    # --- outgoing calls ----------------------------------------------------------------

    async def dial(
        self,
        target_uri: str,
        peer: Peer,
        *,
        from_uri: str | None = None,
        answer_timeout_s: float = 32.0,
    ) -> SipRtpLeg:
        """Place a call and return its leg once answered.

        Raises:
            CallFailedError: the far end refused (status) or did not answer in time (408).
            PortPoolExhausted: no local RTP port is free.
        """
        sock = self.pool.acquire()
        port = int(sock.getsockname()[1])
        offer = make_offer(
            local_host=self.host,
            local_port=port,
            codecs=[PCMU, PCMA],
            session_id=self.rand.getrandbits(32),
            session_version=1,
        )
        ua = self._ua()
        sip_call = ua.invite(
            target_uri,
            bytes(offer),
            peer,
            from_uri=from_uri or f"sip:trunkline@{self.host}:{self.port}",
            now=self._now(),
        )
        loop = asyncio.get_running_loop()
        call_id = getattr(sip_call, "call_id", "")
        summary = CallSummary(
            call_id=call_id, direction="out", started=time.time(),
            from_uri=from_uri or "", to_uri=target_uri,
        )  # fmt: skip
        call = _Call(sip=sip_call, summary=summary, sock=sock, port=port, pending_offer=offer)
        call.answered = loop.create_future()
        self.calls[id(sip_call)] = call
        self._pump()
        try:
            media = await asyncio.wait_for(asyncio.shield(call.answered), answer_timeout_s)
        except TimeoutError:
            ua.cancel(sip_call, now=self._now())
            self._pump()
            self._cleanup(call, "local", "no answer")
            raise CallFailedError(408, "no answer") from None
        except CallFailedError:
            if id(sip_call) in self.calls:
                self._cleanup(call, "remote", "failed")
            raise
        info = LegInfo(kind="sip", call_id=call_id, from_uri=from_uri or "", to_uri=target_uri)
        leg = self._make_leg(call, info, media)
        leg.start()
        leg.answered_at = call.answered_at
        return leg

    # --- helpers -------------------------------------------------------------------------

    def _ua(self) -> UserAgent:
        assert self.ua is not None, "SipCalls.start() was not called"
        return self.ua

    def _now(self) -> float:
        # Actions taken outside an event handler must tell the UA the time, or its
        # timers would be armed from the last input's time (sans-IO: no clock inside).
        return asyncio.get_running_loop().time()

    def _pump(self) -> None:
        if self.endpoint is not None:
            self.endpoint.pump()


class CallFailedError(Exception):
    """An outgoing call did not connect."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


_HANDLERS: dict[type, Callable[[SipCalls, Any], None]] = {
    ev.IncomingCall: SipCalls._incoming,
    ev.CallEnded: SipCalls._ended,
    ev.CallCancelled: SipCalls._ended,
    ev.CallFailed: SipCalls._ended,
    ev.CallAnswered: SipCalls._answered,
    ev.ReinviteReceived: SipCalls._reinvite,
    ev.DtmfReceived: SipCalls._dtmf,
    ev.ReferReceived: SipCalls._refer_received,
    ev.ReferProgress: SipCalls._refer_progress,
}
