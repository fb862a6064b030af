"""SIP message parsing and framing (RFC 3261 §7, §18.3) and the first checks a UAS makes.

``parse_message`` takes one UDP datagram; ``StreamParser`` frames messages on a TCP/TLS
byte stream. Both share ``_parse_head``, which reads the start line and the header
section into a ``SipRequest``/``SipResponse`` whose header values are unfolded, whose
compact names are expanded, and whose comma lists (for the headers whose grammar is a
list) are split into one entry per element. Nothing else is interpreted here:
``headers.py`` parses individual values on demand.

Framing normalizes one thing: the message keeps exactly one Content-Length, equal to the
body it framed, as its last header. ``bytes(msg)`` writes it there too, so
``parse_message(bytes(parse_message(x))) == parse_message(x)``.

The contract: input either parses or raises ``SipProtocolError``, whole or cut at any
byte. Where the head parsed but something else is wrong (SIP version, Content-Length),
the error carries the message (``err.message``) so a UAS can still answer it.
"""

from __future__ import annotations

import re

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.headers import parse_cseq, parse_name_addr, parse_via, split_header_list
from trunkline.sip.message import Headers, SipRequest, SipResponse, canonical_name
from trunkline.sip.uri import SipUri

# An IP datagram is at most 65,535 octets (16-bit length field), so no UDP payload is
# larger: anything longer did not come from one datagram (RFC 3261 §18.1.1, §18.3).
MAX_MESSAGE_BYTES = 65_535
# Real header sections are 0.5-4 KiB (RFC 4475's longreq is 3.5 KiB); 32 KiB bounds the
# memory a stream peer can make us hold before a message completes.
MAX_HEADER_BYTES = 32_768
# Physical header lines, counting folded continuations: ~15 is typical, a long Record-Route
# set a few dozen; 256 stops a peer from making us build thousands of entries.
MAX_HEADER_LINES = 256
# SDP offers are 0.3-4 KiB, multipart bodies tens of KiB; 256 KiB bounds what one stream
# message may make us buffer (RFC 3261 §18.3 framing by Content-Length).
MAX_BODY_BYTES = 262_144

# Headers whose grammar is a comma list (RFC 3261 §7.3.1, §25.1; RFC 3265, 3325, 3327, 3608,
# 5806, 7044): each element becomes its own entry. Others (WWW-Authenticate, Authorization,
# Date, Warning, Retry-After, Subject, ...) have commas inside one value and stay whole.
LIST_HEADERS = frozenset(
    {
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Content-Encoding", "Content-Language", "Allow-Events", "In-Reply-To", "Alert-Info",
        "Call-Info", "Error-Info", "Path", "Service-Route", "P-Asserted-Identity",
        "P-Preferred-Identity", "Diversion", "History-Info",
    }
)  # fmt: skip

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", re.IGNORECASE)
# Content-Length / Max-Forwards digits beyond this are junk; it also bounds int() work.
_MAX_INT_DIGITS = 10
# Raw header-name spelling -> canonical name, for spellings already validated. Bounded so a
# peer sending random names cannot grow it without limit.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 512

Message = SipRequest | SipResponse


def _bad(reason: str, msg: Message | None = None) -> SipProtocolError:
    return SipProtocolError(reason, 400, message=msg)


def _canonical(name: str) -> str:
    canon = _NAME_CACHE.get(name)
    if canon is not None:
        return canon
    if not _TOKEN_RE.match(name):
        raise _bad(f"Malformed header name {name[:40]!r}")
    canon = canonical_name(name)
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = canon
    return canon


def _parse_int(text: str, what: str, msg: Message | None) -> int:
    if not text.isdigit() or not text.isascii() or len(text.lstrip("0")) > _MAX_INT_DIGITS:
        raise _bad(f"Malformed {what} {text[:40]!r}", msg)
    return int(text)


