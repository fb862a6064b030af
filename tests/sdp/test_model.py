"""SDP model (RFC 4566): parsing real descriptions, round trips, tolerance, errors."""

from __future__ import annotations

import pytest

from trunkline.sdp.errors import SdpProtocolError
from trunkline.sdp.model import (
    MAX_SDP_SIZE,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
)

# RFC 4566 §5's example, with the optional lines it leaves out (p=, b=, r=, z=, k=) added.
RFC4566_EXAMPLE = (
    b"v=0\r\n"
    b"o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    b"s=SDP Seminar\r\n"
    b"i=A Seminar on the session description protocol\r\n"
    b"u=http://www.example.com/seminars/sdp.pdf\r\n"
    b"e=j.doe@example.com (Jane Doe)\r\n"
    b"p=+1 617 555-6011\r\n"
    b"c=IN IP4 224.2.17.12/127\r\n"
    b"b=CT:128\r\n"
    b"t=2873397496 2873404696\r\n"
    b"r=7d 1h 0 25h\r\n"
    b"z=2882844526 -1h 2898848070 0\r\n"
    b"k=prompt\r\n"
    b"a=recvonly\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"i=the voice\r\n"
    b"b=AS:64\r\n"
    b"m=video 51372/2 RTP/AVP 99\r\n"
    b"c=IN IP4 224.2.17.13/127\r\n"
    b"k=clear:secret\r\n"
    b"a=rtpmap:99 h263-1998/90000\r\n"
)

# An offer as Asterisk sends it (PCMU, PCMA, telephone-event, RTCP on the next port).
ASTERISK_OFFER = (
    b"v=0\r\n"
    b"o=- 1713350911 1713350911 IN IP4 192.0.2.10\r\n"
    b"s=Asterisk\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 17462 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=sendrecv\r\n"
)


def test_parse_rfc4566_example() -> None:
    sdp = SessionDescription.parse(RFC4566_EXAMPLE)
    assert sdp.version == 0
    assert sdp.origin == Origin("jdoe", 2890844526, 2890842807, "IN", "IP4", "10.47.16.5")
    assert sdp.session_name == "SDP Seminar"
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.phones == ["+1 617 555-6011"]
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12/127")
    assert sdp.bandwidth == [("CT", 128)]
    assert sdp.timing == [Timing(2873397496, 2873404696, ["7d 1h 0 25h"])]
    assert sdp.time_zones == "2882844526 -1h 2898848070 0"
    assert sdp.key == "prompt"
    assert sdp.direction is Direction.RECVONLY
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 49170, "RTP/AVP")
    assert audio.formats == ["0"]
    assert audio.information == "the voice" and audio.bandwidth == [("AS", 64)]
    assert audio.connection is None
    assert sdp.media_connection(audio) == sdp.connection
    assert sdp.media_direction(audio) is Direction.RECVONLY  # inherited from the session
    assert (video.port, video.port_count, video.key) == (51372, 2, "clear:secret")
    assert sdp.media_connection(video) == Connection("IN", "IP4", "224.2.17.13/127")
    assert video.rtpmap() == {99: RtpMap("h263-1998", 90000, None)}
    assert bytes(sdp) == RFC4566_EXAMPLE


def test_parse_asterisk_offer_helpers() -> None:
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    (audio,) = sdp.media
    assert audio.rtpmap() == {
        0: RtpMap("PCMU", 8000, None),
        8: RtpMap("PCMA", 8000, None),
        101: RtpMap("telephone-event", 8000, None),
    }
    assert audio.fmtp(101) == "0-16"
    assert audio.fmtp(0) is None
    assert audio.ptime == 20
    assert audio.attribute("maxptime") == "150"
    assert audio.attribute("sendrecv") == ""  # a flag attribute
    assert audio.attribute("missing") is None
    assert audio.direction is Direction.SENDRECV
    assert sdp.direction is None
    assert bytes(sdp) == ASTERISK_OFFER
    assert str(sdp) == ASTERISK_OFFER.decode()


def test_lf_only_blank_lines_and_missing_final_newline_are_tolerated() -> None:
    text = ASTERISK_OFFER.replace(b"\r\n", b"\n").rstrip(b"\n")
    text = text.replace(b"s=Asterisk\n", b"s=Asterisk\n\n")
    sdp = SessionDescription.parse(text)
    assert bytes(sdp) == ASTERISK_OFFER  # serialized canonically, with CRLF


def test_str_input_and_missing_s_and_t_lines() -> None:
    sdp = SessionDescription.parse("v=0\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\n")
    assert sdp.session_name == "-"
    assert sdp.timing == []
    assert sdp.media[0].formats == ["0"]
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_non_utf8_text_survives_a_round_trip() -> None:
    data = ASTERISK_OFFER.replace(b"s=Asterisk", b"s=Sesi\xf3n")  # Latin-1 from an old PBX
    sdp = SessionDescription.parse(data)
    assert bytes(sdp) == data


