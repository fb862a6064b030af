"""RFC 3261 §17 transactions driven directly, with a fake TU and a manual clock."""

from __future__ import annotations

import pytest

from trunkline.sip.errors import SipProtocolError, SipUsageError
from trunkline.sip.events import Peer
from trunkline.sip.message import Headers, SipRequest, SipResponse, make_response
from trunkline.sip.timers import Timer, TimerConfig, TimerQueue
from trunkline.sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Transaction,
    TxInput,
    TxState,
    build_cancel,
    build_non2xx_ack,
)

UDP = Peer("udp", "10.0.0.2", 5060)
TCP = Peer("tcp", "10.0.0.2", 5060, conn_id=7)
BRANCH = "z9hG4bKtest1"


def request(method: str = "INVITE") -> SipRequest:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={BRANCH}")
    h.add("Max-Forwards", "70")
    h.add("Route", "<sip:proxy.example.com;lr>")
    h.add("From", "<sip:alice@example.com>;tag=a1")
    h.add("To", "<sip:bob@example.com>")
    h.add("Call-ID", "call-1@10.0.0.1")
    h.add("CSeq", f"7 {method}")
    return SipRequest(headers=h, method=method, uri="sip:bob@example.com")


def response(req: SipRequest, status: int) -> SipResponse:
    return make_response(req, status, to_tag="b1" if status > 100 else None)


