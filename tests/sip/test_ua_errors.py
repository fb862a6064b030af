"""Every error answer a UAS owes (RFC 3261 §8.2, §12.2.2, §14.2, §9.2; RFC 3515; RFC 6665),
probed with raw requests, plus response routing (§18.2.2, RFC 3581)."""

from __future__ import annotations

import random

import pytest

from trunkline.sip.events import (
    IncomingCall,
    MessageRejected,
    Peer,
    ReinviteReceived,
)
from trunkline.sip.message import SipResponse
from trunkline.sip.ua import UserAgent

from .pair import PROBE, SDP_A, SDP_B, exchange, raw_request

NOW = 100.0


def ua(*, reject_max_forwards_zero: bool = False) -> UserAgent:
    agent = UserAgent(
        local_host="10.0.0.2",
        local_port=5062,
        rand=random.Random(5),
        reject_max_forwards_zero=reject_max_forwards_zero,
    )
    agent.handle_timer(NOW)
    return agent


def answer_to(agent: UserAgent, data: bytes, peer: Peer = PROBE) -> SipResponse:
    """The one final response ``agent`` sends to ``data``."""
    sent, _, _ = exchange(agent, data, NOW, peer)
    finals = [m for m in sent if isinstance(m, SipResponse) and m.status >= 200]
    assert len(finals) == 1, sent
    return finals[0]


def established(agent: UserAgent) -> str:
    """Put a confirmed inbound call on ``agent``; return its To tag."""
    sent, _, events = exchange(agent, raw_request(body=SDP_A, content_type="application/sdp"))
    call = next(e for e in events if isinstance(e, IncomingCall)).call
    agent.answer(call, SDP_B)
    agent.messages_to_send()
    exchange(agent, raw_request("ACK", branch="z9hG4bKack1", to_tag=call.local_tag))
    return call.local_tag


# --- malformed --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("omit", "words"),
    [(("Call-ID",), "Call-ID"), (("Max-Forwards", "From"), "From")],
)
def test_400_names_what_is_wrong(omit: tuple[str, ...], words: str) -> None:
    agent = ua()
    data = raw_request("OPTIONS", omit=omit)
    sent, peers, events = exchange(agent, data)
    rejected = [e for e in events if isinstance(e, MessageRejected)]
    assert rejected and rejected[0].status == 400 and words in rejected[0].reason
    if sent:  # answerable only when the headers a response needs are all there
        assert isinstance(sent[0], SipResponse) and sent[0].status == 400
        assert words in sent[0].reason
        assert peers == [PROBE]
    else:
        assert words in ("Call-ID", "From")


def test_400_for_bad_cseq_is_answered() -> None:
    agent = ua()
    data = raw_request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
    sent, _, _ = exchange(agent, data)
    assert isinstance(sent[0], SipResponse) and sent[0].status == 400
    assert "CSeq" in sent[0].reason


def test_garbage_is_dropped_and_reported() -> None:
    agent = ua()
    sent, _, events = exchange(agent, b"\x00\xffnot sip at all\r\n\r\n")
    assert sent == []
    assert isinstance(events[0], MessageRejected) and events[0].peer == PROBE


