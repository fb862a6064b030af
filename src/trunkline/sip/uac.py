"""Placing calls: the UAC side of INVITE (RFC 3261 §13.2), CANCEL (§9.1) and OPTIONS (§11).

Theory of operation
-------------------
``invite`` builds the INVITE (§8.1.1) and hands it to an INVITE client transaction, which
re-sends it over UDP (Timer A) and gives up after 64*T1 (Timer B -> ``CallFailed(408)``).
Responses come back through :meth:`_on_invite_response`:

* 101-199: an early dialog when the response carries a To tag (§12.1.2) and
  :class:`CallRinging`; Timer C (3 min) starts so a call cannot ring forever.
* 2xx: the dialog is confirmed, the UA core sends the ACK itself (§13.2.2.4: same CSeq
  number, method ACK, new branch) and emits :class:`CallAnswered`. The transaction stays
  in Accepted (RFC 6026) and passes every retransmitted 2xx up again; the UA re-sends the
  identical ACK and emits nothing. A 2xx from a second fork (another To tag) is ACKed
  and immediately BYEd (§13.2.2.4), since we hold one call per INVITE.
* 300-699: the transaction ACKs it (§17.1.1.3) and the UA emits :class:`CallFailed`.

``cancel``/``hangup`` before the answer emit ``CallEnded(by="local")`` at once and send
CANCEL as soon as a provisional response has arrived (§9.1 forbids it earlier). If the
2xx wins the race the UA ACKs it and sends BYE; if nothing final arrives within 64*T1 of
the CANCEL, the INVITE transaction is abandoned (§9.1).
"""

from __future__ import annotations

from functools import partial

from trunkline.sip.call import Call, CallState
from trunkline.sip.dialog import Dialog, DialogState
from trunkline.sip.errors import SipProtocolError, SipUsageError
from trunkline.sip.events import CallAnswered, CallFailed, CallRinging, OptionsResult, Peer
from trunkline.sip.headers import cseq_of, tag_of
from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.timers import Timer
from trunkline.sip.transaction import ClientTransaction, build_cancel
from trunkline.sip.uabase import ACCEPT_ALL, SDP, UABase, ignore_response
from trunkline.sip.uri import SipUri


def _name_addr(uri: str) -> str:
    return uri if "<" in uri else f"<{uri}>"