class FakeTU:
    """Records everything a transaction tells its user."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.responses: list[int] = []
        self.acks = 0
        self.timeouts = 0
        self.errors = 0
        self.terminated = 0

    def tx_send(self, data: bytes, peer: Peer) -> None:
        self.sent.append(data)

    def tx_response(self, tx: object, response: SipResponse, now: float) -> None:
        self.responses.append(response.status)

    def tx_ack(self, tx: object, ack: SipRequest, now: float) -> None:
        self.acks += 1

    def tx_timeout(self, tx: object, now: float) -> None:
        self.timeouts += 1

    def tx_transport_error(self, tx: object, now: float) -> None:
        self.errors += 1

    def tx_terminated(self, tx: object) -> None:
        self.terminated += 1

    def first_lines(self) -> list[str]:
        return [d.split(b"\r\n", 1)[0].decode() for d in self.sent]


class Clock:
    """A TimerQueue plus a manual clock that records when each send happened."""

    def __init__(self) -> None:
        self.queue = TimerQueue()
        self.now = 0.0

    def run(self, until: float, tu: FakeTU, log: list[float] | None = None) -> None:
        while (t := self.queue.next_deadline()) is not None and t <= until:
            self.now = t
            before = len(tu.sent)
            self.queue.fire_due(t)
            if log is not None and len(tu.sent) > before:
                log.append(t)
        self.now = until


def make(
    kind: type[Transaction], peer: Peer = UDP, method: str = "INVITE"
) -> tuple[Transaction, FakeTU, Clock]:
    tu = FakeTU()
    clock = Clock()
    tx = kind(tu, clock.queue, TimerConfig(), (BRANCH, method), request(method), peer)
    return tx, tu, clock


# --- INVITE client (§17.1.1) ------------------------------------------------------------


def test_ict_timer_a_doubles_and_timer_b_times_out_after_64_t1() -> None:
    tx, tu, clock = make(InviteClientTransaction)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    assert tx.armed_timers() == {Timer.A, Timer.B}
    sends: list[float] = []
    clock.run(40.0, tu, sends)
    # Timer A: T1, 2T1, 4T1 ... retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5.
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert len(tu.sent) == 7  # the original and six retransmissions
    assert tu.timeouts == 1  # Timer B at 32 s
    assert tx.state is TxState.TERMINATED
    assert tu.terminated == 1
    assert clock.queue.next_deadline() is None


def test_ict_provisional_stops_retransmission() -> None:
    tx, tu, clock = make(InviteClientTransaction)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    tx.receive_response(response(tx.request, 180), 0.1)
    assert tx.state is TxState.PROCEEDING
    assert tx.armed_timers() == frozenset()
    clock.run(100.0, tu)
    assert len(tu.sent) == 1 and tu.timeouts == 0
    assert tu.responses == [180]


def test_ict_non2xx_is_acked_every_time_and_timer_d_ends_it() -> None:
    tx, tu, clock = make(InviteClientTransaction)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    busy = response(tx.request, 486)
    tx.receive_response(busy, 0.2)
    assert tx.state is TxState.COMPLETED
    assert tu.first_lines() == [
        "INVITE sip:bob@example.com SIP/2.0",
        "ACK sip:bob@example.com SIP/2.0",
    ]
    tx.receive_response(busy, 1.0)  # retransmitted 486: re-ACK, not passed up again
    assert tu.sent[2] == tu.sent[1]
    assert tu.responses == [486]
    clock.run(0.2 + 31.9, tu)
    assert tx.state is TxState.COMPLETED  # Timer D is 32 s over UDP
    clock.run(0.2 + 32.0, tu)
    assert tx.state is TxState.TERMINATED


def test_ict_2xx_goes_to_accepted_and_every_2xx_reaches_the_tu() -> None:
    tx, tu, clock = make(InviteClientTransaction)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    ok = response(tx.request, 200)
    tx.receive_response(ok, 0.2)
    tx.receive_response(ok, 0.7)
    assert tx.state is TxState.ACCEPTED
    assert tu.responses == [200, 200]  # RFC 6026: the TU re-ACKs each one
    assert tu.first_lines() == ["INVITE sip:bob@example.com SIP/2.0"]  # the TU ACKs, not us
    clock.run(0.2 + 32.0, tu)  # Timer M = 64*T1
    assert tx.state is TxState.TERMINATED


def test_ict_over_tcp_has_no_timer_a_and_timer_d_is_zero() -> None:
    tx, tu, clock = make(InviteClientTransaction, TCP)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    assert tx.armed_timers() == {Timer.B}
    tx.receive_response(response(tx.request, 503), 0.1)
    assert tx.state is TxState.TERMINATED  # Timer D fired at once
    assert tu.first_lines()[-1].startswith("ACK ")


def test_ict_timer_b_over_tcp() -> None:
    tx, tu, clock = make(InviteClientTransaction, TCP)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    clock.run(31.9, tu)
    assert tu.timeouts == 0
    clock.run(32.0, tu)
    assert tu.timeouts == 1 and len(tu.sent) == 1


def test_ict_transport_error_is_reported() -> None:
    tx, tu, _ = make(InviteClientTransaction)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    tx.transport_error(0.1)
    assert tu.errors == 1 and tx.state is TxState.TERMINATED


# --- non-INVITE client (§17.1.2) -----------------------------------------------------------


def test_nict_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    tx, tu, clock = make(NonInviteClientTransaction, method="BYE")
    assert isinstance(tx, NonInviteClientTransaction)
    tx.start(0.0)
    sends: list[float] = []
    clock.run(40.0, tu, sends)
    # E: 0.5, 1, 2, 4, 4, 4 ... (doubling from T1, capped at T2 = 4 s)
    gaps = [b - a for a, b in zip([0.0, *sends], sends, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert all(g == 4.0 for g in gaps[4:])
    assert sends[-1] < 32.0
    assert tu.timeouts == 1 and tx.state is TxState.TERMINATED


def test_nict_proceeding_retransmits_every_t2() -> None:
    tx, tu, clock = make(NonInviteClientTransaction, method="BYE")
    assert isinstance(tx, NonInviteClientTransaction)
    tx.start(0.0)
    tx.receive_response(response(tx.request, 100), 0.1)
    assert tx.state is TxState.PROCEEDING
    sends: list[float] = []
    clock.run(20.0, tu, sends)
    # The pending E (0.5) fires, then every T2.
    assert sends[:3] == [0.5, 4.5, 8.5]


def test_nict_final_then_timer_k() -> None:
    tx, tu, clock = make(NonInviteClientTransaction, method="BYE")
    assert isinstance(tx, NonInviteClientTransaction)
    tx.start(0.0)
    tx.receive_response(response(tx.request, 200), 0.1)
    tx.receive_response(response(tx.request, 200), 0.2)  # absorbed
    assert tu.responses == [200]
    assert tx.armed_timers() == {Timer.K}
    clock.run(0.1 + 4.9, tu)
    assert tx.state is TxState.COMPLETED
    clock.run(0.1 + 5.0, tu)  # K = T4
    assert tx.state is TxState.TERMINATED
    assert len(tu.sent) == 1


def test_nict_over_tcp_terminates_at_once_on_final() -> None:
    tx, tu, clock = make(NonInviteClientTransaction, TCP, method="OPTIONS")
    assert isinstance(tx, NonInviteClientTransaction)
    tx.start(0.0)
    assert tx.armed_timers() == {Timer.F}  # no Timer E over TCP
    tx.receive_response(response(tx.request, 200), 0.1)
    assert tx.state is TxState.TERMINATED


# --- INVITE server (§17.2.1) ---------------------------------------------------------------


def test_ist_resends_last_provisional_on_retransmitted_invite() -> None:
    tx, tu, _ = make(InviteServerTransaction)
    assert isinstance(tx, InviteServerTransaction)
    tx.respond(response(tx.request, 100), 0.0)
    tx.respond(response(tx.request, 180), 0.1)
    tx.receive_request(tx.request, 0.5)
    assert tu.first_lines() == ["SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 180 Ringing"]


def test_ist_timer_g_then_h_without_ack() -> None:
    tx, tu, clock = make(InviteServerTransaction)
    assert isinstance(tx, InviteServerTransaction)
    tx.respond(response(tx.request, 486), 0.0)
    sends: list[float] = []
    clock.run(40.0, tu, sends)
    gaps = [b - a for a, b in zip([0.0, *sends], sends, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and all(g == 4.0 for g in gaps[4:])
    assert tu.timeouts == 1  # Timer H at 32 s
    assert tx.state is TxState.TERMINATED


def test_ist_ack_confirms_then_timer_i() -> None:
    tx, tu, clock = make(InviteServerTransaction)
    assert isinstance(tx, InviteServerTransaction)
    tx.respond(response(tx.request, 486), 0.0)
    ack = build_non2xx_ack(tx.request, response(tx.request, 486))
    tx.receive_request(ack, 0.3)
    assert tx.state is TxState.CONFIRMED
    assert tx.armed_timers() == {Timer.I}
    tx.receive_request(ack, 0.4)  # absorbed
    tx.receive_request(tx.request, 0.4)  # a late INVITE: absorbed
    clock.run(0.3 + 5.0, tu)
    assert tx.state is TxState.TERMINATED
    assert len(tu.sent) == 1 and tu.acks == 0


def test_ist_accepted_absorbs_invite_and_passes_ack() -> None:
    tx, tu, clock = make(InviteServerTransaction)
    assert isinstance(tx, InviteServerTransaction)
    ok = response(tx.request, 200)
    tx.respond(ok, 0.0)
    assert tx.state is TxState.ACCEPTED
    tx.receive_request(tx.request, 0.2)  # RFC 6026: absorbed, no re-send
    assert len(tu.sent) == 1
    tx.respond(ok, 0.5)  # the TU's 2xx retransmission goes through
    assert len(tu.sent) == 2
    tx.receive_request(build_non2xx_ack(tx.request, ok), 0.6)
    assert tu.acks == 1
    clock.run(32.0, tu)  # Timer L
    assert tx.state is TxState.TERMINATED


def test_ist_over_tcp_no_timer_g_and_timer_i_zero() -> None:
    tx, tu, clock = make(InviteServerTransaction, TCP)
    assert isinstance(tx, InviteServerTransaction)
    tx.respond(response(tx.request, 486), 0.0)
    assert tx.armed_timers() == {Timer.H}
    tx.receive_request(build_non2xx_ack(tx.request, response(tx.request, 486)), 0.1)
    assert tx.state is TxState.TERMINATED
    assert len(tu.sent) == 1


def test_ist_rejects_a_second_final_response_as_usage_error() -> None:
    tx, tu, _ = make(InviteServerTransaction)
    assert isinstance(tx, InviteServerTransaction)
    tx.respond(response(tx.request, 486), 0.0)
    with pytest.raises(SipUsageError):
        tx.respond(response(tx.request, 200), 0.1)


# --- non-INVITE server (§17.2.2) ------------------------------------------------------------


def test_nist_absorbs_before_response_and_resends_after() -> None:
    tx, tu, clock = make(NonInviteServerTransaction, method="BYE")
    assert isinstance(tx, NonInviteServerTransaction)
    tx.receive_request(tx.request, 0.0)  # nothing to re-send yet
    assert tu.sent == []
    tx.respond(response(tx.request, 200), 0.1)
    tx.receive_request(tx.request, 0.2)
    assert tu.first_lines() == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    clock.run(0.1 + 31.9, tu)
    assert tx.state is TxState.COMPLETED
    clock.run(0.1 + 32.0, tu)  # Timer J = 64*T1
    assert tx.state is TxState.TERMINATED


def test_nist_over_tcp_timer_j_is_zero() -> None:
    tx, tu, _ = make(NonInviteServerTransaction, TCP, method="BYE")
    assert isinstance(tx, NonInviteServerTransaction)
    tx.respond(response(tx.request, 200), 0.0)
    assert tx.state is TxState.TERMINATED and tu.terminated == 1


def test_nist_provisional_then_final() -> None:
    tx, tu, _ = make(NonInviteServerTransaction, method="REFER")
    assert isinstance(tx, NonInviteServerTransaction)
    tx.respond(response(tx.request, 100), 0.0)
    assert tx.state is TxState.PROCEEDING
    tx.receive_request(tx.request, 0.1)
    tx.respond(response(tx.request, 202), 0.2)
    assert tu.first_lines() == ["SIP/2.0 100 Trying", "SIP/2.0 100 Trying", "SIP/2.0 202 Accepted"]


def test_wire_input_in_wrong_state_is_protocol_error() -> None:
    tx, _, _ = make(NonInviteServerTransaction, method="BYE")
    with pytest.raises(SipProtocolError):
        tx.fire(TxInput.ACK, 0.0)


def test_abandon_cancels_timers() -> None:
    tx, tu, clock = make(InviteClientTransaction)
    assert isinstance(tx, InviteClientTransaction)
    tx.start(0.0)
    tx.abandon()
    assert clock.queue.next_deadline() is None and tu.terminated == 1


# --- builders ----------------------------------------------------------------------------


def test_cancel_copies_branch_uri_call_id_from_to_and_cseq_number() -> None:
    inv = request()
    cancel = build_cancel(inv)
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri
    for name in ("Via", "From", "To", "Call-ID", "Route"):
        assert cancel.headers.get(name) == inv.headers.get(name)
    assert cancel.headers.get("CSeq") == "7 CANCEL"
    assert cancel.body == b""


def test_non2xx_ack_takes_to_from_response_and_keeps_the_branch() -> None:
    inv = request()
    resp = response(inv, 404)
    ack = build_non2xx_ack(inv, resp)
    assert ack.method == "ACK" and ack.uri == inv.uri
    assert ack.headers.get("To") == "<sip:bob@example.com>;tag=b1"
    assert ack.headers.get("Via") == inv.headers.get("Via")
    assert ack.headers.get("CSeq") == "7 ACK"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]


def test_timer_queue_orders_and_cancels() -> None:
    queue = TimerQueue()
    fired: list[Timer] = []

    class Owner:
        def on_timer(self, timer: Timer, now: float) -> None:
            fired.append(timer)

    owner = Owner()
    queue.arm(2.0, owner, Timer.B)
    handle = queue.arm(1.0, owner, Timer.A)
    queue.arm(3.0, owner, Timer.D)
    handle.cancel()
    assert queue.next_deadline() == 2.0
    assert queue.fire_due(2.5) == 1
    assert fired == [Timer.B]
    assert len(queue) == 1


def test_timer_config_reliable_zeroes() -> None:
    cfg = TimerConfig()
    assert (cfg.d(True), cfg.i(True), cfg.j(True), cfg.k(True)) == (0, 0, 0, 0)
    assert (cfg.d(False), cfg.i(False), cfg.j(False), cfg.k(False)) == (32.0, 5.0, 32.0, 5.0)
    assert cfg.timeout == 32.0
