"""Requests inside an established call: BYE (§15), re-INVITE (§14), REFER/NOTIFY
(RFC 3515) and INFO DTMF (RFC 6086 framework, the de-facto application/dtmf-relay body).

Theory of operation
-------------------
Every request here is built from the dialog (§12.2.1.1) and runs in its own client
transaction; every request received has already matched the dialog and passed the CSeq
order check (§12.2.2) in ``ua.py``.

re-INVITE (§14): at most one INVITE transaction per dialog in either direction. A
re-INVITE that arrives while ours is pending gets 491 (glare, §14.2); one that arrives
while the application has not answered the previous one gets 500 with Retry-After 0-10 s.
Our own re-INVITE that gets 491 surfaces as ``ReinviteFailed(491)`` (we do not retry
automatically; §14.1 makes that optional). 408/481 to a re-INVITE end the call
(§12.2.1.2).

REFER (RFC 3515): sending one creates an implicit subscription; each NOTIFY it brings
carries a message/sipfrag status line that becomes :class:`ReferProgress`, final when
Subscription-State is terminated. Receiving one: 202, :class:`ReferReceived`, then an
immediate NOTIFY "100 Trying" (§2.4.4); ``notify_refer`` sends the rest.
"""

from __future__ import annotations

from functools import partial

from trunkline.sip.call import Call, CallState
from trunkline.sip.dialog import DialogState
from trunkline.sip.errors import SipProtocolError, SipUsageError
from trunkline.sip.events import (
    CallConfirmed,
    DtmfReceived,
    ReferProgress,
    ReferReceived,
    ReinviteAnswered,
    ReinviteFailed,
    ReinviteReceived,
)
from trunkline.sip.headers import cseq_of, parse_name_addr, tag_of
from trunkline.sip.message import REASON_PHRASES, SipRequest, SipResponse
from trunkline.sip.timers import Timer
from trunkline.sip.transaction import ClientTransaction, ServerTransaction
from trunkline.sip.uabase import (
    REFER_SUBSCRIPTION_EXPIRES,
    REINVITE_RETRY_AFTER_MAX,
    SDP,
    SIPFRAG,
    Refusal,
    UABase,
)

DTMF_DIGITS = frozenset("0123456789*#ABCD")
# RFC 4733 §3.2 "typical" tone length when an application/dtmf body gives none.
DEFAULT_DTMF_MS = 160
# A dtmf-relay body is two short lines; anything longer is not one.
MAX_DTMF_BODY = 256


def parse_sipfrag_status(body: bytes) -> int:
    """The status code of a message/sipfrag status line ("SIP/2.0 180 Ringing").

    Raises:
        SipProtocolError(400): not a status line.
    """
    line = body.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0].upper() != b"SIP/2.0" or not parts[1].isdigit():
        raise SipProtocolError("NOTIFY body is not a SIP status line (RFC 3420)", 400)
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise SipProtocolError(f"sipfrag status {status} is out of range", 400)
    return status


def parse_dtmf_body(content_type: str, body: bytes) -> tuple[str, int]:
    """(digit, duration_ms) from an application/dtmf-relay or application/dtmf body.

    Raises:
        SipProtocolError(400): no valid digit.
    """
    if len(body) > MAX_DTMF_BODY:
        raise SipProtocolError("DTMF body is too long", 400)
    text = body.decode("ascii", errors="replace")
    if content_type == "application/dtmf":
        digit, duration = text.strip().upper(), DEFAULT_DTMF_MS
    else:
        fields: dict[str, str] = {}
        for line in text.splitlines():
            name, eq, value = line.partition("=")
            if eq:
                fields[name.strip().lower()] = value.strip()
        digit = fields.get("signal", "").upper()
        raw = fields.get("duration", "")
        duration = int(raw) if raw.isdigit() and len(raw) < 7 else DEFAULT_DTMF_MS
    if digit not in DTMF_DIGITS or len(digit) != 1:
        raise SipProtocolError(f"DTMF body has no valid digit ({digit[:8]!r})", 400)
    return digit, duration


