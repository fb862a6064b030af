"""RFC 3264 offer/answer: answering real offers, hold and resume, the UAC side."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from trunkline.sdp.errors import SdpNegotiationError, SdpProtocolError, SdpUsageError
from trunkline.sdp.model import Direction, SessionDescription
from trunkline.sdp.offer_answer import (
    PCMA,
    PCMU,
    Codec,
    NegotiatedMedia,
    answer_offer,
    make_offer,
    read_answer,
)

from .test_model import ASTERISK_OFFER


class Local(TypedDict):
    local_host: str
    local_port: int
    session_id: int
    session_version: int


LOCAL = Local(local_host="198.51.100.7", local_port=40000, session_id=55, session_version=1)

# SIPp's built-in uac scenario: PCMU by static payload type, no rtpmap at all.
SIPP_OFFER = (
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 192.0.2.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.20\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
)


def offer(*media_lines: str, session: str = "c=IN IP4 192.0.2.20\r\n") -> SessionDescription:
    text = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\n" + session + "t=0 0\r\n"
    return SessionDescription.parse(text + "".join(media_lines))


def answer(sdp: SessionDescription, **kwargs: Any) -> tuple[SessionDescription, NegotiatedMedia]:
    return answer_offer(sdp, **{**LOCAL, **kwargs})


def test_answer_asterisk_offer() -> None:
    sdp, media = answer(SessionDescription.parse(ASTERISK_OFFER))
    assert media == NegotiatedMedia(
        codec=PCMU,
        telephone_event_pt=101,
        remote_host="192.0.2.10",
        remote_port=17462,
        ptime=20,
        direction=Direction.SENDRECV,
        remote_rtcp_port=17463,
        remote_direction=Direction.SENDRECV,
        media_index=0,
    )
    assert not media.on_hold and media.sends and media.receives
    assert bytes(sdp) == (
        b"v=0\r\n"
        b"o=- 55 1 IN IP4 198.51.100.7\r\n"
        b"s=-\r\n"
        b"c=IN IP4 198.51.100.7\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-15\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
    )
    assert bytes(SessionDescription.parse(bytes(sdp))) == bytes(sdp)


def test_static_payload_type_without_rtpmap() -> None:
    sdp, media = answer(SessionDescription.parse(SIPP_OFFER))
    assert media.codec == PCMU and media.telephone_event_pt is None
    assert (media.remote_host, media.remote_port, media.ptime) == ("192.0.2.20", 6000, 20)
    assert sdp.media[0].formats == ["0"]
    sdp, media = answer(offer("m=audio 6000 RTP/AVP 8\r\n"))
    assert media.codec == PCMA


def test_offerers_codec_order_wins_within_ours() -> None:
    assert answer(offer("m=audio 6000 RTP/AVP 8 0\r\n"))[1].codec == PCMA
    assert answer(offer("m=audio 6000 RTP/AVP 0 8\r\n"), codecs=[PCMA])[1].codec == PCMA
    # A dynamic payload type for PCMU is answered with the offer's number (§6.1).
    sdp, media = answer(offer("m=audio 6000 RTP/AVP 96\r\na=rtpmap:96 pcmu/8000\r\n"))
    assert media.codec == Codec("PCMU", 96)
    assert sdp.media[0].formats == ["96"]


def test_no_common_codec_is_488() -> None:
    g729 = offer("m=audio 6000 RTP/AVP 18 96\r\na=rtpmap:96 opus/48000/2\r\n")
    with pytest.raises(SdpNegotiationError, match="no audio stream") as info:
        answer(g729)
    assert info.value.status_hint == 488
    stereo = offer("m=audio 6000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000/2\r\n")
    with pytest.raises(SdpNegotiationError):
        answer(stereo)
    with pytest.raises(SdpNegotiationError):
        answer(offer())  # no media at all


def test_streams_other_than_the_first_usable_audio_are_rejected() -> None:
    sdp, media = answer(
        offer(
            "m=video 5000 RTP/AVP 31\r\n",
            "m=audio 0 RTP/AVP 0\r\n",  # disabled by the offerer (§8.2)
            "m=audio 5002 RTP/SAVP 0\r\n",  # SRTP: we cannot key it
            "m=audio 5004 RTP/AVP 18\r\n",  # no codec of ours
            "m=audio 5006 RTP/AVP 8\r\n",  # the one
            "m=audio 5008 RTP/AVP 0\r\n",  # a second audio stream
        )
    )
    assert media.media_index == 4 and media.remote_port == 5006
    assert [(m.media, m.port, m.proto, m.formats) for m in sdp.media] == [
        ("video", 0, "RTP/AVP", ["31"]),
        ("audio", 0, "RTP/AVP", ["0"]),
        ("audio", 0, "RTP/SAVP", ["0"]),
        ("audio", 0, "RTP/AVP", ["18"]),
        ("audio", 40000, "RTP/AVP", ["8"]),
        ("audio", 0, "RTP/AVP", ["0"]),
    ]


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_direction_is_answered_per_rfc3264_6_1(offered: str, answered: Direction) -> None:
    sdp, media = answer(offer(f"m=audio 6000 RTP/AVP 0\r\na={offered}\r\n"))
    assert media.direction is answered
    assert media.remote_direction == offered
    assert sdp.media[0].direction is answered
    # The same at session level.
    session = f"c=IN IP4 h\r\na={offered}\r\n"
    sdp, media = answer(offer("m=audio 6000 RTP/AVP 0\r\n", session=session))
    assert media.direction is answered


def test_our_own_direction_is_intersected_with_the_offer() -> None:
    _, media = answer(offer("m=audio 6000 RTP/AVP 0\r\n"), direction=Direction.SENDONLY)
    assert media.direction is Direction.SENDONLY
    held = offer("m=audio 6000 RTP/AVP 0\r\na=sendonly\r\n")
    _, media = answer(held, direction=Direction.SENDONLY)
    assert media.direction is Direction.INACTIVE


def test_ptime_is_echoed() -> None:
    sdp, media = answer(offer("m=audio 6000 RTP/AVP 8\r\na=ptime:30\r\n"))
    assert media.ptime == 30 and sdp.media[0].ptime == 30


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("a=rtpmap:96 telephone-event/8000\r\n", 96),  # no fmtp: 0-15 (RFC 4733 §2.4.1)
        ("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n", 96),
        ("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-11, 16\r\n", 96),
        ("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 32-36\r\n", None),  # fax tones only
        ("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 junk,x-y\r\n", None),
        ("a=rtpmap:96 telephone-event/16000\r\n", None),  # clock differs from PCMU's
        ("", None),
    ],
)
def test_telephone_event_negotiation(lines: str, expected: int | None) -> None:
    formats = "0 96" if lines else "0"
    sdp, media = answer(offer(f"m=audio 6000 RTP/AVP {formats}\r\n{lines}"))
    assert media.telephone_event_pt == expected
    if expected is None:
        assert sdp.media[0].formats == ["0"]
    else:
        assert sdp.media[0].formats == ["0", str(expected)]
        assert sdp.media[0].fmtp(expected) == "0-15"


def test_telephone_event_can_be_declined() -> None:
    sdp, media = answer(SessionDescription.parse(ASTERISK_OFFER), telephone_event=False)
    assert media.telephone_event_pt is None and sdp.media[0].formats == ["0"]


def test_connection_address_and_rtcp_port() -> None:
    _, media = answer(
        offer("m=audio 6000 RTP/AVP 0\r\nc=IN IP4 203.0.113.5\r\na=rtcp:6111 IN IP4 x\r\n")
    )
    assert (media.remote_host, media.remote_rtcp_port) == ("203.0.113.5", 6111)
    _, media = answer(offer("m=audio 65535 RTP/AVP 0\r\na=rtcp:99999\r\n"))
    assert media.remote_rtcp_port is None  # no port above, and a=rtcp is invalid
    with pytest.raises(SdpProtocolError, match="no c= line"):
        answer(offer("m=audio 6000 RTP/AVP 0\r\n", session=""))


def test_ipv6() -> None:
    sdp, media = answer(
        offer("m=audio 6000 RTP/AVP 0\r\n", session="c=IN IP6 2001:db8::20\r\n"),
        local_host="2001:db8::7",
    )
    assert media.remote_host == "2001:db8::20"
    assert str(sdp.connection) == "IN IP6 2001:db8::7"
    assert (sdp.origin.addrtype, sdp.origin.address) == ("IP6", "2001:db8::7")


def test_hold_and_resume_by_reinvite() -> None:
    base = "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    _, talking = answer(offer(base))
    assert not talking.on_hold and talking.sends

    _, held = answer(offer(base + "a=sendonly\r\n"), session_version=2)
    assert held.on_hold and held.direction is Direction.RECVONLY and not held.sends

    _, inactive = answer(offer(base + "a=inactive\r\n"), session_version=3)
    assert inactive.on_hold and inactive.direction is Direction.INACTIVE

    # RFC 2543 hold: sendrecv but c=0.0.0.0; neither RTP nor RTCP may be sent (§8.4).
    _, old_style = answer(offer(base, session="c=IN IP4 0.0.0.0\r\n"), session_version=4)
    assert old_style.on_hold and old_style.direction is Direction.SENDRECV
    assert not old_style.sends and old_style.receives

    # Resumed, with the media moved to a new address (a re-anchoring re-INVITE).
    answer_sdp, resumed = answer(
        offer(base.replace("6000", "7000"), session="c=IN IP4 192.0.2.99\r\n"), session_version=5
    )
    assert not resumed.on_hold and resumed.sends
    assert (resumed.remote_host, resumed.remote_port) == ("192.0.2.99", 7000)
    assert answer_sdp.origin.session_version == 5

    # The peer muting itself (recvonly) is not a hold.
    _, muted = answer(offer(base + "a=recvonly\r\n"))
    assert not muted.on_hold and muted.direction is Direction.SENDONLY


def test_offer_answer_pair() -> None:
    """Our UAC offer, answered by our UAS, read back by the UAC: both agree."""
    our_offer = make_offer(
        local_host="192.0.2.1", local_port=30000, session_id=9, session_version=1
    )
    wire_offer = bytes(our_offer)
    assert SessionDescription.parse(wire_offer) == our_offer
    their_answer, uas = answer(SessionDescription.parse(wire_offer))
    uac = read_answer(our_offer, SessionDescription.parse(bytes(their_answer)))
    assert uac.codec == uas.codec == PCMU
    assert uac.telephone_event_pt == uas.telephone_event_pt == 101
    assert (uac.remote_host, uac.remote_port) == ("198.51.100.7", 40000)
    assert (uas.remote_host, uas.remote_port) == ("192.0.2.1", 30000)
    assert uac.direction is uas.direction is Direction.SENDRECV


def test_make_offer_contents() -> None:
    sdp = make_offer(
        local_host="192.0.2.1",
        local_port=30000,
        codecs=[PCMA],
        telephone_event_pt=None,
        direction=Direction.SENDONLY,
        session_id=1,
        session_version=2,
        ptime=30,
    )
    (media,) = sdp.media
    assert media.formats == ["8"]
    assert media.ptime == 30 and media.direction is Direction.SENDONLY
    assert sdp.origin.session_version == 2


def test_putting_the_peer_on_hold_as_offerer() -> None:
    hold = make_offer(direction=Direction.SENDONLY, **LOCAL)
    their_answer, uas = answer(hold)
    assert uas.on_hold
    uac = read_answer(hold, their_answer)
    assert uac.direction is Direction.SENDONLY and not uac.on_hold


def _answer_text(media_lines: str) -> SessionDescription:
    return SessionDescription.parse(
        "v=0\r\no=- 2 2 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\n" + media_lines
    )


def test_read_answer_tolerates_renumbered_telephone_event_and_missing_rtpmap() -> None:
    our_offer = make_offer(**LOCAL)
    media = read_answer(
        our_offer,
        _answer_text("m=audio 8000 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\n"),
    )
    assert media.codec == PCMA and media.telephone_event_pt == 96
    assert media.ptime == 20 and media.remote_rtcp_port == 8001


@pytest.mark.parametrize(
    ("media_lines", "message"),
    [
        ("m=audio 8000 RTP/AVP 18\r\n", "payload type '18', not offered"),
        ("m=audio 8000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n", "answer has 2 m= lines"),
        ("m=audio 0 RTP/AVP 0\r\n", "rejected every audio stream"),
        ("m=audio 8000 RTP/AVP 0\r\na=rtpmap:0 G722/8000\r\n", "picked G722/8000, not offered"),
        ("m=audio 8000 RTP/AVP 101\r\n", "without a codec"),
    ],
)
def test_read_answer_errors(media_lines: str, message: str) -> None:
    our_offer = make_offer(**LOCAL)
    with pytest.raises(SdpNegotiationError, match=message):
        read_answer(our_offer, _answer_text(media_lines))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"local_port": 0},
        {"local_port": 70000},
        {"local_host": ""},
        {"local_host": "a b"},
        {"session_id": -1},
    ],
)
def test_usage_errors(kwargs: dict[str, Any]) -> None:
    params: dict[str, Any] = {**LOCAL, **kwargs}
    with pytest.raises(SdpUsageError):
        make_offer(**params)
    with pytest.raises(SdpUsageError):
        answer_offer(SessionDescription.parse(SIPP_OFFER), **params)
    with pytest.raises(SdpUsageError, match="at least one codec"):
        make_offer(codecs=[], **LOCAL)


def test_direction_may_be_given_as_a_string() -> None:
    _, media = answer(SessionDescription.parse(SIPP_OFFER), direction="recvonly")
    assert media.direction is Direction.RECVONLY
    assert make_offer(direction="inactive", **LOCAL).media[0].direction is Direction.INACTIVE
    with pytest.raises(SdpUsageError, match="not a media direction"):
        make_offer(direction="sideways", **LOCAL)