def test_505_for_other_sip_versions() -> None:
    agent = ua()
    data = raw_request("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    assert answer_to(agent, data).status == 505


def test_400_for_invite_without_contact() -> None:
    data = raw_request(body=SDP_A, content_type="application/sdp", contact=None)
    resp = answer_to(ua(), data)
    assert resp.status == 400 and "Contact" in resp.reason


def test_416_for_unsupported_uri_scheme() -> None:
    agent = ua()
    assert answer_to(agent, raw_request("OPTIONS", "http://example.com/")).status == 416


def test_crlf_keepalive_is_ignored() -> None:
    agent = ua()
    assert exchange(agent, b"\r\n\r\n") == ([], [], [])


def test_response_with_two_vias_is_dropped() -> None:
    agent = ua()
    data = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKx\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKy\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    sent, _, events = exchange(agent, data)
    assert sent == [] and isinstance(events[0], MessageRejected)


# --- §8.2 checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["SUBSCRIBE", "PUBLISH", "MESSAGE", "REGISTER", "UPDATE"])
def test_405_with_allow(method: str) -> None:
    resp = answer_to(ua(), raw_request(method))
    assert resp.status == 405
    allow = resp.headers.get_all("Allow")  # the parser splits comma lists
    assert "INVITE" in allow and "REFER" in allow and method not in allow
    assert (resp.headers.get("To") or "").count(";tag=") == 1  # §8.2.6.2


def test_415_for_invite_that_is_not_sdp() -> None:
    agent = ua()
    data = raw_request(body=b"hello", content_type="text/plain")
    sent, _, events = exchange(agent, data)
    resp = [m for m in sent if isinstance(m, SipResponse)][-1]
    assert resp.status == 415 and resp.headers.get("Accept") == "application/sdp"
    assert not [e for e in events if isinstance(e, IncomingCall)]


def test_415_for_encoded_body() -> None:
    data = raw_request(
        body=SDP_A, content_type="application/sdp", extra=(("Content-Encoding", "gzip"),)
    )
    resp = answer_to(ua(), data)
    assert resp.status == 415 and resp.headers.get("Accept-Encoding") == "identity"


def test_420_for_unknown_require() -> None:
    data = raw_request(
        body=SDP_A, content_type="application/sdp", extra=(("Require", "100rel, foo"),)
    )
    resp = answer_to(ua(), data)
    assert resp.status == 420 and resp.headers.get_all("Unsupported") == ["100rel", "foo"]


def test_482_for_merged_request() -> None:
    agent = ua()
    invite = raw_request(body=SDP_A, content_type="application/sdp")
    exchange(agent, invite)
    again = raw_request(body=SDP_A, content_type="application/sdp", branch="z9hG4bKother")
    assert answer_to(agent, again).status == 482


def test_max_forwards_zero_is_processed_by_default_and_483_when_asked() -> None:
    data = raw_request("OPTIONS").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    assert answer_to(ua(), data).status == 200  # RFC 4475 §3.3.11 endpoint behaviour
    invite = raw_request(body=SDP_A, content_type="application/sdp").replace(
        b"Max-Forwards: 70", b"Max-Forwards: 0"
    )
    assert answer_to(ua(reject_max_forwards_zero=True), invite).status == 483
    assert answer_to(ua(reject_max_forwards_zero=True), data).status == 200  # OPTIONS (§11)


# --- dialogs -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["BYE", "INFO", "NOTIFY", "REFER", "INVITE"])
def test_481_for_in_dialog_request_without_dialog(method: str) -> None:
    assert answer_to(ua(), raw_request(method, to_tag="nosuch")).status == 481


@pytest.mark.parametrize("method", ["BYE", "INFO"])
def test_481_for_dialog_request_without_to_tag(method: str) -> None:
    assert answer_to(ua(), raw_request(method)).status == 481


def test_481_for_cancel_matching_nothing() -> None:
    assert answer_to(ua(), raw_request("CANCEL")).status == 481


def test_500_for_lower_cseq_in_dialog() -> None:
    agent = ua()
    tag = established(agent)
    ok = answer_to(agent, raw_request("INFO", to_tag=tag, cseq=5, branch="z9hG4bKi5"))
    assert ok.status == 200
    old = answer_to(agent, raw_request("INFO", to_tag=tag, cseq=4, branch="z9hG4bKi4"))
    assert old.status == 500 and "lower" in old.reason


def test_491_and_500_for_overlapping_reinvites() -> None:
    agent = ua()
    tag = established(agent)
    first = raw_request(
        to_tag=tag, cseq=2, branch="z9hG4bKr2", body=SDP_A, content_type="application/sdp"
    )
    _, _, events = exchange(agent, first)
    assert [type(e) for e in events] == [ReinviteReceived]
    second = raw_request(
        to_tag=tag, cseq=3, branch="z9hG4bKr3", body=SDP_A, content_type="application/sdp"
    )
    resp = answer_to(agent, second)
    # §14.2: our answer to the first is pending -> 500 with Retry-After 0..10.
    assert resp.status == 500
    assert 0 <= int(resp.headers.get("Retry-After") or "-1") <= 10
    assert isinstance(events[0], ReinviteReceived)
    call = events[0].call
    agent.answer_reinvite(call, SDP_B)
    agent.messages_to_send()
    agent.reinvite(call, SDP_B)  # ours is now in progress
    agent.messages_to_send()
    third = raw_request(
        to_tag=tag, cseq=4, branch="z9hG4bKr4", body=SDP_A, content_type="application/sdp"
    )
    assert answer_to(agent, third).status == 491  # glare


def test_489_for_notify_of_unknown_event() -> None:
    agent = ua()
    tag = established(agent)
    data = raw_request(
        "NOTIFY", to_tag=tag, cseq=2, branch="z9hG4bKn", extra=(("Event", "presence"),),
        body=b"SIP/2.0 200 OK\r\n", content_type="message/sipfrag",
    )  # fmt: skip
    assert answer_to(agent, data).status == 489


def test_481_for_refer_notify_without_subscription() -> None:
    agent = ua()
    tag = established(agent)
    data = raw_request(
        "NOTIFY", to_tag=tag, cseq=2, branch="z9hG4bKn",
        extra=(("Event", "refer"), ("Subscription-State", "active")),
        body=b"SIP/2.0 200 OK\r\n", content_type="message/sipfrag",
    )  # fmt: skip
    assert answer_to(agent, data).status == 481


def test_400_for_refer_without_refer_to() -> None:
    agent = ua()
    tag = established(agent)
    assert answer_to(agent, raw_request("REFER", to_tag=tag, cseq=2)).status == 400


@pytest.mark.parametrize(
    ("ctype", "body", "status"),
    [
        ("text/plain", b"5", 415),
        ("application/dtmf-relay", b"Signal=Z\r\n", 400),
        ("application/dtmf", b"9", 200),
        (None, b"", 200),
    ],
)
def test_info_bodies(ctype: str | None, body: bytes, status: int) -> None:
    agent = ua()
    tag = established(agent)
    data = raw_request("INFO", to_tag=tag, cseq=2, body=body, content_type=ctype)
    resp = answer_to(agent, data)
    assert resp.status == status
    if status == 415:
        assert "application/dtmf-relay" in resp.headers.get_all("Accept")


def test_options_inside_a_dialog() -> None:
    agent = ua()
    tag = established(agent)
    resp = answer_to(agent, raw_request("OPTIONS", to_tag=tag, cseq=2))
    assert resp.status == 200 and resp.headers.get("Allow")


# --- response routing (§18.2.2, RFC 3581) --------------------------------------------------


def test_rport_sends_to_source_port_and_records_it() -> None:
    agent = ua()
    data = raw_request("OPTIONS", via="SIP/2.0/UDP 192.168.1.5:5060;rport")
    nat = Peer("udp", "203.0.113.9", 40123)
    sent, peers, _ = exchange(agent, data, NOW, nat)
    assert peers == [Peer("udp", "203.0.113.9", 40123)]
    via = sent[0].headers.get("Via") or ""
    assert "rport=40123" in via and "received=203.0.113.9" in via


def test_without_rport_sends_to_received_host_and_via_port() -> None:
    agent = ua()
    data = raw_request("OPTIONS", via="SIP/2.0/UDP 192.168.1.5:5070")
    sent, peers, _ = exchange(agent, data, NOW, Peer("udp", "203.0.113.9", 40123))
    assert peers == [Peer("udp", "203.0.113.9", 5070)]
    assert "received=203.0.113.9" in (sent[0].headers.get("Via") or "")


def test_tcp_answers_on_the_same_connection_with_tcp_contact() -> None:
    agent = ua()
    conn = Peer("tcp", "10.0.0.9", 41000, conn_id=17)
    data = raw_request(via="SIP/2.0/TCP 10.0.0.9:5099", body=SDP_A, content_type="application/sdp")
    _, peers, events = exchange(agent, data, NOW, conn)
    assert peers == [conn]
    call = next(e for e in events if isinstance(e, IncomingCall)).call
    agent.answer(call, SDP_B)
    ((data_out, peer_out),) = agent.messages_to_send()
    assert peer_out == conn
    assert b"Contact: <sip:10.0.0.2:5062;transport=tcp>" in data_out


def test_rfc2543_branch_still_matches_retransmissions() -> None:
    agent = ua()
    data = raw_request(branch="oldstyle1", body=SDP_A, content_type="application/sdp")
    _, _, events = exchange(agent, data)
    sent, _, events2 = exchange(agent, data)
    assert [type(e) for e in events] == [IncomingCall]
    assert events2 == [] and [m.status for m in sent if isinstance(m, SipResponse)] == [100]


def test_bye_in_early_dialog_ends_the_call_and_487s_the_invite() -> None:
    agent = ua()
    _, _, events = exchange(agent, raw_request(body=SDP_A, content_type="application/sdp"))
    call = next(e for e in events if isinstance(e, IncomingCall)).call
    agent.ring(call)
    agent.messages_to_send()
    sent, _, events = exchange(agent, raw_request("BYE", to_tag=call.local_tag, cseq=2))
    statuses = sorted((m.status, m.headers.get("CSeq")) for m in sent if isinstance(m, SipResponse))
    assert statuses == [(200, "2 BYE"), (487, "1 INVITE")]
    assert [type(e).__name__ for e in events] == ["CallEnded"]


def test_cancel_of_a_reinvite() -> None:
    agent = ua()
    tag = established(agent)
    reinvite = raw_request(
        to_tag=tag, cseq=2, branch="z9hG4bKre", body=SDP_A, content_type="application/sdp"
    )
    exchange(agent, reinvite)
    cancel = raw_request("CANCEL", to_tag=tag, cseq=2, branch="z9hG4bKre")
    sent, _, events = exchange(agent, cancel)
    statuses = sorted((m.status, m.headers.get("CSeq")) for m in sent if isinstance(m, SipResponse))
    assert statuses == [(200, "2 CANCEL"), (487, "2 INVITE")]
    assert events == []  # the call itself goes on
    assert agent.calls and agent.calls[0].state.value == "confirmed"
