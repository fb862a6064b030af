"""Answering calls: the UAS side of INVITE (RFC 3261 §13.3, §9.2 CANCEL).

Theory of operation
-------------------
An out-of-dialog INVITE that passed the §8.2 checks becomes a :class:`Call` in state
INCOMING: the UA answers 100 Trying at once, creates the UAS dialog state (§12.1.1, with
the To tag every later response carries) and emits :class:`IncomingCall`. The
application then calls ``ring`` (180, or 183 with early media), ``answer`` (200 with SDP)
or ``reject`` (300-699).

The 2xx is special (§13.3.1.4): the INVITE server transaction hands it to the transport
once and lingers in Accepted (RFC 6026), and the UA core itself re-sends it at T1, 2*T1,
... capped at T2 until the ACK arrives. No ACK within 64*T1 means the dialog is dead: the
UA sends BYE and emits ``CallEnded(reason="ack timeout")``. The same machinery covers the
2xx to a re-INVITE (``midcall.py``).

CANCEL (§9.2) matches the INVITE's server transaction by branch; if no final response
went out yet the UA answers 200 to the CANCEL, 487 to the INVITE, and emits
:class:`CallCancelled`.
"""

from __future__ import annotations

from trunkline.sip.call import Call, CallState
from trunkline.sip.dialog import Dialog
from trunkline.sip.errors import SipUsageError
from trunkline.sip.events import CallCancelled, CallConfirmed, IncomingCall, Peer
from trunkline.sip.headers import cseq_of, tag_of
from trunkline.sip.message import SipRequest
from trunkline.sip.timers import Timer
from trunkline.sip.transaction import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)
from trunkline.sip.uabase import SDP, UABase


