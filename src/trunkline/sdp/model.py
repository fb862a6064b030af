"""SDP session descriptions (RFC 4566): the model, its parser and its serializer.

The model keeps every line a peer may send, in the order RFC 4566 §5 fixes, so a valid
description survives ``bytes(SessionDescription.parse(x)) == x``. Only what offer/answer
needs is interpreted (origin, connection, media lines, attributes); the rest is kept as
text.

Tolerance (a phone call must not fail over formatting): LF-only line ends, blank lines,
a missing final line end, a missing ``s=`` or ``t=`` line, and any byte sequence in text
fields (non-UTF-8 bytes survive a round trip through ``surrogateescape``). Strict: the
description must start with ``v=0`` and have one well-formed ``o=`` line, every line
must be ``<letter>=<value>`` with a type RFC 4566 defines (§5: a description with an
unknown type must be ignored whole), and numeric fields must be numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from trunkline.sdp.errors import SdpProtocolError

__all__ = [
    "MAX_SDP_SIZE",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "Timing",
]

# A SIP body over UDP is at most 64 KiB; a real audio offer is under 2 KiB. A larger
# description is garbage or an attack, and is refused before any splitting.
MAX_SDP_SIZE = 65536

_SESSION_TYPES = frozenset("vosiuepcbtrzkam")
_MEDIA_TYPES = frozenset("icbka")  # §5: what may follow an m= line


class Direction(StrEnum):
    """Media direction attributes (RFC 4566 §6, RFC 3264 §5.1); sendrecv is the default."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def reverse(self) -> Direction:
        """The direction the other side sees (RFC 3264 §6.1: sendonly <-> recvonly)."""
        return _REVERSE[self]

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE


_REVERSE = {
    Direction.SENDRECV: Direction.SENDRECV,
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}
_DIRECTIONS = {d.value: d for d in Direction}


class RtpMap(NamedTuple):
    """One ``a=rtpmap:<pt> <encoding>/<clock rate>[/<parameters>]`` (RFC 4566 §6)."""

    encoding: str
    clock_rate: int
    parameters: str | None


@dataclass
class Origin:
    """The ``o=`` line (RFC 4566 §5.2): who made the description, and its version."""

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """A ``c=`` line (RFC 4566 §5.7). ``address`` keeps any multicast ``/ttl`` suffix."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def for_host(cls, host: str) -> Connection:
        """``IN IP6`` for an IPv6 literal, else ``IN IP4``."""
        return cls("IN", "IP6" if ":" in host else "IP4", host)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass
class Timing:
    """A ``t=`` line and its ``r=`` lines (RFC 4566 §5.9, §5.10), kept as text."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


Attribute = tuple[str, str | None]  # a=name:value, or a=name (value None)