def _parse_start_line(line: str) -> tuple[Message, SipProtocolError | None]:
    """The message shell for a start line, and the error to raise once headers are in."""
    if line[:4].upper() == "SIP/":  # "SIP" is case-insensitive (RFC 3261 §25.1)
        parts = line.split(" ", 2)
        code = parts[1] if len(parts) > 1 else ""
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            raise _bad(f"Malformed Status-Line {line[:60]!r}")
        status = int(code)
        if status > 699:
            raise _bad(f"Status code {status} is out of range 100..699")
        resp = SipResponse(status=status, reason=parts[2] if len(parts) > 2 else "")
        resp.version = parts[0]
        if parts[0].upper() != "SIP/2.0":
            return resp, SipProtocolError(f"Unsupported SIP version {parts[0][:20]!r}", 505)
        return resp, None
    parts = line.split(" ")
    fields = [p for p in parts if p]
    if not fields:
        raise _bad("Empty Request-Line")
    method = fields[0]
    if not _TOKEN_RE.match(method):
        raise _bad(f"Malformed method in Request-Line {line[:60]!r}")
    req = SipRequest(method=method, uri=fields[1] if len(fields) > 1 else "")
    req.version = fields[-1] if len(fields) > 2 else ""
    if len(parts) != 3 or len(fields) != 3:
        # RFC 4475 §3.1.2.8-10: LWS inside the Request-URI, or extra SP around elements.
        return req, SipProtocolError(f"Malformed Request-Line {line[:80]!r}", 400)
    if req.uri.startswith("<"):
        return req, SipProtocolError("Request-URI is enclosed in <> (RFC 4475 §3.1.2.7)", 400)
    if ":" not in req.uri:
        return req, SipProtocolError(f"Request-URI {req.uri[:60]!r} has no scheme", 400)
    if not _VERSION_RE.match(req.version):
        return req, SipProtocolError(f"Malformed SIP-Version {req.version[:20]!r}", 400)
    if req.version.upper() != "SIP/2.0":
        return req, SipProtocolError(f"Unsupported SIP version {req.version[:20]!r}", 505)
    return req, None


def _parse_head(head: bytes) -> tuple[Message, list[str], SipProtocolError | None]:
    """Parse start line and headers (without the blank line).

    Returns the message (body empty, Content-Length removed), the Content-Length values
    seen, and a deferred error about the start line (raised once framing is known).
    """
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"Header section is not valid UTF-8 (byte {exc.start})") from None
    lines = text.split("\r\n")
    if len(lines) > MAX_HEADER_LINES + 1:
        raise _bad(f"More than {MAX_HEADER_LINES} header lines")
    n_breaks = len(lines) - 1
    if text.count("\n") != n_breaks or text.count("\r") != n_breaks:
        raise _bad("Bare CR or LF in the header section")
    msg, deferred = _parse_start_line(lines[0])

    names: list[str] = []
    values: list[str] = []
    for line in lines[1:]:
        first = line[:1]
        if first == " " or first == "\t":
            # RFC 3261 §7.3.1: a line starting with LWS continues the previous value.
            if not values:
                raise _bad("Header section starts with a continuation line", None)
            cont = line.strip(" \t")
            if cont:
                prev = values[-1]
                values[-1] = f"{prev} {cont}" if prev else cont
            continue
        colon = line.find(":")
        if colon <= 0:
            raise _bad(f"Header line without a name and colon: {line[:40]!r}")
        names.append(_canonical(line[:colon].rstrip(" \t")))
        values.append(line[colon + 1 :].strip(" \t"))

    items: list[tuple[str, str]] = []
    content_lengths: list[str] = []
    for name, value in zip(names, values, strict=True):
        if name == "Content-Length":
            content_lengths.append(value)
        elif name in LIST_HEADERS and "," in value:
            elements = split_header_list(value)
            if "" in elements:
                # RFC 3261 §7.3.1 lists have no empty elements (RFC 4475 §3.1.2.1). Keep
                # the rest so the error can carry a message to answer.
                if deferred is None:
                    deferred = SipProtocolError(f"Empty element in the {name} list", 400)
                elements = [e for e in elements if e]
            items.extend((name, e) for e in elements)
        else:
            items.append((name, value))
    msg.headers = Headers.from_canonical(items)
    return msg, content_lengths, deferred


def _skip_crlf(data: bytes | bytearray, start: int) -> int:
    while data[start : start + 2] == b"\r\n":
        start += 2
    return start


