"""Shared pieces of the end-to-end SIP tests: a live server, our UAC, taps and sinks.

The server (``trunkline.runtime.server.Server``) and the caller (a second ``SipCalls``
acting as UAC) run in the test's own event loop over 127.0.0.1. Their RTP port ranges
are disjoint so a packet can only reach the leg it was meant for; a port another
program holds is skipped by the pool, so parallel runs do not collide.

Nothing here measures time for an assertion: every wait is for a condition, under a
generous deadline.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from trunkline.apps.echo import echo
from trunkline.media.tones import rms_dbfs, silence, sine
from trunkline.net.calls import SipCalls
from trunkline.net.leg import CallHandler, Dtmf, HoldChanged, LegEvent, MediaLeg
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.net.rtp_pool import RtpPortPool
from trunkline.runtime.server import ServeConfig, Server
from trunkline.sip.events import Event, Peer

HOST = "127.0.0.1"
SERVER_RTP = (42000, 42999)
CALLER_RTP = (43000, 43999)
#: Deadline of every wait. Generous: UDP retransmissions double from T1 = 0.5 s.
WAIT_S = 10.0
#: A received frame counts as "the tone" above this level (the tone is sent at -13 dBFS;
#: silence and comfort fill read -inf).
TONE_DBFS = -25.0
TONE_HZ = 1000.0


# --- sinks and apps ------------------------------------------------------------------------


class Recorder:
    """A sink that keeps every inbound frame and event."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.events: list[LegEvent] = []

    def on_audio(self, pcm: bytes) -> None:
        self.frames.append(pcm)

    def on_event(self, event: LegEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def tone_frames(self, start: int = 0) -> int:
        """How many frames from index ``start`` on carry the tone."""
        return sum(1 for f in self.frames[start:] if rms_dbfs(f) > TONE_DBFS)


class RecordingEcho:
    """An echo app that also records what each call's leg reported (DTMF, hold)."""

    def __init__(self) -> None:
        self.legs: list[MediaLeg] = []
        self.recorders: list[Recorder] = []

    async def __call__(self, leg: MediaLeg) -> None:
        rec = Recorder()
        out = leg.out

        def on_audio(pcm: bytes) -> None:
            rec.frames.append(pcm)
            out.append(pcm)

        rec.on_audio = on_audio  # type: ignore[method-assign]
        self.legs.append(leg)
        self.recorders.append(rec)
        leg.attach(rec)
        await leg.wait_closed()

    def holds(self) -> list[bool]:
        return [e.on for r in self.recorders for e in r.of(HoldChanged)]

    def digits(self) -> str:
        return "".join(e.digit for r in self.recorders for e in r.of(Dtmf))


async def _idle(leg: MediaLeg) -> None:
    await leg.wait_closed()  # the caller side never receives calls


def tone(ms: int) -> bytes:
    """A 1 kHz burst at -13 dBFS, led by 100 ms of silence (the start of a talkspurt)."""
    return silence(100) + sine(TONE_HZ, ms, 0.3)


# --- waiting -------------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool], what: str, within_s: float = WAIT_S) -> None:
    """Wait until ``predicate()`` holds; fail the test after ``within_s`` seconds."""
    try:
        async with asyncio.timeout(within_s):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out after {within_s} s waiting for {what}")


# --- server and caller -----------------------------------------------------------------------


@asynccontextmanager
async def running_server(
    handler: CallHandler = echo,
    *,
    rtp: tuple[int, int] = SERVER_RTP,
    ring_ms: int = 0,
    max_calls: int = 10_000,
) -> AsyncIterator[Server]:
    """``trunkline serve`` in this loop, on free SIP and HTTP ports."""
    config = ServeConfig(
        sip_host=HOST,
        sip_port=0,
        http_host=HOST,
        http_port=0,
        rtp_low=rtp[0],
        rtp_high=rtp[1],
        ring_ms=ring_ms,
        max_calls=max_calls,
    )
    server = Server(config, handler)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def sip_caller(rtp: tuple[int, int] = CALLER_RTP) -> AsyncIterator[SipCalls]:
    """Our UAC: a ``SipCalls`` with its own pacer, for dialling the server."""
    pacer = Pacer()
    pacer.start()
    calls = SipCalls(
        host=HOST, port=0, pool=RtpPortPool(HOST, rtp[0], rtp[1]), pacer=pacer, handler=_idle
    )
    await calls.start()
    try:
        yield calls
    finally:
        await calls.close()
        pacer.stop()


def target(
    address: tuple[str, int], transport: str = "udp", user: str = "echo"
) -> tuple[str, Peer]:
    """The Request-URI and next hop for calling ``address`` over ``transport``."""
    host, port = address
    suffix = ";transport=tcp" if transport == "tcp" else ""
    return f"sip:{user}@{host}:{port}{suffix}", Peer(transport, host, port)


async def dial(
    caller: SipCalls, server: Server, transport: str = "udp"
) -> tuple[SipRtpLeg, Recorder]:
    """Call the server and attach a recorder to the answered leg."""
    uri, peer = target(server.sip_address, transport)
    leg = await caller.dial(uri, peer, answer_timeout_s=WAIT_S)
    rec = Recorder()
    leg.attach(rec)
    return leg, rec


def call_record(calls: SipCalls, leg: SipRtpLeg) -> Any:
    """``SipCalls``' record of the call behind ``leg``: ``.sip`` is the UA's call handle
    (for driving the UA directly), ``.port`` the local RTP port, ``.pending_offer`` the
    offer an outgoing call was placed with."""
    for call in calls.calls.values():
        if call.leg is leg:
            return call
    raise AssertionError(f"no live call holds leg {leg.call_id}")


def now() -> float:
    return asyncio.get_running_loop().time()


# --- observing SIP ---------------------------------------------------------------------------

_CSEQ = re.compile(rb"^CSeq:\s*\d+\s+([A-Z]+)", re.MULTILINE | re.IGNORECASE)


def kind_of(data: bytes) -> str:
    """A SIP message's kind: the method of a request ("INVITE"), or "<status> <CSeq method>"
    of a response ("200 INVITE")."""
    first = data.split(b"\r\n", 1)[0].decode("latin-1")
    if first.startswith("SIP/2.0 "):
        match = _CSEQ.search(data)
        method = match.group(1).decode() if match else "?"
        return f"{first.split()[1]} {method}"
    return first.split(" ", 1)[0]


class OutboundTap:
    """A ``SipEndpoint.drop_outbound`` hook: counts every UDP message by kind and drops
    the first ``n`` of the kinds in ``drop`` (deterministic loss)."""

    def __init__(self, drop: dict[str, int] | None = None) -> None:
        self.to_drop = dict(drop or {})
        self.sent: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.messages: list[bytes] = []

    def __call__(self, data: bytes, peer: Peer) -> bool:
        kind = kind_of(data)
        self.messages.append(data)
        if self.to_drop.get(kind, 0) > 0:
            self.to_drop[kind] -= 1
            self.dropped[kind] = self.dropped.get(kind, 0) + 1
            return True
        self.sent[kind] = self.sent.get(kind, 0) + 1
        return False


class EventTap:
    """Sees every UA event of an endpoint before ``SipCalls`` handles it."""

    def __init__(self, calls: SipCalls) -> None:
        assert calls.endpoint is not None
        self.events: list[Event] = []
        endpoint = calls.endpoint
        forward = endpoint.on_event

        def tap(event: Event) -> None:
            self.events.append(event)
            forward(event)

        endpoint.on_event = tap

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


# --- raw UDP -----------------------------------------------------------------------------------


class RawUdp(asyncio.DatagramProtocol):
    """A bare UDP socket in the loop, for sending hand-made SIP and reading the answers."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> RawUdp:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        return proto

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)

    async def answer(self, *, skip_provisional: bool = True) -> bytes:
        """The next datagram (the next final response unless told otherwise)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                data = await self.received.get()
                if skip_provisional and data.startswith(b"SIP/2.0 1"):
                    continue
                return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
