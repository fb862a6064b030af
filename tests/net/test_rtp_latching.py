"""Symmetric RTP with the strict rule: a stray packet cannot take a call's media; NAT can.

The loopback network is all of 127/8, so 127.0.0.2 and 127.0.0.3 stand for other hosts.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from tests.net.helpers import dial, eventually, running_server, sip_caller, tone
from trunkline.rtp import g711

_RTP = struct.Struct("!BBHII")


def _server_rtp_port(server: object) -> int:
    calls = list(server.sip.calls.values())  # type: ignore[attr-defined]
    assert len(calls) == 1
    return int(calls[0].port)


def _udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def _packet(seq: int, payload: bytes) -> bytes:
    return _RTP.pack(0x80, 0, seq, seq * 160, 0x1234) + payload


async def test_a_stray_packet_first_does_not_take_the_media() -> None:
    async with running_server() as server, sip_caller() as caller:
        leg, rec = await dial(caller, server, "udp")
        port = _server_rtp_port(server)
        stray = _udp("127.0.0.2")
        try:
            stray.sendto(_packet(1, g711.ulaw_encode(tone(20))), ("127.0.0.1", port))
            leg.send_audio(tone(400))
            await eventually(lambda: rec.tone_frames() >= 15, "the echo at the real caller")
            try:
                got = stray.recv(2048)
            except BlockingIOError:
                got = b""
            assert got == b"", "the server sent media to the stray source"
        finally:
            stray.close()
        await leg.hangup()


async def test_a_phone_behind_nat_is_followed_after_a_few_packets() -> None:
    async with running_server() as server, sip_caller() as caller:
        leg, _ = await dial(caller, server, "udp")  # SDP says 127.0.0.1 ...
        port = _server_rtp_port(server)
        phone = _udp("127.0.0.3")  # ... but the media comes from another address
        payload = g711.ulaw_encode(tone(20))
        echoed = 0
        try:
            for seq in range(1, 40):
                phone.sendto(_packet(seq, payload), ("127.0.0.1", port))
                await asyncio.sleep(0.02)  # one packet per 20 ms, as a phone sends
                try:
                    while phone.recv(2048):
                        echoed += 1
                except BlockingIOError:
                    pass
                if echoed >= 5:
                    break
            assert echoed >= 5, "media never followed the NAT source"
            server_leg = next(iter(server.sip.calls.values())).leg
            assert server_leg is not None and server_leg.remote == phone.getsockname()
        finally:
            phone.close()
        await leg.hangup()