class MidCallMixin(UABase):
    """hangup, re-INVITE, REFER/NOTIFY and INFO, both directions."""

    # --- application actions -----------------------------------------------------------------

    def hangup(self, call: Call, reason: str = "normal", *, now: float | None = None) -> None:
        """End the call however its state requires; emits ``CallEnded(by="local")`` at once.

        Confirmed: BYE. Outbound before the answer: CANCEL (§9.1). Inbound before the
        answer: 480. Inbound answered but not yet ACKed: BYE as soon as the ACK comes (§15).
        Ignored once the call ended.
        """
        if call.ended:
            return
        at = self._time(now)
        state = call.state
        if call.direction == "outbound" and state in (CallState.CALLING, CallState.EARLY):
            self._cancel(call, at, reason)
        elif call.direction == "inbound" and state in (CallState.INCOMING, CallState.EARLY):
            tx = call.invite_tx
            assert isinstance(tx, ServerTransaction)
            tx.respond(self._response(call.invite, 480, to_tag=call.local_tag), at)
            self._end(call, "local", reason)
        elif state is CallState.ANSWERED:
            call.bye_after_ack = True  # §15: no BYE before the ACK (or its timeout)
            self._end(call, "local", reason, forget=False)
        else:
            self._drop_reinvite_in(call, at)
            self._send_bye(call, at)
            self._end(call, "local", reason)

    def reinvite(self, call: Call, sdp: bytes, *, now: float | None = None) -> None:
        """Send a re-INVITE with a new offer (hold, unhold, new media address; §14.1).

        The outcome is ReinviteAnswered or ReinviteFailed (491 on glare).

        Raises:
            SipUsageError: the call is not confirmed, or an INVITE transaction is already
                in progress in either direction (§14.1).
        """
        if call.ended:
            return
        if call.state is not CallState.CONFIRMED or call.dialog is None:
            raise SipUsageError(f"cannot re-INVITE {call!r}")
        if call.reinvite_out is not None or call.reinvite_in is not None:
            raise SipUsageError(f"a re-INVITE is already in progress on {call!r}")
        call.reinvite_out = self._send_request(
            call.dialog,
            "INVITE",
            self._time(now),
            body=sdp,
            content_type=SDP,
            extra=self._capabilities(),
            handler=partial(self._on_reinvite_response, call),
            target_refresh=True,
        )

    def answer_reinvite(self, call: Call, sdp: bytes, *, now: float | None = None) -> None:
        """Accept the pending re-INVITE with 200 and ``sdp``; re-sent until ACKed.

        Raises:
            SipUsageError: no re-INVITE is waiting for an answer.
        """
        if call.ended:
            return
        tx = self._pending_reinvite(call)
        at = self._time(now)
        resp = self._response(
            tx.request,
            200,
            contact=self.contact(call.peer.transport),
            body=sdp,
            content_type=SDP,
            extra=self._capabilities(),
        )
        tx.respond(resp, at)
        call.reinvite_in = None
        seq, _ = cseq_of(tx.request)
        self._retransmit_2xx(call, bytes(resp), tx.peer, seq, at)

    def reject_reinvite(self, call: Call, status: int, *, now: float | None = None) -> None:
        """Refuse the pending re-INVITE (488, 491...); the session stays as it was.

        Raises:
            SipUsageError: no re-INVITE is waiting, or ``status`` is outside 300..699.
        """
        if not 300 <= status <= 699:
            raise SipUsageError(f"reject_reinvite needs a 300-699 status, not {status}")
        if call.ended:
            return
        tx = self._pending_reinvite(call)
        tx.respond(self._response(tx.request, status), self._time(now))
        call.reinvite_in = None

    def refer(self, call: Call, target: str, *, now: float | None = None) -> None:
        """Ask the peer to call ``target`` (blind transfer, RFC 3515).

        Progress arrives as ReferProgress events; a refused REFER gives one with
        ``final=True`` and the REFER's own status.

        Raises:
            SipUsageError: the call is not confirmed.
        """
        if call.ended:
            return
        if call.state is not CallState.CONFIRMED or call.dialog is None:
            raise SipUsageError(f"cannot REFER on {call!r}")
        call.refer_out = True
        refer_to = target if target.startswith("<") else f"<{target}>"
        self._send_request(
            call.dialog,
            "REFER",
            self._time(now),
            extra=[("Refer-To", refer_to)],
            handler=partial(self._on_refer_response, call),
            target_refresh=True,  # carries our Contact, as the subscription's NOTIFYs need
        )

    def notify_refer(
        self, call: Call, status: int, reason: str | None = None, *, now: float | None = None
    ) -> None:
        """Report the progress of a transfer the peer asked of us (RFC 3515).

        Sends NOTIFY with a message/sipfrag "SIP/2.0 <status> <reason>"; a final status
        (>= 200) terminates the subscription.

        Raises:
            SipUsageError: we did not accept a REFER on this call, or it already ended.
        """
        if call.ended:
            return
        if not call.refer_in:
            raise SipUsageError(f"no REFER subscription to notify on {call!r}")
        self._send_notify(call, status, reason, self._time(now))

    def send_dtmf_info(
        self, call: Call, digit: str, duration_ms: int = 160, *, now: float | None = None
    ) -> None:
        """Send one DTMF digit as INFO application/dtmf-relay ("Signal=5\\r\\nDuration=160").

        Raises:
            SipUsageError: not a DTMF digit, or the call is not confirmed.
        """
        if digit.upper() not in DTMF_DIGITS or len(digit) != 1:
            raise SipUsageError(f"{digit!r} is not a DTMF digit")
        if call.ended:
            return
        if call.state is not CallState.CONFIRMED or call.dialog is None:
            raise SipUsageError(f"cannot send INFO on {call!r}")
        body = f"Signal={digit.upper()}\r\nDuration={duration_ms}\r\n".encode()
        self._send_request(
            call.dialog,
            "INFO",
            self._time(now),
            body=body,
            content_type="application/dtmf-relay",
        )

    # --- responses to our requests ---------------------------------------------------------

    def _on_reinvite_response(
        self, call: Call, tx: ClientTransaction, response: SipResponse, now: float
    ) -> None:
        status = response.status
        if status < 200 or call.dialog is None:
            return
        seq, _ = cseq_of(tx.request)
        if 200 <= status < 300:
            remote_tag = tag_of(response.headers.get("To") or "") or ""
            if self._resend_ack(call, seq, remote_tag):
                return  # a retransmitted 2xx (§13.2.2.4)
            self._send_ack_2xx(call, call.dialog, seq)
            if call.ended:
                return
            call.dialog.refresh_target(response)  # §12.2.1.2 target refresh
            call.reinvite_out = None
            self._emit(ReinviteAnswered(call, response.body))
            return
        if call.ended:
            return
        call.reinvite_out = None
        self._emit(ReinviteFailed(call, status))
        if status == 481:  # §12.2.1.2: the dialog is gone
            self._end(call, "remote", "dialog lost")
        elif status == 408:  # §12.2.1.2: the peer stopped answering
            self._send_bye(call, now)
            self._end(call, "local", "reinvite timeout")

    def _on_refer_response(
        self, call: Call, tx: ClientTransaction, response: SipResponse, now: float
    ) -> None:
        if response.status >= 300 and call.refer_out and not call.ended:
            call.refer_out = False
            self._emit(ReferProgress(call, response.status, True))

    # --- requests from the wire (dialog matched, CSeq checked) -----------------------------

    def _on_bye(self, call: Call, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        tx.respond(self._response(request, 200), now)
        if call.ended:
            call.bye_after_ack = False  # the peer hung up first; no BYE of ours needed
            self._forget(call)
            return
        self._drop_reinvite_in(call, now)
        invite_tx = call.invite_tx
        if isinstance(invite_tx, ServerTransaction) and not invite_tx.final_sent:
            # §15.1.2: a BYE in an early dialog; the INVITE gets 487.
            invite_tx.respond(self._response(call.invite, 487, to_tag=call.local_tag), now)
        if call.dialog is not None:
            call.dialog.state = DialogState.TERMINATED
        self._end(call, "remote", "bye")

    def _on_reinvite(
        self, call: Call, request: SipRequest, tx: ServerTransaction, now: float
    ) -> None:
        if call.reinvite_out is not None:
            raise Refusal(491)  # §14.2 glare: ours is in progress
        if call.reinvite_in is not None:
            # §14.2: ours to answer is still pending.
            retry = self._rand.randint(0, REINVITE_RETRY_AFTER_MAX)
            raise Refusal(500, headers=[("Retry-After", str(retry))])
        if call.state is CallState.ANSWERED:
            # The ACK for our 2xx was lost, but the peer acted on the 2xx: it is confirmed.
            call.ok_bytes = None
            call.disarm(Timer.RETRANSMIT_2XX, Timer.ACK_WAIT)
            call.state = CallState.CONFIRMED
            self._emit(CallConfirmed(call, None))
        if call.state is not CallState.CONFIRMED or call.dialog is None:
            raise Refusal(491)
        if call.ok_bytes is not None:
            # A new INVITE implies the previous re-INVITE's 2xx arrived.
            call.ok_bytes = None
            call.disarm(Timer.RETRANSMIT_2XX, Timer.ACK_WAIT)
        call.dialog.refresh_target(request)  # §12.2.2 target refresh
        tx.owner = call
        call.reinvite_in = tx
        tx.respond(self._response(request, 100), now)
        self._emit(ReinviteReceived(call, request.body))

    def _on_refer(self, call: Call, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        targets = request.headers.get_all("Refer-To")
        if len(targets) != 1:
            raise SipProtocolError("REFER needs exactly one Refer-To (RFC 3515)", 400)
        target = str(parse_name_addr(targets[0]).uri)
        tx.respond(self._response(request, 202), now)
        call.refer_in = True
        self._emit(ReferReceived(call, target))
        self._send_notify(call, 100, None, now)  # RFC 3515: NOTIFY at once

    def _on_notify(
        self, call: Call, request: SipRequest, tx: ServerTransaction, now: float
    ) -> None:
        package = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if package != "refer":
            raise Refusal(489)  # RFC 6665: an event package we never subscribed to
        if not call.refer_out:
            raise Refusal(481)  # no such subscription
        sub_state = request.headers.get("Subscription-State")
        if sub_state is None:
            raise SipProtocolError("NOTIFY without Subscription-State (RFC 6665)", 400)
        status = parse_sipfrag_status(request.body)
        tx.respond(self._response(request, 200), now)
        final = sub_state.split(";", 1)[0].strip().lower() == "terminated"
        if final:
            call.refer_out = False
        self._emit(ReferProgress(call, status, final))

    def _on_info(self, call: Call, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        if not request.body:
            tx.respond(self._response(request, 200), now)  # an empty INFO is a keep-alive
            return
        digit, duration = parse_dtmf_body(request.content_type, request.body)
        tx.respond(self._response(request, 200), now)
        self._emit(DtmfReceived(call, digit, duration))

    # --- helpers -----------------------------------------------------------------------------

    def _pending_reinvite(self, call: Call) -> ServerTransaction:
        tx = call.reinvite_in
        if tx is None:
            raise SipUsageError(f"no re-INVITE is waiting for an answer on {call!r}")
        return tx

    def _drop_reinvite_in(self, call: Call, now: float) -> None:
        """§15.1.2: a re-INVITE still unanswered when the call ends gets 487."""
        tx = call.reinvite_in
        if tx is not None:
            call.reinvite_in = None
            if not tx.final_sent:
                tx.respond(self._response(tx.request, 487), now)

    def _send_notify(self, call: Call, status: int, reason: str | None, now: float) -> None:
        if call.dialog is None:
            return
        phrase = reason or REASON_PHRASES.get(status, "")
        final = status >= 200
        sub_state = (
            "terminated;reason=noresource"
            if final
            else f"active;expires={REFER_SUBSCRIPTION_EXPIRES}"
        )
        self._send_request(
            call.dialog,
            "NOTIFY",
            now,
            body=f"SIP/2.0 {status} {phrase}\r\n".encode(),
            content_type=f"{SIPFRAG};version=2.0",
            extra=[("Event", "refer"), ("Subscription-State", sub_state)],
            target_refresh=True,  # RFC 6665 makes NOTIFY a target refresh: it carries Contact
        )
        if final:
            call.refer_in = False