class UacMixin(UABase):
    """invite / cancel / options, and the responses they get."""

    def invite(
        self,
        target_uri: str,
        sdp: bytes,
        peer: Peer,
        *,
        from_uri: str,
        to_uri: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        now: float | None = None,
    ) -> Call:
        """Send an INVITE with ``sdp`` to ``peer``; events report how it goes.

        Args:
            target_uri: the Request-URI, e.g. "sip:+15551234567@trunk.example.com".
            sdp: our offer (required: an offerless INVITE would need our answer in the
                ACK, which this UA does not build).
            peer: the next hop (the trunk or proxy), with transport.
            from_uri: our identity, a URI or a name-addr ("Agent" <sip:agent@x>).
            to_uri: the To URI; default ``target_uri``.
            headers: more headers, e.g. [("P-Asserted-Identity", "<sip:+1555@x>")].
            now: the current time; default the time of the last input.

        Raises:
            SipUsageError: ``target_uri`` is not a SIP/SIPS/tel URI, or ``sdp`` is empty.
        """
        if not sdp:
            raise SipUsageError("invite needs an SDP offer")
        try:
            SipUri.parse(target_uri)
        except SipProtocolError as exc:
            raise SipUsageError(f"bad target URI {target_uri!r}: {exc.reason}") from None
        at = self._time(now)
        tag = self.new_tag()
        call_id = self.new_call_id()
        branch = self.new_branch()
        h = Headers()
        h.add("Via", self._via(peer.transport, branch))
        h.add("Max-Forwards", "70")
        h.add("From", f"{_name_addr(from_uri)};tag={tag}")
        h.add("To", _name_addr(to_uri or target_uri))
        h.add("Call-ID", call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.contact(peer.transport))
        for name, value in [*self._capabilities(), *(headers or ())]:
            h.add(name, value)
        h.add("Content-Type", SDP)
        request = SipRequest(headers=h, method="INVITE", uri=target_uri, body=sdp)
        call = Call(
            self,
            self._next(),
            call_id=call_id,
            direction="outbound",
            state=CallState.CALLING,
            peer=peer,
            invite=request,
            local_tag=tag,
        )
        call.invite_tx = self._start_client_tx(
            request, branch, peer, partial(self._on_invite_response, call), at
        )
        return call

    def cancel(self, call: Call, *, now: float | None = None) -> None:
        """Abandon an outbound call before it is answered (CANCEL, §9.1).

        Emits ``CallEnded(by="local", reason="cancelled")``. Ignored once the call ended.

        Raises:
            SipUsageError: not an outbound call that is still being set up.
        """
        if call.ended:
            return
        if call.direction != "outbound" or call.state not in (CallState.CALLING, CallState.EARLY):
            raise SipUsageError(f"cannot cancel {call!r}; hang it up instead")
        self._cancel(call, self._time(now), "cancelled")

    def options(self, target_uri: str, peer: Peer, *, now: float | None = None) -> int:
        """Send an out-of-dialog OPTIONS (§11): a capabilities query or keep-alive ping.

        Returns:
            A query id; :class:`OptionsResult` with that id reports the final status
            (408 on timeout, 503 on transport failure).
        """
        at = self._time(now)
        query = self._next()
        branch = self.new_branch()
        h = Headers()
        h.add("Via", self._via(peer.transport, branch))
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{self.local_host}:{self.local_port}>;tag={self.new_tag()}")
        h.add("To", _name_addr(target_uri))
        h.add("Call-ID", self.new_call_id())
        h.add("CSeq", "1 OPTIONS")
        h.add("Contact", self.contact(peer.transport))
        h.add("Accept", ACCEPT_ALL)
        request = SipRequest(headers=h, method="OPTIONS", uri=target_uri)

        def done(tx: ClientTransaction, response: SipResponse, now: float) -> None:
            if response.status >= 200:
                self._emit(OptionsResult(query, response.status, response.reason))

        self._start_client_tx(request, branch, peer, done, at)
        return query

    # --- internals -------------------------------------------------------------------------

    def _cancel(self, call: Call, now: float, reason: str) -> None:
        call.cancelling = True
        if call.got_provisional:
            self._send_cancel(call, now)
        # else: §9.1 wait for a provisional response before sending CANCEL.
        self._end(call, "local", reason)

    def _send_cancel(self, call: Call, now: float) -> None:
        tx = call.invite_tx
        if call.cancel_sent or not isinstance(tx, ClientTransaction):
            return
        call.cancel_sent = True
        branch = tx.key[0]  # §9.1: the CANCEL's Via is the INVITE's top Via, same branch
        self._start_client_tx(build_cancel(call.invite), branch, tx.peer, ignore_response, now)
        call.arm(self._timers, Timer.CANCEL_WAIT, now + self._config.timeout)

    def _on_invite_response(
        self, call: Call, tx: ClientTransaction, response: SipResponse, now: float
    ) -> None:
        status = response.status
        if status < 200:
            call.got_provisional = True
        if call.ended:
            self._after_end(call, tx, response, now)
            return
        if status < 200:
            if status > 100:
                self._on_provisional(call, tx, response, now)
            return
        call.disarm(Timer.C)
        if status >= 300:
            call.state = CallState.ENDED
            self._forget(call)
            self._emit(CallFailed(call, status, response.reason))
            return
        self._on_2xx(call, tx, response, now)

    def _on_provisional(
        self, call: Call, tx: ClientTransaction, response: SipResponse, now: float
    ) -> None:
        if tag_of(response.headers.get("To") or "") is not None:
            try:
                call.dialog = Dialog.for_uac(call.invite, response, tx.peer.conn_id)
            except SipProtocolError:
                pass  # an unusable early dialog; the 2xx will bring a good one
        call.state = CallState.EARLY
        # Timer C (§16.6 step 11) restarts on every 101-199.
        call.arm(self._timers, Timer.C, now + self._config.timer_c)
        self._emit(CallRinging(call, response.status, response.body or None))

    def _on_2xx(self, call: Call, tx: ClientTransaction, response: SipResponse, now: float) -> None:
        seq, _ = cseq_of(response)
        remote_tag = tag_of(response.headers.get("To") or "") or ""
        dialog = call.dialog
        if call.state is CallState.CONFIRMED and dialog is not None:
            if remote_tag == dialog.remote_tag:
                self._resend_ack(call, seq, remote_tag)  # a retransmitted 2xx (§13.2.2.4)
            else:
                self._ack_and_bye(call, tx, response, now)  # a second fork answered
            return
        try:
            if dialog is not None and dialog.remote_tag == remote_tag:
                dialog.confirm(response)
            else:
                dialog = call.dialog = Dialog.for_uac(call.invite, response, tx.peer.conn_id)
        except SipProtocolError as exc:
            # We cannot even route the ACK; the peer's 2xx retransmissions will time out.
            call.state = CallState.ENDED
            self._emit(CallFailed(call, 502, f"Unusable 2xx: {exc.reason}"))
            return
        self._dialogs[dialog.key] = call
        self._send_ack_2xx(call, dialog, seq)
        call.state = CallState.CONFIRMED
        self._emit(CallAnswered(call, response.body))

    def _after_end(
        self, call: Call, tx: ClientTransaction, response: SipResponse, now: float
    ) -> None:
        """Responses to an INVITE the application already gave up on."""
        status = response.status
        if status < 200 and call.cancelling:
            self._send_cancel(call, now)  # the provisional §9.1 was waiting for
        elif 200 <= status < 300:
            call.disarm(Timer.CANCEL_WAIT)
            seq, _ = cseq_of(response)
            remote_tag = tag_of(response.headers.get("To") or "") or ""
            if not self._resend_ack(call, seq, remote_tag):
                self._ack_and_bye(call, tx, response, now)  # §9.1: the 2xx won the race
        elif status >= 300:
            call.disarm(Timer.CANCEL_WAIT)

    def _ack_and_bye(
        self, call: Call, tx: ClientTransaction, response: SipResponse, now: float
    ) -> None:
        """ACK a 2xx we do not want, then end that dialog with BYE (§13.2.2.4, §15)."""
        try:
            dialog = Dialog.for_uac(call.invite, response, tx.peer.conn_id)
        except SipProtocolError:
            return
        seq, _ = cseq_of(response)
        self._send_ack_2xx(call, dialog, seq)
        self._send_request(dialog, "BYE", now)
        dialog.state = DialogState.TERMINATED

    def _on_uac_timer(self, call: Call, timer: Timer, now: float) -> None:
        if timer is Timer.C:
            if call.ended:
                return
            call.state = CallState.ENDED
            call.cancelling = True
            self._send_cancel(call, now)
            self._forget(call)
            self._emit(CallFailed(call, 408, "Request Timeout"))
        elif timer is Timer.CANCEL_WAIT:
            tx = call.invite_tx
            if tx is not None and not tx.terminated:
                tx.abandon()  # §9.1: consider the INVITE transaction cancelled
