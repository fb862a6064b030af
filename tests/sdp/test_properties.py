"""Property tests for the SDP parser and offer/answer.

Parser contract: any input parses or raises SdpProtocolError, whole, cut at any byte, or
mutated; valid descriptions round-trip byte for byte. Offer/answer: whatever parses can
be answered or refused with an SdpError, and our answer read back by the offerer agrees.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sdp.errors import SdpError, SdpProtocolError
from trunkline.sdp.model import (
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)
from trunkline.sdp.offer_answer import answer_offer, read_answer

FAST = settings(max_examples=150, deadline=None)
SLOW = settings(max_examples=30, deadline=None)  # examples that loop over every cut

token = st.text(string.ascii_letters + string.digits + "-./_+*#!", min_size=1, max_size=8)
name = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8)
text = st.text(st.characters(exclude_characters="\r\n", codec="utf-8"), max_size=20)
number = st.integers(0, 10**20)
attribute = st.tuples(name, st.none() | text)

connections = st.builds(Connection, token, token, token)
media_descriptions = st.builds(
    MediaDescription,
    media=token,
    port=st.integers(0, 65535),
    proto=token,
    formats=st.lists(token, max_size=5),
    connection=st.none() | connections,
    attributes=st.lists(attribute, max_size=5),
    bandwidth=st.lists(st.tuples(name, number), max_size=2),
    port_count=st.none() | st.integers(1, 65535),
    information=st.none() | text,
    key=st.none() | text,
)
descriptions = st.builds(
    SessionDescription,
    origin=st.builds(Origin, token, number, number, token, token, token),
    session_name=text,
    connection=st.none() | connections,
    timing=st.lists(st.builds(Timing, number, number, st.lists(text, max_size=2)), max_size=2),
    attributes=st.lists(attribute, max_size=4),
    media=st.lists(media_descriptions, max_size=3),
    information=st.none() | text,
    uri=st.none() | text,
    emails=st.lists(text, max_size=2),
    phones=st.lists(text, max_size=2),
    bandwidth=st.lists(st.tuples(name, number), max_size=2),
    time_zones=st.none() | text,
    key=st.none() | text,
)

# Offers shaped like a telephony peer's: audio lines with known and unknown codecs.
rtpmaps = st.sampled_from(
    [
        ("0", None),
        ("8", None),
        ("18", None),
        ("96", "96 PCMU/8000"),
        ("97", "97 PCMA/8000/1"),
        ("98", "98 opus/48000/2"),
        ("101", "101 telephone-event/8000"),
        ("102", "102 telephone-event/16000"),
        ("103", "103"),
    ]
)


@st.composite
def audio_offers(draw: st.DrawFn) -> SessionDescription:
    media = []
    for _ in range(draw(st.integers(1, 3))):
        chosen = draw(st.lists(rtpmaps, min_size=1, max_size=5, unique=True))
        attributes: list[tuple[str, str | None]] = [("rtpmap", m) for _, m in chosen if m]
        if draw(st.booleans()):
            attributes.append((draw(st.sampled_from([d.value for d in Direction])), None))
        if draw(st.booleans()):
            attributes.append(("ptime", draw(st.sampled_from(["10", "20", "30", "x"]))))
        media.append(
            MediaDescription(
                draw(st.sampled_from(["audio", "audio", "video"])),
                draw(st.sampled_from([0, 5004, 40000])),
                draw(st.sampled_from(["RTP/AVP", "RTP/AVP", "RTP/SAVP"])),
                [pt for pt, _ in chosen],
                connection=draw(st.none() | st.just(Connection("IN", "IP4", "192.0.2.5"))),
                attributes=attributes,
            )
        )
    session_connection = draw(st.sampled_from(["192.0.2.1", "0.0.0.0", None]))
    return SessionDescription(
        origin=Origin("-", 1, 1, "IN", "IP4", "192.0.2.1"),
        connection=Connection.for_host(session_connection) if session_connection else None,
        media=media,
    )


def check_parse(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpProtocolError:
        return
    # Whatever parsed serializes to a description that parses to the same thing.
    assert SessionDescription.parse(bytes(sdp)) == sdp
    try:
        answer, _ = answer_offer(
            sdp, local_host="198.51.100.1", local_port=4000, session_id=1, session_version=1
        )
    except SdpError:
        return
    assert len(answer.media) == len(sdp.media)


@FAST
@given(descriptions)
def test_round_trip(sdp: SessionDescription) -> None:
    data = bytes(sdp)
    parsed = SessionDescription.parse(data)
    assert parsed == sdp
    assert bytes(parsed) == data
    assert SessionDescription.parse(data.replace(b"\r\n", b"\n")) == sdp


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check_parse(data)


@FAST
@given(st.binary(max_size=200).map(lambda b: b"v=0\r\no=- 1 1 IN IP4 h\r\n" + b))
def test_arbitrary_bytes_after_a_valid_start(data: bytes) -> None:
    check_parse(data)


@SLOW
@given(descriptions | audio_offers())
def test_truncated_at_every_byte(sdp: SessionDescription) -> None:
    data = bytes(sdp)
    for cut in range(len(data)):
        check_parse(data[:cut])


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with one to four bytes overwritten."""
    edits = st.lists(
        st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=4
    )

    def apply(changes: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for index, value in changes:
            out[index] = value
        return bytes(out)

    return edits.map(apply)


@FAST
@given((descriptions | audio_offers()).map(bytes).flatmap(mutations))
def test_mutated(data: bytes) -> None:
    check_parse(data)


@FAST
@given(audio_offers(), st.sampled_from(list(Direction)))
def test_answer_read_back_by_the_offerer_agrees(
    offer: SessionDescription, wanted: Direction
) -> None:
    try:
        answer, uas = answer_offer(
            offer,
            local_host="198.51.100.1",
            local_port=4000,
            session_id=1,
            session_version=1,
            direction=wanted,
        )
    except SdpError:
        return
    wire = SessionDescription.parse(bytes(answer))
    uac = read_answer(offer, wire)
    assert uac.codec == uas.codec
    assert uac.telephone_event_pt == uas.telephone_event_pt
    assert uac.media_index == uas.media_index
    # Each side's direction is the other's reversed, and never more than was offered.
    assert uac.direction is uas.direction.reverse
    offered = offer.media_direction(offer.media[uas.media_index])
    assert not uas.direction.sends or offered.receives
    assert not uas.direction.receives or offered.sends
    assert (uac.remote_host, uac.remote_port) == ("198.51.100.1", 4000)
