"""``loop_back`` on an RTP leg sends what an app echoing decoded PCM would send, byte for byte.

Two legs with the same SSRC and starting sequence get the same inbound packets: one is
looped back (the fast path that forwards payloads undecoded), the other has a plain sink
that queues every frame it is given, as an app would. The packets each sends must be
identical through loss, reordering, queued audio, DTMF, hold and a codec change.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator

import pytest

from trunkline.media.audio import FRAME_BYTES
from trunkline.net.leg import LegEvent, LegInfo, LoopbackSink, MediaLeg, TransferResult
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.rtp import g711
from trunkline.sdp.model import Direction
from trunkline.sdp.offer_answer import PCMA, PCMU, Codec, NegotiatedMedia

HOST = "127.0.0.1"
_RTP = struct.Struct("!BBHII")


class _NoControl:
    def __init__(self) -> None:
        self.info_digits: list[str] = []

    def hangup_leg(self, leg: SipRtpLeg, reason: str) -> None:
        return None

    def dtmf_info_leg(self, leg: SipRtpLeg, digit: str, duration_ms: int) -> None:
        self.info_digits.append(digit)

    async def transfer_leg(self, leg: SipRtpLeg, target: str) -> TransferResult:
        return TransferResult(False, 501)


class QueueingSink:
    """What an echo app written against the plain contract does."""

    def __init__(self, leg: MediaLeg) -> None:
        self.leg = leg
        self.events: list[LegEvent] = []

    def on_audio(self, pcm: bytes) -> None:
        self.leg.send_audio(pcm)

    def on_event(self, event: LegEvent) -> None:
        self.events.append(event)


def _media(
    port: int, codec: Codec = PCMU, direction: Direction = Direction.SENDRECV
) -> NegotiatedMedia:
    return NegotiatedMedia(
        codec=codec,
        telephone_event_pt=101,
        remote_host=HOST,
        remote_port=port,
        ptime=20,
        direction=Direction.SENDRECV,
        remote_rtcp_port=None,
        remote_direction=direction,
        media_index=0,
    )


class Pair:
    """A leg and the peer socket it sends to."""

    def __init__(self, pacer: Pacer, codec: Codec) -> None:
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind((HOST, 0))
        self.peer.setblocking(False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        self.peer_addr = self.peer.getsockname()
        self.leg = SipRtpLeg(
            LegInfo("sip", "loopback-test"),
            _media(self.peer_addr[1], codec),
            sock,
            _NoControl(),
            pacer,
            ssrc=0xABCDEF,
            initial_seq=65530,  # wraps during the test
            initial_ts=0xFFFFF000,
        )

    def feed(self, packet: bytes) -> None:
        self.leg.datagram_received(packet, self.peer_addr)

    def sent(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.peer.recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.leg.close_media()
        self.peer.close()


@pytest.fixture
async def pairs(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Pair, Pair]]:
    codec = getattr(request, "param", PCMU)
    pacer = Pacer()
    fast, plain = Pair(pacer, codec), Pair(pacer, codec)
    fast.leg.loop_back()
    plain.leg.attach(QueueingSink(plain.leg))
    yield fast, plain
    fast.close()
    plain.close()


def _packet(seq: int, payload: bytes, pt: int = 0) -> bytes:
    return _RTP.pack(0x80, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0x1234) + payload


def _payloads(codec: Codec, n: int) -> list[bytes]:
    """n different frames: a ramp, so that a swapped or repeated frame shows."""
    encode = g711.alaw_encode if codec is PCMA else g711.ulaw_encode
    frames = []
    for i in range(n):
        pcm = struct.pack("<160h", *[((i * 997 + k * 31) % 4000) - 2000 for k in range(160)])
        frames.append(encode(pcm))
    return frames


def _run(fast: Pair, plain: Pair, steps: list[list[bytes]], tick: int = 1) -> None:
    """Feed each step's packets to both legs, then tick both ``tick`` times."""
    now = 0.0
    for packets in steps:
        for p in packets:
            fast.feed(p)
            plain.feed(p)
        for _ in range(tick):
            fast.leg.on_tick(now)
            plain.leg.on_tick(now)
            now += 0.02


