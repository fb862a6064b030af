"""The user agent's shared plumbing: state, identifiers, message builders, transactions.

``UserAgent`` (``ua.py``) is assembled from this base and three mixins that each own one
part of RFC 3261: ``uas.py`` (answering INVITEs, §13.3), ``uac.py`` (placing them,
§13.2, and OPTIONS, §11) and ``midcall.py`` (BYE, re-INVITE, REFER/NOTIFY, INFO: §14,
§15, RFC 3515, RFC 6086). Everything the mixins share lives here: the output queues, the
transaction and dialog tables, the timer queue, and the :class:`TransactionUser` hooks
through which the transactions report back.
"""

from __future__ import annotations

import abc
import random
from collections import deque
from collections.abc import Callable

from trunkline.sip.call import Call, CallState
from trunkline.sip.dialog import Dialog, DialogKey, DialogState
from trunkline.sip.errors import SipProtocolError
from trunkline.sip.events import CallEnded, Event, MessageRejected, Peer
from trunkline.sip.headers import tag_of
from trunkline.sip.message import REASON_PHRASES, SipRequest, SipResponse, make_response
from trunkline.sip.timers import Timer, TimerConfig, TimerQueue
from trunkline.sip.transaction import (
    MAGIC_COOKIE,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    ServerTransaction,
    Transaction,
)

# What we implement (RFC 3261 §20.5 Allow). UPDATE, PRACK, SUBSCRIBE, PUBLISH, MESSAGE and
# REGISTER get 405 with this list (§8.2.1).
ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REFER", "NOTIFY", "INFO")
ALLOW = ", ".join(ALLOWED_METHODS)
# Option tags we support (§8.2.2.3, §20.37). None yet: "timer" (RFC 4028) and "100rel"
# (RFC 3262) need procedures we do not run, so a Require of them gets 420.
SUPPORTED: frozenset[str] = frozenset()
# Body types per method (§8.2.3); a request with another type gets 415 with Accept.
SDP = "application/sdp"
DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")
SIPFRAG = "message/sipfrag"
ACCEPT = {"INVITE": (SDP,), "INFO": DTMF_TYPES, "NOTIFY": (SIPFRAG,)}
ACCEPT_ALL = ", ".join((SDP, *DTMF_TYPES, SIPFRAG))
# §14.2: Retry-After for a re-INVITE that overlaps ours is "between 0 and 10 seconds".
REINVITE_RETRY_AFTER_MAX = 10
# RFC 3515 leaves the implicit subscription's duration to the notifier; 60 s covers
# a blind transfer's ringing with margin.
REFER_SUBSCRIPTION_EXPIRES = 60

# A reason phrase we put on the wire from an error text: one line, bounded.
MAX_REASON_CHARS = 120

ResponseHandler = Callable[[ClientTransaction, SipResponse, float], None]


def ignore_response(tx: ClientTransaction, response: SipResponse, now: float) -> None:
    """For requests whose outcome changes nothing (BYE, INFO, NOTIFY)."""


