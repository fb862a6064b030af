"""The SDP offer/answer model (RFC 3264) for one G.711 audio stream with DTMF events.

Theory of operation
-------------------
A call uses one audio stream. As answerer (``answer_offer``, the UAS and every
re-INVITE), the first audio ``m=`` line offering a codec we support is accepted and every
other ``m=`` line is rejected with port 0, keeping the offer's order (§6). As offerer
(``make_offer`` then ``read_answer``, the UAC), the answer's first accepted audio stream
is used. Both return a ``NegotiatedMedia``: what to send, where, and in which direction.

A re-INVITE is simply a new offer: answering it gives a new ``NegotiatedMedia`` whose
``remote_host``/``remote_port`` may have moved (a peer re-anchoring media, or a worker
taking over a call) and whose ``on_hold`` says whether the peer has put us on hold
(sendonly or inactive, §8.4, or the RFC 2543 ``c=0.0.0.0``). The caller compares it with
the previous one to raise ``HoldChanged``.

Choices: among the codecs both sides support, the offerer's order wins (we only carry
G.711, whose cost is the same either way), and the answer lists that one codec so both
directions use it. telephone-event (RFC 4733) is answered with the offered payload
type; events other than the 16 DTMF ones are not accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.sdp.errors import SdpNegotiationError, SdpProtocolError, SdpUsageError
from trunkline.sdp.model import (
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)

__all__ = [
    "DEFAULT_CODECS",
    "DEFAULT_PTIME",
    "PCMA",
    "PCMU",
    "Codec",
    "NegotiatedMedia",
    "answer_offer",
    "make_offer",
    "read_answer",
]

DEFAULT_PTIME = 20  # ms; RFC 3551 §4.5 default packetization for G.711
TELEPHONE_EVENT = "telephone-event"
DTMF_EVENTS = frozenset(range(16))  # RFC 4733 §3.2: 0-9, *, #, A-D
# RTP profiles whose packets we can send and receive as plain RTP. AVPF only adds RTCP
# feedback that we may ignore (RFC 4585 §3.1); SAVP and DTLS need keys we do not have.
RTP_PROTOS = frozenset({"rtp/avp", "rtp/avpf"})
_NULL_HOSTS = frozenset({"0.0.0.0", "::"})  # RFC 3264 §8.4: send neither RTP nor RTCP


@dataclass(frozen=True, slots=True)
class Codec:
    """An audio codec as negotiated: encoding name, RTP payload type, clock rate."""

    name: str
    payload_type: int
    clock_rate: int = 8000


PCMU = Codec("PCMU", 0)
PCMA = Codec("PCMA", 8)
DEFAULT_CODECS = (PCMU, PCMA)
# RFC 3551 §6 Table 4: the static payload types a peer may offer without an rtpmap.
_STATIC_PTS = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome of one offer/answer exchange for the call's audio stream.

    ``direction`` is ours; ``remote_direction`` is the peer's, as its SDP said.
    """

    codec: Codec
    telephone_event_pt: int | None
    remote_host: str
    remote_port: int
    ptime: int
    direction: Direction
    remote_rtcp_port: int | None
    remote_direction: Direction
    media_index: int  # which m= line carries the audio

    @property
    def on_hold(self) -> bool:
        """The peer has put us on hold: it no longer receives (§8.4) or sent c=0.0.0.0."""
        return not self.remote_direction.receives or self.remote_host in _NULL_HOSTS

    @property
    def sends(self) -> bool:
        """Whether we may send RTP: our direction allows it and the address is real."""
        return self.direction.sends and self.remote_host not in _NULL_HOSTS

    @property
    def receives(self) -> bool:
        return self.direction.receives


