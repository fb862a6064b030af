"""Header value parsers: Via, name-addr, CSeq, params, lists (RFC 3261 §20, §25.1)."""

from __future__ import annotations

import pytest

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.headers import (
    NameAddr,
    Via,
    cseq_of,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_header_list,
    tag_of,
    top_via,
)
from trunkline.sip.message import Headers, SipRequest
from trunkline.sip.uri import SipUri

# --- Via ------------------------------------------------------------------------------


def test_via_basic_with_rport() -> None:
    via = parse_via("SIP/2.0/UDP pc33.atlanta.example.com:5066;branch=z9hG4bK776asdhds;rport")
    assert via == Via(
        "UDP", "pc33.atlanta.example.com", 5066, {"branch": "z9hG4bK776asdhds", "rport": None}
    )
    assert via.branch == "z9hG4bK776asdhds"
    assert str(via) == "SIP/2.0/UDP pc33.atlanta.example.com:5066;branch=z9hG4bK776asdhds;rport"
    assert parse_via(str(via)) == via


def test_via_received_and_filled_rport() -> None:
    via = parse_via("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKx;received=192.0.2.1;rport=5070")
    assert via.params == {"branch": "z9hG4bKx", "received": "192.0.2.1", "rport": "5070"}
    assert via.port is None


def test_via_ipv6_sent_by_and_received() -> None:
    via = parse_via("SIP/2.0/UDP [2001:db8::9:1]:5060;received=2001:db8::9:255;branch=z9hG4bKas3")
    assert via.host == "[2001:db8::9:1]"
    assert via.port == 5060
    assert via.params["received"] == "2001:db8::9:255"
    assert parse_via(str(via)) == via


def test_via_lws_everywhere_rfc4475_wsinv() -> None:
    # After unfolding, as the parser hands them over (RFC 4475 §3.1.1.1).
    via = parse_via("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
    assert via == Via("TCP", "spindle.example.com", None, {"branch": "z9hG4bK9ikj8"})
    via = parse_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw")
    assert (via.transport, via.host, via.branch) == ("UDP", "192.0.2.2", "390skdjuw")


def test_via_lws_around_port_colon() -> None:
    via = parse_via("SIP/2.0/UDP host.example.com : 5060 ;branch=z9hG4bKa")
    assert (via.host, via.port) == ("host.example.com", 5060)


def test_via_transport_upper_cased_and_unknown_accepted() -> None:
    # RFC 4475 §3.1.1.10 (transports): unknown transports must parse.
    assert parse_via("sip/2.0/unknown t4.example.com;branch=z9hG4bKasd0f3en").transport == "UNKNOWN"
    assert parse_via("SIP/2.0/SCTP t2.example.com").params == {}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0 UDP host",
        "SIP/3.0/UDP host;branch=x",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host;;branch=x",  # empty parameter (RFC 4475 §3.1.2.1)
        "SIP/2.0/UDP host;branch=x,",
        "SIP/2.0/UDP ho st;branch=x",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/U DP host",
        "SIP/2.0/UDP host;branch=a b",
        'SIP/2.0/UDP host;x="unterminated',
    ],
)
def test_via_malformed(value: str) -> None:
    with pytest.raises(SipProtocolError) as exc:
        parse_via(value)
    assert exc.value.status_hint == 400


