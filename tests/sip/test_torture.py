"""RFC 4475 torture messages against the message layer.

The fixtures are the messages of the RFC's Appendix A archive, byte for byte (CRLF line
ends, binary body in mpart01, the missing final blank line in baddn). What the message
layer decides, and what it leaves to the transaction or UA layer:

============  ========  =====================================  ===========================
case          RFC 4475  message layer (this file checks)       left to / note
============  ========  =====================================  ===========================
wsinv         3.1.1.1   parses, validates, round-trips         -
intmeth       3.1.1.2   parses, validates, round-trips         UA: 501 (unknown method)
esc01         3.1.1.3   parses, validates, round-trips         -
escnull       3.1.1.4   parses, validates, round-trips         registrar (we are none)
esc02         3.1.1.5   parses, validates, round-trips         UA: 501 (unknown method)
lwsdisp       3.1.1.6   parses, validates, round-trips         -
longreq       3.1.1.7   parses, validates, round-trips         -
dblreq        3.1.1.8   parses; trailing INVITE octets ignored -
semiuri       3.1.1.9   parses, validates, round-trips         -
transports    3.1.1.10  parses, validates, round-trips         -
mpart01       3.1.1.11  parses (binary body), validates        UA: 415 if it reads bodies
unreason      3.1.1.12  parses, validate_response passes       -
noreason      3.1.1.13  parses, validate_response passes       -
badinv01      3.1.2.1   parse_message: 400 (empty Via element) -
clerr         3.1.2.2   parse_message: 400 (CL > datagram)     streams: wait/close (§18.3)
ncl           3.1.2.3   parse_message: 400 (negative CL)       streams: fatal framing error
scalar02      3.1.2.4   validate_request: 400 (CSeq >= 2**31)  -
scalarlg      3.1.2.5   validate_response: 400 -> dropped      -
quotbal       3.1.2.6   validate_request: 400 (To unquoted)    -
ltgtruri      3.1.2.7   parse_message: 400                     -
lwsruri       3.1.2.8   parse_message: 400                     -
lwsstart      3.1.2.9   parse_message: 400                     RFC also allows accepting
trws          3.1.2.10  parse_message: 400                     RFC also allows accepting
escruri       3.1.2.11  validate_request: 400                  RFC also allows ignoring
baddate       3.1.2.12  accepted (Date is never interpreted)   RFC allows either
regbadct      3.1.2.13  validate_request: 400 (Contact)        -
badaspec      3.1.2.14  validate_request: 400 (To)             -
baddn         3.1.2.15  parse_message: 400 (see note 1)        -
badvers       3.1.2.16  parse_message: 505, message attached   -
mismatch01    3.1.2.17  validate_request: 400                  -
mismatch02    3.1.2.18  validate_request: 400                  RFC prefers 501 (note 2)
bigcode       3.1.2.19  parse_message: 400 -> dropped          -
badbranch     3.2.1     accepted; branch is the bare cookie    transaction: 400 or 2543
insuf         3.3.1     validate_request: 400 (Missing To)     -
unkscm        3.3.2     validate_request: 416                  -
novelsc       3.3.3     validate_request: 416                  we serve no soap.beep URIs
unksm2        3.3.4     accepted; opaque To/From/Contact URIs  registrar: 400 (none here)
bext01        3.3.5     accepted; Require split in 2 entries   UA: 420 with Unsupported
invut         3.3.6     accepted                               UA: 415
regaut01      3.3.7     accepted                               registrar: 401 (none here)
multi01       3.3.8     validate_request: 400 (repeated To)    -
mcl01         3.3.9     parse_message: 400 (note 3)            -
bcast         3.3.10    accepted response                      transaction: no match, drop
zeromf        3.3.11    accepted (endpoint); 483 if proxy=True -
cparam01      3.3.12    accepted; param is a header param      -
cparam02      3.3.13    accepted; param is a URI param         -
regescrt      3.3.14    accepted; Contact URI has a header     registrar (none here)
sdp01         3.3.15    accepted                               UA: 406 (Accept lacks sdp)
inv2543       3.4.1     accepted (no Max-Forwards/CL/tag)      transaction: §17.2.3 2543
============  ========  =====================================  ===========================

Notes:
1. The archive's baddn.dat has no empty line after its last header, so it fails framing
   before its display names are looked at. ``test_baddn_display_names`` restores the
   blank line to check the case the RFC means (400 from validate_request).
2. mismatch02: the RFC prefers 501 for an unknown method, and accepts 400. The CSeq
   mismatch is found before the method is looked up, so 400 it is.
3. mcl01 is filed under application semantics, but two Content-Length values leave the
   body's extent unknown, which is a framing question: the message layer decides it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.headers import cseq_of, parse_name_addr, parse_via, top_via
from trunkline.sip.message import SipRequest, SipResponse
from trunkline.sip.parser import parse_message, validate_request, validate_response
from trunkline.sip.uri import SipUri, unescape

FIXTURES = Path(__file__).parent / "fixtures" / "rfc4475"

VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
]  # fmt: skip
# Syntactically fine at the message layer; a higher layer (or nobody) acts on them.
ACCEPTED = [
    "baddate", "badbranch", "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf",
    "cparam01", "cparam02", "regescrt", "sdp01", "inv2543",
]  # fmt: skip
PARSE_ERRORS = {
    "badinv01": (400, "Empty element in the Via list"),
    "clerr": (400, "Content-Length larger than datagram"),
    "ncl": (400, "Malformed Content-Length '-999'"),
    "ltgtruri": (400, "enclosed in <>"),
    "lwsruri": (400, "Malformed Request-Line"),
    "lwsstart": (400, "Malformed Request-Line"),
    "trws": (400, "Malformed Request-Line"),
    "baddn": (400, "no empty line"),
    "badvers": (505, "Unsupported SIP version 'SIP/7.0'"),
    "bigcode": (400, "Malformed Status-Line"),
    "mcl01": (400, "Multiple Content-Length headers disagree"),
}
VALIDATE_ERRORS = {
    "scalar02": (400, "CSeq number"),
    "scalarlg": (400, "CSeq number"),
    "quotbal": (400, "Unterminated quoted string"),
    "escruri": (400, "Request-URI must not contain headers"),
    "regbadct": (400, "must be enclosed in <>"),
    "badaspec": (400, "LWS inside <>"),
    "mismatch01": (400, "CSeq method INVITE does not match request method OPTIONS"),
    "mismatch02": (400, "CSeq method INVITE does not match request method NEWMETHOD"),
    "insuf": (400, "Missing To header"),
    "unkscm": (416, "Unsupported URI scheme"),
    "novelsc": (416, "Unsupported URI scheme 'soap.beep'"),
    "multi01": (400, "Multiple"),
}


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.dat").read_bytes()


def validate(msg: SipRequest | SipResponse) -> None:
    if isinstance(msg, SipRequest):
        validate_request(msg)
    else:
        validate_response(msg)


def test_every_archive_message_is_covered() -> None:
    names = {p.stem for p in FIXTURES.glob("*.dat")}
    covered = set(VALID) | set(ACCEPTED) | set(PARSE_ERRORS) | set(VALIDATE_ERRORS)
    assert len(names) == 49
    assert names == covered
    assert len(covered) == len(VALID) + len(ACCEPTED) + len(PARSE_ERRORS) + len(VALIDATE_ERRORS)


@pytest.mark.parametrize("name", VALID + ACCEPTED)
def test_accepted_messages_parse_validate_and_round_trip(name: str) -> None:
    msg = parse_message(load(name))
    validate(msg)
    again = parse_message(bytes(msg))
    assert again == msg
    validate(again)


@pytest.mark.parametrize("name", sorted(PARSE_ERRORS))
def test_parse_errors(name: str) -> None:
    status, reason = PARSE_ERRORS[name]
    with pytest.raises(SipProtocolError) as exc:
        parse_message(load(name))
    assert exc.value.status_hint == status
    assert reason in exc.value.reason


@pytest.mark.parametrize("name", sorted(VALIDATE_ERRORS))
def test_validate_errors(name: str) -> None:
    status, reason = VALIDATE_ERRORS[name]
    msg = parse_message(load(name))
    assert parse_message(bytes(msg)) == msg  # what parses, round-trips
    with pytest.raises(SipProtocolError) as exc:
        validate(msg)
    assert exc.value.status_hint == status
    assert reason in exc.value.reason


@pytest.mark.parametrize("name", ["badinv01", "clerr", "ncl", "ltgtruri", "badvers", "mcl01"])
def test_rejected_requests_carry_an_answerable_message(name: str) -> None:
    # A UAS answers these (RFC 4475 says 400/505), so it needs Via, To, From, Call-ID, CSeq.
    with pytest.raises(SipProtocolError) as exc:
        parse_message(load(name))
    msg = exc.value.message
    assert isinstance(msg, SipRequest)
    assert msg.call_id.startswith(name)
    assert msg.headers.get("Via")  # copied as is into the answer (RFC 3261 §8.2.6.2)
    assert cseq_of(msg)[1] == msg.method


def test_baddn_display_names() -> None:
    # Note 1: restore the blank line the archive lacks; then the display names fail.
    data = load("baddn")
    assert not data.endswith(b"\r\n\r\n")
    msg = parse_message(data + b"\r\n")
    with pytest.raises(SipProtocolError) as exc:
        validate(msg)
    assert exc.value.status_hint == 400
    assert "needs quotes" in exc.value.reason or "need quotes" in exc.value.reason


# --- what the valid messages must parse into ------------------------------------------


def test_wsinv() -> None:
    msg = parse_message(load("wsinv"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert SipUri.parse(msg.uri).params == (("unknownparam", None),)
    to = parse_name_addr(msg.headers.get("To") or "")
    assert (to.uri.user, to.tag, to.display_name) == ("vivekg", "1918181833n", None)
    frm = parse_name_addr(msg.headers.get("From") or "")
    assert (frm.display_name, frm.tag) == ('J Rosenberg \\"', "98asjd8")
    assert msg.headers.get("Max-Forwards") == "0068"
    assert cseq_of(msg) == (9, "INVITE")
    vias = [parse_via(v) for v in msg.headers.get_all("Via")]
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = parse_name_addr(msg.headers.get("Route") or "")
    assert route.uri.params == (
        ("lr", None), ("unknownwith", "value"), ("unknown-no-value", None),
    )  # fmt: skip
    contact = parse_name_addr(msg.headers.get("Contact") or "")
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(msg.body) == 150 and msg.body.startswith(b"v=0\r\n")


def test_intmeth() -> None:
    msg = parse_message(load("intmeth"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert cseq_of(msg) == (139122385, msg.method)
    assert top_via(msg).branch == "z9hG4bK-.!%66*_+`'~"
    to = parse_name_addr(msg.headers.get("To") or "")
    assert to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    frm = parse_name_addr(msg.headers.get("From") or "")
    assert frm.display_name == "token1~` token2'+_ token3*%!.-"
    assert frm.tag == "_token~1'+`*%!-."
    assert frm.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert msg.body == b""


def test_esc01_escapes_stay_escaped_until_asked() -> None:
    msg = parse_message(load("esc01"))
    uri = SipUri.parse(getattr(msg, "uri", ""))
    assert unescape(uri.user or "") == "sips:user@example.com"
    to = parse_name_addr(msg.headers.get("To") or "")
    assert unescape(to.uri.user or "") == "user"
    contact = parse_name_addr(msg.headers.get("Contact") or "")
    assert contact.uri.params == (("%6c%72", None), ("n%61me", "v%61lue%25%34%31"))
    assert unescape("v%61lue%25%34%31") == "value%41"  # not "valueA"


def test_escnull_and_esc02() -> None:
    msg = parse_message(load("escnull"))
    users = [parse_name_addr(c).uri.user for c in msg.headers.get_all("Contact")]
    assert [unescape(u or "") for u in users] == ["\x00", "\x00\x00"]
    msg = parse_message(load("esc02"))
    assert isinstance(msg, SipRequest) and msg.method == "RE%47IST%45R"
    assert len(msg.headers.get_all("Contact")) == 2  # C%6Fntact is another header
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert parse_name_addr(msg.headers.get("To") or "").display_name == "%Z%45"


def test_longreq() -> None:
    msg = parse_message(load("longreq"))
    vias = msg.headers.get_all("Via")
    assert len(vias) == 34
    assert parse_via(vias[0]).host == "sip33.example.com"
    assert parse_via(vias[-1]).params["received"] == "192.0.2.5"
    frm = parse_name_addr(msg.headers.get("From") or "")
    assert (frm.tag or "").startswith("12982982982") and len(frm.params) > 1
    assert len(msg.call_id) > 100


def test_dblreq_ignores_trailing_octets() -> None:
    msg = parse_message(load("dblreq"))
    assert isinstance(msg, SipRequest) and msg.method == "REGISTER"
    assert msg.body == b""
    assert b"INVITE" not in bytes(msg)


def test_semiuri_and_transports() -> None:
    msg = parse_message(load("semiuri"))
    uri = SipUri.parse(getattr(msg, "uri", ""))
    assert unescape(uri.user or "") == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert len(msg.headers.get_all("Accept")) == 6  # folded comma list
    msg = parse_message(load("transports"))
    assert [parse_via(v).transport for v in msg.headers.get_all("Via")] == [
        "UDP", "SCTP", "TLS", "UNKNOWN", "TCP",
    ]  # fmt: skip


def test_mpart01_binary_body() -> None:
    msg = parse_message(load("mpart01"))
    assert len(msg.body) == int(msg.headers.get("Content-Length") or "0") == 553
    assert b"\x00" in msg.body
    assert msg.body.endswith(b"--7a9cbec02ceef655--\r\n")


def test_unreason_and_noreason() -> None:
    msg = parse_message(load("unreason"))
    assert isinstance(msg, SipResponse)
    assert msg.status == 200 and msg.reason.startswith("= 2**3 * 5**2 ")
    assert not msg.reason.isascii()
    msg = parse_message(load("noreason"))
    assert isinstance(msg, SipResponse) and (msg.status, msg.reason) == (100, "")


# --- what the accepted ones hand to higher layers -------------------------------------


def test_badbranch_is_left_to_the_transaction_layer() -> None:
    assert top_via(parse_message(load("badbranch"))).branch == "z9hG4bK"


def test_unksm2_opaque_uris() -> None:
    msg = parse_message(load("unksm2"))
    to = parse_name_addr(msg.headers.get("To") or "")
    frm = parse_name_addr(msg.headers.get("From") or "")
    contact = parse_name_addr(msg.headers.get("Contact") or "")
    assert (to.uri.scheme, to.uri.opaque) == ("isbn", "2983792873")
    assert (frm.uri.scheme, frm.tag) == ("http", "3234233")
    assert (contact.uri.scheme, contact.uri.opaque) == ("name", "John_Smith")


def test_bext01_require_lists_are_split() -> None:
    msg = parse_message(load("bext01"))
    assert msg.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis", "norDoAnyProxiesSupportThis",
    ]  # fmt: skip


def test_zeromf_only_a_proxy_refuses() -> None:
    msg = parse_message(load("zeromf"))
    assert isinstance(msg, SipRequest)
    validate_request(msg)
    with pytest.raises(SipProtocolError) as exc:
        validate_request(msg, proxy=True)
    assert exc.value.status_hint == 483


def test_cparam_and_regescrt_contacts() -> None:
    c1 = parse_name_addr(parse_message(load("cparam01")).headers.get("Contact") or "")
    assert c1.params == {"unknownparam": None} and c1.uri.params == ()
    c2 = parse_name_addr(parse_message(load("cparam02")).headers.get("Contact") or "")
    assert c2.params == {} and c2.uri.params == (("unknownparam", None),)
    c3 = parse_name_addr(parse_message(load("regescrt")).headers.get("Contact") or "")
    assert c3.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_inv2543_has_what_an_rfc2543_peer_sends() -> None:
    msg = parse_message(load("inv2543"))
    assert "Max-Forwards" not in msg.headers
    assert top_via(msg).branch is None
    assert parse_name_addr(msg.headers.get("From") or "").tag is None
    assert msg.body.startswith(b"v=0")  # no Content-Length on UDP: the rest is the body


def test_bcast_response() -> None:
    msg = parse_message(load("bcast"))
    assert isinstance(msg, SipResponse)
    assert parse_via(msg.headers.get_all("Via")[1]).host == "255.255.255.255"
