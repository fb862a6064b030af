"""RFC 3261 §17 transactions, all four kinds, as explicit state tables.

Theory of operation
-------------------
A transaction is one request and its responses, plus the ACK when the final response was
not a 2xx. It exists to make an unreliable transport reliable: the client side re-sends
the request until a response arrives, the server side re-sends its last response whenever
the request arrives again, and both linger a while afterwards to absorb stragglers.

Each kind is a table ``{(state, input): (actions, next_state)}`` copied from the RFC's
figures (5 to 8), with RFC 6026's "Accepted" state for INVITE: after a 2xx both sides
linger in Accepted (Timers L and M) so a retransmitted INVITE is absorbed and never seen
as a new call, and every retransmitted 2xx still reaches the UAC core to be re-ACKed.

* Inputs (:class:`TxInput`) are: a response from the wire (1xx, 2xx, 300-699), the request
  again or its ACK from the wire, a response from the TU (the user agent core), a timer
  firing, or a transport error.
* Actions (:class:`Act`) send or re-send a message, pass something to the TU, or arm a
  timer. On every state change the timers that do not belong to the new state are
  cancelled first (``STATE_TIMERS``), so a stale timer can never fire.
* A missing key is an input the state does not accept. From the wire that is the peer's
  fault (:class:`SipProtocolError`, the UA drops the message); from the TU or a timer it
  is ours (:class:`SipUsageError`). Nothing else escapes.

Over a reliable transport the retransmit timers A, E and G are never armed and D, I, J, K
are zero: the timer fires at once, inside the same call, and the transaction terminates.

Transactions do no I/O: they call their :class:`TransactionUser` (the user agent) to send
bytes to a :class:`~trunkline.sip.events.Peer` and to report responses, timeouts,
transport errors and their own end.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Protocol

from trunkline.sip.errors import SipProtocolError, SipUsageError
from trunkline.sip.events import Peer
from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.timers import Timer, TimerConfig, TimerHandle, TimerQueue

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7: branches starting with it are unique per transaction


class TxState(enum.Enum):
    """Transaction states (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2; RFC 6026)."""

    CALLING = "Calling"  # INVITE client: INVITE sent, nothing heard yet
    TRYING = "Trying"  # non-INVITE client: request sent / non-INVITE server: request received
    PROCEEDING = "Proceeding"  # a provisional response was received / sent
    COMPLETED = "Completed"  # a final response (non-2xx for INVITE) was received / sent
    CONFIRMED = "Confirmed"  # INVITE server: the ACK for our non-2xx arrived
    ACCEPTED = "Accepted"  # RFC 6026: INVITE got a 2xx; absorb INVITE, pass 2xx/ACK on
    TERMINATED = "Terminated"


class TxInput(enum.Enum):
    """What can happen to a transaction."""

    RESPONSE_1XX = "1xx received"
    RESPONSE_2XX = "2xx received"
    RESPONSE_FINAL = "300-699 received"
    REQUEST = "request retransmission received"
    ACK = "ACK received"
    SEND_1XX = "1xx from TU"
    SEND_2XX = "2xx from TU"
    SEND_FINAL = "300-699 from TU"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"


WIRE_INPUTS = frozenset({
    TxInput.RESPONSE_1XX, TxInput.RESPONSE_2XX, TxInput.RESPONSE_FINAL,
    TxInput.REQUEST, TxInput.ACK,
})  # fmt: skip

TIMER_INPUT: dict[Timer, TxInput] = {
    Timer.A: TxInput.TIMER_A, Timer.B: TxInput.TIMER_B, Timer.D: TxInput.TIMER_D,
    Timer.E: TxInput.TIMER_E, Timer.F: TxInput.TIMER_F, Timer.G: TxInput.TIMER_G,
    Timer.H: TxInput.TIMER_H, Timer.I: TxInput.TIMER_I, Timer.J: TxInput.TIMER_J,
    Timer.K: TxInput.TIMER_K, Timer.L: TxInput.TIMER_L, Timer.M: TxInput.TIMER_M,
}  # fmt: skip


class Act(enum.Enum):
    """Effects of a transition, run in order."""

    SEND_REQUEST = "send request"
    SEND_ACK = "send ACK"  # §17.1.1.3: ACK for a non-2xx, built by the transaction
    SEND_RESPONSE = "send response"  # the TU's response; remembered for re-sending
    RESEND_RESPONSE = "re-send last response"
    TO_TU = "pass to TU"
    TIMEOUT_TO_TU = "report timeout to TU"
    ERROR_TO_TU = "report transport error to TU"
    ARM_A = "arm A=T1"
    REARM_A = "re-arm A=2A"
    ARM_B = "arm B=64*T1"
    ARM_D = "arm D"
    ARM_E = "arm E=T1"
    REARM_E = "re-arm E=min(2E,T2)"
    REARM_E_T2 = "re-arm E=T2"
    ARM_F = "arm F=64*T1"
    ARM_G = "arm G=T1"
    REARM_G = "re-arm G=min(2G,T2)"
    ARM_H = "arm H=64*T1"
    ARM_I = "arm I"
    ARM_J = "arm J"
    ARM_K = "arm K"
    ARM_L = "arm L=64*T1"
    ARM_M = "arm M=64*T1"


S = TxState
I = TxInput  # noqa: E741
Table = dict[tuple[TxState, TxInput], tuple[tuple[Act, ...], TxState]]

# RFC 3261 Figure 5 with RFC 6026's Accepted state.
INVITE_CLIENT_TABLE: Table = {
    (S.CALLING, I.TIMER_A): ((Act.SEND_REQUEST, Act.REARM_A), S.CALLING),
    (S.CALLING, I.TIMER_B): ((Act.TIMEOUT_TO_TU,), S.TERMINATED),
    (S.CALLING, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    (S.CALLING, I.RESPONSE_1XX): ((Act.TO_TU,), S.PROCEEDING),
    (S.CALLING, I.RESPONSE_2XX): ((Act.TO_TU, Act.ARM_M), S.ACCEPTED),
    (S.CALLING, I.RESPONSE_FINAL): ((Act.SEND_ACK, Act.TO_TU, Act.ARM_D), S.COMPLETED),
    (S.PROCEEDING, I.RESPONSE_1XX): ((Act.TO_TU,), S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): ((Act.TO_TU, Act.ARM_M), S.ACCEPTED),
    (S.PROCEEDING, I.RESPONSE_FINAL): ((Act.SEND_ACK, Act.TO_TU, Act.ARM_D), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    # Completed: re-ACK every retransmitted final response; late 1xx/2xx are stragglers.
    (S.COMPLETED, I.RESPONSE_FINAL): ((Act.SEND_ACK,), S.COMPLETED),
    (S.COMPLETED, I.RESPONSE_1XX): ((), S.COMPLETED),
    (S.COMPLETED, I.RESPONSE_2XX): ((), S.COMPLETED),
    (S.COMPLETED, I.TIMER_D): ((), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    # Accepted (RFC 6026): every 2xx goes to the TU, which ACKs it; the rest is late.
    (S.ACCEPTED, I.RESPONSE_2XX): ((Act.TO_TU,), S.ACCEPTED),
    (S.ACCEPTED, I.RESPONSE_1XX): ((), S.ACCEPTED),
    (S.ACCEPTED, I.RESPONSE_FINAL): ((), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): ((), S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): ((), S.ACCEPTED),
}

# RFC 3261 Figure 6.
NON_INVITE_CLIENT_TABLE: Table = {
    (S.TRYING, I.TIMER_E): ((Act.SEND_REQUEST, Act.REARM_E), S.TRYING),
    (S.TRYING, I.TIMER_F): ((Act.TIMEOUT_TO_TU,), S.TERMINATED),
    (S.TRYING, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    (S.TRYING, I.RESPONSE_1XX): ((Act.TO_TU,), S.PROCEEDING),
    (S.TRYING, I.RESPONSE_2XX): ((Act.TO_TU, Act.ARM_K), S.COMPLETED),
    (S.TRYING, I.RESPONSE_FINAL): ((Act.TO_TU, Act.ARM_K), S.COMPLETED),
    (S.PROCEEDING, I.TIMER_E): ((Act.SEND_REQUEST, Act.REARM_E_T2), S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): ((Act.TIMEOUT_TO_TU,), S.TERMINATED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    (S.PROCEEDING, I.RESPONSE_1XX): ((Act.TO_TU,), S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): ((Act.TO_TU, Act.ARM_K), S.COMPLETED),
    (S.PROCEEDING, I.RESPONSE_FINAL): ((Act.TO_TU, Act.ARM_K), S.COMPLETED),
    # Completed: response retransmissions are absorbed until Timer K.
    (S.COMPLETED, I.RESPONSE_1XX): ((), S.COMPLETED),
    (S.COMPLETED, I.RESPONSE_2XX): ((), S.COMPLETED),
    (S.COMPLETED, I.RESPONSE_FINAL): ((), S.COMPLETED),
    (S.COMPLETED, I.TIMER_K): ((), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((), S.COMPLETED),
}

# RFC 3261 Figure 7 with RFC 6026's Accepted state. The TU sends 100 Trying itself,
# at once (§17.2.1 allows waiting up to 200 ms; we never have a reason to).
INVITE_SERVER_TABLE: Table = {
    (S.PROCEEDING, I.REQUEST): ((Act.RESEND_RESPONSE,), S.PROCEEDING),
    (S.PROCEEDING, I.SEND_1XX): ((Act.SEND_RESPONSE,), S.PROCEEDING),
    (S.PROCEEDING, I.SEND_2XX): ((Act.SEND_RESPONSE, Act.ARM_L), S.ACCEPTED),
    (S.PROCEEDING, I.SEND_FINAL): ((Act.SEND_RESPONSE, Act.ARM_G, Act.ARM_H), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    (S.COMPLETED, I.REQUEST): ((Act.RESEND_RESPONSE,), S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): ((Act.RESEND_RESPONSE, Act.REARM_G), S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): ((Act.TIMEOUT_TO_TU,), S.TERMINATED),
    (S.COMPLETED, I.ACK): ((Act.ARM_I,), S.CONFIRMED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    # Confirmed: absorb ACK and INVITE retransmissions until Timer I.
    (S.CONFIRMED, I.ACK): ((), S.CONFIRMED),
    (S.CONFIRMED, I.REQUEST): ((), S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): ((), S.TERMINATED),
    (S.CONFIRMED, I.TRANSPORT_ERROR): ((), S.CONFIRMED),
    # Accepted (RFC 6026): the TU re-sends the 2xx through us until the ACK comes;
    # a retransmitted INVITE is absorbed; an ACK reusing the INVITE's branch goes to the TU.
    (S.ACCEPTED, I.REQUEST): ((), S.ACCEPTED),
    (S.ACCEPTED, I.SEND_2XX): ((Act.SEND_RESPONSE,), S.ACCEPTED),
    (S.ACCEPTED, I.ACK): ((Act.TO_TU,), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): ((), S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): ((), S.ACCEPTED),
}

# RFC 3261 Figure 8.
NON_INVITE_SERVER_TABLE: Table = {
    (S.TRYING, I.REQUEST): ((), S.TRYING),  # nothing to re-send yet
    (S.TRYING, I.SEND_1XX): ((Act.SEND_RESPONSE,), S.PROCEEDING),
    (S.TRYING, I.SEND_2XX): ((Act.SEND_RESPONSE, Act.ARM_J), S.COMPLETED),
    (S.TRYING, I.SEND_FINAL): ((Act.SEND_RESPONSE, Act.ARM_J), S.COMPLETED),
    (S.PROCEEDING, I.REQUEST): ((Act.RESEND_RESPONSE,), S.PROCEEDING),
    (S.PROCEEDING, I.SEND_1XX): ((Act.SEND_RESPONSE,), S.PROCEEDING),
    (S.PROCEEDING, I.SEND_2XX): ((Act.SEND_RESPONSE, Act.ARM_J), S.COMPLETED),
    (S.PROCEEDING, I.SEND_FINAL): ((Act.SEND_RESPONSE, Act.ARM_J), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((Act.ERROR_TO_TU,), S.TERMINATED),
    (S.COMPLETED, I.REQUEST): ((Act.RESEND_RESPONSE,), S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): ((), S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((), S.TERMINATED),
}

_NO_TIMERS: frozenset[Timer] = frozenset()


class TransactionUser(Protocol):
    """What a transaction calls: the user agent core and its transport."""

    def tx_send(self, data: bytes, peer: Peer) -> None: ...

    def tx_response(self, tx: ClientTransaction, response: SipResponse, now: float) -> None: ...

    def tx_ack(self, tx: ServerTransaction, ack: SipRequest, now: float) -> None: ...

    def tx_timeout(self, tx: Transaction, now: float) -> None: ...

    def tx_transport_error(self, tx: Transaction, now: float) -> None: ...

    def tx_terminated(self, tx: Transaction) -> None: ...


class Transaction:
    """Shared machinery: the table walk, timers and sending. Subclasses set the table."""

    KIND: ClassVar[str]
    TABLE: ClassVar[Table]
    INITIAL: ClassVar[TxState]
    # §17: which timers may run in each state; the rest are cancelled on entry.
    STATE_TIMERS: ClassVar[dict[TxState, frozenset[Timer]]]

    __slots__ = (
        "_armed", "_due_now", "_ended", "_interval", "_response_bytes", "_timers", "_tu",
        "config", "key", "last_response", "owner", "peer", "reliable", "request", "state",
    )  # fmt: skip

    def __init__(
        self,
        tu: TransactionUser,
        timers: TimerQueue,
        config: TimerConfig,
        key: tuple[str, ...],
        request: SipRequest,
        peer: Peer,
    ) -> None:
        self._tu = tu
        self._timers = timers
        self.config = config
        self.key = key
        self.request = request
        self.peer = peer  # client: where the request goes; server: where responses go
        self.reliable = peer.reliable
        self.state = self.INITIAL
        self.last_response: SipResponse | None = None
        self._response_bytes: bytes | None = None
        self._armed: dict[Timer, TimerHandle] = {}
        self._due_now: list[Timer] = []
        self._ended = False
        self._interval = config.t1
        # Whatever the TU wants to find again when this transaction reports back.
        self.owner: object = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.key[0]} {self.state.value}>"

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def armed_timers(self) -> frozenset[Timer]:
        """The timers currently armed (for tests and state-table checks)."""
        return frozenset(t for t, h in self._armed.items() if h.alive)

    def fire(self, inp: TxInput, now: float, msg: SipRequest | SipResponse | None = None) -> None:
        """Apply one input: look up the table, change state, run the actions.

        Raises:
            SipProtocolError: a wire input this state does not accept (drop the message).
            SipUsageError: a TU or timer input this state does not accept (our bug).
        """
        entry = self.TABLE.get((self.state, inp))
        if entry is None:
            what = f"{self.KIND} transaction in state {self.state.value} cannot take {inp.value}"
            if inp in WIRE_INPUTS:
                raise SipProtocolError(what, 500)
            raise SipUsageError(what)
        actions, next_state = entry
        if next_state is not self.state:
            keep = self.STATE_TIMERS.get(next_state, _NO_TIMERS)
            for timer in [t for t in self._armed if t not in keep]:
                self._armed.pop(timer).cancel()
            self.state = next_state
        for act in actions:
            if self._ended:  # the TU abandoned us from a callback
                return
            self._run(act, now, msg)
        if self.state is TxState.TERMINATED:
            self._terminate()
            return
        # Zero-length timers (D, I, J, K over a reliable transport) fire right here.
        while self._due_now and not self._ended:
            self.fire(TIMER_INPUT[self._due_now.pop(0)], now)

    def on_timer(self, timer: Timer, now: float) -> None:
        """TimerOwner hook: a timer this transaction armed is due."""
        self._armed.pop(timer, None)
        self.fire(TIMER_INPUT[timer], now)

    def transport_error(self, now: float) -> None:
        """The transport could not deliver our last message (§17.1.4, §17.2.4)."""
        if self.state is not TxState.TERMINATED:
            self.fire(TxInput.TRANSPORT_ERROR, now)

    def abandon(self) -> None:
        """Stop without telling the peer anything (the TU lost interest, e.g. on shutdown)."""
        self.state = TxState.TERMINATED
        self._terminate()

    def _terminate(self) -> None:
        if self._ended:
            return
        self._ended = True
        for handle in self._armed.values():
            handle.cancel()
        self._armed.clear()
        self._due_now.clear()
        self._tu.tx_terminated(self)

    def _arm(self, timer: Timer, duration: float, now: float) -> None:
        old = self._armed.pop(timer, None)
        if old is not None:
            old.cancel()
        if duration <= 0:
            self._due_now.append(timer)
        else:
            self._armed[timer] = self._timers.arm(now + duration, self, timer)

    def _run(self, act: Act, now: float, msg: SipRequest | SipResponse | None) -> None:
        cfg = self.config
        if act is Act.SEND_REQUEST:
            self._tu.tx_send(self._request_bytes(), self.peer)
        elif act is Act.SEND_RESPONSE:
            assert isinstance(msg, SipResponse)
            self.last_response = msg
            self._response_bytes = bytes(msg)
            self._tu.tx_send(self._response_bytes, self.peer)
        elif act is Act.RESEND_RESPONSE:
            if self._response_bytes is not None:
                self._tu.tx_send(self._response_bytes, self.peer)
        elif act is Act.SEND_ACK:
            assert isinstance(msg, SipResponse)
            self._send_ack(msg)
        elif act is Act.TO_TU:
            self._to_tu(msg, now)
        elif act is Act.TIMEOUT_TO_TU:
            self._tu.tx_timeout(self, now)
        elif act is Act.ERROR_TO_TU:
            self._tu.tx_transport_error(self, now)
        elif act in (Act.ARM_A, Act.ARM_E, Act.ARM_G):
            if not self.reliable:  # §17.1.1.2, §17.1.2.2, §17.2.1: UDP only
                self._interval = cfg.t1
                self._arm(_ARM_TIMER[act], self._interval, now)
        elif act is Act.REARM_A:
            self._interval *= 2
            self._arm(Timer.A, self._interval, now)
        elif act in (Act.REARM_E, Act.REARM_G):
            self._interval = min(2 * self._interval, cfg.t2)
            self._arm(_ARM_TIMER[act], self._interval, now)
        elif act is Act.REARM_E_T2:
            self._interval = cfg.t2
            self._arm(Timer.E, self._interval, now)
        elif act in (Act.ARM_B, Act.ARM_F, Act.ARM_H, Act.ARM_L, Act.ARM_M):
            self._arm(_ARM_TIMER[act], cfg.timeout, now)
        elif act is Act.ARM_D:
            self._arm(Timer.D, cfg.d(self.reliable), now)
        elif act is Act.ARM_I:
            self._arm(Timer.I, cfg.i(self.reliable), now)
        elif act is Act.ARM_J:
            self._arm(Timer.J, cfg.j(self.reliable), now)
        elif act is Act.ARM_K:
            self._arm(Timer.K, cfg.k(self.reliable), now)
        else:  # pragma: no cover - every Act is handled above
            raise SipUsageError(f"unhandled transaction action {act}")

    def _request_bytes(self) -> bytes:
        raise SipUsageError(f"a {self.KIND} transaction does not send requests")

    def _send_ack(self, response: SipResponse) -> None:
        raise SipUsageError(f"a {self.KIND} transaction does not send ACK")

    def _to_tu(self, msg: SipRequest | SipResponse | None, now: float) -> None:
        raise SipUsageError(f"a {self.KIND} transaction has nothing to pass up")


_ARM_TIMER: dict[Act, Timer] = {
    Act.ARM_A: Timer.A, Act.ARM_E: Timer.E, Act.ARM_G: Timer.G, Act.REARM_E: Timer.E,
    Act.REARM_G: Timer.G, Act.ARM_B: Timer.B, Act.ARM_F: Timer.F, Act.ARM_H: Timer.H,
    Act.ARM_L: Timer.L, Act.ARM_M: Timer.M,
}  # fmt: skip


class ClientTransaction(Transaction):
    """The client side (§17.1): sends the request and re-sends it until answered."""

    START: ClassVar[tuple[Act, ...]]
    __slots__ = ("_ack_bytes", "_wire")

    def __init__(
        self,
        tu: TransactionUser,
        timers: TimerQueue,
        config: TimerConfig,
        key: tuple[str, ...],
        request: SipRequest,
        peer: Peer,
    ) -> None:
        super().__init__(tu, timers, config, key, request, peer)
        self._wire = bytes(request)
        self._ack_bytes: bytes | None = None

    def start(self, now: float) -> None:
        """Send the request and arm the first timers (the "initiated" arrow of each figure)."""
        for act in self.START:
            self._run(act, now, None)

    def receive_response(self, response: SipResponse, now: float) -> None:
        """A response matched to this transaction by :func:`response_key` (§17.1.3)."""
        inputs = (TxInput.RESPONSE_1XX, TxInput.RESPONSE_2XX, TxInput.RESPONSE_FINAL)
        self.fire(_by_status_class(response.status, inputs), now, response)

    def _request_bytes(self) -> bytes:
        return self._wire

    def _to_tu(self, msg: SipRequest | SipResponse | None, now: float) -> None:
        assert isinstance(msg, SipResponse)
        self._tu.tx_response(self, msg, now)


class InviteClientTransaction(ClientTransaction):
    """§17.1.1: INVITE client transaction (Timers A, B, D; RFC 6026 M)."""

    KIND = "INVITE client"
    TABLE = INVITE_CLIENT_TABLE
    INITIAL = TxState.CALLING
    START = (Act.SEND_REQUEST, Act.ARM_A, Act.ARM_B)
    STATE_TIMERS = {
        TxState.CALLING: frozenset({Timer.A, Timer.B}),
        TxState.COMPLETED: frozenset({Timer.D}),
        TxState.ACCEPTED: frozenset({Timer.M}),
    }
    __slots__ = ()

    def _send_ack(self, response: SipResponse) -> None:
        # The same ACK answers every retransmission of the final response (§17.1.1.2).
        if self._ack_bytes is None:
            self._ack_bytes = bytes(build_non2xx_ack(self.request, response))
        self._tu.tx_send(self._ack_bytes, self.peer)


class NonInviteClientTransaction(ClientTransaction):
    """§17.1.2: non-INVITE client transaction (Timers E, F, K)."""

    KIND = "non-INVITE client"
    TABLE = NON_INVITE_CLIENT_TABLE
    INITIAL = TxState.TRYING
    START = (Act.SEND_REQUEST, Act.ARM_E, Act.ARM_F)
    STATE_TIMERS = {
        TxState.TRYING: frozenset({Timer.E, Timer.F}),
        TxState.PROCEEDING: frozenset({Timer.E, Timer.F}),
        TxState.COMPLETED: frozenset({Timer.K}),
    }
    __slots__ = ()


class ServerTransaction(Transaction):
    """The server side (§17.2): re-sends the last response whenever the request repeats."""

    __slots__ = ()

    def receive_request(self, request: SipRequest, now: float) -> None:
        """The request again (a retransmission) or, for INVITE, its ACK (§17.2.3 match)."""
        inp = TxInput.ACK if request.method == "ACK" else TxInput.REQUEST
        self.fire(inp, now, request)

    def respond(self, response: SipResponse, now: float) -> None:
        """Send a response from the TU (§17.2.1, §17.2.2)."""
        inputs = (TxInput.SEND_1XX, TxInput.SEND_2XX, TxInput.SEND_FINAL)
        self.fire(_by_status_class(response.status, inputs), now, response)

    @property
    def final_sent(self) -> bool:
        """Whether a final response went out (CANCEL then has no effect, §9.2)."""
        return self.last_response is not None and self.last_response.status >= 200

    def _to_tu(self, msg: SipRequest | SipResponse | None, now: float) -> None:
        assert isinstance(msg, SipRequest)
        self._tu.tx_ack(self, msg, now)


class InviteServerTransaction(ServerTransaction):
    """§17.2.1: INVITE server transaction (Timers G, H, I; RFC 6026 L)."""

    KIND = "INVITE server"
    TABLE = INVITE_SERVER_TABLE
    INITIAL = TxState.PROCEEDING
    STATE_TIMERS = {
        TxState.COMPLETED: frozenset({Timer.G, Timer.H}),
        TxState.CONFIRMED: frozenset({Timer.I}),
        TxState.ACCEPTED: frozenset({Timer.L}),
    }
    __slots__ = ()


class NonInviteServerTransaction(ServerTransaction):
    """§17.2.2: non-INVITE server transaction (Timer J)."""

    KIND = "non-INVITE server"
    TABLE = NON_INVITE_SERVER_TABLE
    INITIAL = TxState.TRYING
    STATE_TIMERS = {TxState.COMPLETED: frozenset({Timer.J})}
    __slots__ = ()


ALL_KINDS: tuple[type[Transaction], ...] = (
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
)


def _cseq_number(request: SipRequest) -> str:
    value = request.headers.get("CSeq") or ""
    return value.split(None, 1)[0] if value.strip() else "0"


def build_non2xx_ack(request: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a non-2xx final response to ``request`` (§17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and top Via (so the same branch) as the
    INVITE; To from the response (it carries the UAS's tag); the INVITE's Route headers.
    """
    headers = Headers()
    via = request.headers.get("Via")
    if via is not None:
        headers.add("Via", via)
    headers.add("Max-Forwards", "70")
    for name in ("From",):
        value = request.headers.get(name)
        if value is not None:
            headers.add(name, value)
    headers.add("To", response.headers.get("To") or request.headers.get("To") or "")
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{_cseq_number(request)} ACK")
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    return SipRequest(headers=headers, method="ACK", uri=request.uri)