def test_top_via_and_missing_via() -> None:
    req = SipRequest(
        headers=Headers(
            [
                ("v", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"),
                ("Via", "SIP/2.0/TCP b.example.com;branch=z9hG4bK2"),
            ]
        )
    )
    assert top_via(req).host == "a.example.com"
    with pytest.raises(SipProtocolError, match="Missing Via"):
        top_via(SipRequest())


# --- name-addr ------------------------------------------------------------------------


def test_name_addr_quoted_display_name_with_params() -> None:
    addr = parse_name_addr('"Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774')
    assert addr.display_name == "Alice Liddell"
    assert addr.uri == SipUri.parse("sip:alice@atlanta.example.com")
    assert addr.tag == "1928301774"
    assert str(addr) == '"Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774'
    assert parse_name_addr(str(addr)) == addr


def test_name_addr_escaped_quotes_and_backslashes() -> None:
    # RFC 4475 §3.1.1.1: "J Rosenberg \\\"" is the name J Rosenberg \"
    addr = parse_name_addr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert addr.display_name == 'J Rosenberg \\"'
    assert addr.tag == "98asjd8"
    assert parse_name_addr(str(addr)) == addr


def test_name_addr_control_characters_round_trip() -> None:
    # RFC 4475 §3.1.1.2: quoted-pairs for BEL, NUL and DEL.
    addr = parse_name_addr('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:u@example.com>')
    assert addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert parse_name_addr(str(addr)) == addr


def test_name_addr_token_display_name_without_lws() -> None:
    # RFC 4475 §3.1.1.6 (lwsdisp): no LWS between the name and "<" is accepted.
    addr = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert addr.display_name == "caller"
    assert addr.tag == "323"


def test_name_addr_multi_token_display_name() -> None:
    addr = parse_name_addr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>")
    assert addr.display_name == "token1~` token2'+_ token3*%!.-"


def test_addr_spec_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10 / RFC 4475 §3.3.12 (cparam01): without <>, ";unknownparam" is a
    # header parameter, not a URI parameter.
    addr = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert addr.uri.params == ()
    assert addr.params == {"unknownparam": None}
    # ... and with <> it is a URI parameter (§3.3.13, cparam02)
    addr = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert addr.uri.params == (("unknownparam", None),)
    assert addr.params == {}


def test_addr_spec_with_lws_before_params() -> None:
    addr = parse_name_addr("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert addr.uri.host == "chair-dnrc.example.com"
    assert addr.tag == "1918181833n"
    assert str(addr) == "<sip:vivekg@chair-dnrc.example.com>;tag=1918181833n"


def test_name_addr_quoted_param_value_and_utf8() -> None:
    addr = parse_name_addr('<sip:a@b.example>;+sip.instance="<urn:uuid:f81d4fae>";x="работа"')
    assert addr.params == {"+sip.instance": '"<urn:uuid:f81d4fae>"', "x": '"работа"'}
    assert parse_name_addr(str(addr)) == addr


def test_name_addr_other_schemes() -> None:
    # RFC 4475 §3.3.4 (unksm2): To, From and Contact may carry any absoluteURI.
    assert parse_name_addr("isbn:2983792873").uri.scheme == "isbn"
    addr = parse_name_addr("<http://www.example.com>;tag=3234233")
    assert (addr.uri.scheme, addr.uri.opaque, addr.tag) == ("http", "//www.example.com", "3234233")
    assert parse_name_addr("<tel:+15551234>").uri.user == "+15551234"


def test_name_addr_str_quotes_display_name() -> None:
    addr = NameAddr(SipUri.parse("sip:a@b.example"), 'say "hi"\\', {"tag": "x", "lr": None})
    assert str(addr) == '"say \\"hi\\"\\\\" <sip:a@b.example>;tag=x;lr'
    assert parse_name_addr(str(addr)) == addr


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 §3.1.2.6 quotbal
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # §3.1.2.15 baddn
        '"Watson, Thomas" < sip:t.watson@example.org >',  # §3.1.2.14 badaspec
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # §3.1.2.13 regbadct
        '"Joe" <sip:joe@example.org>;;;;',  # §3.1.2.1 badinv01
        "<sip:joe@example.org",
        '"Joe" sip:joe@example.org',
        "<sip:joe@example.org> junk",
        "sip:joe@example.org;;tag=1",
        "<sip:joe@example.org>;=x",
        "*",
        "<>",
        "sip:joe@example.org;tag=a b",
    ],
)
def test_name_addr_malformed(value: str) -> None:
    with pytest.raises(SipProtocolError) as exc:
        parse_name_addr(value)
    assert exc.value.status_hint == 400