def answer_offer(
    offer: SessionDescription,
    *,
    local_host: str,
    local_port: int,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    telephone_event: bool = True,
    session_id: int,
    session_version: int,
    direction: Direction | str = Direction.SENDRECV,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer (RFC 3264 §6) and say what was agreed.

    Args:
        direction: what we want; the answer is the most of it the offer allows
            (§6.1: an offer sendonly is answered recvonly, recvonly with sendonly).
        session_id / session_version: our ``o=`` values; bump the version on every new
            answer in the same dialog (§8).

    Raises:
        SdpNegotiationError: no audio stream with a codec we support (answer 488).
        SdpProtocolError: the chosen stream has no connection address.
    """
    _check_local(local_host, local_port, session_id, session_version)
    direction = _direction(direction)
    answer = _session(local_host, session_id, session_version)
    negotiated: NegotiatedMedia | None = None
    for index, media in enumerate(offer.media):
        formats = _formats(media) if negotiated is None and _is_rtp_audio(media) else []
        codec = _pick_codec(formats, codecs)
        if codec is None:
            answer.media.append(_rejected(media))
            continue
        te_pt = _telephone_event_pt(media, formats, codec.clock_rate) if telephone_event else None
        ptime = media.ptime or DEFAULT_PTIME
        offered = offer.media_direction(media)
        ours = Direction.of(
            sends=offered.receives and direction.sends,
            receives=offered.sends and direction.receives,
        )
        host, port, rtcp_port = _remote(offer, media)
        negotiated = NegotiatedMedia(
            codec, te_pt, host, port, ptime, ours, rtcp_port, offered, index
        )
        answer.media.append(_audio_media(media.proto, local_port, codec, te_pt, ptime, ours))
    if negotiated is None:
        raise SdpNegotiationError("offer has no audio stream with a codec we support")
    return answer, negotiated


def make_offer(
    *,
    local_host: str,
    local_port: int,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    telephone_event_pt: int | None = 101,
    direction: Direction | str = Direction.SENDRECV,
    session_id: int,
    session_version: int,
    ptime: int = DEFAULT_PTIME,
) -> SessionDescription:
    """An offer of one audio stream with ``codecs`` in order, plus telephone-event.

    To put the peer on hold, offer ``direction=Direction.SENDONLY`` (§8.4); to resume,
    offer sendrecv again with a higher ``session_version``.
    """
    _check_local(local_host, local_port, session_id, session_version)
    direction = _direction(direction)
    if not codecs:
        raise SdpUsageError("an offer needs at least one codec")
    offer = _session(local_host, session_id, session_version)
    media = MediaDescription("audio", local_port, "RTP/AVP", [])
    for codec in codecs:
        media.formats.append(str(codec.payload_type))
        media.attributes.append(("rtpmap", f"{codec.payload_type} {codec.name}/{codec.clock_rate}"))
    if telephone_event_pt is not None:
        _add_telephone_event(media, telephone_event_pt, codecs[0].clock_rate)
    media.attributes.append(("ptime", str(ptime)))
    media.attributes.append((direction.value, None))
    offer.media.append(media)
    return offer


def read_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Read the answer to our offer (the UAC side of RFC 3264 §7).

    Raises:
        SdpNegotiationError: the answer rejected every audio stream, has a different
            number of m= lines (§6), or picked a codec we did not offer.
        SdpProtocolError: the accepted stream has no connection address.
    """
    if len(answer.media) != len(offer.media):
        raise SdpNegotiationError(
            f"answer has {len(answer.media)} m= lines, the offer had {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.port == 0 or theirs.port == 0 or not _is_rtp_audio(ours):
            continue
        # §6.1 says the answer SHOULD reuse the offer's payload type numbers; some peers
        # renumber (telephone-event especially), so codecs are matched by name and rate.
        offered = {(name.lower(), rate) for _, name, rate in _formats(ours)}
        answered = _formats(theirs, fallback=ours)
        named = {str(pt) for pt, _, _ in answered}
        for fmt in theirs.formats:
            if fmt not in named:
                raise SdpNegotiationError(f"answer picked payload type {fmt!r}, not offered")
        codec = None
        te_pt = None
        for pt, name, rate in answered:
            if (name.lower(), rate) not in offered:
                raise SdpNegotiationError(f"answer picked {name}/{rate}, not offered")
            if name.lower() == TELEPHONE_EVENT:
                te_pt = te_pt if te_pt is not None else pt
            elif codec is None:
                codec = Codec(name.upper(), pt, rate)
        if codec is None:
            raise SdpNegotiationError("answer accepted the audio stream without a codec")
        offer_direction = offer.media_direction(ours)
        answer_direction = answer.media_direction(theirs)
        direction = Direction.of(
            sends=offer_direction.sends and answer_direction.receives,
            receives=offer_direction.receives and answer_direction.sends,
        )
        ptime = theirs.ptime or ours.ptime or DEFAULT_PTIME
        host, port, rtcp_port = _remote(answer, theirs)
        return NegotiatedMedia(
            codec, te_pt, host, port, ptime, direction, rtcp_port, answer_direction, index
        )
    raise SdpNegotiationError("answer rejected every audio stream")


def _check_local(host: str, port: int, session_id: int, session_version: int) -> None:
    if not host or any(c.isspace() for c in host):
        raise SdpUsageError(f"local host must be an address, got {host!r}")
    if not 0 < port <= 65535:
        raise SdpUsageError(f"local RTP port must be 1..65535, got {port}")
    if session_id < 0 or session_version < 0:
        raise SdpUsageError("o= session id and version must not be negative")


def _direction(value: Direction | str) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise SdpUsageError(f"not a media direction: {value!r}") from None


def _session(host: str, session_id: int, session_version: int) -> SessionDescription:
    connection = Connection.for_host(host)
    return SessionDescription(
        origin=Origin("-", session_id, session_version, "IN", connection.addrtype, host),
        session_name="-",
        connection=connection,
        timing=[Timing(0, 0)],
    )


def _is_rtp_audio(media: MediaDescription) -> bool:
    return media.media.lower() == "audio" and media.port != 0 and media.proto.lower() in RTP_PROTOS


def _formats(
    media: MediaDescription, fallback: MediaDescription | None = None
) -> list[tuple[int, str, int]]:
    """(pt, encoding, clock rate) for each format we can name, in the m= line's order.

    A format is named by its rtpmap, else by ``fallback``'s rtpmap (an answer may omit
    what the offer already said), else by the static table; mono only.
    """
    rtpmap = media.rtpmap()
    backup = fallback.rtpmap() if fallback is not None else {}
    out = []
    for fmt in media.formats:
        if not (fmt.isascii() and fmt.isdigit() and len(fmt) <= 3):
            continue
        pt = int(fmt)
        entry = rtpmap.get(pt) or backup.get(pt)
        if entry is not None:
            if entry.parameters not in (None, "1"):
                continue  # stereo or more: not telephony
            out.append((pt, entry.encoding, entry.clock_rate))
        elif pt in _STATIC_PTS:
            out.append((pt, *_STATIC_PTS[pt]))
    return out


def _pick_codec(formats: list[tuple[int, str, int]], codecs: Sequence[Codec]) -> Codec | None:
    for pt, name, rate in formats:
        for codec in codecs:
            if codec.name.lower() == name.lower() and codec.clock_rate == rate:
                return Codec(codec.name, pt, rate)  # the offer's PT (§6.1)
    return None


def _telephone_event_pt(
    media: MediaDescription, formats: list[tuple[int, str, int]], clock_rate: int
) -> int | None:
    """The offered telephone-event PT at the codec's clock rate that covers DTMF."""
    for pt, name, rate in formats:
        if name.lower() == TELEPHONE_EVENT and rate == clock_rate:
            fmtp = media.fmtp(pt)
            # RFC 4733 §2.4.1: without fmtp the events are 0-15.
            if fmtp is None or DTMF_EVENTS & _event_set(fmtp):
                return pt
    return None


def _event_set(fmtp: str) -> set[int]:
    """The events in an ``a=fmtp:<pt> 0-15,66`` list; malformed items are skipped."""
    events: set[int] = set()
    for item in fmtp.replace(" ", "").split(","):
        low, _, high = item.partition("-")
        if not (low.isascii() and low.isdigit() and len(low) <= 3):
            continue
        if not high:
            high = low
        elif not (high.isascii() and high.isdigit() and len(high) <= 3):
            continue
        events.update(range(int(low), min(int(high), 255) + 1))
    return events


def _add_telephone_event(media: MediaDescription, pt: int, clock_rate: int) -> None:
    media.formats.append(str(pt))
    media.attributes.append(("rtpmap", f"{pt} {TELEPHONE_EVENT}/{clock_rate}"))
    media.attributes.append(("fmtp", f"{pt} 0-15"))


def _audio_media(
    proto: str, port: int, codec: Codec, te_pt: int | None, ptime: int, direction: Direction
) -> MediaDescription:
    media = MediaDescription("audio", port, proto, [str(codec.payload_type)])
    media.attributes.append(("rtpmap", f"{codec.payload_type} {codec.name}/{codec.clock_rate}"))
    if te_pt is not None:
        _add_telephone_event(media, te_pt, codec.clock_rate)
    media.attributes.append(("ptime", str(ptime)))
    media.attributes.append((direction.value, None))
    return media


def _rejected(media: MediaDescription) -> MediaDescription:
    # §6: a rejected stream keeps its media type and proto, port 0, at least one format.
    return MediaDescription(media.media, 0, media.proto, list(media.formats) or ["0"])


def _remote(sdp: SessionDescription, media: MediaDescription) -> tuple[str, int, int | None]:
    """Where to send RTP and RTCP for ``media``: (host, port, RTCP port)."""
    connection = sdp.media_connection(media)
    if connection is None:
        raise SdpProtocolError("SDP audio stream has no c= line (RFC 4566 §5.7)")
    host = connection.address.split("/", 1)[0]  # drop a multicast /ttl
    rtcp_port: int | None = media.port + 1 if media.port < 65535 else None
    rtcp = media.attribute("rtcp")  # RFC 3605: a=rtcp:<port> [<nettype> <addrtype> <addr>]
    # (We never answer a=rtcp-mux, so RFC 5761 §5.1.1 leaves RTCP on its own port.)
    port_text = rtcp.split()[0] if rtcp and rtcp.split() else ""
    valid = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if valid and 0 < int(port_text) <= 65535:
        rtcp_port = int(port_text)
    return host, media.port, rtcp_port
