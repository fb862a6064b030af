"""Dialog state and in-dialog request construction (RFC 3261 §12)."""

from __future__ import annotations

import pytest

from trunkline.sip.dialog import Dialog, DialogState
from trunkline.sip.errors import SipProtocolError, SipUsageError
from trunkline.sip.events import Peer
from trunkline.sip.message import Headers, SipRequest, make_response
from trunkline.sip.parser import parse_message


def invite(
    *, record_route: list[str] | None = None, contact: str | None = "<sip:alice@10.0.0.1:5070>"
) -> SipRequest:
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKd1")
    for rr in record_route or ():
        h.add("Record-Route", rr)
    h.add("From", '"Alice" <sip:alice@example.com>;tag=from1')
    h.add("To", "<sip:bob@example.com>")
    h.add("Call-ID", "dlg-1@10.0.0.1")
    h.add("CSeq", "4 INVITE")
    if contact is not None:
        h.add("Contact", contact)
    return SipRequest(headers=h, method="INVITE", uri="sip:bob@example.com")


RR = ["<sip:p1.example.com;lr>", "<sip:p2.example.com:5080;lr>"]


def test_uas_dialog_from_request() -> None:
    d = Dialog.for_uas(invite(record_route=RR), "to1", "udp")
    assert d.key == ("dlg-1@10.0.0.1", "to1", "from1")
    assert d.state is DialogState.EARLY
    assert d.route_set == RR  # §12.1.1: in order
    assert d.remote_target == "sip:alice@10.0.0.1:5070"
    assert d.remote_seq == 4 and d.local_seq is None
    assert d.local_uri == "<sip:bob@example.com>;tag=to1"


def test_uas_dialog_needs_contact() -> None:
    with pytest.raises(SipProtocolError) as err:
        Dialog.for_uas(invite(contact=None), "to1", "udp")
    assert err.value.status_hint == 400


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    req = invite()
    resp = make_response(req, 200, to_tag="to9")
    for rr in RR:
        resp.headers.add("Record-Route", rr)
    resp.headers.add("Contact", "<sip:bob@10.0.0.2:5062;transport=tcp>")
    d = Dialog.for_uac(req, resp)
    assert d.state is DialogState.CONFIRMED
    assert d.route_set == list(reversed(RR))  # §12.1.2
    assert d.key == ("dlg-1@10.0.0.1", "from1", "to9")
    assert d.local_seq == 4 and d.remote_seq is None
    assert d.remote_target == "sip:bob@10.0.0.2:5062;transport=tcp"


def test_uac_dialog_from_provisional_is_early() -> None:
    req = invite()
    resp = make_response(req, 180, to_tag="to9")
    resp.headers.add("Contact", "<sip:bob@10.0.0.2>")
    d = Dialog.for_uac(req, resp)
    assert d.state is DialogState.EARLY
    d.confirm(resp)
    assert d.state is DialogState.CONFIRMED


def test_in_dialog_request_loose_routing_round_trips() -> None:
    d = Dialog.for_uas(invite(record_route=RR), "to1", "udp")
    bye = d.create_request("BYE", via="SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKx")
    assert bye.uri == "sip:alice@10.0.0.1:5070"  # remote target
    assert bye.headers.get_all("Route") == RR
    assert bye.headers.get("From") == "<sip:bob@example.com>;tag=to1"
    assert bye.headers.get("To") == '"Alice" <sip:alice@example.com>;tag=from1'
    assert bye.headers.get("CSeq") == "1 BYE"  # local seq starts empty at the UAS
    assert d.next_hop() == Peer("udp", "p1.example.com", 5060)
    parsed = parse_message(bytes(bye))
    assert isinstance(parsed, SipRequest)
    assert bytes(parsed) == bytes(bye)


def test_strict_route_puts_first_route_in_request_uri() -> None:
    d = Dialog.for_uas(
        invite(record_route=["<sip:strict.example.com;maddr=1.2.3.4>", RR[0]]), "t", "udp"
    )
    req = d.create_request("INFO", via="SIP/2.0/UDP h;branch=z9hG4bKy")
    assert req.uri == "sip:strict.example.com"  # maddr stripped (§12.2.1.1)
    assert req.headers.get_all("Route") == [RR[0], "<sip:alice@10.0.0.1:5070>"]


def test_cseq_increments_and_ack_reuses_invite_cseq() -> None:
    req = invite()
    resp = make_response(req, 200, to_tag="to9")
    resp.headers.add("Contact", "<sip:bob@10.0.0.2>")
    d = Dialog.for_uac(req, resp)
    ack = d.create_request("ACK", via="SIP/2.0/UDP h;branch=z9hG4bKa", cseq=4)
    assert ack.headers.get("CSeq") == "4 ACK"
    assert d.create_request("BYE", via="v").headers.get("CSeq") == "5 BYE"
    assert d.create_request("INFO", via="v").headers.get("CSeq") == "6 INFO"


def test_remote_cseq_lower_is_500() -> None:
    d = Dialog.for_uas(invite(), "to1", "udp")
    req = invite()
    req.headers.set("CSeq", "5 BYE")
    d.check_remote_seq(req)
    assert d.remote_seq == 5
    req.headers.set("CSeq", "3 INFO")
    with pytest.raises(SipProtocolError) as err:
        d.check_remote_seq(req)
    assert err.value.status_hint == 500
    assert d.remote_seq == 5


def test_target_refresh_and_next_hop_transport() -> None:
    d = Dialog.for_uas(invite(), "to1", "tcp")
    d.conn_id = 9
    assert d.next_hop() == Peer("tcp", "10.0.0.1", 5070, 9)
    reinv = invite(contact="<sip:alice@192.0.2.7:6000;transport=udp>")
    d.refresh_target(reinv)
    assert d.remote_target == "sip:alice@192.0.2.7:6000;transport=udp"
    assert d.next_hop() == Peer("udp", "192.0.2.7", 6000)


def test_terminated_dialog_refuses_requests() -> None:
    d = Dialog.for_uas(invite(), "to1", "udp")
    d.state = DialogState.TERMINATED
    with pytest.raises(SipUsageError):
        d.create_request("BYE", via="v")
