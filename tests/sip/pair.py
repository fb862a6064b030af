"""Two UserAgents linked in memory, with a manual clock and deterministic loss.

The h11 ``tests/helpers.py`` / aioquic ``client_and_server`` pattern: ``Pair.a`` calls,
``Pair.b`` answers (or the other way round), every message both put on the wire goes
through :meth:`Pair.flush`, which may drop it by rule, and timers only move when the test
moves the clock (:meth:`Pair.advance`, :meth:`Pair.run_until_quiet`).

Over TCP the pair models connections: a message sent without ``conn_id`` opens (or
reuses) a connection to the destination's listening address, and the receiver sees it
arrive from an ephemeral port with its own connection id, exactly as an adapter would
report it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trunkline.sip.events import Event, Peer
from trunkline.sip.message import SipRequest, SipResponse
from trunkline.sip.parser import parse_message
from trunkline.sip.ua import UserAgent

E = TypeVar("E")

SDP_A = (
    b"v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=sendrecv\r\n"
)
SDP_B = (
    b"v=0\r\no=b 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    b"m=audio 50000 RTP/AVP 0 101\r\na=sendrecv\r\n"
)
SDP_HOLD = SDP_A.replace(b"a=sendrecv", b"a=sendonly")
SDP_HELD = SDP_B.replace(b"a=sendrecv", b"a=recvonly")


@dataclass(frozen=True)
class Wire:
    """One message put on the wire."""

    src: str  # "a" | "b"
    dst: str
    data: bytes
    dropped: bool = False

    @property
    def start_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode()

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        first = self.start_line
        return None if first.startswith("SIP/2.0") else first.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        first = self.start_line
        return int(first.split(" ")[1]) if first.startswith("SIP/2.0") else None

    @property
    def cseq_method(self) -> str:
        for line in self.data.split(b"\r\n"):
            if line.lower().startswith(b"cseq:"):
                return line.split()[-1].decode()
        return ""

    def is_request(self, method: str) -> bool:
        return self.method == method

    def is_response(self, status: int, cseq_method: str) -> bool:
        return self.status == status and self.cseq_method == cseq_method

    def __repr__(self) -> str:
        mark = " DROPPED" if self.dropped else ""
        return f"<{self.src}->{self.dst} {self.start_line} ({self.cseq_method}){mark}>"


@dataclass
class _Rule:
    match: Callable[[Wire], bool]
    remaining: int


@dataclass
class _Conn:
    owner: str
    other: str
    other_conn: int
    other_port: int  # the port the owner sees the other side on


@dataclass
class Pair:
    """UAs "a" (10.0.0.1:5060) and "b" (10.0.0.2:5062) and the network between them."""

    transport: str = "udp"
    seed: int = 1
    loss_rate: float = 0.0
    ua_options: dict[str, Any] = field(default_factory=dict)
    now: float = 100.0

    def __post_init__(self) -> None:
        self.a = UserAgent(
            local_host="10.0.0.1", local_port=5060, rand=random.Random(self.seed), **self.ua_options
        )
        self.b = UserAgent(
            local_host="10.0.0.2",
            local_port=5062,
            rand=random.Random(self.seed + 1),
            **self.ua_options,
        )
        self.names = {id(self.a): "a", id(self.b): "b"}
        self.by_name = {"a": self.a, "b": self.b}
        self.addr = {"a": ("10.0.0.1", 5060), "b": ("10.0.0.2", 5062)}
        self.wire: list[Wire] = []
        self.events: dict[str, list[Event]] = {"a": [], "b": []}
        self._rules: list[_Rule] = []
        self._loss = random.Random(self.seed * 7919)
        self._conns: dict[int, _Conn] = {}
        self._next_conn = 1
        self._next_port = 40000
        # The UAs date actions without ``now`` at their last input: start them at our clock.
        self.a.handle_timer(self.now)
        self.b.handle_timer(self.now)

    # --- addressing ----------------------------------------------------------------------

    def peer_of(self, name: str) -> Peer:
        """How the other side addresses ``name`` (its listening address)."""
        host, port = self.addr[name]
        return Peer(self.transport, host, port)

    def uri_of(self, name: str, user: str = "bob") -> str:
        host, port = self.addr[name]
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{user}@{host}:{port}{suffix}"

    # --- loss ---------------------------------------------------------------------------------

    def drop(self, match: Callable[[Wire], bool], count: int = 1) -> None:
        """Drop the next ``count`` messages that ``match``."""
        self._rules.append(_Rule(match, count))

    def _should_drop(self, wire: Wire) -> bool:
        for rule in self._rules:
            if rule.remaining > 0 and rule.match(wire):
                rule.remaining -= 1
                return True
        return self.loss_rate > 0 and self._loss.random() < self.loss_rate

    # --- moving messages -------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver everything both sides want to send, until neither sends more."""
        for _ in range(10_000):
            moved = False
            for src in ("a", "b"):
                ua = self.by_name[src]
                for data, peer in ua.messages_to_send():
                    moved = True
                    self._deliver(src, data, peer)
                self._collect(src)
            if not moved:
                return
        raise AssertionError("message storm: the two UAs never went quiet")

    def _route(self, src: str, peer: Peer) -> tuple[str, Peer]:
        """(destination name, the Peer the destination sees the message come from).

        A destination that is neither UA is "void": the message goes nowhere.
        """
        if peer.conn_id is None and (peer.host, peer.port) not in self.addr.values():
            return "void", peer
        if peer.transport == "udp":
            dst = next(n for n, addr in self.addr.items() if addr == (peer.host, peer.port))
            host, port = self.addr[src]
            return dst, Peer("udp", host, port)
        if peer.conn_id is not None and peer.conn_id in self._conns:
            conn = self._conns[peer.conn_id]
            assert conn.owner == src
            back = self._conns[conn.other_conn]
            return conn.other, Peer("tcp", self.addr[src][0], back.other_port, conn.other_conn)
        dst = next(n for n, addr in self.addr.items() if addr == (peer.host, peer.port))
        for cid, conn in self._conns.items():  # reuse a connection src opened to dst
            if conn.owner == src and conn.other == dst and conn.other_port == peer.port:
                return self._route(src, Peer("tcp", peer.host, peer.port, cid))
        mine, theirs = self._next_conn, self._next_conn + 1
        self._next_conn += 2
        ephemeral = self._next_port
        self._next_port += 1
        self._conns[mine] = _Conn(src, dst, theirs, peer.port)
        self._conns[theirs] = _Conn(dst, src, mine, ephemeral)
        return dst, Peer("tcp", self.addr[src][0], ephemeral, theirs)

    def _deliver(self, src: str, data: bytes, peer: Peer) -> None:
        assert peer.transport == self.transport, f"{src} sent over {peer.transport}"
        dst, seen_from = self._route(src, peer)
        wire = Wire(src, dst, data)
        if dst == "void":
            self.wire.append(Wire(src, dst, data, dropped=True))
            return
        if self._should_drop(wire):
            self.wire.append(Wire(src, dst, data, dropped=True))
            return
        self.wire.append(wire)
        self.by_name[dst].receive_message(data, seen_from, self.now)
        self._collect(dst)

    def _collect(self, name: str) -> None:
        ua = self.by_name[name]
        while (event := ua.next_event()) is not None:
            self.events[name].append(event)

    # --- time ------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        deadlines = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
        return min(deadlines) if deadlines else None

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every timer on the way in order."""
        self.flush()
        end = self.now + seconds
        while (t := self.next_timer()) is not None and t <= end:
            self.now = max(self.now, t)
            self._fire()
        self.now = end
        self._fire()

    def run_until_quiet(self, limit: float = 600.0) -> None:
        """Fire timers until none is left (or ``limit`` seconds passed)."""
        self.flush()
        end = self.now + limit
        while (t := self.next_timer()) is not None and t <= end:
            self.now = max(self.now, t)
            self._fire()

    def _fire(self) -> None:
        for name in ("a", "b"):
            self.by_name[name].handle_timer(self.now)
            self._collect(name)
        self.flush()

    # --- inspection --------------------------------------------------------------------------

    def of(self, name: str, kind: type[E]) -> list[E]:
        """Events of one type that ``name`` emitted so far."""
        return [e for e in self.events[name] if isinstance(e, kind)]

    def one(self, name: str, kind: type[E]) -> E:
        """The single event of that type; fails if there are zero or several."""
        found = self.of(name, kind)
        assert len(found) == 1, f"expected one {kind.__name__} at {name}, got {found}"
        return found[0]

    def sent(self, match: Callable[[Wire], bool], *, delivered_only: bool = False) -> list[Wire]:
        """Messages on the wire that match (dropped ones too unless ``delivered_only``)."""
        return [w for w in self.wire if match(w) and not (delivered_only and w.dropped)]


# --- raw messages for probing one UA ---------------------------------------------------------

PROBE = Peer("udp", "10.0.0.9", 5099)


def raw_request(
    method: str = "INVITE",
    uri: str = "sip:bob@10.0.0.2:5062",
    *,
    branch: str = "z9hG4bKraw1",
    via: str = "SIP/2.0/UDP 10.0.0.9:5099",
    from_tag: str | None = "f1",
    to_tag: str | None = None,
    call_id: str = "raw-1@10.0.0.9",
    cseq: int = 1,
    cseq_method: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    content_type: str | None = None,
    contact: str | None = "<sip:carol@10.0.0.9:5099>",
    omit: tuple[str, ...] = (),
) -> bytes:
    """A request as a peer would put it on the wire; ``omit`` drops headers by name."""
    lines = [f"{method} {uri} SIP/2.0"]
    headers = [
        ("Via", f"{via};branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:carol@10.0.0.9>" + (f";tag={from_tag}" if from_tag else "")),
        ("To", "<sip:bob@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {cseq_method or method}"),
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    headers.extend(extra)
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    headers.append(("Content-Length", str(len(body))))
    lines += [f"{n}: {v}" for n, v in headers if n not in omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(
    ua: UserAgent, data: bytes, now: float = 100.0, peer: Peer = PROBE
) -> tuple[list[SipResponse | SipRequest], list[Peer], list[Event]]:
    """Feed ``data`` to ``ua``; return what it sent (parsed), where, and its events."""
    ua.receive_message(data, peer, now)
    out = ua.messages_to_send()
    events = []
    while (event := ua.next_event()) is not None:
        events.append(event)
    return [parse_message(d) for d, _ in out], [p for _, p in out], events
