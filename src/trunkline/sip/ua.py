"""The sans-IO SIP user agent: transactions, dialogs and calls behind one small API.

Theory of operation
-------------------
The shape is aioquic's: the adapter feeds what arrives and drains what to send.

* In: ``receive_message(data, peer, now)`` with one UDP datagram or one message framed by
  the adapter's ``StreamParser`` on TCP (or ``receive_parsed``/``receive_parse_error``
  when the adapter parsed it), and ``handle_timer(now)`` when ``get_timer()`` is due.
* Out: ``messages_to_send()`` (bytes and the :class:`Peer` to send them to) and
  ``next_event()`` (:mod:`trunkline.sip.events`). After every input or action, drain
  both and re-arm one timer at ``get_timer()``.
* TCP: the adapter frames with ``StreamParser``; a ``SipProtocolError`` it raises goes to
  ``receive_parse_error`` (answered when the head was readable), and the connection is
  closed when ``parser.failed``. A ``Peer`` we emit with ``conn_id`` means "that
  connection if still open, else connect to host:port". A send or connect that fails is
  reported with ``transport_error(peer, now)`` (the transactions turn it into 503).

A request goes through the checks of §8.2 in order: parse/validate (400, or the parser's
status hint; a request too broken to answer is dropped and reported as MessageRejected),
transaction match (§17.2.3: a retransmission is answered by its server transaction and
goes no further), method (405 with Allow), Require (420 with Unsupported), body type and
encoding (415 with Accept), merged requests (482, §8.2.2.2), then dialog match for
requests with a To tag (481, CSeq order 500, §12.2.2), and finally the method's handler
in ``uas.py`` or ``midcall.py``. A response is matched to its client transaction by top
Via branch and CSeq method (§17.1.3); a 2xx that outlived its transaction is matched to
its dialog so its ACK can be re-sent.

Responses go back as §18.2.2 and RFC 3581 say: over TCP on the connection the request
came in on (``Peer.conn_id``); over UDP to the top Via's sent-by, or to ``received`` and
the source port when the Via asked for ``rport``. We add ``received`` (and fill in
``rport``) on the top Via when the source differs or rport was asked (§18.2.1, RFC 3581),
so the response carries them.

RFC 2543 peers (branches without the magic cookie) are matched by a simplified §17.2.3
rule: Call-ID, From, CSeq number, method and the raw top Via; the To tag is not compared.
"""

from __future__ import annotations

