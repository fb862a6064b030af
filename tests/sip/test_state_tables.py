"""Property tests over the four §17 transaction tables (the h11/h2 pattern).

Every (state, input) pair is tried: a pair the table lacks must raise our protocol error
(wire input) or usage error (TU/timer input) and leave the transaction untouched; a pair
it has must land in the table's next state. Random walks then check that no sequence of
inputs leads to anything but those outcomes, and that a terminated transaction holds no
timers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import SipError, SipProtocolError, SipUsageError
from trunkline.sip.events import Peer
from trunkline.sip.message import Headers, SipRequest, SipResponse, make_response
from trunkline.sip.timers import TimerConfig, TimerQueue
from trunkline.sip.transaction import (
    ALL_KINDS,
    WIRE_INPUTS,
    Transaction,
    TxInput,
    TxState,
)

from .test_transaction import FakeTU

PEERS = (Peer("udp", "10.0.0.2", 5060), Peer("tcp", "10.0.0.2", 5060, conn_id=1))


def _request(method: str) -> SipRequest:
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKprop")
    h.add("From", "<sip:a@x>;tag=1")
    h.add("To", "<sip:b@y>")
    h.add("Call-ID", "prop@x")
    h.add("CSeq", f"1 {method}")
    return SipRequest(headers=h, method=method, uri="sip:b@y")


def _message(tx: Transaction, inp: TxInput) -> SipRequest | SipResponse | None:
    status = {
        TxInput.RESPONSE_1XX: 180, TxInput.RESPONSE_2XX: 200, TxInput.RESPONSE_FINAL: 486,
        TxInput.SEND_1XX: 180, TxInput.SEND_2XX: 200, TxInput.SEND_FINAL: 486,
    }.get(inp)  # fmt: skip
    if status is not None:
        return make_response(tx.request, status, to_tag="t")
    if inp is TxInput.ACK:
        ack = _request("ACK")
        return ack
    if inp is TxInput.REQUEST:
        return tx.request
    return None


def _new(kind: type[Transaction], peer: Peer) -> tuple[Transaction, FakeTU, TimerQueue]:
    tu = FakeTU()
    queue = TimerQueue()
    method = "INVITE" if "INVITE" in kind.KIND and "non" not in kind.KIND else "BYE"
    tx = kind(tu, queue, TimerConfig(), ("z9hG4bKprop", method), _request(method), peer)
    return tx, tu, queue


PAIRS = [(kind, state, inp) for kind in ALL_KINDS for state in TxState for inp in TxInput]


@pytest.mark.parametrize("peer", PEERS, ids=["udp", "tcp"])
@pytest.mark.parametrize(("kind", "state", "inp"), PAIRS)
def test_every_state_input_pair(
    kind: type[Transaction], state: TxState, inp: TxInput, peer: Peer
) -> None:
    tx, _, _ = _new(kind, peer)
    tx.state = state
    entry = kind.TABLE.get((state, inp))
    if entry is None:
        expected = SipProtocolError if inp in WIRE_INPUTS else SipUsageError
        with pytest.raises(expected):
            tx.fire(inp, 1.0, _message(tx, inp))
        assert tx.state is state  # a refused input changes nothing
        return
    tx.fire(inp, 1.0, _message(tx, inp))
    _, next_state = entry
    # Over TCP a zero-length timer (D, I, J, K) may carry it on to Terminated at once.
    assert tx.state in (next_state, TxState.TERMINATED)
    if tx.state is not next_state:
        assert peer.reliable


def test_tables_only_name_states_of_their_kind() -> None:
    for kind in ALL_KINDS:
        states = {s for s, _ in kind.TABLE} | {n for _, n in kind.TABLE.values()}
        assert kind.INITIAL in states
        for state in states - {TxState.TERMINATED}:
            # every non-terminal state has a way out
            assert any(kind.TABLE[k][1] is not state for k in kind.TABLE if k[0] is state)
        assert not any(s is TxState.TERMINATED for s, _ in kind.TABLE)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(ALL_KINDS),
    peer=st.sampled_from(PEERS),
    steps=st.lists(st.tuples(st.sampled_from(list(TxInput)), st.floats(0, 40)), max_size=25),
)
def test_random_walks_never_escape(
    kind: type[Transaction], peer: Peer, steps: list[tuple[TxInput, float]]
) -> None:
    tx, tu, queue = _new(kind, peer)
    now = 0.0
    if hasattr(tx, "start"):
        tx.start(now)
    for inp, dt in steps:
        now += dt
        try:
            queue.fire_due(now)  # real timers first, as the user agent would
        except SipError:
            pytest.fail("an armed timer fired into a state that does not take it")
        if tx.terminated:
            break
        try:
            tx.fire(inp, now, _message(tx, inp))
        except (SipProtocolError, SipUsageError):
            continue
        if tx.terminated:
            break
    if tx.terminated:
        assert tx.armed_timers() == frozenset()
        assert tu.terminated == 1
    else:
        # Every armed timer belongs to the current state (§17: stale timers cannot fire).
        allowed = kind.STATE_TIMERS.get(tx.state, frozenset())
        assert tx.armed_timers() <= allowed
