"""The asyncio adapter around the sans-IO SIP user agent: UDP and TCP on one address.

Theory of operation
-------------------
This is the aioquic ``asyncio/protocol.py`` shape. Every input (a datagram, a framed TCP
message, a timer firing) goes into the ``UserAgent`` with ``now``; after each input the
adapter drains what the UA wants sent, hands its events to the owner, and re-arms ONE
``loop.call_at`` timer at ``ua.get_timer()``. The UA never sees a socket.

TCP (RFC 3261 §18.3): each accepted connection gets a ``StreamParser`` that frames
messages by Content-Length, and a ``conn_id``; responses to a request that came over TCP
go back on the same connection. A framing error closes that connection only. Half-open
connections are closed after ``TCP_HANDSHAKE_TIMEOUT_S``, idle ones after
``TCP_IDLE_TIMEOUT_S``, and at most
``MAX_TCP_CONNECTIONS`` are kept, so a flood of half-open connections costs a bounded
amount of memory and never touches calls in progress.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.events import Event
from trunkline.sip.parser import MAX_MESSAGE_BYTES, StreamParser
from trunkline.sip.ua import Peer, UserAgent

log = logging.getLogger(__name__)

# RFC 3261 §18.3 leaves connection lifetime to the implementation. A connection that has
# not yet carried one whole message gets little time (half-open floods); one that has
# carries a call whose BYE may come much later, so it may stay quiet for long.
TCP_HANDSHAKE_TIMEOUT_S = 5.0
TCP_IDLE_TIMEOUT_S = 600.0
# Each connection holds a parser buffer of up to a message's size; bound them all.
MAX_TCP_CONNECTIONS = 1024
# The kernel's UDP buffers absorb bursts of INVITEs at high call rates.
UDP_RCVBUF_BYTES = 4 * 1024 * 1024
# With port 0, how many kernel-chosen UDP ports to try for one whose TCP twin is free.
PORT_ZERO_ATTEMPTS = 8


class SipEndpoint:
    """Binds UDP and TCP on ``host:port`` and runs ``ua`` on them."""

    def __init__(self, ua: UserAgent, on_event: Callable[[Event], None]) -> None:
        self.ua = ua
        self.on_event = on_event
        self.loop = asyncio.get_running_loop()
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.Server | None = None
        self.connections: dict[int, _TcpConnection] = {}
        self._conn_ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped_datagrams = 0
        self.closed_connections = 0
        # Loss injection for tests and the lab: return True to drop an outbound UDP datagram.
        self.drop_outbound: Callable[[bytes, Peer], bool] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on UDP and TCP; returns the bound address.

        Port 0 picks a port free for both: the kernel chooses the UDP one, whose TCP twin
        may be taken, so a few ports are tried.

        Raises:
            OSError: the address cannot be bound (in use, not ours).
        """
        for attempt in range(1 if port else PORT_ZERO_ATTEMPTS):
            udp, _ = await self.loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port)
            )
            sock = udp.get_extra_info("socket")
            bound = sock.getsockname()
            try:
                self.tcp_server = await self.loop.create_server(
                    lambda: _TcpConnection(self), host, bound[1], reuse_address=True
                )
            except OSError:
                udp.close()
                if port or attempt == PORT_ZERO_ATTEMPTS - 1:
                    raise
                continue
            self.udp = udp
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF_BYTES)
            except OSError:
                pass
            return str(bound[0]), int(bound[1])
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for conn in list(self.connections.values()):
            conn.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
            await self.tcp_server.wait_closed()
        if self.udp is not None:
            self.udp.close()

    # --- input -----------------------------------------------------------------------

    def datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) > MAX_MESSAGE_BYTES or not data.strip():
            self.dropped_datagrams += 1  # keep-alive CRLFs and oversize junk
            return
        self.ua.receive_message(data, Peer("udp", str(addr[0]), int(addr[1])), self.loop.time())
        self.pump()

    def pump(self) -> None:
        """Drain sends and events, then re-arm the timer. Call after every UA input/action."""
        ua = self.ua
        for data, peer in ua.messages_to_send():
            self._send(data, peer)
        while (event := ua.next_event()) is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("SIP event handler failed on %r", event)
        # Handlers act on the UA (answer, reject...), which may queue more to send.
        for data, peer in ua.messages_to_send():
            self._send(data, peer)
        self._arm_timer()

    def _arm_timer(self) -> None:
        at = self.ua.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.ua.handle_timer(self.loop.time())
        self.pump()

    # --- output ----------------------------------------------------------------------

    def _send(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "udp":
            if self.drop_outbound is not None and self.drop_outbound(data, peer):
                return
            if self.udp is not None:
                self.udp.sendto(data, (peer.host, peer.port))
            return
        conn = self.connections.get(peer.conn_id) if peer.conn_id is not None else None
        if conn is None:
            conn = self._find_connection(peer.host, peer.port)
        if conn is not None:
            conn.write(data)
        else:
            # A request to a TCP peer we have no connection to (our UAC over TCP).
            task = self.loop.create_task(self._connect_and_send(data, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _find_connection(self, host: str, port: int) -> _TcpConnection | None:
        for conn in self.connections.values():
            if conn.peer_addr == (host, port):
                return conn
        return None

    async def _connect_and_send(self, data: bytes, peer: Peer) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: _TcpConnection(self), peer.host, peer.port
            )
        except OSError as exc:
            log.warning("SIP TCP connect to %s:%d failed: %s", peer.host, peer.port, exc)
            self.ua.transport_error(peer, self.loop.time())
            self.pump()
            return
        conn.write(data)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.endpoint.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.conn_id = 0
        self.peer_addr: tuple[str, int] = ("", 0)
        self._idle: asyncio.TimerHandle | None = None
        self._messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ep = self.endpoint
        self.transport = transport  # type: ignore[assignment]  # uvloop's is duck-typed
        if len(ep.connections) >= MAX_TCP_CONNECTIONS:
            self.close()
            ep.closed_connections += 1
            return
        self.conn_id = next(ep._conn_ids)
        peer = transport.get_extra_info("peername")
        self.peer_addr = (str(peer[0]), int(peer[1]))
        ep.connections[self.conn_id] = self
        self._touch()

    def data_received(self, data: bytes) -> None:
        ep = self.endpoint
        peer = Peer("tcp", self.peer_addr[0], self.peer_addr[1], self.conn_id)
        parser = self.parser
        parser.feed(data)
        while True:
            try:
                msg = parser.next_message()
            except SipProtocolError as exc:
                # Answer what can be answered (400, 505...). A framing error leaves the
                # stream unusable and closes it; an error in one well-framed message
                # (another SIP version, a bad request line) costs only that message.
                ep.ua.receive_parse_error(exc, peer, ep.loop.time())
                if parser.failed:
                    log.info("SIP TCP framing error from %s:%d: %s", *self.peer_addr, exc.reason)
                    ep.pump()
                    self.close()
                    return
                continue
            if msg is None:
                break
            self._messages += 1
            ep.ua.receive_parsed(msg, peer, ep.loop.time())
        self._touch()
        ep.pump()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        timeout = TCP_IDLE_TIMEOUT_S if self._messages else TCP_HANDSHAKE_TIMEOUT_S
        self._idle = self.endpoint.loop.call_later(timeout, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.endpoint.connections.pop(self.conn_id, None) is not None:
            self.endpoint.closed_connections += 1
        self.transport = None
