"""Events the SIP user agent hands to its application (the h11 ``next_event()`` pattern).

Every event is a small frozen dataclass. Call-scoped events carry the :class:`Call` handle
the user agent created (for an inbound call, the one in :class:`IncomingCall`; for an
outbound call, the one ``UserAgent.invite`` returned), so the application keys its own
state on that object.

Every call ends with exactly one *terminal* event: :class:`CallFailed` (our INVITE got a
final non-2xx answer or none at all), :class:`CallCancelled` (the caller cancelled before
we answered) or :class:`CallEnded` (either side hung up, including ``reject``/``hangup``
issued by the application itself). ``TERMINAL_EVENTS`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from trunkline.sip.call import Call


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a SIP message came from or goes to.

    ``conn_id`` is the adapter's handle of a TCP connection. On a message the adapter
    delivers it names the connection the message arrived on. On a message the user agent
    emits it means "send on this connection if it is still open, else connect to
    host:port" (RFC 3261 §18.2.2 for responses; connection reuse for in-dialog requests).
    ``None`` means "any connection to host:port, or a new one".
    """

    transport: str  # "udp" | "tcp"
    host: str
    port: int
    conn_id: int | None = None

    @property
    def reliable(self) -> bool:
        """True for stream transports, where §17 turns off retransmission timers."""
        return self.transport != "udp"


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE arrived (§13.3.1). Answer with ring/answer/reject on ``call``.

    ``sdp`` is b"" for an offerless INVITE (the offer then goes in our 200, §13.2.1).
    ``headers`` are the INVITE's headers in arrival order, for routing and tenancy.
    """

    call: Call
    request_uri: str
    from_: str
    to: str
    sdp: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CallRinging:
    """Our INVITE got a provisional response above 100 (180, 183 with early media...)."""

    call: Call
    status: int
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """Our INVITE got a 2xx; the UA has already sent the ACK (§13.2.2.4)."""

    call: Call
    sdp: bytes


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The ACK for our 2xx to an inbound INVITE arrived (§13.3.1.4).

    ``sdp`` is the ACK's body when the INVITE had no offer (the answer rides in the ACK).
    """

    call: Call
    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """Terminal: our INVITE got a final non-2xx response, timed out (408) or could not be
    sent (503, §8.1.3.1)."""

    call: Call
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallCancelled:
    """Terminal: the caller sent CANCEL before we answered. The UA already answered
    200 to the CANCEL and 487 to the INVITE (§9.2)."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallEnded:
    """Terminal: the call is over.

    ``by="remote"``: the peer sent BYE (reason "bye"), or the dialog died (reason
    "dialog lost"). ``by="local"``: the application hung up or rejected, or the UA ended
    the call itself (reason "ack timeout": no ACK for our 2xx within 64*T1, §13.3.1.4).
    """

    call: Call
    by: Literal["remote", "local"]
    reason: str


@dataclass(frozen=True, slots=True)
class ReinviteReceived:
    """The peer sent a re-INVITE (§14.2). Reply with answer_reinvite or reject_reinvite.

    ``sdp`` is b"" when the re-INVITE carries no offer; then our 200 holds the offer.
    """

    call: Call
    sdp: bytes


@dataclass(frozen=True, slots=True)
class ReinviteAnswered:
    """Our re-INVITE got a 2xx; the UA has already sent the ACK."""

    call: Call
    sdp: bytes


@dataclass(frozen=True, slots=True)
class ReinviteFailed:
    """Our re-INVITE got a final non-2xx response (491 on glare, §14.1) or timed out
    (408). The session parameters stay as they were."""

    call: Call
    status: int


@dataclass(frozen=True, slots=True)
class ReferReceived:
    """The peer asked us to transfer (RFC 3515). The UA already answered 202 and sent
    the first NOTIFY ("100 Trying"); report progress with ``notify_refer``."""

    call: Call
    target: str


@dataclass(frozen=True, slots=True)
class ReferProgress:
    """Progress of a REFER we sent, from the NOTIFY message/sipfrag bodies (RFC 3515).

    ``status`` is the status line of the transfer target's response; ``final`` is True when
    the subscription ended (or the REFER itself was rejected: then ``status`` is the REFER's
    own final status).
    """

    call: Call
    status: int
    final: bool


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A DTMF digit from an INFO request (application/dtmf-relay or application/dtmf)."""

    call: Call
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class OptionsResult:
    """The final outcome of ``UserAgent.options``; ``query`` is the id it returned."""

    query: int
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A message we refused or dropped, for observability (metrics, logs).

    ``status`` is the status we answered with, or the status we would have answered with
    when the message was too broken to answer (a parse failure, a stray response).
    """

    status: int
    reason: str
    peer: Peer


Event = (
    IncomingCall
    | CallRinging
    | CallAnswered
    | CallConfirmed
    | CallFailed
    | CallCancelled
    | CallEnded
    | ReinviteReceived
    | ReinviteAnswered
    | ReinviteFailed
    | ReferReceived
    | ReferProgress
    | DtmfReceived
    | OptionsResult
    | MessageRejected
)

TERMINAL_EVENTS = (CallFailed, CallCancelled, CallEnded)
