"""Parsers for the SIP header values every layer needs (RFC 3261 §20, grammar in §25.1).

Messages keep header values as text (``message.Headers``); these functions turn the few
that the transaction and dialog layers read — Via, From/To/Contact/Route, CSeq — into
small objects, on demand. Each raises ``SipProtocolError`` (status hint 400) on junk and
nothing else.

Linear white space: after unfolding (the parser's job), RFC 3261 §7.3.1 and §25.1 allow
LWS around ":", ";", "=", "/" and "," in these values (the SWS of HCOLON, SEMI, EQUAL,
SLASH, COMMA); RFC 4475 §3.1.1.1 exercises all of them, so every split here strips it.

Parameter values keep their quotes when they were quoted (``+sip.instance="<urn:..>"``)
so that ``str()`` reproduces them; parameter names are lower-cased (they are
case-insensitive, §7.3.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.message import SipMessage
from trunkline.sip.uri import SipUri, parse_host_port

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# Display-name tokens separated by LWS (the unquoted form of display-name).
_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*\Z")
# gen-value = token / host / quoted-string: a token, or a host (IPv6 references included).
_GEN_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+\Z")
_LWS = " \t"
_LWS_SET = frozenset(" \t")
# CSeq numbers must be < 2**31 (RFC 3261 §8.1.1.5); ten digits is the longest such number
# that may carry leading zeros in reasonable messages, and bounds int() on junk.
_MAX_CSEQ_DIGITS = 10


def _bad(reason: str) -> SipProtocolError:
    return SipProtocolError(reason, 400)


def _skip_quoted(text: str, start: int) -> int:
    """Index just after the quoted-string that opens at ``start`` (RFC 3261 §25.1)."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise _bad("Unterminated quoted string")


def _split_outside(text: str, sep: str, angle: bool) -> list[str]:
    """Split on ``sep`` outside quoted strings (and outside ``<...>`` when ``angle``)."""
    if '"' not in text and (not angle or "<" not in text):
        return text.split(sep)
    out: list[str] = []
    start = 0
    i = 0
    n = len(text)
    in_angle = False
    while i < n:
        c = text[i]
        if c == '"' and not in_angle:
            i = _skip_quoted(text, i)
            continue
        if angle and c == "<":
            in_angle = True
        elif angle and c == ">":
            in_angle = False
        elif c == sep and not in_angle:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 §7.3.1) into stripped elements.

    Commas inside quoted strings and ``<...>`` do not split. An empty value gives ``[""]``.

    Raises:
        SipProtocolError(400): an unterminated quoted string.
    """
    if "," not in value:
        return [value.strip(_LWS)]
    return [item.strip(_LWS) for item in _split_outside(value, ",", True)]


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` into ``{"a": "b", "c": None}`` (generic-param, RFC 3261 §25.1).

    The leading ";" is optional. Names are lower-cased; quoted values keep their quotes.

    Raises:
        SipProtocolError(400): an empty parameter (";;"), a non-token name or a bad value.
    """
    params: dict[str, str | None] = {}
    items = _split_outside(text, ";", False)
    if not items[0].strip(_LWS):
        items = items[1:]
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip(_LWS)
        if not name:
            raise _bad("Empty header parameter")
        if not _TOKEN_RE.match(name):
            raise _bad(f"Malformed header parameter name {name[:32]!r}")
        if not eq:
            params[name.lower()] = None
            continue
        value = value.strip(_LWS)
        if value.startswith('"'):
            if _skip_quoted(value, 0) != len(value):
                raise _bad(f"Junk after the quoted value of parameter {name[:32]!r}")
        elif not _GEN_VALUE_RE.match(value):
            raise _bad(f"Malformed value for header parameter {name[:32]!r}")
        params[name.lower()] = value
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params.items())