class UasMixin(UABase):
    """ring / answer / reject, and the INVITE, ACK and CANCEL that reach a UAS."""

    # --- application actions -----------------------------------------------------------------

    def ring(self, call: Call, sdp: bytes | None = None, *, now: float | None = None) -> None:
        """Send 180 Ringing, or 183 Session Progress carrying ``sdp`` (early media).

        Ignored when the call already ended (a CANCEL may race the application).

        Raises:
            SipUsageError: not an inbound call waiting for an answer.
        """
        if call.ended:
            return
        tx = self._pending_invite(call, "ring")
        at = self._time(now)
        resp = self._response(
            call.invite,
            183 if sdp else 180,
            to_tag=call.local_tag,
            contact=self.contact(call.peer.transport),
            body=sdp or b"",
            content_type=SDP if sdp else None,
        )
        tx.respond(resp, at)
        call.state = CallState.EARLY

    def answer(self, call: Call, sdp: bytes, *, now: float | None = None) -> None:
        """Send 200 OK with ``sdp`` and our Contact; re-sent until the ACK (§13.3.1.4).

        Ignored when the call already ended.

        Raises:
            SipUsageError: not an inbound call waiting for an answer.
        """
        if call.ended:
            return
        tx = self._pending_invite(call, "answer")
        at = self._time(now)
        resp = self._response(
            call.invite,
            200,
            to_tag=call.local_tag,
            contact=self.contact(call.peer.transport),
            body=sdp,
            content_type=SDP,
            extra=self._capabilities(),
        )
        tx.respond(resp, at)
        assert call.dialog is not None
        call.dialog.confirm()  # §12.1.1: a UAS dialog is confirmed when it sends the 2xx
        call.state = CallState.ANSWERED
        seq, _ = cseq_of(call.invite)
        self._retransmit_2xx(call, bytes(resp), tx.peer, seq, at)

    def reject(
        self,
        call: Call,
        status: int,
        reason: str | None = None,
        *,
        retry_after: int | None = None,
        headers: list[tuple[str, str]] | None = None,
        now: float | None = None,
    ) -> None:
        """Refuse the call with a 300-699 final response (486, 488, 503 + Retry-After...).

        Emits ``CallEnded(by="local", reason="rejected <status>")``. Ignored when the call
        already ended.

        Raises:
            SipUsageError: ``status`` outside 300..699, or the call is not waiting for an
                answer.
        """
        if not 300 <= status <= 699:
            raise SipUsageError(f"reject needs a 300-699 status, not {status}")
        if call.ended:
            return
        tx = self._pending_invite(call, "reject")
        extra = list(headers or ())
        if retry_after is not None:
            extra.append(("Retry-After", str(retry_after)))  # §20.33
        resp = self._response(call.invite, status, reason, to_tag=call.local_tag, extra=extra)
        tx.respond(resp, self._time(now))
        self._end(call, "local", f"rejected {status}")

    def _pending_invite(self, call: Call, action: str) -> ServerTransaction:
        tx = call.invite_tx
        if (
            call.direction != "inbound"
            or call.state not in (CallState.INCOMING, CallState.EARLY)
            or not isinstance(tx, InviteServerTransaction)
        ):
            raise SipUsageError(f"cannot {action} {call!r}")
        return tx

    # --- requests from the wire ----------------------------------------------------------------

    def _on_invite(
        self, request: SipRequest, tx: ServerTransaction, peer: Peer, now: float
    ) -> None:
        """A new out-of-dialog INVITE that passed the §8.2 checks."""
        tag = self.new_tag()
        dialog = Dialog.for_uas(request, tag, peer.transport)  # 400 without Contact
        dialog.conn_id = peer.conn_id
        call = Call(
            self,
            self._next(),
            call_id=request.call_id,
            direction="inbound",
            state=CallState.INCOMING,
            peer=peer,
            invite=request,
            local_tag=tag,
        )
        call.dialog = dialog
        call.invite_tx = tx
        tx.owner = call
        self._dialogs[dialog.key] = call
        tx.respond(self._response(request, 100), now)  # §17.2.1: at once, no To tag needed
        self._emit(
            IncomingCall(
                call,
                request.uri,
                request.headers.get("From") or "",
                request.headers.get("To") or "",
                request.body,
                tuple(request.headers),
            )
        )
        if self.ring_on_invite:
            self.ring(call, now=now)

    def _on_cancel(
        self,
        request: SipRequest,
        key: tuple[str, ...],
        invite_key: tuple[str, ...],
        peer: Peer,
        now: float,
    ) -> None:
        """§9.2: CANCEL gets its own transaction and stops the INVITE it matches."""
        tx = NonInviteServerTransaction(self, self._timers, self._config, key, request, peer)
        self._server_txs[key] = tx
        invite_tx = self._server_txs.get(invite_key)
        if not isinstance(invite_tx, InviteServerTransaction):
            self._refuse(tx, request, 481, None, peer, now)
            return
        call = invite_tx.owner
        to_tag = call.local_tag if isinstance(call, Call) else self.new_tag()
        tx.respond(self._response(request, 200, to_tag=to_tag), now)
        if invite_tx.final_sent or not isinstance(call, Call):
            return  # §9.2: a CANCEL after the final response has no effect
        invite_tx.respond(self._response(invite_tx.request, 487, to_tag=to_tag), now)
        if call.reinvite_in is invite_tx:
            call.reinvite_in = None
        elif not call.ended:
            call.state = CallState.ENDED
            self._forget(call)
            self._emit(CallCancelled(call))

    def _on_ack_2xx(self, ack: SipRequest, now: float) -> None:
        """An ACK outside any transaction: the ACK for our 2xx (§13.3.1.4, §17.2.3)."""
        key = (ack.call_id, tag_of(ack.headers.get("To") or "") or "",
               tag_of(ack.headers.get("From") or "") or "")  # fmt: skip
        call = self._dialogs.get(key)
        if call is None or call.ok_bytes is None:
            return  # the ACK of a retransmitted 2xx, or of a dialog we forgot
        seq, _ = cseq_of(ack)
        if seq != call.ok_cseq:
            return
        call.ok_bytes = None
        call.disarm(Timer.RETRANSMIT_2XX, Timer.ACK_WAIT)
        if call.state is CallState.ANSWERED:
            call.state = CallState.CONFIRMED
            self._emit(CallConfirmed(call, ack.body or None))
        elif call.bye_after_ack:
            call.bye_after_ack = False
            self._send_bye(call, now)
            self._forget(call)

    # --- 2xx retransmission (§13.3.1.4) ----------------------------------------------------

    def _on_2xx_timer(self, call: Call, timer: Timer, now: float) -> None:
        if call.ok_bytes is None or call.ok_peer is None:
            return
        if timer is Timer.RETRANSMIT_2XX:
            self._out.append((call.ok_bytes, call.ok_peer))
            call.ok_interval = min(2 * call.ok_interval, self._config.t2)
            call.arm(self._timers, Timer.RETRANSMIT_2XX, now + call.ok_interval)
            return
        # ACK_WAIT: §13.3.1.4 "the dialog is confirmed, but the session SHOULD be terminated".
        call.ok_bytes = None
        call.disarm(Timer.RETRANSMIT_2XX)
        if call.ended and not call.bye_after_ack:
            return
        call.bye_after_ack = False
        self._send_bye(call, now)
        if call.ended:
            self._forget(call)
        else:
            self._end(call, "local", "ack timeout")