def is_keepalive(data: bytes) -> bool:
    """Whether a datagram is only CRLFs (a keep-alive, RFC 5626 §4.4.1), to be ignored."""
    return not data.strip(b"\r\n")


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one UDP datagram (RFC 3261 §7, §18.3).

    Content-Length is optional: without it the body is the rest of the datagram. With
    it, octets after the body are ignored (RFC 4475 §3.1.1.8) and a value larger than
    what is there is an error (§3.1.2.2).

    Raises:
        SipProtocolError: 400 for malformed input, 505 for a SIP version other than
            2.0, 513 for a datagram over MAX_MESSAGE_BYTES.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipProtocolError(f"Message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}", 513)
    start = _skip_crlf(data, 0)
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if start >= len(data):
            raise _bad("Empty datagram")
        raise _bad("Message truncated: no empty line ends the header section")
    msg, content_lengths, deferred = _parse_head(data[start:end])
    rest = data[end + 4 :]
    if not content_lengths:
        msg.body = rest
    elif len(set(content_lengths)) > 1:
        # RFC 4475 §3.3.9: the body's extent is unknown. Equal repeats are harmless.
        raise _bad("Multiple Content-Length headers disagree (RFC 4475 §3.3.9)", msg)
    else:
        length = _parse_int(content_lengths[0], "Content-Length", msg)
        if length > len(rest):
            raise _bad("Content-Length larger than datagram", msg)
        msg.body = rest[:length]
    msg.headers.add("Content-Length", str(len(msg.body)))
    if deferred is not None:
        deferred.message = msg
        raise deferred
    return msg


