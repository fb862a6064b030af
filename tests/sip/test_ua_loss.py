"""Call flows under injected loss: retransmission recovers every lost message, and the
timers (B, F, H, J, ACK wait) end what cannot be recovered (RFC 3261 §17, §13.3.1.4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trunkline.sip.call import Call, CallState
from trunkline.sip.events import (
    TERMINAL_EVENTS,
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallFailed,
    DtmfReceived,
    IncomingCall,
    OptionsResult,
    ReferProgress,
    ReferReceived,
    ReinviteAnswered,
    ReinviteReceived,
)

from .pair import SDP_A, SDP_B, SDP_HELD, SDP_HOLD, Pair, Wire


def full_call(p: Pair) -> tuple[Call, Call]:
    """Dial, ring, answer, letting timers recover losses at each step."""
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.flush()
    p.advance(20.0)
    call_b = p.one("b", IncomingCall).call
    p.b.ring(call_b)
    p.b.answer(call_b, SDP_B)
    p.advance(20.0)
    return call_a, call_b


def assert_one_terminal_each(p: Pair) -> None:
    for name in "ab":
        ends = [e for e in p.events[name] if isinstance(e, TERMINAL_EVENTS)]
        assert len(ends) == 1, (name, ends)


LOSSES: dict[str, Callable[[Wire], bool]] = {
    "INVITE": lambda w: w.method == "INVITE",
    "100": lambda w: w.status == 100,
    "180": lambda w: w.status == 180,
    "200-INVITE": lambda w: w.is_response(200, "INVITE"),
    "ACK": lambda w: w.method == "ACK",
}


@pytest.mark.parametrize("lost", list(LOSSES))
@pytest.mark.parametrize("count", [1, 3])
def test_setup_survives_loss(lost: str, count: int) -> None:
    p = Pair()
    p.drop(LOSSES[lost], count=count)
    call_a, call_b = full_call(p)
    if lost == "180":
        # A 180 is re-sent only when the INVITE is (§17.2.1); with the 100 through, the
        # INVITE is not, so the ringing is simply missed (reliable 1xx is RFC 3262).
        assert len(p.sent(LOSSES[lost])) == 1
    else:
        assert len(p.sent(LOSSES[lost])) > count  # it was re-sent past the losses
    assert call_a.state is CallState.CONFIRMED and call_b.state is CallState.CONFIRMED
    assert len(p.of("b", IncomingCall)) == 1
    assert len(p.of("a", CallAnswered)) == 1
    assert len(p.of("b", CallConfirmed)) == 1
    p.a.hangup(call_a)
    p.run_until_quiet()
    assert_one_terminal_each(p)


def test_lost_invite_is_retransmitted_at_t1() -> None:
    p = Pair()
    p.drop(LOSSES["INVITE"])
    p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.flush()
    assert not p.of("b", IncomingCall)
    p.advance(0.5)
    assert len(p.of("b", IncomingCall)) == 1
    invites = p.sent(LOSSES["INVITE"])
    assert invites[0].dropped and not invites[1].dropped and invites[0].data == invites[1].data


@pytest.mark.parametrize("lost", ["BYE", "200-BYE"])
@pytest.mark.parametrize("who", ["a", "b"])
def test_bye_survives_loss(lost: str, who: str) -> None:
    p = Pair()
    calls = dict(zip("ab", full_call(p), strict=True))
    if lost == "BYE":
        p.drop(lambda w: w.method == "BYE", count=2)
    else:
        p.drop(lambda w: w.is_response(200, "BYE"), count=2)
    p.by_name[who].hangup(calls[who])
    p.run_until_quiet()
    other = "b" if who == "a" else "a"
    assert p.one(other, CallEnded).by == "remote"
    assert p.one(who, CallEnded).by == "local"
    assert len(p.sent(lambda w: w.method == "BYE")) == 3
    assert p.a.get_timer() is None and p.b.get_timer() is None


@pytest.mark.parametrize(
    "lost",
    [
        lambda w: w.method == "CANCEL",
        lambda w: w.is_response(200, "CANCEL"),
        lambda w: w.is_response(487, "INVITE"),
        lambda w: w.method == "ACK",
    ],
    ids=["CANCEL", "200-CANCEL", "487", "ACK-487"],
)
def test_cancel_survives_loss(lost: Callable[[Wire], bool]) -> None:
    p = Pair()
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.flush()
    call_b = p.one("b", IncomingCall).call
    p.b.ring(call_b)
    p.flush()
    p.drop(lost, count=2)
    p.a.cancel(call_a)
    p.run_until_quiet()
    assert p.one("b", CallCancelled).call is call_b
    assert p.one("a", CallEnded).reason == "cancelled"
    assert_one_terminal_each(p)
    assert len(p.sent(lost)) >= 3
    assert p.a.get_timer() is None and p.b.get_timer() is None


def test_midcall_requests_survive_loss() -> None:
    p = Pair()
    call_a, call_b = full_call(p)
    p.drop(lambda w: w.method == "INVITE")  # the re-INVITE
    p.drop(lambda w: w.is_response(200, "INVITE"))  # and its first 2xx
    p.a.reinvite(call_a, SDP_HOLD)
    p.advance(5.0)
    p.b.answer_reinvite(p.one("b", ReinviteReceived).call, SDP_HELD)
    p.advance(5.0)
    assert p.one("a", ReinviteAnswered).sdp == SDP_HELD
    p.drop(lambda w: w.method == "REFER")
    p.drop(lambda w: w.method == "NOTIFY", count=2)
    p.drop(lambda w: w.method == "INFO")
    p.a.refer(call_a, "sip:agent@10.0.0.7")
    p.a.send_dtmf_info(call_a, "7")
    p.advance(10.0)
    assert p.one("b", ReferReceived).target == "sip:agent@10.0.0.7"
    assert p.one("b", DtmfReceived).digit == "7"
    p.b.notify_refer(call_b, 200)
    p.advance(10.0)
    assert [e.status for e in p.of("a", ReferProgress)] == [100, 200]
    assert p.of("a", ReferProgress)[-1].final


@pytest.mark.parametrize(
    "lost",
    [lambda w: w.method == "OPTIONS", lambda w: w.is_response(200, "OPTIONS")],
    ids=["OPTIONS", "200-OPTIONS"],
)
def test_options_survives_loss(lost: Callable[[Wire], bool]) -> None:
    p = Pair()
    p.drop(lost, count=2)
    query = p.a.options(p.uri_of("b"), p.peer_of("b"))
    p.run_until_quiet()
    assert p.one("a", OptionsResult) == OptionsResult(query, 200, "OK")
    assert len(p.sent(lambda w: w.method == "OPTIONS")) == 3


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_whole_call_under_random_loss(seed: int) -> None:
    p = Pair(seed=seed, loss_rate=0.25)
    call_a, call_b = full_call(p)
    assert call_a.state is CallState.CONFIRMED
    p.a.reinvite(call_a, SDP_HOLD)
    p.advance(10.0)
    p.b.answer_reinvite(call_b, SDP_HELD)
    p.advance(10.0)
    p.b.hangup(call_b)
    p.run_until_quiet()
    assert any(w.dropped for w in p.wire)
    assert len(p.of("b", IncomingCall)) == 1
    assert len(p.of("a", CallAnswered)) == 1
    assert len(p.of("a", ReinviteAnswered)) == 1
    assert p.one("a", CallEnded).by == "remote"
    assert_one_terminal_each(p)


# --- timers that give up --------------------------------------------------------------------


def test_timer_b_no_answer_at_all() -> None:
    p = Pair()
    p.drop(lambda w: w.dst == "b", count=1000)
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.advance(31.9)
    assert not p.of("a", CallFailed)
    p.advance(0.2)
    assert p.one("a", CallFailed) == CallFailed(call_a, 408, "Request Timeout")
    assert len(p.sent(lambda w: w.method == "INVITE")) == 7  # Timer A: 0, .5, 1.5 ... 31.5
    assert p.a.get_timer() is None


def test_timer_b_over_tcp_sends_once() -> None:
    p = Pair(transport="tcp")
    p.drop(lambda w: w.dst == "b", count=1000)
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.run_until_quiet()
    assert p.one("a", CallFailed) == CallFailed(call_a, 408, "Request Timeout")
    assert len(p.sent(lambda w: w.method == "INVITE")) == 1  # no Timer A over TCP


def test_timer_f_options_timeout() -> None:
    p = Pair()
    p.drop(lambda w: w.dst == "b", count=1000)
    query = p.a.options(p.uri_of("b"), p.peer_of("b"))
    p.advance(31.9)
    assert not p.of("a", OptionsResult)
    p.advance(0.2)
    assert p.one("a", OptionsResult) == OptionsResult(query, 408, "Request Timeout")
    # Timer E: 0 .5 1.5 3.5 7.5 11.5 ... 31.5 -> 11 sends
    assert len(p.sent(lambda w: w.method == "OPTIONS")) == 11


def test_timer_f_bye_never_answered_still_ends_cleanly() -> None:
    p = Pair()
    call_a, _ = full_call(p)
    p.drop(lambda w: w.dst == "b", count=1000)
    p.a.hangup(call_a)
    p.run_until_quiet()
    assert p.one("a", CallEnded).by == "local"
    assert not p.of("b", CallEnded)
    assert p.a.get_timer() is None


def test_timer_h_no_ack_for_a_rejection() -> None:
    p = Pair()
    p.drop(lambda w: w.method == "ACK", count=1000)
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.flush()
    p.b.reject(p.one("b", IncomingCall).call, 486)
    p.run_until_quiet()
    # Timer G: 0 .5 1.5 3.5 7.5 11.5 15.5 19.5 23.5 27.5 31.5 -> 11 sends, then H at 32.
    assert len(p.sent(lambda w: w.is_response(486, "INVITE"))) == 11
    assert p.one("a", CallFailed) == CallFailed(call_a, 486, "Busy Here")
    assert p.b.get_timer() is None and not p.b._server_txs


@pytest.mark.parametrize(("transport", "linger"), [("udp", 32.0), ("tcp", 0.0)])
def test_timer_j_server_transaction_lingers(transport: str, linger: float) -> None:
    p = Pair(transport=transport)
    p.a.options(p.uri_of("b"), p.peer_of("b"))
    p.flush()
    assert bool(p.b._server_txs) is (linger > 0)
    if linger:
        p.advance(linger - 0.1)
        assert p.b._server_txs
        p.advance(0.2)
        assert not p.b._server_txs


def test_cancel_with_no_final_response_gives_up_after_64_t1() -> None:
    p = Pair()
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.flush()
    p.drop(lambda w: w.dst == "a", count=1000)  # b goes silent
    p.a.cancel(call_a)
    p.run_until_quiet()
    assert p.a.get_timer() is None
    assert not p.a._client_txs