# --- Via (RFC 3261 §20.42) ------------------------------------------------------------


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/<transport> <host>[:<port>];params``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        """The branch parameter (RFC 3261 §8.1.1.7), or None."""
        return self.params.get("branch")

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{_format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one Via value (not a comma list); LWS around "/" and ":" is allowed.

    Raises:
        SipProtocolError(400): not ``SIP/2.0/transport sent-by``, or bad parameters.
    """
    head, semi, param_text = value.partition(";")
    parts = head.split("/")
    if len(parts) != 3:
        raise _bad("Malformed Via: expected SIP/2.0/transport")
    if parts[0].strip(_LWS).upper() != "SIP" or parts[1].strip(_LWS) != "2.0":
        raise _bad("Malformed Via: protocol is not SIP/2.0")
    rest = parts[2].strip(_LWS)
    fields = rest.split(None, 1)
    if len(fields) != 2:
        raise _bad("Malformed Via: missing sent-by")
    transport, sent_by = fields
    if not _TOKEN_RE.match(transport):
        raise _bad("Malformed Via transport")
    if " " in sent_by or "\t" in sent_by:
        # COLON = SWS ":" SWS: drop LWS around the port separator only.
        host_part, colon, port_part = sent_by.rpartition(":")
        if colon and "]" not in port_part:
            sent_by = f"{host_part.rstrip(_LWS)}:{port_part.lstrip(_LWS)}"
        if " " in sent_by or "\t" in sent_by:
            raise _bad("Malformed Via sent-by")
    host, port = parse_host_port(sent_by, "Via")
    params = parse_params(semi + param_text) if semi else {}
    return Via(transport.upper(), host, port, params)


def top_via(msg: SipMessage) -> Via:
    """The first Via of a message, parsed.

    Raises:
        SipProtocolError(400): no Via, or the top Via is malformed.
    """
    value = msg.headers.get("Via")
    if value is None:
        raise _bad("Missing Via header")
    return parse_via(value)


# --- name-addr: From, To, Contact, Route, Record-Route, Refer-To (RFC 3261 §20.10) -----


def _unquote(quoted: str) -> str:
    """Decode a quoted-string body (quotes already removed): ``\\x`` -> ``x``."""
    if "\\" not in quoted:
        return quoted
    out = []
    i = 0
    n = len(quoted)
    while i < n:
        c = quoted[i]
        if c == "\\" and i + 1 < n:
            out.append(quoted[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _quote(text: str) -> str:
    """Encode a display name as a quoted-string, escaping what qdtext cannot hold."""
    out = ['"']
    for c in text:
        if c in "\r\n":
            out.append(" ")  # quoted-pair cannot carry CR or LF (RFC 3261 §25.1)
        elif c in '"\\' or (c < " " and c != "\t") or c == "\x7f":
            out += ("\\", c)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


@dataclass(slots=True)
class NameAddr:
    """An address with optional display name and header parameters (tag, expires, q...)."""

    uri: SipUri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), or None."""
        return self.params.get("tag")

    def __str__(self) -> str:
        name = "" if self.display_name is None else _quote(self.display_name) + " "
        return f"{name}<{self.uri}>{_format_params(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Name" <uri>;params``, ``Name <uri>;params`` or ``uri;params``.

    In the addr-spec form (no ``<>``) everything after the first ";" is a header
    parameter, and the URI may not contain "?" or "," (RFC 3261 §20.10). URIs of any
    scheme are accepted (``SipUri.parse(any_scheme=True)``, RFC 4475 §3.3.4).

    Raises:
        SipProtocolError(400): any syntax error, including a display name with non-token
            characters that is not quoted (RFC 4475 §3.1.2.15) and LWS inside ``<>``
            (§3.1.2.14).
    """
    s = value.strip(_LWS)
    if not s:
        raise _bad("Empty address")
    display: str | None = None
    if s[0] == '"':
        end = _skip_quoted(s, 0)
        display = _unquote(s[1 : end - 1])
        rest = s[end:].lstrip(_LWS)
        if not rest.startswith("<"):
            raise _bad("Quoted display name is not followed by <URI>")
    else:
        lt = s.find("<")
        if lt < 0:
            return _parse_addr_spec(s)
        name = s[:lt].strip(_LWS)
        if name:
            if not _TOKENS_RE.match(name):
                raise _bad(f"Display name {name[:32]!r} has characters that need quotes")
            display = name
        rest = s[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise _bad("Address has '<' without '>'")
    uri_text = rest[1:gt]
    if uri_text[:1] in _LWS_SET or uri_text[-1:] in _LWS_SET:
        raise _bad("LWS inside <> of an address (RFC 4475 §3.1.2.14)")
    uri = SipUri.parse(uri_text, any_scheme=True)
    tail = rest[gt + 1 :].lstrip(_LWS)
    if tail and not tail.startswith(";"):
        raise _bad("Junk after '>' in address")
    return NameAddr(uri, display, parse_params(tail) if tail else {})


def _parse_addr_spec(s: str) -> NameAddr:
    uri_text, semi, param_text = s.partition(";")
    uri_text = uri_text.rstrip(_LWS)
    if "?" in uri_text or "," in uri_text:
        raise _bad("A URI with '?' or ',' must be enclosed in <> (RFC 3261 §20.10)")
    uri = SipUri.parse(uri_text, any_scheme=True)
    return NameAddr(uri, None, parse_params(semi + param_text) if semi else {})


def tag_of(value: str) -> str | None:
    """The tag parameter of a From/To value, without building a ``NameAddr``.

    Lenient fast path for dialog matching: a malformed value yields None, not an error.
    """
    gt = value.rfind(">")
    tail = value[gt + 1 :] if gt >= 0 else value
    if "tag" not in tail.lower():
        return None
    for item in tail.split(";")[1:]:
        name, eq, tag = item.partition("=")
        if eq and name.strip(_LWS).lower() == "tag":
            return tag.strip(_LWS) or None
    return None


# --- CSeq (RFC 3261 §20.16) -----------------------------------------------------------


def parse_cseq(value: str) -> tuple[int, str]:
    """Parse ``"<number> <METHOD>"``.

    Raises:
        SipProtocolError(400): not two fields, a non-numeric or too large (>= 2**31,
            RFC 3261 §8.1.1.5) number, or a method that is not a token.
    """
    fields = value.split()
    if len(fields) != 2:
        raise _bad(f"Malformed CSeq {value[:40]!r}")
    number, method = fields
    if not number.isdigit() or not number.isascii() or len(number.lstrip("0")) > _MAX_CSEQ_DIGITS:
        raise _bad(f"Malformed CSeq number {number[:40]!r}")
    seq = int(number)
    if seq >= 2**31:
        raise _bad(f"CSeq number {number[:40]} is not below 2**31")
    if not _TOKEN_RE.match(method):
        raise _bad(f"Malformed CSeq method {method[:40]!r}")
    return seq, method


def cseq_of(msg: SipMessage) -> tuple[int, str]:
    """The parsed CSeq of a message.

    Raises:
        SipProtocolError(400): missing or malformed.
    """
    value = msg.headers.get("CSeq")
    if value is None:
        raise _bad("Missing CSeq header")
    return parse_cseq(value)
