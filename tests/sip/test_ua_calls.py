"""Whole call flows between two UserAgents in memory (RFC 3261 §13-§15, RFC 3515, INFO)."""

from __future__ import annotations

import pytest

from trunkline.sip.call import Call, CallState
from trunkline.sip.errors import SipUsageError
from trunkline.sip.events import (
    TERMINAL_EVENTS,
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallFailed,
    CallRinging,
    DtmfReceived,
    IncomingCall,
    OptionsResult,
    ReferProgress,
    ReferReceived,
    ReinviteAnswered,
    ReinviteFailed,
    ReinviteReceived,
)
from trunkline.sip.headers import cseq_of, top_via
from trunkline.sip.message import SipRequest, SipResponse
from trunkline.sip.parser import parse_message

from .pair import SDP_A, SDP_B, SDP_HELD, SDP_HOLD, Pair, Wire


def dial(p: Pair) -> tuple[Call, Call]:
    """a INVITEs b; returns (a's call, b's call) with b not yet answering."""
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.flush()
    return call_a, p.of("b", IncomingCall)[-1].call


def connect(p: Pair) -> tuple[Call, Call]:
    call_a, call_b = dial(p)
    p.b.ring(call_b)
    p.flush()
    p.b.answer(call_b, SDP_B)
    p.flush()
    return call_a, call_b


def parsed(w: Wire) -> SipRequest | SipResponse:
    return parse_message(w.data)