def build_cancel(request: SipRequest) -> SipRequest:
    """The CANCEL for ``request`` (§9.1).

    Same Request-URI, Call-ID, To, From, CSeq number and top Via (branch) as the request
    being cancelled, and its Route headers; CANCEL carries no body.
    """
    headers = Headers()
    via = request.headers.get("Via")
    if via is not None:
        headers.add("Via", via)
    headers.add("Max-Forwards", "70")
    for name in ("From", "To", "Call-ID"):
        value = request.headers.get(name)
        if value is not None:
            headers.add(name, value)
    headers.add("CSeq", f"{_cseq_number(request)} CANCEL")
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    return SipRequest(headers=headers, method="CANCEL", uri=request.uri)


__all__ = [
    "ALL_KINDS",
    "INVITE_CLIENT_TABLE",
    "INVITE_SERVER_TABLE",
    "MAGIC_COOKIE",
    "NON_INVITE_CLIENT_TABLE",
    "NON_INVITE_SERVER_TABLE",
    "Act",
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "Transaction",
    "TransactionUser",
    "TxInput",
    "TxState",
    "build_cancel",
    "build_non2xx_ack",
]


def _by_status_class(status: int, inputs: tuple[TxInput, TxInput, TxInput]) -> TxInput:
    """The input for a provisional, a 2xx or another final response (§17.1.1, §17.2.1)."""
    if status < 200:
        return inputs[0]
    return inputs[1] if status < 300 else inputs[2]