def test_tag_of_fast_path() -> None:
    assert tag_of('"A" <sip:a@b.example;tag=uri-param>;tag=hdr') == "hdr"
    assert tag_of("<sip:a@b.example;tag=uri-param>") is None
    assert tag_of("sip:a@b.example;TAG=abc") == "abc"
    assert tag_of("sip:a@b.example ; tag = abc ") == "abc"
    assert tag_of("sip:a@b.example;tagx=1") is None
    assert tag_of("sip:a@b.example") is None
    assert tag_of("<sip:a@b.example>;tag=") is None


# --- CSeq -----------------------------------------------------------------------------


def test_cseq() -> None:
    assert parse_cseq("314159 INVITE") == (314159, "INVITE")
    assert parse_cseq("0009 INVITE") == (9, "INVITE")  # leading zeros, RFC 4475 wsinv
    assert parse_cseq(" 1\t  ACK ") == (1, "ACK")
    assert parse_cseq("2147483647 BYE") == (2**31 - 1, "BYE")
    # methods are case-sensitive tokens and kept as sent
    assert parse_cseq("1 !interesting-Method0123456789_*+`.%indeed'~")[1].startswith("!inter")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "INVITE",
        "1",
        "1 INVITE extra",
        "-1 INVITE",
        "+1 INVITE",
        "1.0 INVITE",
        "2147483648 INVITE",  # RFC 3261 §8.1.1.5: must be < 2**31
        "36893488147419103232 REGISTER",  # RFC 4475 §3.1.2.4
        "9" * 5000 + " INVITE",  # must not reach int() limits
        "١٢ INVITE",  # non-ASCII digits
        "1 INV(ITE",
    ],
)
def test_cseq_malformed(value: str) -> None:
    with pytest.raises(SipProtocolError) as exc:
        parse_cseq(value)
    assert exc.value.status_hint == 400


def test_cseq_of() -> None:
    assert cseq_of(SipRequest(headers=Headers([("CSeq", "7 BYE")]))) == (7, "BYE")
    with pytest.raises(SipProtocolError, match="Missing CSeq"):
        cseq_of(SipRequest())


# --- params and lists -----------------------------------------------------------------


def test_parse_params() -> None:
    assert parse_params(";a=b;c") == {"a": "b", "c": None}
    assert parse_params("a=b;c") == {"a": "b", "c": None}
    assert parse_params("") == {}
    assert parse_params(" ; Q = 0.33 ; Expires=3600") == {"q": "0.33", "expires": "3600"}
    assert parse_params(';x="a;b,c";y=1') == {"x": '"a;b,c"', "y": "1"}
    assert parse_params(';x="esc\\"aped";y') == {"x": '"esc\\"aped"', "y": None}
    assert parse_params(";maddr=[2001:db8::1]") == {"maddr": "[2001:db8::1]"}


@pytest.mark.parametrize("text", [";;", ";a;;b", ";a;", ';x="open', ';x="a"b', ";a=b c", ";a b"])
def test_parse_params_malformed(text: str) -> None:
    with pytest.raises(SipProtocolError):
        parse_params(text)


def test_split_header_list() -> None:
    assert split_header_list("INVITE, ACK ,BYE") == ["INVITE", "ACK", "BYE"]
    assert split_header_list("single") == ["single"]
    assert split_header_list("") == [""]
    assert split_header_list('"Doe, John" <sip:j@x.example>, <sip:k@y.example;a=1,2>') == [
        '"Doe, John" <sip:j@x.example>',
        "<sip:k@y.example;a=1,2>",
    ]
    assert split_header_list('"a \\" , b" <sip:x@y.example>') == ['"a \\" , b" <sip:x@y.example>']
    assert split_header_list("a,,b") == ["a", "", "b"]
    with pytest.raises(SipProtocolError):
        split_header_list('"open, <sip:x@y.example>')