class StreamParser:
    """Frames SIP messages on a byte stream (TCP, TLS) by Content-Length (RFC 3261 §18.3).

    ``feed`` bytes as they arrive and call ``next_message`` until it returns None. A
    framing error (missing or bad Content-Length, oversize head or body, unreadable head)
    is fatal: the error is raised again on every later call and ``failed`` is True; the
    adapter must close the connection. An error about one message whose framing was fine
    (e.g. 505 for a bad version) consumes that message and leaves the stream usable.
    """

    __slots__ = ("_buf", "_pending", "_error")

    def __init__(self) -> None:
        self._buf = bytearray()
        # (message without body, header length incl. blank line, body length, deferred error)
        self._pending: tuple[Message, int, int, SipProtocolError | None] | None = None
        self._error: SipProtocolError | None = None

    @property
    def failed(self) -> bool:
        """Whether a framing error made the stream unusable."""
        return self._error is not None

    def feed(self, data: bytes) -> None:
        """Append received bytes (dropped once the stream has ``failed``)."""
        if self._error is None:
            self._buf += data

    def _fail(self, err: SipProtocolError) -> SipProtocolError:
        self._error = err
        self._buf.clear()
        self._pending = None
        return err

    def next_message(self) -> SipRequest | SipResponse | None:
        """The next complete message, or None if more bytes are needed.

        CRLF keep-alives between messages (RFC 5626 §4.4.1) are skipped.

        Raises:
            SipProtocolError: see the class docstring for which errors are fatal.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._pending is None:
            start = _skip_crlf(buf, 0)
            if start:
                del buf[:start]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise self._fail(
                        SipProtocolError(f"Header section over {MAX_HEADER_BYTES} bytes", 513)
                    )
                return None
            if end > MAX_HEADER_BYTES:
                raise self._fail(
                    SipProtocolError(f"Header section over {MAX_HEADER_BYTES} bytes", 513)
                )
            try:
                msg, content_lengths, deferred = _parse_head(bytes(buf[:end]))
            except SipProtocolError as exc:
                raise self._fail(exc) from None
            if not content_lengths:
                raise self._fail(
                    _bad("Missing Content-Length on a stream transport (RFC 3261 §18.3)", msg)
                )
            if len(set(content_lengths)) > 1:
                raise self._fail(_bad("Multiple Content-Length headers disagree", msg))
            try:
                length = _parse_int(content_lengths[0], "Content-Length", msg)
            except SipProtocolError as exc:
                raise self._fail(exc) from None
            if length > MAX_BODY_BYTES:
                raise self._fail(
                    SipProtocolError(
                        f"Body of {length} bytes is over {MAX_BODY_BYTES}", 513, message=msg
                    )
                )
            self._pending = (msg, end + 4, length, deferred)
        msg, head_len, length, deferred = self._pending
        if len(buf) < head_len + length:
            return None
        msg.body = bytes(buf[head_len : head_len + length])
        del buf[: head_len + length]
        self._pending = None
        msg.headers.add("Content-Length", str(length))
        if deferred is not None:
            deferred.message = msg
            raise deferred
        return msg


# --- semantic checks -------------------------------------------------------------------


_MANDATORY = ("To", "From", "Call-ID", "CSeq")
_COLLECTED = frozenset({*_MANDATORY, "Via", "Max-Forwards", "Content-Length", "Contact"})


def _collect(msg: Message) -> dict[str, list[str]]:
    """The values of the headers the checks read, in one pass (names are canonical)."""
    seen: dict[str, list[str]] = {}
    for name, value in msg.headers:
        if name in _COLLECTED:
            if name in seen:
                seen[name].append(value)
            else:
                seen[name] = [value]
    for name in _MANDATORY:
        values = seen.get(name)
        if not values:
            raise _bad(f"Missing {name} header")
        if len(values) > 1:
            raise _bad(f"Multiple {name} headers (RFC 4475 §3.3.8)")
    if "Via" not in seen:
        raise _bad("Missing Via header")
    call_id = seen["Call-ID"][0]
    if not call_id or len(call_id.split()) != 1:
        raise _bad(f"Malformed Call-ID {call_id[:40]!r}")  # word ["@" word], §25.1
    return seen


def validate_request(req: SipRequest, *, proxy: bool = False) -> None:
    """The checks a UAS makes before anything else (RFC 3261 §8.2.1-§8.2.2, §16.3).

    Checks, in order: the Request-URI (sip/sips/tel, no headers), To/From/Call-ID/CSeq
    present exactly once, a Via, the CSeq method equal to the request method, To and
    From well-formed, the top Via well-formed, Max-Forwards 0..255 and at most once,
    Content-Length equal to the body, each Contact well-formed.

    Args:
        req: a parsed request.
        proxy: act as a proxy, so Max-Forwards 0 gives 483 (§16.3 step 2). An endpoint
            processes such a request as though the value were positive (RFC 4475 §3.3.11).

    Raises:
        SipProtocolError: 416 for an unsupported Request-URI scheme, 483 as above,
            400 for anything else, with a reason that names the fault.
    """
    uri = SipUri.parse(req.uri)
    if uri.headers:
        raise _bad("Request-URI must not contain headers (RFC 3261 §19.1.5)")
    seen = _collect(req)
    _, method = parse_cseq(seen["CSeq"][0])
    if method != req.method:
        raise _bad(f"CSeq method {method} does not match request method {req.method}")
    parse_name_addr(seen["To"][0])
    parse_name_addr(seen["From"][0])
    parse_via(seen["Via"][0])
    max_forwards = seen.get("Max-Forwards", ())
    if len(max_forwards) > 1:
        raise _bad("Multiple Max-Forwards headers")
    if max_forwards:
        hops = _parse_int(max_forwards[0], "Max-Forwards", None)
        if hops > 255:
            raise _bad(f"Max-Forwards {max_forwards[0]} is out of range 0..255")
        if hops == 0 and proxy:
            raise SipProtocolError("Max-Forwards is zero", 483)
    lengths = seen.get("Content-Length", ())
    if len(lengths) > 1:
        raise _bad("Multiple Content-Length headers")
    if lengths and _parse_int(lengths[0], "Content-Length", None) != len(req.body):
        raise _bad(f"Content-Length {lengths[0]} does not match the body ({len(req.body)})")
    for contact in seen.get("Contact", ()):
        if contact != "*":
            parse_name_addr(contact)


def validate_response(resp: SipResponse) -> None:
    """Checks before a response is matched to a transaction (RFC 3261 §8.1.3, §18.1.2).

    Raises:
        SipProtocolError(400): status outside 100..699, or To/From/Call-ID/CSeq missing,
            repeated or malformed, or no well-formed Via. The caller drops the response.
    """
    if not 100 <= resp.status <= 699:
        raise _bad(f"Status code {resp.status} is out of range 100..699")
    seen = _collect(resp)
    parse_cseq(seen["CSeq"][0])
    parse_name_addr(seen["To"][0])
    parse_name_addr(seen["From"][0])
    parse_via(seen["Via"][0])