def terminal(p: Pair, name: str) -> list[object]:
    return [e for e in p.events[name] if isinstance(e, TERMINAL_EVENTS)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_basic_call_invite_100_180_200_ack(transport: str) -> None:
    p = Pair(transport=transport)
    call_a, call_b = connect(p)
    assert [w.start_line.split(" ")[0:2] for w in p.wire] == [
        ["INVITE", p.uri_of("b")],
        ["SIP/2.0", "100"],
        ["SIP/2.0", "180"],
        ["SIP/2.0", "200"],
        ["ACK", f"sip:10.0.0.2:5062{';transport=tcp' if transport == 'tcp' else ''}"],
    ]
    inc = p.one("b", IncomingCall)
    assert inc.sdp == SDP_A and inc.request_uri == p.uri_of("b")
    assert "alice" in inc.from_
    assert p.one("a", CallRinging).status == 180
    assert p.one("a", CallAnswered).sdp == SDP_B
    assert p.one("b", CallConfirmed).sdp is None
    assert call_a.state is CallState.CONFIRMED and call_b.state is CallState.CONFIRMED
    # §13.2.2.4: the ACK has the INVITE's CSeq number, method ACK and a new branch.
    invite, ack = parsed(p.wire[0]), parsed(p.wire[4])
    assert cseq_of(ack) == (cseq_of(invite)[0], "ACK")
    assert top_via(ack).branch != top_via(invite).branch
    assert (top_via(ack).branch or "").startswith("z9hG4bK")
    # Contact of both sides: local host:port, ;transport=tcp over TCP.
    ok = parsed(p.wire[3])
    suffix = ";transport=tcp" if transport == "tcp" else ""
    assert ok.headers.get("Contact") == f"<sip:10.0.0.2:5062{suffix}>"
    assert invite.headers.get("Contact") == f"<sip:10.0.0.1:5060{suffix}>"
    p.run_until_quiet()
    assert len(p.wire) == 5  # nothing was ever retransmitted
    assert p.a.get_timer() is None and p.b.get_timer() is None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("who", ["a", "b"])
def test_bye_from_either_side(transport: str, who: str) -> None:
    p = Pair(transport=transport)
    calls = dict(zip("ab", connect(p), strict=True))
    other = "b" if who == "a" else "a"
    p.by_name[who].hangup(calls[who], "done")
    p.flush()
    assert p.one(who, CallEnded) == CallEnded(calls[who], "local", "done")
    assert p.one(other, CallEnded) == CallEnded(calls[other], "remote", "bye")
    assert [w.start_line for w in p.wire[-2:]][1] == "SIP/2.0 200 OK"
    assert p.wire[-2].method == "BYE" and p.wire[-2].src == who
    p.run_until_quiet()
    assert p.a.calls == [] and p.b.calls == []
    assert p.a.get_timer() is None and p.b.get_timer() is None


def test_early_media_183_with_sdp() -> None:
    p = Pair()
    _, call_b = dial(p)
    p.b.ring(call_b, SDP_B)
    p.flush()
    ringing = p.one("a", CallRinging)
    assert ringing.status == 183 and ringing.sdp == SDP_B


def test_ring_on_invite_option() -> None:
    p = Pair(ua_options={"ring_on_invite": True})
    dial(p)
    assert p.one("a", CallRinging).status == 180


def test_cancel_before_answer_gets_200_487_and_ack() -> None:
    p = Pair()
    call_a, call_b = dial(p)
    p.b.ring(call_b)
    p.flush()
    p.a.cancel(call_a)
    p.flush()
    tail = [(w.src, w.start_line.split(" ")[0], w.cseq_method, w.status) for w in p.wire[3:]]
    assert tail == [
        ("a", "CANCEL", "CANCEL", None),
        ("b", "SIP/2.0", "CANCEL", 200),
        ("b", "SIP/2.0", "INVITE", 487),
        ("a", "ACK", "ACK", None),
    ]
    invite, cancel = parsed(p.wire[0]), parsed(p.wire[3])
    assert isinstance(cancel, SipRequest) and isinstance(invite, SipRequest)
    # §9.1: same branch, Request-URI, Call-ID, To, From and CSeq number as the INVITE.
    assert top_via(cancel).branch == top_via(invite).branch
    assert cancel.uri == invite.uri
    for name in ("Call-ID", "To", "From"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert cseq_of(cancel) == (cseq_of(invite)[0], "CANCEL")
    # The ACK of the 487 is the transaction's: same branch as the INVITE (§17.1.1.3).
    assert top_via(parsed(p.wire[6])).branch == top_via(invite).branch
    assert terminal(p, "a") == [CallEnded(call_a, "local", "cancelled")]
    assert terminal(p, "b") == [CallCancelled(call_b)]
    p.b.answer(call_b, SDP_B)  # a late answer to a cancelled call is ignored
    p.flush()
    assert p.wire[-1].method == "ACK"


def test_cancel_waits_for_a_provisional_response() -> None:
    p = Pair()
    p.drop(lambda w: w.status == 100)
    call_a, call_b = dial(p)
    p.a.hangup(call_a)
    p.flush()
    assert not p.sent(lambda w: w.method == "CANCEL")  # §9.1: nothing heard yet
    assert p.one("a", CallEnded).reason == "normal"
    p.b.ring(call_b)
    p.flush()
    assert len(p.sent(lambda w: w.method == "CANCEL")) == 1
    assert p.one("b", CallCancelled).call is call_b
    assert p.sent(lambda w: w.is_response(487, "INVITE"))


def test_answer_racing_cancel_is_acked_and_byed() -> None:
    p = Pair()
    call_a, call_b = dial(p)
    p.b.ring(call_b)
    p.flush()
    p.drop(lambda w: w.method == "CANCEL")  # the CANCEL is lost, so the 200 wins
    p.a.cancel(call_a)
    p.flush()
    p.b.answer(call_b, SDP_B)
    p.flush()
    assert [w.method for w in p.wire[-4:] if w.method] == ["ACK", "BYE"]
    assert p.one("b", CallEnded) == CallEnded(call_b, "remote", "bye")
    assert terminal(p, "a") == [CallEnded(call_a, "local", "cancelled")]
    assert not p.of("a", CallAnswered)


def test_reject_busy_and_unavailable_with_retry_after() -> None:
    p = Pair()
    call_a, call_b = dial(p)
    p.b.reject(call_b, 503, retry_after=30)
    p.flush()
    assert p.one("a", CallFailed) == CallFailed(call_a, 503, "Service Unavailable")
    resp = parsed(p.sent(lambda w: w.status == 503)[0])
    assert resp.headers.get("Retry-After") == "30"
    assert p.wire[-1].method == "ACK"
    assert p.one("b", CallEnded) == CallEnded(call_b, "local", "rejected 503")


@pytest.mark.parametrize(("status", "extra"), [(486, None), (488, None), (500, 5), (404, None)])
def test_reject_statuses(status: int, extra: int | None) -> None:
    p = Pair()
    call_a, call_b = dial(p)
    p.b.reject(call_b, status, retry_after=extra, headers=[("Warning", '399 b "test"')])
    p.flush()
    assert p.one("a", CallFailed).status == status
    resp = parsed(p.sent(lambda w: w.status == status)[0])
    assert resp.headers.get("Warning") == '399 b "test"'
    assert resp.headers.get("Retry-After") == (None if extra is None else str(extra))
    with pytest.raises(SipUsageError):
        p.b.reject(call_b, 200)


def test_uas_hangup_before_answer_sends_480() -> None:
    p = Pair()
    call_a, call_b = dial(p)
    p.b.hangup(call_b, "no agent")
    p.flush()
    assert p.one("a", CallFailed).status == 480
    assert p.one("b", CallEnded) == CallEnded(call_b, "local", "no agent")


def test_hold_and_unhold_by_reinvite() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    for offer, answer in ((SDP_HOLD, SDP_HELD), (SDP_A, SDP_B)):
        p.a.reinvite(call_a, offer)
        p.flush()
        received = p.of("b", ReinviteReceived)[-1]
        assert received.sdp == offer and received.call is call_b
        p.b.answer_reinvite(call_b, answer)
        p.flush()
        assert p.of("a", ReinviteAnswered)[-1] == ReinviteAnswered(call_a, answer)
    assert b"a=sendonly" in p.of("b", ReinviteReceived)[0].sdp
    invites = [parsed(w) for w in p.sent(lambda w: w.method == "INVITE")]
    assert [cseq_of(m)[0] for m in invites] == [1, 2, 3]  # CSeq grows per request (§12.2.1.1)
    assert all(len(m.headers.get_all("Contact")) == 1 for m in invites)
    p.run_until_quiet()
    assert not [w for w in p.wire if w.dropped]
    assert len(p.sent(lambda w: w.method == "ACK")) == 3


def test_reinvite_from_callee_and_rejection() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    p.b.reinvite(call_b, SDP_HOLD)
    p.flush()
    assert p.one("a", ReinviteReceived).call is call_a
    p.a.reject_reinvite(call_a, 488)
    p.flush()
    assert p.one("b", ReinviteFailed) == ReinviteFailed(call_b, 488)
    assert p.wire[-1].method == "ACK"  # the transaction ACKs the 488
    assert call_b.state is CallState.CONFIRMED
    p.b.hangup(call_b)
    p.flush()
    assert p.one("a", CallEnded).by == "remote"


def test_reinvite_glare_both_get_491() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    p.a.reinvite(call_a, SDP_HOLD)
    p.b.reinvite(call_b, SDP_HOLD)
    p.flush()
    assert p.one("a", ReinviteFailed) == ReinviteFailed(call_a, 491)
    assert p.one("b", ReinviteFailed) == ReinviteFailed(call_b, 491)
    assert not p.of("a", ReinviteReceived) and not p.of("b", ReinviteReceived)
    assert len(p.sent(lambda w: w.is_response(491, "INVITE"))) == 2
    # Both may try again afterwards.
    p.a.reinvite(call_a, SDP_HOLD)
    p.flush()
    p.b.answer_reinvite(call_b, SDP_HELD)
    p.flush()
    assert p.one("a", ReinviteAnswered).sdp == SDP_HELD


def test_reinvite_usage_errors() -> None:
    p = Pair()
    call_a, call_b = dial(p)
    with pytest.raises(SipUsageError):
        p.a.reinvite(call_a, SDP_HOLD)  # not confirmed yet
    p.b.answer(call_b, SDP_B)
    p.flush()
    p.a.reinvite(call_a, SDP_HOLD)
    with pytest.raises(SipUsageError):
        p.a.reinvite(call_a, SDP_HOLD)  # §14.1: one at a time
    with pytest.raises(SipUsageError):
        p.b.answer_reinvite(call_b, SDP_B)  # nothing received yet (not flushed)
    with pytest.raises(SipUsageError):
        p.b.reject_reinvite(call_b, 200)


@pytest.mark.parametrize("who", ["a", "b"])
def test_refer_with_notify_sipfrag(who: str) -> None:
    p = Pair()
    calls = dict(zip("ab", connect(p), strict=True))
    other = "b" if who == "a" else "a"
    p.by_name[who].refer(calls[who], "sip:agent@10.0.0.7")
    p.flush()
    assert p.one(other, ReferReceived) == ReferReceived(calls[other], "sip:agent@10.0.0.7")
    assert p.sent(lambda w: w.is_response(202, "REFER"))
    assert p.of(who, ReferProgress) == [ReferProgress(calls[who], 100, False)]
    p.by_name[other].notify_refer(calls[other], 180)
    p.by_name[other].notify_refer(calls[other], 200)
    p.flush()
    assert p.of(who, ReferProgress)[1:] == [
        ReferProgress(calls[who], 180, False),
        ReferProgress(calls[who], 200, True),
    ]
    notifies = [parsed(w) for w in p.sent(lambda w: w.method == "NOTIFY")]
    assert [n.body for n in notifies] == [
        b"SIP/2.0 100 Trying\r\n",
        b"SIP/2.0 180 Ringing\r\n",
        b"SIP/2.0 200 OK\r\n",
    ]
    assert [n.headers.get("Subscription-State") for n in notifies] == [
        "active;expires=60",
        "active;expires=60",
        "terminated;reason=noresource",
    ]
    assert all(n.headers.get("Event") == "refer" for n in notifies)
    assert all(n.content_type == "message/sipfrag" for n in notifies)
    refer = parsed(p.sent(lambda w: w.method == "REFER")[0])
    assert refer.headers.get("Refer-To") == "<sip:agent@10.0.0.7>"
    with pytest.raises(SipUsageError):
        p.by_name[other].notify_refer(calls[other], 200)  # the subscription is over


def test_transfer_failure_is_final_progress() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    p.a.refer(call_a, "<sip:agent@10.0.0.7>")
    p.flush()
    p.b.notify_refer(call_b, 486, "Busy Here")
    p.flush()
    assert p.of("a", ReferProgress)[-1] == ReferProgress(call_a, 486, True)


def test_info_dtmf_relay() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    for digit in "5#":
        p.a.send_dtmf_info(call_a, digit, 200)
    p.flush()
    assert p.of("b", DtmfReceived) == [
        DtmfReceived(call_b, "5", 200),
        DtmfReceived(call_b, "#", 200),
    ]
    info = parsed(p.sent(lambda w: w.method == "INFO")[0])
    assert info.content_type == "application/dtmf-relay"
    assert info.body == b"Signal=5\r\nDuration=200\r\n"
    assert len(p.sent(lambda w: w.is_response(200, "INFO"))) == 2
    with pytest.raises(SipUsageError):
        p.a.send_dtmf_info(call_a, "x")


def test_options_out_of_dialog() -> None:
    p = Pair()
    query = p.a.options(p.uri_of("b"), p.peer_of("b"))
    p.flush()
    assert p.one("a", OptionsResult) == OptionsResult(query, 200, "OK")
    resp = parsed(p.wire[1])
    assert "INVITE" in (resp.headers.get("Allow") or "")
    assert "application/sdp" in (resp.headers.get("Accept") or "")
    assert resp.headers.get("Supported") is not None
    assert not p.events["b"]  # answering OPTIONS is the UA's job, not the app's


def test_duplicate_invite_resends_response_without_second_incoming_call() -> None:
    p = Pair()
    _, call_b = dial(p)
    p.b.ring(call_b)
    p.flush()
    invite = p.wire[0].data
    p.b.receive_message(invite, p.peer_of("a"), p.now)  # the INVITE again
    out = p.b.messages_to_send()
    assert [d.split(b"\r\n", 1)[0] for d, _ in out] == [b"SIP/2.0 180 Ringing"]
    p.b.answer(call_b, SDP_B)
    p.flush()
    p.b.receive_message(invite, p.peer_of("a"), p.now)  # after the 2xx: absorbed (RFC 6026)
    assert p.b.messages_to_send() == []
    p.flush()
    assert len(p.of("b", IncomingCall)) == 1


def test_retransmitted_2xx_is_reacked_without_second_answer() -> None:
    p = Pair()
    connect(p)
    ok = p.sent(lambda w: w.is_response(200, "INVITE"))[0]
    acks_before = len(p.sent(lambda w: w.method == "ACK"))
    for _ in range(2):
        p.a.receive_message(ok.data, p.peer_of("b"), p.now)
    p.flush()
    acks = p.sent(lambda w: w.method == "ACK")
    assert len(acks) == acks_before + 2
    assert acks[-1].data == acks[0].data  # the identical ACK
    assert len(p.of("a", CallAnswered)) == 1
    # After Timer M the 2xx is matched to the dialog instead, with the same result.
    p.advance(40.0)
    p.a.receive_message(ok.data, p.peer_of("b"), p.now)
    assert [d for d, _ in p.a.messages_to_send()] == [acks[0].data]


def test_duplicate_bye_gets_200_again_without_second_call_ended() -> None:
    p = Pair()
    call_a, _ = connect(p)
    p.a.hangup(call_a)
    p.flush()
    bye = p.sent(lambda w: w.method == "BYE")[0]
    p.b.receive_message(bye.data, p.peer_of("a"), p.now)
    out = p.b.messages_to_send()
    assert [d.split(b"\r\n", 1)[0] for d, _ in out] == [b"SIP/2.0 200 OK"]
    p.flush()
    assert len(p.of("b", CallEnded)) == 1


def test_second_fork_2xx_is_acked_and_byed() -> None:
    p = Pair()
    call_a, _ = connect(p)
    ok = p.sent(lambda w: w.is_response(200, "INVITE"))[0].data
    # The same 2xx from another fork: only the To tag differs.
    lines = ok.split(b"\r\n")
    lines = [ln.replace(b";tag=", b";tag=zz", 1) if ln.startswith(b"To:") else ln for ln in lines]
    fork = b"\r\n".join(lines)
    p.a.receive_message(fork, p.peer_of("b"), p.now)
    out = [d.split(b"\r\n", 1)[0].split(b" ")[0] for d, _ in p.a.messages_to_send()]
    assert out == [b"ACK", b"BYE"]
    assert call_a.state is CallState.CONFIRMED  # the first dialog is untouched
    assert len(p.of("a", CallAnswered)) == 1


def test_ack_timeout_ends_call_with_bye() -> None:
    p = Pair()
    p.drop(lambda w: w.method == "ACK", count=100)
    call_a, call_b = connect(p)
    p.advance(31.0)
    assert not terminal(p, "b")
    retransmits = p.sent(lambda w: w.is_response(200, "INVITE"))
    # §13.3.1.4: T1, 2T1, 4T1, then every T2 -> 0.5 1.5 3.5 7.5 11.5 ... 27.5 by t=31
    assert len(retransmits) == 1 + 9
    p.advance(1.0)
    assert p.one("b", CallEnded) == CallEnded(call_b, "local", "ack timeout")
    assert p.one("a", CallEnded) == CallEnded(call_a, "remote", "bye")


def test_timer_c_cancels_a_call_that_rings_forever() -> None:
    p = Pair()
    call_a, call_b = dial(p)
    p.b.ring(call_b)
    p.advance(179.0)
    assert not p.of("a", CallFailed)
    p.advance(2.0)
    assert p.one("a", CallFailed) == CallFailed(call_a, 408, "Request Timeout")
    assert p.one("b", CallCancelled).call is call_b


def test_tcp_call_sends_nothing_twice_even_with_timers_run() -> None:
    p = Pair(transport="tcp")
    call_a, call_b = connect(p)
    p.a.reinvite(call_a, SDP_HOLD)
    p.flush()
    p.b.answer_reinvite(call_b, SDP_HELD)
    p.a.refer(call_a, "sip:x@10.0.0.7")
    p.a.send_dtmf_info(call_a, "1")
    p.flush()
    p.b.notify_refer(call_b, 200)
    p.b.hangup(call_b)
    p.run_until_quiet()
    datas = [w.data for w in p.wire]
    assert len(datas) == len(set(datas))
    assert p.one("a", CallEnded).by == "remote"
    assert p.a.get_timer() is None and p.b.get_timer() is None


def test_uas_hangup_before_ack_waits_for_the_ack() -> None:
    p = Pair()
    p.drop(lambda w: w.method == "ACK")
    call_a, call_b = connect(p)
    p.b.hangup(call_b, "agent done")
    p.flush()
    assert p.one("b", CallEnded) == CallEnded(call_b, "local", "agent done")
    assert not p.sent(lambda w: w.method == "BYE")  # §15: not before the ACK
    p.advance(0.5)  # the 2xx is re-sent, re-ACKed, and then the BYE goes
    assert len(p.sent(lambda w: w.method == "BYE")) == 1
    assert p.one("a", CallEnded) == CallEnded(call_a, "remote", "bye")
    p.run_until_quiet()
    assert p.a.get_timer() is None and p.b.get_timer() is None


def test_bye_while_reinvite_pending_gets_487_for_it() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    p.b.reinvite(call_b, SDP_HOLD)
    p.flush()
    assert p.one("a", ReinviteReceived).call is call_a
    p.a.hangup(call_a)  # a hangs up instead of answering the re-INVITE
    p.flush()
    assert p.sent(lambda w: w.is_response(487, "INVITE"))
    assert p.one("b", ReinviteFailed) == ReinviteFailed(call_b, 487)
    assert p.one("b", CallEnded).by == "remote"


def test_remote_bye_while_we_have_a_reinvite_to_answer() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    p.a.reinvite(call_a, SDP_HOLD)
    p.flush()
    p.drop(lambda w: w.is_response(487, "INVITE"))
    p.a.hangup(call_a)
    p.flush()
    assert p.one("b", CallEnded) == CallEnded(call_b, "remote", "bye")
    p.b.answer_reinvite(call_b, SDP_HELD)  # too late: ignored
    p.run_until_quiet()
    assert not p.of("a", ReinviteAnswered)
    assert p.a.get_timer() is None and p.b.get_timer() is None


def test_reinvite_2xx_after_our_bye_is_still_acked() -> None:
    p = Pair()
    call_a, call_b = connect(p)
    p.a.reinvite(call_a, SDP_HOLD)
    p.flush()
    p.drop(lambda w: w.method == "BYE")
    p.a.hangup(call_a)
    p.flush()
    p.b.answer_reinvite(call_b, SDP_HELD)
    p.flush()
    assert p.wire[-1].method == "ACK" and p.wire[-1].src == "a"
    assert not p.of("a", ReinviteAnswered)  # the call had already ended for the app
    p.run_until_quiet()
    assert p.one("b", CallEnded).by == "remote"
    assert p.a.get_timer() is None and p.b.get_timer() is None
