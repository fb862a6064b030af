"""Which agent answers a call: the dialled number or name, matched against ``--agent MATCH=``.

A route is ``(MATCH, target)``; at most one route has no MATCH and is the default. A call
offers its keys in order of precedence and the first key with a route wins; a call none
of whose keys match goes to the default, or is refused when there is none (SIP answers
404, a WebSocket stream is closed with a reason).

- SIP: the user part of the Request-URI (what was dialled), then the user part of To.
- WebSocket: the path's last segment (``/media/{MATCH}``), then the ``to`` custom
  parameter of ``start`` (a URI, or a bare number as Twilio's ``To``).

Keys are compared in a normal form, so an operator writes a number as they like:
``%HH`` escapes decoded (RFC 3261 §19.1.2), a phone number loses its visual separators
(``-``, ``.``, ``(``, ``)`` and spaces, RFC 3966 §5.1.1) and keeps a leading ``+``,
a name (``sales``) is compared without case. ``+15550100`` and ``15550100`` differ: a
number is matched as dialled, never guessed at.

Pure: strings in, targets out; nothing here touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.headers import parse_name_addr
from trunkline.sip.uri import SipUri, unescape

T = TypeVar("T")

#: Longest MATCH or key: dialled numbers are at most 15 digits (E.164) and names are
#: short; anything longer is not something an operator routes on.
MAX_KEY_LENGTH = 64

_SEPARATORS = str.maketrans("", "", "-.() ")
_NUMBER_RE = re.compile(r"\+?[0-9*]+\Z")
# Names keep to characters that are safe unescaped both in a SIP user part and in a URL
# path segment (RFC 3261 §25.1 unreserved, RFC 3986 §2.3), so /media/{MATCH} needs none.
_NAME_RE = re.compile(r"[a-z0-9_][a-z0-9_+*.~-]*\Z")


class RoutingError(ValueError):
    """A routing configuration that cannot work (bad MATCH, duplicates, two defaults)."""


def normalize(text: str) -> str | None:
    """The normal form of a number or name (see the module docstring), or None if it is
    neither (empty, too long, characters a dialled user part never has)."""
    text = unescape(text).strip()
    if not text or len(text) > MAX_KEY_LENGTH or not text.isascii():
        return None
    compact = text.translate(_SEPARATORS)
    if _NUMBER_RE.match(compact) and compact != "+":
        return compact
    name = text.lower()
    return name if _NAME_RE.match(name) else None


def call_key(text: str | None) -> str | None:
    """The routing key of a Request-URI, a To header value, or a bare number or name.

    ``sip:1001@host;transport=tcp``, ``"Bob" <sip:1001@host>;tag=x``, ``tel:+1-555-0100``
    and ``+1 555 0100`` all give their user part in normal form. Garbage, a URI without a
    user part, or a scheme we do not route on give None (the call is unmatched).
    """
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    if "<" in text or text.startswith('"') or ":" in text:
        try:
            uri = parse_name_addr(text).uri
        except SipProtocolError:
            return None
        return None if uri.user is None else normalize(uri.user)
    return normalize(text)


def sip_keys(request_uri: str, to: str) -> list[str | None]:
    """A SIP call's keys, best first: the Request-URI's user part, then To's."""
    key = None
    try:
        key = SipUri.parse(request_uri).user
    except SipProtocolError:
        pass
    return [None if key is None else normalize(key), call_key(to)]


def ws_keys(path_match: str | None, params: Mapping[str, str]) -> list[str | None]:
    """A Media Stream's keys, best first: the path's MATCH, then the ``to`` parameter."""
    return [None if path_match is None else normalize(path_match), call_key(params.get("to"))]


def parse_agent_option(text: str) -> tuple[str | None, str]:
    """Split ``--agent [MATCH=]SPEC.yaml`` into (MATCH in normal form or None, path).

    The first ``=`` ends MATCH, so a spec path holding ``=`` needs a MATCH in front.

    Raises:
        RoutingError: an empty MATCH or path, or a MATCH that is neither a number nor a
            name.
    """
    match, sep, path = text.partition("=")
    if not sep:
        if not text.strip():
            raise RoutingError("--agent needs a spec file")
        return None, text
    if not match.strip():
        raise RoutingError(f"--agent {text!r}: nothing before '=' (expected MATCH=SPEC.yaml)")
    if not path.strip():
        raise RoutingError(f"--agent {text!r}: no spec file after '='")
    key = normalize(match)
    if key is None:
        raise RoutingError(
            f"--agent {text!r}: MATCH {match!r} is neither a number (digits, '+', '*', "
            f"separators) nor a name (letters, digits, '_+*.~-'), up to {MAX_KEY_LENGTH} long"
        )
    return key, path


@dataclass(frozen=True, slots=True)
class Route(Generic[T]):
    """``target`` answers calls whose key is ``match`` (normal form); None: the default.

    ``label`` names the route in error messages (the spec file).
    """

    match: str | None
    target: T
    label: str = ""


class Router(Generic[T]):
    """A checked set of routes.

    Raises:
        RoutingError: no route, a MATCH not in normal form, a MATCH given twice, or more
            than one route without MATCH.
    """

    def __init__(self, routes: Sequence[Route[T]]) -> None:
        if not routes:
            raise RoutingError("no agent to route calls to")
        self.routes = tuple(routes)
        self.default: T | None = None
        self._by_key: dict[str, Route[T]] = {}
        default: Route[T] | None = None
        for route in routes:
            if route.match is None:
                if default is not None:
                    raise RoutingError(
                        f"two agents without MATCH ({_name(default)}, {_name(route)}); "
                        "only one may take the calls no MATCH fits"
                    )
                default = route
                continue
            if normalize(route.match) != route.match:
                raise RoutingError(f"MATCH {route.match!r} is not in normal form")
            seen = self._by_key.get(route.match)
            if seen is not None:
                raise RoutingError(
                    f"MATCH {route.match!r} is given twice ({_name(seen)}, {_name(route)})"
                )
            self._by_key[route.match] = route
        if default is not None:
            self.default = default.target

    @classmethod
    def single(cls, target: T) -> Router[T]:
        """Every call to ``target``."""
        return cls([Route(None, target)])

    @property
    def matches(self) -> list[str]:
        """The MATCH of every route that has one, in the order given."""
        return list(self._by_key)

    def target(self, match: str) -> T:
        """The target of an existing MATCH (for a route bound to it, as a URL path)."""
        return self._by_key[match].target

    def select(self, keys: Iterable[str | None]) -> T | None:
        """The target of the first key that has a route, else the default (None if none)."""
        for key in keys:
            if key is not None:
                route = self._by_key.get(key)
                if route is not None:
                    return route.target
        return self.default


def _name(route: Route[T]) -> str:
    return route.label or repr(route.target)
