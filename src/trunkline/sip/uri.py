"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966).

``SipUri.parse`` takes the URI text exactly as it appears inside ``<...>`` or on the
Request-Line and splits it into its components. Escapes (``%HH``) are kept as received in
every component, so ``str(SipUri.parse(x))`` reproduces ``x`` up to the case of the scheme
and of parameter names; ``unescape`` gives the decoded form when an application needs it
(RFC 4475 §3.1.1.3: "%HH" is only an escape inside SIP URIs and Reason-Phrases).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trunkline.sip.errors import SipProtocolError

SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})

# RFC 3261 §25.1 (RFC 3986 §3.1): scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
# Every character a SIP-URI may hold: unreserved, reserved, "%" (escapes) and "[]" (IPv6).
_SIP_URI_CHARS_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%;/?:@&=+$,\[\]]*\Z")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?\Z")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+\Z")
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")
# RFC 3966 telephone-subscriber, loosely: digits, visual separators, *, #, A-F for local numbers.
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#().\-pPwW]+\Z")
# absoluteURI's opaque part: any visible ASCII except the characters that delimit it in a
# header ('<', '>', '"') and whitespace.
_OPAQUE_RE = re.compile(r"[!#-;=?-~]+\Z")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes (RFC 3261 §19.1.2) once, never recursively (RFC 4475 §3.1.1.3).

    The octets are decoded as UTF-8; invalid sequences become U+FFFD.
    """
    if "%" not in text:
        return text
    out = bytearray()
    pos = 0
    for m in _ESCAPE_RE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return out.decode("utf-8", errors="replace")


def _bad(reason: str) -> SipProtocolError:
    return SipProtocolError(reason, 400)


def parse_host_port(text: str, what: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets) and check both parts.

    Raises:
        SipProtocolError(400): empty or malformed host, or a port outside 0..65535.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad(f"{what} has an unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if ":" not in host or not _IPV6_CHARS_RE.match(host, 1, end):
            raise _bad(f"{what} has a malformed IPv6 reference")
        if rest and not rest.startswith(":"):
            raise _bad(f"{what} has junk after the IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_s = text.partition(":")
        port_text = port_text_s if sep else None
        if not host:
            raise _bad(f"{what} has an empty host")
        if not _HOSTNAME_RE.match(host):
            raise _bad(f"{what} has a malformed host {host!r}")
    if port_text is None:
        return host, None
    if not _PORT_RE.match(port_text) or int(port_text) > 65535:
        raise _bad(f"{what} has a malformed port {port_text!r}")
    return host, int(port_text)


def _parse_uri_params(text: str) -> tuple[tuple[str, str | None], ...]:
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise _bad("URI has an empty parameter name")
        params.append((name.lower(), value if eq else None))
    return tuple(params)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A parsed SIP/SIPS URI, or a tel URI (RFC 3966).

    For ``tel`` URIs the number is in ``user`` and ``host`` is "". For other schemes
    (only with ``parse(..., any_scheme=True)``) everything after the colon is in ``opaque``
    and ``host`` is "". Components keep their escapes as received; compare decoded forms
    with :func:`unescape` where it matters.
    """

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    password: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str, *, any_scheme: bool = False) -> SipUri:
        """Parse a URI (no surrounding ``<>``, no whitespace).

        Args:
            text: the URI.
            any_scheme: accept other schemes too, as an opaque absoluteURI (RFC 3261
                §25.1) with everything after the colon in ``opaque``. To, From and Contact
                may hold such URIs (RFC 4475 §3.3.4); a Request-URI may not.

        Raises:
            SipProtocolError: 416 for a well-formed URI with an unsupported scheme,
                400 for anything malformed.
        """
        colon = text.find(":")
        if colon <= 0:
            raise _bad(f"URI {text[:64]!r} has no scheme")
        scheme = text[:colon].lower()
        if not _SCHEME_RE.match(scheme):
            raise _bad(f"URI {text[:64]!r} has a malformed scheme")
        rest = text[colon + 1 :]
        if scheme not in SUPPORTED_SCHEMES:
            if any_scheme:
                if not rest or not rest.isascii() or not _OPAQUE_RE.match(rest):
                    raise _bad(f"URI {text[:64]!r} is not a valid absolute URI")
                return cls(scheme, None, "", opaque=rest)
            # RFC 3261 §8.2.2.1: an unknown Request-URI scheme is answered with 416.
            raise SipProtocolError(f"Unsupported URI scheme {scheme!r}", 416)
        if not rest.isascii() or not _SIP_URI_CHARS_RE.match(rest):
            raise _bad(f"URI {text[:64]!r} contains characters not allowed in a URI")
        if "%" in rest and _BAD_ESCAPE_RE.search(rest):
            raise _bad(f"URI {text[:64]!r} has a malformed %-escape")
        if scheme == "tel":
            return cls._parse_tel(rest)

        # The userinfo cannot hold an unescaped "@" (RFC 3261 §25.1), but it may hold ";",
        # "?" and ":" (RFC 4475 §3.1.1.2, §3.1.1.9), so the first "@" ends it.
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, sep, pw = userinfo.partition(":")
            password = pw if sep else None
            if not user:
                raise _bad("SIP URI has an empty user part")
        rest, qmark, header_text = rest.partition("?")
        hostport, semi, param_text = rest.partition(";")
        host, port = parse_host_port(hostport, "SIP URI")
        params = _parse_uri_params(param_text) if semi else ()
        headers: tuple[tuple[str, str], ...] = ()
        if qmark:
            pairs = []
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq:
                    raise _bad("SIP URI has a malformed header component")
                pairs.append((name, value))
            headers = tuple(pairs)
        return cls(scheme, user, host, port, password, params, headers)

    @classmethod
    def _parse_tel(cls, rest: str) -> SipUri:
        number, semi, param_text = rest.partition(";")
        if not _TEL_NUMBER_RE.match(number):
            raise _bad(f"tel URI has a malformed number {number[:32]!r}")
        params = _parse_uri_params(param_text) if semi else ()
        return cls("tel", number, "", None, None, params, ())

    def param(self, name: str) -> str | None:
        """The value of a URI parameter ("" for a parameter without value), or None."""
        key = name.lower()
        for n, v in self.params:
            if n == key:
                return "" if v is None else v
        return None

    def has_param(self, name: str) -> bool:
        """Whether the URI carries the parameter (with or without a value), e.g. ``lr``."""
        key = name.lower()
        return any(n == key for n, _ in self.params)

    @property
    def host_port(self) -> tuple[str, int | None]:
        """(host without IPv6 brackets, port or None)."""
        host = self.host
        if host.startswith("["):
            host = host[1:-1]
        return host, self.port

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.opaque is not None:
            return self.scheme + ":" + self.opaque
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts += (":", self.password)
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts += (":", str(self.port))
        for name, value in self.params:
            parts += (";", name) if value is None else (";", name, "=", value)
        if self.headers:
            parts += ("?", "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(parts)
