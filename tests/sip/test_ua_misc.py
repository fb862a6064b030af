"""Determinism, clean-up and the adapter-facing corners of the UserAgent API."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.call import CallState
from trunkline.sip.events import CallFailed, IncomingCall, OptionsResult, Peer
from trunkline.sip.parser import parse_message
from trunkline.sip.ua import UserAgent

from .pair import SDP_A, SDP_B, Pair
from .test_ua_calls import connect


def assert_clean(ua: UserAgent) -> None:
    """Nothing left behind once every call and transaction is over."""
    assert ua.get_timer() is None
    assert ua.calls == []
    assert not ua._client_txs and not ua._server_txs
    assert not ua._handlers and not ua._merged and not ua._dialogs


def test_same_seed_same_bytes() -> None:
    runs = []
    for _ in range(2):
        p = Pair(seed=42)
        call_a, _ = connect(p)
        p.a.hangup(call_a)
        p.run_until_quiet()
        runs.append([w.data for w in p.wire])
    assert runs[0] == runs[1]
    assert b"branch=z9hG4bK" in runs[0][0]


def test_everything_is_cleaned_up_after_calls() -> None:
    p = Pair()
    for who in "abab":
        call_a, call_b = connect(p)
        p.by_name[who].hangup(call_a if who == "a" else call_b)
        p.run_until_quiet()
    p.a.options(p.uri_of("b"), p.peer_of("b"))
    p.run_until_quiet()
    assert_clean(p.a)
    assert_clean(p.b)


def test_transport_error_fails_the_call_with_503() -> None:
    p = Pair(transport="tcp")
    call_a = p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    p.a.messages_to_send()  # the adapter could not connect
    p.a.transport_error(p.peer_of("b"), p.now)
    assert p.a.next_event() == CallFailed(call_a, 503, "Service Unavailable")
    assert call_a.state is CallState.ENDED
    assert_clean(p.a)


def test_receive_parsed_matches_receive_message() -> None:
    p = Pair()
    p.a.invite(p.uri_of("b"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
    ((data, _),) = p.a.messages_to_send()
    p.b.receive_parsed(parse_message(data), Peer("udp", "10.0.0.1", 5060), p.now)
    event = p.b.next_event()
    assert isinstance(event, IncomingCall) and event.sdp == SDP_A


def test_actions_take_an_explicit_now() -> None:
    p = Pair()
    query = p.a.options(p.uri_of("b"), p.peer_of("b"), now=500.0)
    p.a.messages_to_send()
    assert p.a.get_timer() == 500.5  # Timer E armed from the given time
    p.a.handle_timer(500.0 + 32.0)
    events = []
    while (e := p.a.next_event()) is not None:
        events.append(e)
    assert events == [OptionsResult(query, 408, "Request Timeout")]


def test_many_concurrent_calls_stay_separate() -> None:
    p = Pair()
    calls = [
        p.a.invite(p.uri_of("b", f"u{i}"), SDP_A, p.peer_of("b"), from_uri="sip:alice@10.0.0.1")
        for i in range(20)
    ]
    p.flush()
    for inc in p.of("b", IncomingCall):
        p.b.answer(inc.call, SDP_B)
    p.flush()
    assert all(c.state is CallState.CONFIRMED for c in calls)
    assert len({c.call_id for c in calls}) == 20
    for c in calls[::2]:
        p.a.hangup(c)
    p.run_until_quiet()
    assert len(p.b.calls) == 10


def _midcall(p: Pair) -> None:
    """Connect, re-INVITE, REFER and INFO; leaves a live call with a REFER subscription."""
    call_a, call_b = connect(p)
    p.a.reinvite(call_a, SDP_A)
    p.flush()
    p.b.answer_reinvite(call_b, SDP_B)
    p.a.refer(call_a, "sip:x@10.0.0.7")
    p.a.send_dtmf_info(call_a, "3")
    p.flush()


def _wire_of_a_full_call() -> list[bytes]:
    p = Pair()
    _midcall(p)
    call_b = p.b.calls[0]
    p.b.notify_refer(call_b, 200)
    p.b.hangup(call_b)
    p.flush()
    return [w.data for w in p.wire]


WIRE = _wire_of_a_full_call()


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(0, len(WIRE) - 1),
    cut=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
)
def test_receive_never_raises_on_mangled_messages(
    index: int, cut: int, flips: list[tuple[int, int]]
) -> None:
    """Whatever arrives mid-call, the UA answers, drops or reports it; it never raises.

    The pair replays the call that produced WIRE (same seed, same tags), so mangled
    in-dialog requests reach the dialog and method handlers, not just the 481 path.
    """
    data = bytearray(WIRE[index][: max(1, cut)])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    p = Pair()
    _midcall(p)
    for ua in (p.a, p.b):
        ua.receive_message(bytes(data), Peer("udp", "10.0.0.9", 5099), p.now)
    p.run_until_quiet()