from trunkline.sip.call import Call, CallState
from trunkline.sip.errors import SipProtocolError
from trunkline.sip.events import Event, MessageRejected, Peer
from trunkline.sip.headers import cseq_of, split_header_list, tag_of, top_via
from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.midcall import MidCallMixin
from trunkline.sip.parser import is_keepalive, parse_message, validate_request, validate_response
from trunkline.sip.timers import Timer
from trunkline.sip.transaction import (
    MAGIC_COOKIE,
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from trunkline.sip.uabase import (
    ACCEPT,
    ACCEPT_ALL,
    ALLOW,
    ALLOWED_METHODS,
    SUPPORTED,
    Refusal,
    merge_key,
    reason_phrase,
)
from trunkline.sip.uac import UacMixin
from trunkline.sip.uas import UasMixin

__all__ = ["Call", "CallState", "Peer", "UserAgent"]

DEFAULT_PORT = 5060  # RFC 3261 §18.2.2: the sent-by port when the Via names none
# The headers a response needs (§8.2.6.2); without them a broken request is dropped.
_NEEDED_TO_ANSWER = ("Via", "From", "To", "Call-ID", "CSeq")


class UserAgent(UasMixin, UacMixin, MidCallMixin):
    """A SIP user agent (UAC and UAS) without I/O. See the module docstring.

    Args:
        local_host, local_port: our address, for Via and Contact.
        user_agent: the User-Agent / Server header value.
        rand: the source of tags, branches and Call-IDs (seed it in tests).
        t1, t2, t4: RFC 3261 timer bases (§17.1.1.1, Table 4).
        ring_on_invite: send 180 Ringing as soon as an INVITE is accepted.
        reject_max_forwards_zero: answer requests whose Max-Forwards is 0 with 483 (a
            proxy's rule, §16.3). Off by default: an endpoint processes them normally
            (RFC 4475 §3.3.11). OPTIONS is always answered (§11).

    Call actions (``ring``, ``answer``, ``hangup``...) take an optional ``now``; without
    it they use the time of the last input, which is exact when the application acts
    from inside the event handler.
    """

    # --- input -----------------------------------------------------------------------------

    def receive_message(self, data: bytes, peer: Peer, now: float) -> None:
        """Feed one datagram (UDP) or one framed message (TCP)."""
        self._time(now)
        if is_keepalive(data):
            return  # RFC 5626 §4.4.1 CRLF keep-alive
        try:
            msg = parse_message(data)
        except SipProtocolError as exc:
            self.receive_parse_error(exc, peer, now)
            return
        self._receive(msg, peer, now)

    def receive_parsed(self, msg: SipRequest | SipResponse, peer: Peer, now: float) -> None:
        """Feed a message the adapter already parsed (``StreamParser`` on TCP)."""
        self._time(now)
        self._receive(msg, peer, now)

    def receive_parse_error(self, exc: SipProtocolError, peer: Peer, now: float) -> None:
        """Feed a parse failure: answer it when the head was readable, else drop it."""
        self._time(now)
        msg = exc.message
        if isinstance(msg, SipRequest):
            self._answer_statelessly(msg, exc, peer)
        else:
            self._emit(MessageRejected(exc.status_hint, exc.reason, peer))

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        self._time(now)
        self._timers.fire_due(now)

    def get_timer(self) -> float | None:
        """The earliest deadline over all transactions and calls, or None."""
        return self._timers.next_deadline()

    def transport_error(self, peer: Peer, now: float) -> None:
        """The adapter could not send to ``peer`` (connect refused, ICMP unreachable...):
        every transaction sending there fails (§17.1.4, §17.2.4)."""
        self._time(now)
        txs = [*self._client_txs.values(), *self._server_txs.values()]
        for tx in txs:
            p = tx.peer
            same_conn = peer.conn_id is not None and p.conn_id == peer.conn_id
            if same_conn or (p.host, p.port, p.transport) == (peer.host, peer.port, peer.transport):
                tx.transport_error(now)

    # --- output ----------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def messages_to_send(self) -> list[tuple[bytes, Peer]]:
        """Everything to put on the wire since the last call, in order."""
        out = self._out
        self._out = []
        return out

    @property
    def calls(self) -> list[Call]:
        """Calls that still have a live dialog (for tests and metrics)."""
        return list(dict.fromkeys(self._dialogs.values()))

    # --- timers ----------------------------------------------------------------------------

    def call_timer(self, call: Call, timer: Timer, now: float) -> None:
        if timer in (Timer.RETRANSMIT_2XX, Timer.ACK_WAIT):
            self._on_2xx_timer(call, timer, now)
        else:
            self._on_uac_timer(call, timer, now)

    # --- routing ---------------------------------------------------------------------------

    def _receive(self, msg: SipRequest | SipResponse, peer: Peer, now: float) -> None:
        if isinstance(msg, SipResponse):
            self._on_response(msg, peer, now)
        else:
            self._on_request(msg, peer, now)

    def _on_response(self, response: SipResponse, peer: Peer, now: float) -> None:
        try:
            validate_response(response)
            if len(response.headers.get_all("Via")) != 1:
                # §8.1.3.3: a response with more than one Via was not meant for us.
                raise SipProtocolError("Response has more than one Via", 400)
            branch = top_via(response).branch or ""
            seq, method = cseq_of(response)
        except SipProtocolError as exc:
            self._emit(MessageRejected(exc.status_hint, exc.reason, peer))
            return
        tx = self._client_txs.get((branch, method))
        if tx is None:
            if method == "INVITE" and 200 <= response.status < 300:
                self._on_stray_2xx(response, seq)
            return
        if peer.conn_id is not None and tx.peer.conn_id is None:
            # Over TCP the ACK for a non-2xx and the dialog's requests reuse this connection.
            tx.peer = Peer(tx.peer.transport, tx.peer.host, tx.peer.port, peer.conn_id)
        try:
            tx.receive_response(response, now)
        except SipProtocolError as exc:
            self._emit(MessageRejected(exc.status_hint, exc.reason, peer))

    def _on_stray_2xx(self, response: SipResponse, seq: int) -> None:
        """A 2xx retransmitted after its transaction ended (§13.2.2.4): re-send the ACK."""
        to_tag = tag_of(response.headers.get("To") or "") or ""
        from_tag = tag_of(response.headers.get("From") or "") or ""
        call = self._dialogs.get((response.call_id, from_tag, to_tag))
        if call is not None:
            self._resend_ack(call, seq, to_tag)

    def _on_request(self, request: SipRequest, peer: Peer, now: float) -> None:
        try:
            validate_request(request)
            key = _server_key(request, request.method)
        except SipProtocolError as exc:
            self._answer_statelessly(request, exc, peer)
            return
        tx = self._server_txs.get(key)
        if tx is not None:
            try:
                tx.receive_request(request, now)  # a retransmission, or the ACK of a non-2xx
            except SipProtocolError as exc:
                self._emit(MessageRejected(exc.status_hint, exc.reason, peer))
            return
        if request.method == "ACK":
            self._on_ack_2xx(request, now)
            return
        reply_to = _reply_peer(request, peer)
        if request.method == "CANCEL":
            self._on_cancel(request, key, _server_key(request, "INVITE"), reply_to, now)
            return
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        tx = cls(self, self._timers, self._config, key, request, reply_to)
        self._server_txs[key] = tx
        try:
            self._check(request, tx)
            self._dispatch(request, tx, peer, now)
        except SipProtocolError as exc:
            if not tx.final_sent:
                self._refuse(tx, request, exc.status_hint, exc, peer, now)

    def _check(self, request: SipRequest, tx: ServerTransaction) -> None:
        """§8.2.1-§8.2.3 (and §16.3 Max-Forwards when asked): raise what to answer."""
        method = request.method
        if method not in ALLOWED_METHODS:
            raise Refusal(405, headers=[("Allow", ALLOW)])  # §8.2.1
        if (
            self.reject_max_forwards_zero
            and method != "OPTIONS"
            and (request.headers.get("Max-Forwards") or "").strip() == "0"
        ):
            raise Refusal(483)
        unknown = [t for t in _tokens(request, "Require") if t.lower() not in SUPPORTED]
        if unknown and method not in ("ACK", "CANCEL"):
            raise Refusal(420, headers=[("Unsupported", ", ".join(unknown))])  # §8.2.2.3
        if request.body:
            encodings = [e for e in _tokens(request, "Content-Encoding") if e.lower() != "identity"]
            if encodings:
                raise Refusal(415, headers=[("Accept-Encoding", "identity")])  # §8.2.3
            accepted = ACCEPT.get(method)
            if accepted is not None and request.content_type not in accepted:
                raise Refusal(415, headers=[("Accept", ", ".join(accepted))])  # §8.2.3
        merged = merge_key(request)
        if merged is not None:
            other = self._merged.get(merged)
            if other is not None and not other.terminated:
                raise Refusal(482)  # §8.2.2.2: the same request again by another path
            self._merged[merged] = tx

    def _dispatch(self, request: SipRequest, tx: ServerTransaction, peer: Peer, now: float) -> None:
        method = request.method
        to_tag = tag_of(request.headers.get("To") or "")
        if to_tag is None:
            if method == "INVITE":
                self._on_invite(request, tx, peer, now)
            elif method == "OPTIONS":
                self._on_options(request, tx, now)
            else:
                raise Refusal(481)  # BYE, INFO, NOTIFY, REFER need a dialog here
            return
        from_tag = tag_of(request.headers.get("From") or "") or ""
        call = self._dialogs.get((request.call_id, to_tag, from_tag))
        if call is None or (call.ended and method != "BYE"):
            raise Refusal(481)  # §12.2.2
        assert call.dialog is not None
        call.dialog.check_remote_seq(request)  # §12.2.2: 500 when out of order
        if peer.conn_id is not None:
            call.dialog.conn_id = peer.conn_id
        tx.owner = call
        if method == "BYE":
            self._on_bye(call, request, tx, now)
        elif method == "INVITE":
            self._on_reinvite(call, request, tx, now)
        elif method == "REFER":
            self._on_refer(call, request, tx, now)
        elif method == "NOTIFY":
            self._on_notify(call, request, tx, now)
        elif method == "INFO":
            self._on_info(call, request, tx, now)
        else:  # OPTIONS inside a dialog
            self._on_options(request, tx, now)

    def _on_options(self, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        """§11.2: 200 with what we allow, accept and support."""
        to_tag = None if tag_of(request.headers.get("To") or "") else self.new_tag()
        extra = [*self._capabilities(), ("Accept", ACCEPT_ALL)]
        tx.respond(self._response(request, 200, to_tag=to_tag, extra=extra), now)

    def _answer_statelessly(self, request: SipRequest, exc: SipProtocolError, peer: Peer) -> None:
        """Answer a request that failed parsing or validation, if it can be answered."""
        status = exc.status_hint if 300 <= exc.status_hint <= 699 else 400
        reason = reason_phrase(exc)
        self._emit(MessageRejected(status, reason, peer))
        if request.method == "ACK" or any(
            not request.headers.get(name) for name in _NEEDED_TO_ANSWER
        ):
            return  # §17.2.3: never answer an ACK; without these a response is meaningless
        to_tag = None if tag_of(request.headers.get("To") or "") else self.new_tag()
        resp = self._response(request, status, reason, to_tag=to_tag)
        # The Via may be what is broken, so answer to where the request came from.
        self._out.append((bytes(resp), peer))


def _tokens(request: SipRequest, name: str) -> list[str]:
    out: list[str] = []
    for value in request.headers.get_all(name):
        out.extend(t for t in (v.strip() for v in value.split(",")) if t)
    return out


def _server_key(request: SipRequest, method: str) -> tuple[str, ...]:
    """§17.2.3: the server transaction a request belongs to.

    ``method`` is the method to match: "INVITE" for an ACK and for the INVITE a CANCEL
    targets, else the request's own (so a CANCEL gets its own transaction).

    Raises:
        SipProtocolError(400): no usable top Via.
    """
    via = top_via(request)
    branch = via.branch or ""
    if method == "ACK":
        method = "INVITE"
    if branch.startswith(MAGIC_COOKIE):
        return (branch, f"{via.host.lower()}:{via.port or DEFAULT_PORT}", method)
    number = (request.headers.get("CSeq") or "").split(None, 1)[0]
    return (
        "rfc2543", request.call_id, request.headers.get("From") or "", number, method,
        request.headers.get("Via") or "",
    )  # fmt: skip


def _reply_peer(request: SipRequest, peer: Peer) -> Peer:
    """Where responses go (§18.2.2, RFC 3581), adding received/rport to the top Via."""
    via = top_via(request)
    params = via.params
    changed = False
    if via.host != peer.host:
        params["received"] = peer.host  # §18.2.1
        changed = True
    if "rport" in params and params["rport"] is None:
        params["rport"] = str(peer.port)  # RFC 3581 §4
        params["received"] = peer.host
        changed = True
    if changed:
        _replace_top_via(request, str(via))
    if peer.reliable:
        return peer  # §18.2.2: the connection the request arrived on
    rport = params.get("rport")
    if rport is not None:
        return Peer(peer.transport, peer.host, peer.port)
    host = params.get("received") or via.host
    return Peer(peer.transport, host, via.port or DEFAULT_PORT)


def _replace_top_via(request: SipRequest, value: str) -> None:
    items = list(request.headers)
    for i, (name, old) in enumerate(items):
        if name == "Via":
            rest = split_header_list(old)[1:]  # a Via line may hold a comma list
            items[i] = (name, ", ".join([value, *rest]))
            break
    request.headers = Headers(items)