async def test_loop_back_is_the_fast_path_only_for_its_own_loopback_sink() -> None:
    pacer = Pacer()
    a, b = Pair(pacer, PCMU), Pair(pacer, PCMU)
    try:
        a.leg.loop_back()
        assert a.leg._loopback
        b.leg.attach(LoopbackSink(a.leg))  # another leg's loopback: the general path
        assert not b.leg._loopback
        a.leg.attach(QueueingSink(a.leg))  # a new sink turns it off
        assert not a.leg._loopback
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("pairs", [PCMU, PCMA], indirect=True)
async def test_in_order_loss_and_reordering_send_the_same_bytes(pairs: tuple[Pair, Pair]) -> None:
    fast, plain = pairs
    codec = fast.leg.media.codec
    frames = _payloads(codec, 40)
    order = list(range(40))
    order.remove(17)  # lost
    order[25], order[26] = order[26], order[25]  # reordered
    pt = codec.payload_type
    _run(fast, plain, [[_packet(i, frames[i], pt)] for i in order] + [[]] * 5)
    got = fast.sent()
    assert got == plain.sent()
    # Not vacuous: the echo carries the very payloads that came in, and silence for the loss.
    payloads = [p[12:] for p in got]
    assert frames[3] in payloads and frames[30] in payloads
    # and the fast leg never decoded a frame, where the plain one did
    assert fast.leg._last_in is None and plain.leg._last_in is not None
    assert len(got) >= 35


async def test_queued_audio_dtmf_and_hold_send_the_same_bytes(pairs: tuple[Pair, Pair]) -> None:
    fast, plain = pairs
    frames = _payloads(PCMU, 60)
    steps = [[_packet(i, frames[i])] for i in range(10)]
    _run(fast, plain, steps)
    for pair in (fast, plain):  # an announcement queued while echoing plays in order
        pair.leg.send_audio(b"\x10\x00" * (FRAME_BYTES // 2) * 3)
        pair.leg.mark("after-announcement")
    _run(fast, plain, [[_packet(i, frames[i])] for i in range(10, 20)])
    for pair in (fast, plain):
        pair.leg.send_dtmf("5", 60)
    _run(fast, plain, [[_packet(i, frames[i])] for i in range(20, 35)])
    for pair in (fast, plain):  # the peer puts us on hold: nothing is sent
        pair.leg.apply_media(_media(pair.peer_addr[1], PCMU, Direction.SENDONLY))
    _run(fast, plain, [[_packet(i, frames[i])] for i in range(35, 45)])
    for pair in (fast, plain):
        pair.leg.apply_media(_media(pair.peer_addr[1], PCMU))
    _run(fast, plain, [[_packet(i, frames[i])] for i in range(45, 60)])
    got = fast.sent()
    assert got == plain.sent()
    assert any(p[1] & 0x7F == 101 for p in got), "the DTMF event went out"
    assert any(p[12:] == g711.ulaw_encode(b"\x10\x00" * 160) for p in got)


async def test_a_codec_change_mid_call_sends_the_same_bytes(pairs: tuple[Pair, Pair]) -> None:
    fast, plain = pairs
    ulaw, alaw = _payloads(PCMU, 20), _payloads(PCMA, 40)
    _run(fast, plain, [[_packet(i, ulaw[i])] for i in range(20)])
    for pair in (fast, plain):
        pair.leg.apply_media(_media(pair.peer_addr[1], PCMA))
    _run(fast, plain, [[_packet(i, alaw[i], pt=8)] for i in range(20, 40)])
    got = fast.sent()
    assert got == plain.sent()
    assert alaw[30] in [p[12:] for p in got]