def test_media_attribute_edge_cases() -> None:
    media = MediaDescription(
        "audio",
        4000,
        "RTP/AVP",
        ["0", "96", "97"],
        attributes=[
            ("rtpmap", "96 opus/48000/2"),
            ("rtpmap", "97"),  # malformed: skipped
            ("rtpmap", "x PCMU/8000"),  # malformed: skipped
            ("rtpmap", "98 PCMU/fast"),  # malformed: skipped
            ("fmtp", "96 useinbandfec=1"),
            ("ptime", "20.0"),
            ("sendonly", None),
            ("inactive", None),  # the last direction attribute wins
        ],
    )
    assert media.rtpmap() == {96: RtpMap("opus", 48000, "2")}
    assert media.fmtp(96) == "useinbandfec=1"
    assert media.ptime == 20
    assert media.direction is Direction.INACTIVE
    for bad in ("abc", "0", "-5", "1e999", "nan", ""):
        media.attributes = [("ptime", bad)]
        assert media.ptime is None


def test_direction_helpers() -> None:
    assert Direction.SENDONLY.reverse is Direction.RECVONLY
    assert Direction.INACTIVE.reverse is Direction.INACTIVE
    assert Direction.of(sends=True, receives=False) is Direction.SENDONLY
    assert Direction.of(sends=False, receives=False) is Direction.INACTIVE
    assert Direction.RECVONLY.receives and not Direction.RECVONLY.sends


def test_built_description_serializes_and_parses_back() -> None:
    sdp = SessionDescription(
        origin=Origin("-", 7, 8, "IN", "IP6", "2001:db8::1"),
        connection=Connection.for_host("2001:db8::1"),
        media=[MediaDescription("audio", 5004, "RTP/AVP", ["8"], attributes=[("ptime", "20")])],
    )
    text = bytes(sdp)
    assert b"c=IN IP6 2001:db8::1\r\n" in text and b"t=0 0\r\n" in text
    assert SessionDescription.parse(text) == sdp
    assert bytes(SessionDescription.parse(text)) == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "must start with v=0"),
        (b"v=1\r\n", "must start with v=0"),
        (b"o=- 1 1 IN IP4 h\r\n", "must start with v=0"),
        (b"v=0\r\ns=x\r\n", "no o= line"),
        (b"v=0\r\no=- 1 1 IN IP4\r\n", "o= line must have 6 fields"),
        (b"v=0\r\no=- x 1 IN IP4 h\r\n", "o= session id is not a number"),
        (b"v=0\r\no=- 1 -1 IN IP4 h\r\n", "o= session version is not a number"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n", "more than one session-level o="),
        (b"v=0\r\nv=0\r\n", "more than one v= line"),
        (b"v=0\r\nhello\r\n", "line 2 is not <type>=<value>"),
        (b"v=0\r\nx=1\r\n", "line 2 has unknown type 'x'"),
        (b"v=0\r\nc=IN IP4\r\n", "c= line must have 3 fields"),
        (b"v=0\r\nb=AS\r\n", "b= line must be"),
        (b"v=0\r\nb=AS:fast\r\n", "bandwidth is not a number"),
        (b"v=0\r\nt=0\r\n", "t= stop is not a number"),
        (b"v=0\r\nr=7d 1h\r\n", "r= line comes before any t= line"),
        (b"v=0\r\na=:x\r\n", "empty attribute name"),
        (b"v=0\r\nm=audio 1\r\n", "m= line must have media, port and proto"),
        (b"v=0\r\nm=audio 65536 RTP/AVP 0\r\n", "m= port is out of range"),
        (b"v=0\r\nm=audio x RTP/AVP 0\r\n", "m= port is not a number"),
        (b"v=0\r\nm=audio 1/x RTP/AVP 0\r\n", "m= port count is not a number"),
        (b"v=0\r\nm=audio 1 RTP/AVP 0\r\ns=late\r\n", "s= line is not allowed after m="),
        (b"v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n", "more than one c="),
        (b"v=0\r\no=- " + b"9" * 5000 + b" 1 IN IP4 h\r\n", "session id is not a number"),
    ],
)
def test_invalid_descriptions(data: bytes, message: str) -> None:
    with pytest.raises(SdpProtocolError, match=message) as info:
        SessionDescription.parse(data)
    assert info.value.status_hint == 400


def test_size_limit() -> None:
    big = ASTERISK_OFFER + b"a=x-pad:" + b"x" * MAX_SDP_SIZE + b"\r\n"
    with pytest.raises(SdpProtocolError, match="larger than"):
        SessionDescription.parse(big)
    with pytest.raises(SdpProtocolError, match="larger than"):
        SessionDescription.parse(big.decode())
