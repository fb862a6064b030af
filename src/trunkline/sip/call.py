"""The call handle the user agent gives its application, and the call's own state.

Theory of operation
-------------------
A :class:`Call` is one INVITE dialog seen from the application: the object events carry
and the argument of every call action (``ring``, ``answer``, ``hangup``...). Its
:class:`CallState` follows RFC 3261 §13:

    inbound:  INCOMING --ring--> EARLY --answer--> ANSWERED --ACK--> CONFIRMED --> ENDED
    outbound: CALLING --1xx--> EARLY --2xx (we ACK)--> CONFIRMED --> ENDED

ENDED is entered exactly when the call's terminal event is emitted (``CallFailed``,
``CallCancelled`` or ``CallEnded``); the user agent may still be finishing the protocol
afterwards (waiting for the 487 after our CANCEL, ACK-and-BYE for a 2xx that raced our
CANCEL, the BYE's 200), but the application is done with the call.

Besides the state, the call keeps what the user agent core needs for the procedures the
transaction layer does not cover: the 2xx retransmission of a UAS until its ACK
(§13.3.1.4), the ACKs a UAC re-sends for retransmitted 2xx (§13.2.2.4), the pending
re-INVITE in each direction (§14), and the implicit REFER subscription (RFC 3515).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal, Protocol

from trunkline.sip.events import Peer
from trunkline.sip.timers import Timer, TimerHandle, TimerQueue

if TYPE_CHECKING:
    from trunkline.sip.dialog import Dialog
    from trunkline.sip.message import SipRequest
    from trunkline.sip.transaction import ClientTransaction, ServerTransaction


class CallState(enum.Enum):
    """Where a call stands (RFC 3261 §13)."""

    CALLING = "calling"  # §13.2.1: our INVITE is out, nothing above 100 back yet
    INCOMING = "incoming"  # §13.3.1: an INVITE arrived; the application decides
    EARLY = "early"  # §13.2.2.1 / §13.3.1.1: a provisional (180/183) was received / sent
    ANSWERED = "answered"  # §13.3.1.4: we sent 2xx and re-send it until the ACK comes
    CONFIRMED = "confirmed"  # §13.2.2.4 / §13.3.1.4: 2xx and ACK exchanged
    ENDED = "ended"  # the terminal event was emitted


class _CallTimerSink(Protocol):
    def call_timer(self, call: Call, timer: Timer, now: float) -> None: ...


class Call:
    """A call handle (opaque to the application apart from the read-only fields below).

    Attributes:
        id: a small integer unique within the user agent, for logs.
        call_id: the SIP Call-ID.
        direction: "inbound" (we are the UAS) or "outbound" (we are the UAC).
        state: the :class:`CallState`.
        peer: where the INVITE came from / went to.
        dialog: the dialog, once there is one (§12).
    """

    __slots__ = (
        "_timers", "_ua", "acks", "bye_after_ack", "call_id", "cancel_sent", "cancelling",
        "dialog", "direction", "got_provisional", "id", "invite", "invite_tx", "local_tag",
        "ok_bytes", "ok_cseq", "ok_interval", "ok_peer", "peer", "refer_in", "refer_out",
        "reinvite_in", "reinvite_out", "state",
    )  # fmt: skip

    def __init__(
        self,
        ua: _CallTimerSink,
        call_id_: int,
        *,
        call_id: str,
        direction: Literal["inbound", "outbound"],
        state: CallState,
        peer: Peer,
        invite: SipRequest,
        local_tag: str,
    ) -> None:
        self._ua = ua
        self.id = call_id_
        self.call_id = call_id
        self.direction: Literal["inbound", "outbound"] = direction
        self.state = state
        self.peer = peer
        self.invite = invite
        self.local_tag = local_tag
        self.dialog: Dialog | None = None
        self.invite_tx: ClientTransaction | ServerTransaction | None = None
        self._timers: dict[Timer, TimerHandle] = {}
        # UAC: the INVITE's CANCEL is wanted (hangup before answer) / already sent (§9.1).
        self.cancelling = False
        self.cancel_sent = False
        self.got_provisional = False  # any 1xx, 100 included, allows CANCEL (§9.1)
        # UAC: ACK bytes per (INVITE CSeq, remote tag), re-sent per retransmitted 2xx (§13.2.2.4).
        self.acks: dict[tuple[int, str], tuple[bytes, Peer]] = {}
        # UAS: the 2xx we re-send until its ACK arrives (§13.3.1.4).
        self.ok_bytes: bytes | None = None
        self.ok_peer: Peer | None = None
        self.ok_cseq = 0
        self.ok_interval = 0.0
        self.bye_after_ack = False  # §15: the callee may not BYE before the ACK
        # §14: at most one INVITE transaction in progress per dialog, in either direction.
        self.reinvite_in: ServerTransaction | None = None
        self.reinvite_out: ClientTransaction | None = None
        # RFC 3515 implicit subscriptions: we sent a REFER / we accepted one.
        self.refer_out = False
        self.refer_in = False

    def __repr__(self) -> str:
        return f"<Call #{self.id} {self.direction} {self.state.value} {self.call_id}>"

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    # --- timers ---------------------------------------------------------------------------

    def arm(self, timers: TimerQueue, timer: Timer, deadline: float) -> None:
        """(Re-)arm one of the call's own timers."""
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()
        self._timers[timer] = timers.arm(deadline, self, timer)

    def disarm(self, *timers: Timer) -> None:
        for timer in timers:
            handle = self._timers.pop(timer, None)
            if handle is not None:
                handle.cancel()

    def armed(self, timer: Timer) -> bool:
        handle = self._timers.get(timer)
        return handle is not None and handle.alive

    def on_timer(self, timer: Timer, now: float) -> None:
        """TimerOwner hook."""
        self._timers.pop(timer, None)
        self._ua.call_timer(self, timer, now)