class _AttributeLookup:
    """Attribute helpers shared by session and media level (names compared case-blind)."""

    attributes: list[Attribute]

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value``; "" for a flag ``a=name``; else None."""
        key = name.lower()
        for n, v in self.attributes:
            if n.lower() == key:
                return "" if v is None else v
        return None

    def attribute_values(self, name: str) -> list[str]:
        """Values of every ``a=name:value`` line, in order."""
        key = name.lower()
        return [v or "" for n, v in self.attributes if n.lower() == key]

    @property
    def direction(self) -> Direction | None:
        """The last direction attribute at this level, or None if there is none."""
        found = None
        for n, _ in self.attributes:
            found = _DIRECTIONS.get(n.lower(), found)
        return found


@dataclass
class MediaDescription(_AttributeLookup):
    """An ``m=`` section (RFC 4566 §5.14) with its ``i= c= b= k= a=`` lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    bandwidth: list[tuple[str, int]] = field(default_factory=list)
    port_count: int | None = None  # m=audio 49170/2
    information: str | None = None
    key: str | None = None

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> ``RtpMap`` for every well-formed ``a=rtpmap`` line.

        Malformed rtpmap lines are skipped: the format then counts as unknown, which
        negotiation handles (a static PT still works, a dynamic one is not chosen).
        """
        out: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            pt_text, _, spec = value.strip().partition(" ")
            parts = spec.strip().split("/", 2)
            if len(parts) < 2 or not _is_uint(pt_text) or not _is_uint(parts[1]):
                continue
            params = parts[2] if len(parts) > 2 else None
            out[int(pt_text)] = RtpMap(parts[0], int(parts[1]), params)
        return out

    def fmtp(self, pt: int) -> str | None:
        """The parameters of ``a=fmtp:<pt> <parameters>``, or None."""
        prefix = str(pt)
        for value in self.attribute_values("fmtp"):
            pt_text, _, params = value.strip().partition(" ")
            if pt_text == prefix:
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in whole milliseconds (RFC 4566 §6), or None if absent or invalid."""
        value = self.attribute("ptime")
        if not value:
            return None
        try:
            ms = round(float(value.strip()))
        except (ValueError, OverflowError):
            return None
        return ms if 0 < ms <= 1000 else None

    def lines(self) -> list[str]:
        """The section's lines in RFC 4566 §5 order, without line ends."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={' '.join([self.media, port, self.proto, *self.formats])}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={t}:{v}" for t, v in self.bandwidth)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attribute_line(a) for a in self.attributes)
        return out


@dataclass
class SessionDescription(_AttributeLookup):
    """A whole session description (RFC 4566 §5)."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    bandwidth: list[tuple[str, int]] = field(default_factory=list)
    time_zones: str | None = None
    key: str | None = None

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse a session description; see the module docstring for what is tolerated.

        Raises:
            SdpProtocolError: the description is not valid SDP (status_hint 400).
        """
        if isinstance(data, str):
            text = data
        else:
            if len(data) > MAX_SDP_SIZE:
                raise SdpProtocolError(f"SDP is larger than {MAX_SDP_SIZE} bytes")
            text = bytes(data).decode("utf-8", "surrogateescape")
        if len(text) > MAX_SDP_SIZE:
            raise SdpProtocolError(f"SDP is larger than {MAX_SDP_SIZE} bytes")
        return _Parser(cls).run(text)

    def media_connection(self, media: MediaDescription) -> Connection | None:
        """The connection that applies to ``media``: its own ``c=``, else the session's."""
        return media.connection if media.connection is not None else self.connection

    def media_direction(self, media: MediaDescription) -> Direction:
        """The direction of ``media``: its own attribute, else the session's, else sendrecv."""
        return media.direction or self.direction or Direction.SENDRECV

    def __str__(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={t}:{v}" for t, v in self.bandwidth)
        for timing in self.timing:
            out.append(f"t={timing.start} {timing.stop}")
            out.extend(f"r={r}" for r in timing.repeats)
        if self.time_zones is not None:
            out.append(f"z={self.time_zones}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attribute_line(a) for a in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return "\r\n".join(out) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", "surrogateescape")


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


# o= session ids are 64-bit in practice (NTP timestamps); a longer number is garbage, and
# int() refuses strings over 4,300 digits anyway.
MAX_DIGITS = 40


def _is_uint(text: str) -> bool:
    return 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


def _uint(text: str, what: str, limit: int | None = None) -> int:
    if not _is_uint(text):
        raise SdpProtocolError(f"SDP {what} is not a number: {text[:40]!r}")
    value = int(text)
    if limit is not None and value > limit:
        raise SdpProtocolError(f"SDP {what} is out of range: {value}")
    return value


def _connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpProtocolError("SDP c= line must have 3 fields")
    return Connection(parts[0], parts[1], parts[2])


def _bandwidth(value: str) -> tuple[str, int]:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype:
        raise SdpProtocolError("SDP b= line must be <bwtype>:<bandwidth>")
    return bwtype, _uint(amount, "bandwidth")


def _attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    if not name:
        raise SdpProtocolError("SDP a= line has an empty attribute name")
    return (name, rest if sep else None)


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpProtocolError("SDP m= line must have media, port and proto")
    port_text, slash, count_text = parts[1].partition("/")
    port = _uint(port_text, "m= port", 65535)
    count = _uint(count_text, "m= port count", 65535) if slash else None
    return MediaDescription(parts[0], port, parts[2], parts[3:], port_count=count)


class _Parser:
    """One pass over the lines: the session section, then one section per m= line."""

    def __init__(self, cls: type[SessionDescription]) -> None:
        self.cls = cls
        self.origin: Origin | None = None
        self.seen: set[str] = set()

    def run(self, text: str) -> SessionDescription:
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        lines = [line for line in lines if line]
        if not lines or lines[0].rstrip() != "v=0":
            raise SdpProtocolError("SDP must start with v=0")
        sdp = self.cls(timing=[])
        media: MediaDescription | None = None
        for number, line in enumerate(lines[1:], start=2):
            if len(line) < 2 or line[1] != "=":
                raise SdpProtocolError(f"SDP line {number} is not <type>=<value>")
            kind, value = line[0], line[2:]
            if kind == "m":
                media = _media(value)
                sdp.media.append(media)
            elif media is not None:
                if kind not in _MEDIA_TYPES:
                    raise SdpProtocolError(f"SDP {kind}= line is not allowed after m=")
                self.media_line(media, kind, value)
            elif kind in _SESSION_TYPES:
                self.session_line(sdp, kind, value)
            else:
                raise SdpProtocolError(f"SDP line {number} has unknown type {kind!r}")
        if self.origin is None:
            raise SdpProtocolError("SDP has no o= line")
        sdp.origin = self.origin
        return sdp

    def once(self, kind: str) -> None:
        if kind in self.seen:
            raise SdpProtocolError(f"SDP has more than one session-level {kind}= line")
        self.seen.add(kind)

    def session_line(self, sdp: SessionDescription, kind: str, value: str) -> None:
        if kind == "a":
            sdp.attributes.append(_attribute(value))
        elif kind == "o":
            self.once(kind)
            parts = value.split()
            if len(parts) != 6:
                raise SdpProtocolError("SDP o= line must have 6 fields")
            self.origin = Origin(
                parts[0],
                _uint(parts[1], "o= session id"),
                _uint(parts[2], "o= session version"),
                parts[3],
                parts[4],
                parts[5],
            )
        elif kind == "c":
            self.once(kind)
            sdp.connection = _connection(value)
        elif kind == "t":
            start, _, stop = value.strip().partition(" ")
            sdp.timing.append(Timing(_uint(start, "t= start"), _uint(stop.strip(), "t= stop")))
        elif kind == "r":
            if not sdp.timing:
                raise SdpProtocolError("SDP r= line comes before any t= line")
            sdp.timing[-1].repeats.append(value)
        elif kind == "b":
            sdp.bandwidth.append(_bandwidth(value))
        elif kind == "e":
            sdp.emails.append(value)
        elif kind == "p":
            sdp.phones.append(value)
        elif kind == "v":
            raise SdpProtocolError("SDP has more than one v= line")
        else:
            self.once(kind)
            setattr(sdp, _TEXT_FIELDS[kind], value)

    @staticmethod
    def media_line(media: MediaDescription, kind: str, value: str) -> None:
        if kind == "a":
            media.attributes.append(_attribute(value))
        elif kind == "b":
            media.bandwidth.append(_bandwidth(value))
        elif kind == "c":
            if media.connection is not None:
                # §5.7 allows several for multicast layering; one unicast address is ours.
                raise SdpProtocolError("SDP media description has more than one c= line")
            media.connection = _connection(value)
        elif kind == "i":
            media.information = value
        else:
            media.key = value


_TEXT_FIELDS = {"s": "session_name", "i": "information", "u": "uri", "z": "time_zones", "k": "key"}
