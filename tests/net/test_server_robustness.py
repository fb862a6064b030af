"""Bad input against a live server: floods and malformed requests, measured.

The flood test runs three echo calls while another thread throws garbage at the
server's SIP port (UDP datagrams and idle or half-written TCP connections) and at the
calls' RTP ports, and counts the echo frames each call got back during the flood. The
figures are printed (``pytest -s``); the assertions are generous bounds on counts, not
on time.

The malformed-request tests send hand-made datagrams from a bare UDP socket and parse
the answers with our own parser: each §8.2 check answers with its status and the
header that says why. The TCP tests check that a connection is closed for broken
framing only. The last test checks that an ICMP error on a call's RTP socket does not
stop its media, on the default loop and on uvloop (which ``trunkline serve`` runs).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass, field

import pytest
import uvloop

from trunkline.apps.echo import echo
from trunkline.media.audio import FRAME_SAMPLES
from trunkline.media.tones import sine
from trunkline.net.calls import SipCalls
from trunkline.net.leg import Hangup
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_pool import RtpPortPool
from trunkline.rtp.g711 import ulaw_encode
from trunkline.sip import events as ev
from trunkline.sip.message import SipResponse
from trunkline.sip.parser import parse_message

from .helpers import (
    HOST,
    TONE_HZ,
    WAIT_S,
    EventTap,
    OutboundTap,
    RawUdp,
    dial,
    eventually,
    running_server,
    sip_caller,
    tone,
)

FRAMES_PER_S = 50
# The flood: this many datagrams at the SIP port, in batches spread over FLOOD_S.
FLOOD_DATAGRAMS = 5000
FLOOD_S = 2.0
FLOOD_BATCH = 25
HUGE_BYTES = 60_000  # near the UDP maximum, under MAX_MESSAGE_BYTES: it must be parsed
TCP_CONNECTIONS = 200
# Each call must get this share of its 50 frames/s back during the flood.
MIN_SHARE = 0.8


# --- the flood --------------------------------------------------------------------------------


def _invite(call_id: str, port: int) -> bytes:
    """A well-formed INVITE with Content-Length first, so that any cut makes it invalid."""
    body = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 9 RTP/AVP 0\r\na=sendrecv\r\n"
    )
    return (
        f"INVITE sip:echo@{HOST}:{port} SIP/2.0\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Via: SIP/2.0/UDP {HOST}:9;branch=z9hG4bK-{call_id}\r\n"
        f"From: <sip:flood@{HOST}>;tag={call_id}\r\n"
        f"To: <sip:echo@{HOST}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:flood@{HOST}:9>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/sdp\r\n"
        "\r\n" + body
    ).encode()


def _sip_garbage(rng: random.Random, sip_port: int) -> tuple[list[bytes], dict[str, int]]:
    """FLOOD_DATAGRAMS datagrams: random bytes, truncated INVITEs, huge junk, keep-alives."""
    out: list[bytes] = []
    kinds = {"random": 0, "truncated_invite": 0, "huge": 0, "crlf": 0}
    for i in range(FLOOD_DATAGRAMS):
        pick = i % 25
        if pick < 11:
            out.append(rng.randbytes(rng.randrange(1, 1400)))
            kinds["random"] += 1
        elif pick < 19:
            whole = _invite(f"flood{i}", sip_port)
            # Cut after the request line at least, and before the body's last byte.
            out.append(whole[: rng.randrange(30, len(whole) - 1)])
            kinds["truncated_invite"] += 1
        elif pick < 24:
            out.append(b"\r\n\r\n")
            kinds["crlf"] += 1
        elif i % 50 == 24:
            out.append(rng.randbytes(HUGE_BYTES))
            kinds["huge"] += 1
        else:
            out.append(b"\r\n")
            kinds["crlf"] += 1
    return out, kinds


def _rtp_garbage(rng: random.Random, n: int) -> list[bytes]:
    """Datagrams for an RTP port that must never become audio: short or non-v2 junk, and
    version-2 packets of payload types the call did not negotiate (RTCP, 96, 13)."""
    out: list[bytes] = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(0, 12)))  # shorter than a header
        elif kind == 1:
            out.append(bytes([0x00]) + rng.randbytes(171))  # version 0
        else:
            pt = (200, 96, 13)[i % 9 // 3]  # RTCP SR's byte, dynamic, comfort noise
            out.append(bytes([0x80, pt]) + rng.randbytes(170))
    return out


@dataclass
class FloodReport:
    sip_sent: int = 0
    rtp_sent: int = 0
    tcp_opened: int = 0
    tcp_refused: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)


def flood(sip: tuple[str, int], rtp_ports: list[int], report: FloodReport) -> None:
    """Run in a thread: open TCP_CONNECTIONS idle or half-written TCP connections, then
    send the SIP and RTP garbage in batches over FLOOD_S, then close everything."""
    rng = random.Random(4242)
    datagrams, report.kinds = _sip_garbage(rng, sip[1])
    rtp = _rtp_garbage(rng, len(datagrams) // FLOOD_BATCH)
    conns: list[socket.socket] = []
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    try:
        for i in range(TCP_CONNECTIONS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5.0)
            # Close with RST, as a flooder would: no TIME_WAIT left holding 200 ports
            # for a minute, which later tests' port-0 SIP binds could collide with.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                s.connect(sip)
                if i % 2:
                    s.sendall(_invite(f"half{i}", sip[1])[:120])  # half a message
            except OSError:
                report.tcp_refused += 1
                s.close()
                continue
            conns.append(s)
            report.tcp_opened += 1
        batches = [datagrams[i : i + FLOOD_BATCH] for i in range(0, len(datagrams), FLOOD_BATCH)]
        pause = FLOOD_S / len(batches)
        for n, batch in enumerate(batches):
            for data in batch:
                try:
                    udp.sendto(data, sip)
                    report.sip_sent += 1
                except OSError:
                    pass  # ENOBUFS: the kernel is full, which is the point
            for port in rtp_ports:
                udp.sendto(rtp[n], (HOST, port))
                report.rtp_sent += 1
            time.sleep(pause)
    finally:
        report.seconds = time.monotonic() - start
        udp.close()
        for s in conns:
            s.close()


async def test_calls_keep_their_media_through_a_flood() -> None:
    async with running_server() as server, sip_caller() as caller:
        assert server.sip.endpoint is not None
        legs = [await dial(caller, server) for _ in range(3)]
        for leg, _ in legs:
            leg.send_audio(sine(TONE_HZ, 12_000, 0.3))  # talk through the whole test
        for leg, rec in legs:
            await eventually(lambda rec=rec: rec.tone_frames() >= 10, f"{leg.call_id}'s echo")
        answers = OutboundTap()
        server.sip.endpoint.drop_outbound = answers
        events = EventTap(server.sip)
        server_legs = [c.leg for c in server.sip.calls.values()]
        rtp_ports = [c.port for c in server.sip.calls.values()]
        assert len(rtp_ports) == 3

        report = FloodReport()
        before = [(leg.stats.received, len(rec.frames)) for leg, rec in legs]
        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        flooder = loop.run_in_executor(None, flood, server.sip_address, rtp_ports, report)
        most_connections = 0
        while not flooder.done():
            most_connections = max(most_connections, len(server.sip.endpoint.connections))
            await asyncio.sleep(0.05)
        await flooder
        window = time.monotonic() - t0
        expected = window * FRAMES_PER_S

        print(
            f"\nflood: {report.sip_sent} SIP datagrams {report.kinds}, {report.rtp_sent} RTP "
            f"junk, {report.tcp_opened} TCP connections ({report.tcp_refused} refused; "
            f"server held at most {most_connections}) over {window:.2f} s"
        )
        for (leg, rec), (received0, frames0) in zip(legs, before, strict=True):
            got = leg.stats.received - received0
            tone_frames = rec.tone_frames(frames0)
            print(
                f"  call {leg.call_id[:8]}: {got} echo packets and {tone_frames} tone frames "
                f"back of {expected:.0f} expected ({got / expected:.0%}, "
                f"{tone_frames / expected:.0%}); jitter {leg.jitter.stats}"
            )
            assert got >= MIN_SHARE * expected, f"{leg.call_id} lost its echo in the flood"
            assert tone_frames >= MIN_SHARE * expected, f"{leg.call_id}: the tone faded"
        rejected = len(events.of(ev.MessageRejected))
        junk_rtp = sum(leg.stats.bad_packets + leg.stats.foreign_packets for leg in server_legs)
        print(
            f"  server: {answers.sent.get('400 INVITE', 0)} answers of 400, {rejected} "
            f"MessageRejected, {server.sip.endpoint.dropped_datagrams} datagrams dropped "
            f"unparsed, {junk_rtp} junk RTP datagrams counted, refused {server.sip.refused}"
        )

        # Garbage was seen and refused, and it created nothing. Every datagram that
        # arrived is either rejected (parsed and refused) or dropped unparsed; the kernel
        # may have dropped some before that, so the bound is loose.
        assert report.sip_sent == FLOOD_DATAGRAMS
        handled = rejected + server.sip.endpoint.dropped_datagrams
        assert FLOOD_DATAGRAMS // 2 <= handled <= FLOOD_DATAGRAMS
        assert answers.sent.get("400 INVITE", 0) > 0  # truncated INVITEs answered 400
        assert rejected > 0
        assert server.sip.endpoint.dropped_datagrams > 0  # keep-alives
        # Junk on the RTP ports (counted when it reaches a leg; a leg whose socket is
        # connected to its peer never even sees it) must not reset any stream.
        for leg in server_legs:
            stats = leg.jitter.stats
            assert (stats.ssrc_changes, stats.sequence_jumps, stats.timestamp_jumps) == (0, 0, 0)
        assert server.sip.active == 3 and len(server.sip.recent) == 0
        assert all(not leg.closed.done() for leg, _ in legs)
        assert most_connections >= TCP_CONNECTIONS // 2, "the TCP connections never arrived"
        await eventually(
            lambda: len(server.sip.endpoint.connections) == 0, "the closed connections to go"
        )

        # A new call still works, and every old one hangs up cleanly.
        new_leg, new_rec = await dial(caller, server)
        new_leg.send_audio(tone(400))
        await eventually(lambda: new_rec.tone_frames() >= 15, "a new call's echo")
        for leg, _ in [*legs, (new_leg, new_rec)]:
            await leg.hangup()
        await eventually(lambda: len(server.sip.recent) == 4, "every call to end")
        assert {s.ended_by for s in server.sip.recent} == {"remote"}


# --- malformed requests -----------------------------------------------------------------------


def _request(
    sip_port: int,
    client_port: int,
    *,
    method: str = "INVITE",
    call_id: str | None = "raw-1",
    to_tag: str | None = None,
    extra: str = "",
    content_type: str | None = "application/sdp",
    body: str = "",
) -> bytes:
    """A hand-made request from our bare socket; omit a header by passing None."""
    lines = [
        f"{method} sip:echo@{HOST}:{sip_port} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{client_port};branch=z9hG4bK-{method}-{call_id}-{len(extra)}",
        f"From: <sip:raw@{HOST}>;tag=raw1",
        f"To: <sip:echo@{HOST}>" + (f";tag={to_tag}" if to_tag else ""),
        f"CSeq: 1 {method}",
        f"Contact: <sip:raw@{HOST}:{client_port}>",
        "Max-Forwards: 70",
    ]
    if call_id is not None:
        lines.append(f"Call-ID: {call_id}")
    if body and content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [line for line in extra.split("\r\n") if line]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 43990 RTP/AVP 0\r\na=sendrecv\r\n"
)


async def _ask(raw: RawUdp, server_address: tuple[str, int], request: bytes) -> SipResponse:
    raw.send(request, server_address)
    answer = parse_message(await raw.answer())
    assert isinstance(answer, SipResponse), answer
    return answer


async def test_malformed_requests_get_the_right_answers() -> None:
    async with running_server() as server:
        port = server.sip_address[1]
        raw = await RawUdp.open()
        events = EventTap(server.sip)
        try:
            me = raw.port

            bad_cseq = _request(port, me, call_id="raw-cseq").replace(
                b"CSeq: 1 INVITE", b"CSeq: one INVITE"
            )
            answer = await _ask(raw, server.sip_address, bad_cseq)
            assert answer.status == 400
            assert "CSeq" in answer.reason, answer.reason

            answer = await _ask(raw, server.sip_address, _request(port, me, method="PUBLISH"))
            assert answer.status == 405
            assert "INVITE" in (answer.headers.get("Allow") or "")
            assert "PUBLISH" not in (answer.headers.get("Allow") or "")

            bye = _request(port, me, method="BYE", call_id="raw-nodialog", to_tag="nosuch")
            answer = await _ask(raw, server.sip_address, bye)
            assert answer.status == 481

            require = _request(port, me, call_id="raw-require", extra="Require: foo", body=SDP)
            answer = await _ask(raw, server.sip_address, require)
            assert answer.status == 420
            assert answer.headers.get("Unsupported") == "foo"

            text = _request(port, me, call_id="raw-text", content_type="text/plain", body="hi")
            answer = await _ask(raw, server.sip_address, text)
            assert answer.status == 415
            assert "application/sdp" in (answer.headers.get("Accept") or "")

            answer = await _ask(raw, server.sip_address, _request(port, me, method="OPTIONS"))
            assert answer.status == 200
            assert "INVITE" in (answer.headers.get("Allow") or "")

            # Without a Call-ID a response could not be matched to anything (§8.1.1.4),
            # so the request is dropped, and reported with a reason naming the header.
            before = len(events.of(ev.MessageRejected))
            raw.send(_request(port, me, call_id=None, body=SDP), server.sip_address)
            await eventually(
                lambda: len(events.of(ev.MessageRejected)) > before, "the drop to be reported"
            )
            rejected = events.of(ev.MessageRejected)[-1]
            assert rejected.status == 400 and "Call-ID" in rejected.reason, rejected
            # ...and nothing came back: the next answer is the OPTIONS sent after it.
            answer = await _ask(
                raw, server.sip_address, _request(port, me, method="OPTIONS", call_id="raw-after")
            )
            assert answer.status == 200 and answer.call_id == "raw-after"
            assert server.sip.active == 0 and server.pool.in_use == 0
        finally:
            raw.close()


async def test_bad_tcp_framing_closes_that_connection_only() -> None:
    async with running_server() as server, sip_caller() as caller:
        assert server.sip.endpoint is not None
        leg, rec = await dial(caller, server, "tcp")
        reader, writer = await asyncio.open_connection(*server.sip_address)
        try:
            await eventually(
                lambda: len(server.sip.endpoint.connections) == 2, "the second connection"
            )
            bad = _request(server.sip_address[1], 9, method="OPTIONS", call_id="raw-tcp")
            writer.write(bad.replace(b"Content-Length: 0", b"Content-Length: -5"))
            await writer.drain()
            async with asyncio.timeout(WAIT_S):
                answer = await reader.read()  # everything until the server closes
            assert reader.at_eof()
            # The head was readable, so it is answered before the close.
            response = parse_message(answer)
            assert isinstance(response, SipResponse) and response.status == 400
            assert "Content-Length" in response.reason
            await eventually(
                lambda: len(server.sip.endpoint.connections) == 1, "the bad connection to go"
            )
        finally:
            writer.close()
            await writer.wait_closed()

        # The call over the other connection carries on, media and signalling.
        received = leg.stats.received
        leg.send_audio(tone(400))
        await eventually(lambda: rec.tone_frames() >= 15, "the call's echo")
        assert leg.stats.received > received
        await leg.hangup()
        await eventually(lambda: len(server.sip.recent) == 1, "the BYE over TCP")
        assert server.sip.recent[-1].ended_by == "remote"
        assert rec.of(Hangup) == [Hangup("normal", "local")]


async def test_tcp_connection_survives_a_request_with_another_sip_version() -> None:
    async with running_server() as server:
        reader, writer = await asyncio.open_connection(*server.sip_address)
        try:
            port = server.sip_address[1]
            v3 = _request(port, 9, method="OPTIONS", call_id="raw-v3")
            writer.write(v3.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1))
            await writer.drain()
            async with asyncio.timeout(WAIT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"SIP/2.0 505 ")
            writer.write(_request(port, 9, method="OPTIONS", call_id="raw-v2"))
            await writer.drain()
            async with asyncio.timeout(WAIT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"SIP/2.0 200 "), head
        finally:
            writer.close()
            await writer.wait_closed()


def _udp_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_free_for_udp_only() -> tuple[socket.socket, int]:
    """A TCP listener on a port whose UDP twin is free: SIP can bind UDP there, not TCP."""
    for _ in range(50):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        if _udp_bindable(port):
            return listener, port
        listener.close()
    raise RuntimeError("no port with a free UDP twin")


async def test_a_failed_sip_bind_releases_the_udp_port() -> None:
    listener, port = _port_free_for_udp_only()
    pacer = Pacer()
    calls = SipCalls(
        host=HOST, port=port, pool=RtpPortPool(HOST, 43000, 43099), pacer=pacer, handler=echo
    )
    try:
        with pytest.raises(OSError):
            await calls.start()  # TCP is taken on that port
        # A transport closes on the loop's next turn; a leaked one never does.
        await eventually(lambda: _udp_bindable(port), "the UDP port to be released", 2.0)
    finally:
        listener.close()
        # Close the leak here so its ResourceWarning cannot land in a later test.
        if calls.endpoint is not None and calls.endpoint.udp is not None:
            calls.endpoint.udp.close()


# --- ICMP errors on the RTP socket ---------------------------------------------------------


def _rtp(seq: int) -> bytes:
    """One 20 ms PCMU packet of the tone (RFC 3550 §5.1 header, payload type 0)."""
    header = struct.pack("!BBHII", 0x80, 0, seq, seq * FRAME_SAMPLES, 0x5EED)
    return header + ulaw_encode(sine(TONE_HZ, 20, 0.3))


async def _media_after_port_unreachable() -> tuple[int, int]:
    """A phone sends one RTP packet and closes its port, so the server's echo draws
    ICMP port-unreachable (reported on the leg's socket once it is connected to the
    phone); then the phone listens again on the same port and talks. Returns how many
    packets the server got and how many echo packets the phone got back."""
    async with running_server() as server, sip_caller() as caller:
        await dial(caller, server)  # our caller never talks: the "phone" below does
        server_leg = next(iter(server.sip.calls.values())).leg
        assert server_leg is not None
        to_server = (HOST, server_leg.local_port)
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind((HOST, 0))
        address = phone.getsockname()
        phone.sendto(_rtp(1), to_server)
        await eventually(lambda: server_leg.stats.received == 1, "the first packet")
        phone.close()
        await asyncio.sleep(0.2)  # ten ticks of echo into a closed port
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind(address)
        phone.setblocking(False)
        try:
            for seq in range(2, 32):
                phone.sendto(_rtp(seq), to_server)
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            echoes = 0
            while True:
                try:
                    phone.recv(2048)
                except BlockingIOError:
                    break
                echoes += 1
            return server_leg.stats.received, echoes
        finally:
            phone.close()


@pytest.mark.parametrize(
    "loop",
    [
        "asyncio",
        "uvloop",
    ],
)
def test_media_survives_icmp_port_unreachable(loop: str) -> None:
    # Its own loop, not pytest-asyncio's: uvloop drops a reader whose read failed, asyncio does not.
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop if loop == "uvloop" else None)
    with runner:
        received, echoes = runner.run(_media_after_port_unreachable())
    assert received >= 25, f"the server heard {received} of 31 packets"
    assert echoes >= 20, f"the phone got {echoes} echo packets back"