class Refusal(SipProtocolError):
    """A request we answer with ``status_hint`` and a standard reason phrase, plus headers
    (Allow with 405, Unsupported with 420, Accept with 415, Retry-After with 500...)."""

    def __init__(self, status: int, *, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(REASON_PHRASES.get(status, "Refused"), status)
        self.headers = headers or []


def reason_phrase(exc: SipProtocolError) -> str:
    """The reason phrase for an error answer: the standard one for a Refusal, else the
    error's own text made safe for a status line (§25.1 Reason-Phrase, one line)."""
    if isinstance(exc, Refusal):
        return exc.reason
    text = " ".join(exc.reason.split())[:MAX_REASON_CHARS]
    return text or REASON_PHRASES.get(exc.status_hint, "Error")


class UABase(abc.ABC):
    """State and helpers shared by the UAS, UAC and mid-call mixins."""

    def __init__(
        self,
        *,
        local_host: str,
        local_port: int,
        user_agent: str = "trunkline",
        rand: random.Random | None = None,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        ring_on_invite: bool = False,
        reject_max_forwards_zero: bool = False,
    ) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self.user_agent = user_agent
        self.ring_on_invite = ring_on_invite
        self.reject_max_forwards_zero = reject_max_forwards_zero
        self._rand = rand if rand is not None else random.Random()
        self._config = TimerConfig(t1=t1, t2=t2, t4=t4)
        self._timers = TimerQueue()
        self._now = 0.0
        self._events: deque[Event] = deque()
        self._out: list[tuple[bytes, Peer]] = []
        self._client_txs: dict[tuple[str, ...], ClientTransaction] = {}
        self._server_txs: dict[tuple[str, ...], ServerTransaction] = {}
        # §8.2.2.2 merged-request detection: (Call-ID, From tag, CSeq) of out-of-dialog
        # requests whose server transaction is alive.
        self._merged: dict[tuple[str, str, str], ServerTransaction] = {}
        self._dialogs: dict[DialogKey, Call] = {}
        self._handlers: dict[ClientTransaction, ResponseHandler] = {}
        self._next_id = 1

    # --- identifiers (§8.1.1.4, §8.1.1.7, §19.3) ---------------------------------------------

    def _hex(self) -> str:
        return f"{self._rand.getrandbits(64):016x}"

    def new_branch(self) -> str:
        """A branch with the RFC 3261 magic cookie (§8.1.1.7)."""
        return MAGIC_COOKIE + self._hex()

    def new_tag(self) -> str:
        """A From/To tag: 48 random bits (§19.3 asks for at least 32)."""
        return self._hex()[:12]

    def new_call_id(self) -> str:
        return f"{self._hex()}{self._hex()[:8]}@{self.local_host}"

    def _next(self) -> int:
        n = self._next_id
        self._next_id += 1
        return n

    # --- builders ----------------------------------------------------------------------------

    def _via(self, transport: str, branch: str) -> str:
        # rport asks the peer to answer to our source port (RFC 3581 §3).
        return (
            f"SIP/2.0/{transport.upper()} {self.local_host}:{self.local_port};branch={branch};rport"
        )

    def contact(self, transport: str) -> str:
        """Our Contact: local_host:local_port, with ;transport=tcp over TCP (§8.1.1.8)."""
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{self.local_host}:{self.local_port}{suffix}>"

    def _response(
        self,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        contact: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> SipResponse:
        resp = make_response(request, status, reason, to_tag=to_tag)
        if contact is not None:
            resp.headers.add("Contact", contact)
        for name, value in extra or ():
            resp.headers.add(name, value)
        resp.headers.add("Server", self.user_agent)
        if content_type is not None:
            resp.headers.add("Content-Type", content_type)
        resp.body = body
        return resp

    def _capabilities(self) -> list[tuple[str, str]]:
        """Allow and Supported, for INVITE/OPTIONS requests and their 2xx (§13.2.1)."""
        return [("Allow", ALLOW), ("Supported", ", ".join(sorted(SUPPORTED)))]

    # --- output --------------------------------------------------------------------------------

    def _time(self, now: float | None) -> float:
        """``now`` if the caller passed it (and remember it), else the last input's time."""
        if now is None:
            return self._now
        if now > self._now:
            self._now = now
        return now

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _end(self, call: Call, by: str, reason: str, *, forget: bool = True) -> None:
        """Emit the call's one terminal CallEnded; forget its dialog unless told not to."""
        if call.ended:
            return
        call.state = CallState.ENDED
        if forget:
            self._forget(call)
        self._emit(CallEnded(call, "remote" if by == "remote" else "local", reason))

    def _forget(self, call: Call) -> None:
        """Stop the call's timers and stop matching requests to its dialog."""
        call.disarm(Timer.C, Timer.RETRANSMIT_2XX, Timer.ACK_WAIT)
        call.ok_bytes = None
        if call.dialog is not None and self._dialogs.get(call.dialog.key) is call:
            del self._dialogs[call.dialog.key]

    def _refuse(
        self,
        tx: ServerTransaction,
        request: SipRequest,
        status: int,
        exc: SipProtocolError | None,
        peer: Peer,
        now: float,
    ) -> None:
        """Answer a request we will not process, and report it (MessageRejected)."""
        reason = reason_phrase(exc) if exc is not None else REASON_PHRASES.get(status, "Error")
        extra = exc.headers if isinstance(exc, Refusal) else None
        to_tag = None if tag_of(request.headers.get("To") or "") else self.new_tag()
        tx.respond(self._response(request, status, reason, to_tag=to_tag, extra=extra), now)
        self._emit(MessageRejected(status, reason, peer))

    # --- client transactions (§17.1) -------------------------------------------------------

    def _start_client_tx(
        self,
        request: SipRequest,
        branch: str,
        peer: Peer,
        handler: ResponseHandler,
        now: float,
    ) -> ClientTransaction:
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        request.headers.add("User-Agent", self.user_agent)
        tx: ClientTransaction = cls(
            self, self._timers, self._config, (branch, request.method), request, peer
        )
        self._client_txs[tx.key] = tx
        self._handlers[tx] = handler
        tx.start(now)
        return tx

    def _send_request(
        self,
        dialog: Dialog,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        handler: ResponseHandler = ignore_response,
        target_refresh: bool = False,
    ) -> ClientTransaction:
        """Send an in-dialog request built per §12.2.1.1 in a new client transaction."""
        peer = dialog.next_hop()
        branch = self.new_branch()
        request = dialog.create_request(
            method,
            via=self._via(peer.transport, branch),
            contact=self.contact(peer.transport) if target_refresh else None,
            body=body,
            content_type=content_type,
            extra=extra,
        )
        return self._start_client_tx(request, branch, peer, handler, now)

    def _send_bye(self, call: Call, now: float) -> None:
        """§15.1.1: BYE ends the dialog at once; its response changes nothing."""
        dialog = call.dialog
        if dialog is None or dialog.state is DialogState.TERMINATED:
            return
        self._send_request(dialog, "BYE", now)
        dialog.state = DialogState.TERMINATED

    def _send_ack_2xx(self, call: Call, dialog: Dialog, cseq: int) -> None:
        """ACK a 2xx to INVITE: same CSeq number, method ACK, new branch (§13.2.2.4).

        The bytes are kept so each retransmitted 2xx gets the identical ACK.
        """
        peer = dialog.next_hop()
        ack = dialog.create_request(
            "ACK", via=self._via(peer.transport, self.new_branch()), cseq=cseq
        )
        ack.headers.add("User-Agent", self.user_agent)
        data = bytes(ack)
        # Only the latest INVITE's 2xx can still be retransmitted; drop older ACKs.
        call.acks = {k: v for k, v in call.acks.items() if k[0] == cseq}
        call.acks[(cseq, dialog.remote_tag)] = (data, peer)
        self._out.append((data, peer))

    def _resend_ack(self, call: Call, cseq: int, remote_tag: str) -> bool:
        """Re-send the ACK for a retransmitted 2xx; False if we never ACKed it."""
        sent = call.acks.get((cseq, remote_tag))
        if sent is None:
            return False
        self._out.append(sent)
        return True

    def _retransmit_2xx(self, call: Call, data: bytes, peer: Peer, cseq: int, now: float) -> None:
        """§13.3.1.4: re-send our 2xx at T1, 2*T1... capped at T2 until the ACK; give up
        after 64*T1."""
        call.ok_bytes = data
        call.ok_peer = peer
        call.ok_cseq = cseq
        call.ok_interval = self._config.t1
        call.arm(self._timers, Timer.RETRANSMIT_2XX, now + call.ok_interval)
        call.arm(self._timers, Timer.ACK_WAIT, now + self._config.timeout)

    # --- TransactionUser hooks (called by transactions) ----------------------------------------

    def tx_send(self, data: bytes, peer: Peer) -> None:
        self._out.append((data, peer))

    def tx_response(self, tx: ClientTransaction, response: SipResponse, now: float) -> None:
        handler = self._handlers.get(tx)
        if handler is not None:
            handler(tx, response, now)

    def tx_ack(self, tx: ServerTransaction, ack: SipRequest, now: float) -> None:
        # An ACK for our 2xx that reused the INVITE's branch (RFC 2543 peers, RFC 6026).
        self._on_ack_2xx(ack, now)

    def tx_timeout(self, tx: Transaction, now: float) -> None:
        # §8.1.3.1: a client transaction timeout is treated as a 408.
        if isinstance(tx, ClientTransaction):
            self.tx_response(tx, make_response(tx.request, 408), now)

    def tx_transport_error(self, tx: Transaction, now: float) -> None:
        # §8.1.3.1: a transport failure is treated as a 503.
        if isinstance(tx, ClientTransaction):
            self.tx_response(tx, make_response(tx.request, 503), now)
        elif isinstance(tx.owner, Call) and tx.owner.invite_tx is tx:
            self._end(tx.owner, "remote", "transport error")

    def tx_terminated(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            if self._client_txs.get(tx.key) is tx:
                del self._client_txs[tx.key]
            self._handlers.pop(tx, None)
        elif isinstance(tx, ServerTransaction):
            if self._server_txs.get(tx.key) is tx:
                del self._server_txs[tx.key]
            merged = merge_key(tx.request)
            if merged is not None and self._merged.get(merged) is tx:
                del self._merged[merged]

    # --- hooks the mixins implement ----------------------------------------------------------

    @abc.abstractmethod
    def _on_ack_2xx(self, ack: SipRequest, now: float) -> None:
        """An ACK for our 2xx arrived (uas.py)."""

    @abc.abstractmethod
    def _cancel(self, call: Call, now: float, reason: str) -> None:
        """Cancel our outgoing INVITE (uac.py)."""

    @abc.abstractmethod
    def call_timer(self, call: Call, timer: Timer, now: float) -> None:
        """A call-level timer fired (2xx retransmission, ACK wait...; ua.py)."""


def merge_key(request: SipRequest) -> tuple[str, str, str] | None:
    """(Call-ID, From tag, CSeq) of an out-of-dialog request, for §8.2.2.2."""
    if tag_of(request.headers.get("To") or "") is not None:
        return None
    from_tag = tag_of(request.headers.get("From") or "")
    if from_tag is None:
        return None
    return (request.call_id, from_tag, request.headers.get("CSeq") or "")
