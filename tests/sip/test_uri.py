"""SIP/SIPS/tel URI parsing (RFC 3261 §19.1, §25.1; RFC 4475 URIs; RFC 3966)."""

from __future__ import annotations

import pytest

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.uri import SipUri, parse_host_port, unescape


def roundtrip(text: str) -> SipUri:
    uri = SipUri.parse(text)
    again = SipUri.parse(str(uri))
    assert again == uri
    return uri


def test_plain_sip_uri() -> None:
    uri = roundtrip("sip:alice@atlanta.example.com")
    assert (uri.scheme, uri.user, uri.host, uri.port) == (
        "sip",
        "alice",
        "atlanta.example.com",
        None,
    )
    assert uri.password is None and uri.params == () and uri.headers == ()
    assert str(uri) == "sip:alice@atlanta.example.com"


def test_scheme_is_case_insensitive_and_lower_cased() -> None:
    uri = roundtrip("SIPS:bob@biloxi.example.com:5061")
    assert uri.scheme == "sips"
    assert uri.port == 5061
    assert str(uri) == "sips:bob@biloxi.example.com:5061"


def test_host_only_with_port_and_params() -> None:
    uri = roundtrip("sip:192.0.2.4:5070;transport=TCP;lr;Maddr=239.255.255.1")
    assert uri.user is None
    assert uri.host == "192.0.2.4"
    assert uri.port == 5070
    # names lower-cased, values as received, order kept
    assert uri.params == (("transport", "TCP"), ("lr", None), ("maddr", "239.255.255.1"))
    assert uri.param("TRANSPORT") == "TCP"
    assert uri.param("lr") == ""  # present without value
    assert uri.param("ttl") is None
    assert uri.has_param("lr") and not uri.has_param("ttl")


def test_ipv6_reference_keeps_brackets_but_host_port_drops_them() -> None:
    uri = roundtrip("sip:alice@[2001:db8::10]:5060;transport=udp")
    assert uri.host == "[2001:db8::10]"
    assert uri.port == 5060
    assert uri.host_port == ("2001:db8::10", 5060)
    assert str(uri) == "sip:alice@[2001:db8::10]:5060;transport=udp"


def test_ipv6_without_port() -> None:
    uri = roundtrip("sip:[::1]")
    assert uri.host_port == ("::1", None)


def test_password_and_unusual_user_characters() -> None:
    # RFC 4475 §3.1.1.2 (intmeth): ";", "?", "/" and "," are legal in the user part.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    uri = roundtrip(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


def test_escaped_user_is_kept_escaped_and_unescape_decodes_once() -> None:
    # RFC 4475 §3.1.1.3 (esc01)
    uri = roundtrip("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips%3Auser%40example.com"
    assert unescape(uri.user) == "sips:user@example.com"
    # "%25%34%31" is "%41" after one decoding, never "A" (RFC 3986: not recursive)
    assert unescape("v%61lue%25%34%31") == "value%41"


def test_escaped_null_in_user() -> None:
    # RFC 4475 §3.1.1.4 (escnull): the user part must not be cut at the NUL.
    uri = roundtrip("sip:null-%00-null@example.com")
    assert unescape(uri.user or "") == "null-\x00-null"


def test_semicolon_in_user_part() -> None:
    # RFC 4475 §3.1.1.9 (semiuri)
    uri = roundtrip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert unescape(uri.user) == "user;par=u@example.net"
    assert uri.params == ()


def test_uri_headers() -> None:
    uri = roundtrip("sip:user@example.com?Route=%3Csip:sip.example.com%3E&Subject=hi")
    assert uri.headers == (("Route", "%3Csip:sip.example.com%3E"), ("Subject", "hi"))


def test_tel_uri() -> None:
    uri = roundtrip("tel:+1-201-555-0123;phone-context=example.com")
    assert uri.scheme == "tel"
    assert uri.user == "+1-201-555-0123"
    assert uri.host == ""
    assert uri.param("phone-context") == "example.com"
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_unknown_scheme_is_416() -> None:
    with pytest.raises(SipProtocolError) as exc:
        SipUri.parse("nobodyKnowsThisScheme:totallyopaquecontent")
    assert exc.value.status_hint == 416


def test_unknown_scheme_as_opaque_absolute_uri() -> None:
    uri = SipUri.parse("isbn:2983792873", any_scheme=True)
    assert (uri.scheme, uri.opaque, uri.host, uri.user) == ("isbn", "2983792873", "", None)
    assert str(uri) == "isbn:2983792873"
    assert SipUri.parse(str(uri), any_scheme=True) == uri
    # any_scheme does not relax the grammar of sip URIs
    with pytest.raises(SipProtocolError):
        SipUri.parse("sip:a b@example.com", any_scheme=True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        ":user@host",
        "1sip:user@host",  # scheme must start with a letter
        "sip:",
        "sip:@example.com",  # empty user
        "sip:user@",  # empty host
        "sip:user@exa mple.com",
        " sip:user@example.com",
        "sip:user@example.com ",
        "sip:user@example.com:",  # empty port
        "sip:user@example.com:99999",
        "sip:user@example.com:5o60",
        "sip:user@[2001:db8::1",  # unterminated IPv6
        "sip:user@[2001:db8::1]x",
        "sip:user@[nothex]",
        "sip:user@-bad-.com",
        "sip:user@example.com;;lr",  # empty parameter
        "sip:user@example.com;=x",
        "sip:us%zzer@example.com",  # bad escape
        "sip:user@example.com%",
        "sip:user@example.com?noequals",
        "sip:<user@example.com>",
        'sip:"user"@example.com',
        "sip:usér@example.com",
        "tel:",
        "tel:555 1234",
    ],
)
def test_malformed_uris_are_400(text: str) -> None:
    with pytest.raises(SipProtocolError) as exc:
        SipUri.parse(text)
    assert exc.value.status_hint == 400


def test_unknown_but_malformed_scheme_is_400_not_416() -> None:
    with pytest.raises(SipProtocolError) as exc:
        SipUri.parse("bad scheme:foo")
    assert exc.value.status_hint == 400


def test_parse_host_port() -> None:
    assert parse_host_port("example.com", "x") == ("example.com", None)
    assert parse_host_port("example.com:0", "x") == ("example.com", 0)
    assert parse_host_port("[::1]:65535", "x") == ("[::1]", 65535)
    with pytest.raises(SipProtocolError, match="port"):
        parse_host_port("example.com:65536", "Via")


def test_frozen_and_hashable() -> None:
    a = SipUri.parse("sip:a@example.com;lr")
    b = SipUri.parse("sip:a@example.com;lr")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
