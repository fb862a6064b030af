"""SIP message model (RFC 3261 §7): requests, responses and their headers.

This module is the contract between the parser (``parser.py``), the transaction layer
(``transaction.py``) and the dialog/call layer (``dialog.py``, ``call.py``). It holds data
and the few derived properties every layer needs; parsing of individual header values
lives in ``headers.py`` and URIs in ``uri.py``.

Header names are stored in their canonical long form (``v`` → ``Via``) with the value
exactly as received (folding already unfolded). A header that appeared several times, or
with comma-separated values, is kept as separate entries in arrival order, so serializing
a parsed message gives an equivalent message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# RFC 3261 §7.3.3 compact forms, plus the common extensions (RFC 3515 Refer-To "r",
# RFC 3892 Referred-By "b", RFC 3265 Event "o", RFC 4028 Session-Expires "x").
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
}

_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info",
        "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
        "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires",
        "From", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Organization",
        "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require",
        "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After",
        "Route", "RSeq", "RAck", "Server", "Session-Expires", "Subject",
        "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent",
        "Via", "Warning", "WWW-Authenticate",
        # Extensions a trunk commonly sends (RFC 3325, 3326, 3327, 3608, 3891, 4028, 5806, 7044).
        "Path", "Service-Route", "P-Asserted-Identity", "P-Preferred-Identity", "Privacy",
        "Reason", "Replaces", "Min-SE", "Diversion", "History-Info",
    )
}

# Every canonical spelling: names stored in Headers that are in here are stored exactly so.
_KNOWN: frozenset[str] = frozenset(_CANONICAL.values()) | frozenset(COMPACT_FORMS.values())


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name, expanding compact forms.

    Unknown headers are returned with their original spelling.
    """
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


class Headers:
    """An ordered multi-map of header name → value, case-insensitive on names."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    @classmethod
    def from_canonical(cls, items: list[tuple[str, str]]) -> Headers:
        """Adopt ``items`` whose names are already canonical (the parser's fast path)."""
        h = cls()
        h._items = items
        return h

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        canon = canonical_name(name)
        if canon in _KNOWN:
            # Known names are always stored in canonical spelling: compare exactly.
            for n, v in self._items:
                if n == canon:
                    return v
            return default
        key = canon.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order (separate header lines stay separate entries)."""
        canon = canonical_name(name)
        if canon in _KNOWN:
            return [v for n, v in self._items if n == canon]
        key = canon.lower()
        return [v for n, v in self._items if n.lower() == key]

    def add(self, name: str, value: str) -> None:
        """Append a value after any existing ones."""
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a value before everything (a new top Via)."""
        self._items.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace all values of ``name`` by one value, at the place of the first."""
        canon = canonical_name(name)
        key = canon.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (canon, value)
                self._items = [
                    item for j, item in enumerate(self._items) if j <= i or item[0].lower() != key
                ]
                return
        self._items.append((canon, value))

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h


@dataclass
class SipMessage:
    """What requests and responses share."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def content_type(self) -> str:
        """The media type in lower case without parameters, or ""."""
        value = self.headers.get("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()

    def __bytes__(self) -> bytes:
        """Serialize with a Content-Length that matches the body (RFC 3261 §20.14)."""
        lines = [self.start_line()]
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8") + self.body

    def start_line(self) -> str:
        """The request or status line; subclasses define it."""
        raise TypeError("a bare SipMessage has no start line; use SipRequest or SipResponse")


@dataclass
class SipRequest(SipMessage):
    method: str = "INVITE"
    uri: str = ""
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@dataclass
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"


# RFC 3261 §21 and the extensions we answer with.
REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    603: "Decline",
}


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
) -> SipResponse:
    """Build a response to ``request`` as RFC 3261 §8.2.6.2 says.

    Via (all values, in order), From, To, Call-ID and CSeq are copied; ``to_tag`` is added
    to To when the request's To has no tag yet. The caller adds Contact, Allow, body, etc.
    """
    headers = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq", "Record-Route") or (
            name == "Timestamp" and status == 100
        ):
            headers.add(name, value)
        elif name == "To":
            if to_tag is not None and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
    if request.method != "INVITE" or not 100 < status < 300:
        headers.remove("Record-Route")  # §12.1.1: only dialog-creating responses echo it
    return SipResponse(
        headers=headers,
        status=status,
        reason=reason or REASON_PHRASES.get(status, "Unknown"),
    )
