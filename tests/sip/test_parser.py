"""parse_message, StreamParser and the UAS checks (RFC 3261 §7, §8.2, §18.3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.headers import (
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_header_list,
    tag_of,
)
from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.parser import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    MAX_MESSAGE_BYTES,
    StreamParser,
    is_keepalive,
    parse_message,
    validate_request,
    validate_response,
)
from trunkline.sip.uri import SipUri

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def invite(extra: str = "", body: bytes = SDP, content_length: str | None = None) -> bytes:
    cl = str(len(body)) if content_length is None else content_length
    head = (
        "INVITE sip:agent@192.0.2.20 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:agent@192.0.2.20>\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
        "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:alice@192.0.2.10:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        f"{extra}" + (f"Content-Length: {cl}\r\n" if cl != "" else "") + "\r\n"
    )
    return head.encode() + body


RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;received=192.0.2.10\r\n"
    b"To: <sip:agent@192.0.2.20>;tag=a6c85cf\r\n"
    b"From: <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def assert_roundtrip(msg: SipRequest | SipResponse) -> None:
    again = parse_message(bytes(msg))
    assert again == msg
    assert bytes(again) == bytes(msg)


def protocol_error(data: bytes) -> SipProtocolError:
    with pytest.raises(SipProtocolError) as exc:
        parse_message(data)
    return exc.value


# --- parse_message: the happy path ----------------------------------------------------


def test_parse_invite() -> None:
    msg = parse_message(invite())
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri, msg.version) == ("INVITE", "sip:agent@192.0.2.20", "SIP/2.0")
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP
    assert msg.headers.get("Content-Length") == str(len(SDP))
    validate_request(msg)
    assert_roundtrip(msg)


def test_serialized_form_is_byte_exact_for_canonical_input() -> None:
    data = invite()
    assert bytes(parse_message(data)) == data


def test_parse_response() -> None:
    msg = parse_message(RESPONSE)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (180, "Ringing")
    validate_response(msg)
    assert_roundtrip(msg)
    assert bytes(msg) == RESPONSE


def test_reason_phrase_may_be_empty_or_contain_spaces() -> None:
    msg = parse_message(RESPONSE.replace(b"180 Ringing", b"100 "))
    assert isinstance(msg, SipResponse) and (msg.status, msg.reason) == (100, "")
    msg = parse_message(RESPONSE.replace(b"180 Ringing", b"180 Ringing, really"))
    assert isinstance(msg, SipResponse) and msg.reason == "Ringing, really"
    assert_roundtrip(msg)


def test_leading_crlfs_are_skipped() -> None:
    # RFC 3261 §7.5
    assert parse_message(b"\r\n\r\n\r\n" + invite()) == parse_message(invite())


def test_compact_forms_are_expanded() -> None:
    data = (
        b"BYE sip:agent@192.0.2.20 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        b"t: <sip:agent@192.0.2.20>;tag=x\r\nf: <sip:a@example.com>;tag=y\r\n"
        b"i: cid\r\nCSeq: 2 BYE\r\nm: <sip:a@192.0.2.10>\r\nk: timer\r\n"
        b"c: text/plain\r\ns: hi\r\ne: gzip\r\nl: 2\r\n\r\nhi"
    )
    msg = parse_message(data)
    names = [n for n, _ in msg.headers]
    assert names == [
        "Via", "To", "From", "Call-ID", "CSeq", "Contact", "Supported", "Content-Type",
        "Subject", "Content-Encoding", "Content-Length",
    ]  # fmt: skip
    assert msg.body == b"hi"
    validate_request(msg)  # type: ignore[arg-type]
    assert_roundtrip(msg)


def test_header_names_are_case_insensitive_and_lws_before_colon() -> None:
    msg = parse_message(invite().replace(b"Call-ID:", b"cALL-iD   :").replace(b"CSeq:", b"cseq\t:"))
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.headers.get("CSeq") == "314159 INVITE"


def test_unknown_header_keeps_its_spelling() -> None:
    msg = parse_message(invite("X-Custom-Thing:  some, value ; with=stuff\r\n"))
    assert msg.headers.get("x-custom-thing") == "some, value ; with=stuff"
    assert ("X-Custom-Thing", "some, value ; with=stuff") in list(msg.headers)


def test_folded_lines_are_unfolded() -> None:
    data = invite(
        "Subject: first part\r\n   second part\r\n\tthird\r\n"
        "NewFangledHeader:\r\n  value on next line\r\n"
    ).replace(b"CSeq: 314159 INVITE", b"CSeq: 314159\r\n INVITE")
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "first part second part third"
    assert msg.headers.get("NewFangledHeader") == "value on next line"
    assert msg.headers.get("CSeq") == "314159 INVITE"
    validate_request(msg)  # type: ignore[arg-type]
    assert_roundtrip(msg)


def test_list_headers_are_split_into_entries() -> None:
    data = invite(
        "Via: SIP/2.0/TCP a.example.com;branch=z9hG4bKa,"
        " SIP/2.0/UDP b.example.com;branch=z9hG4bKb\r\n"
        "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n"
        'Contact: "Doe, John" <sip:j@x.example>;q=0.5, <sip:k@y.example;a=1,2>\r\n'
        "Allow: INVITE, ACK ,CANCEL,BYE\r\n"
        "Supported: timer,replaces\r\n"
        "Accept: application/sdp;level=1, application/x-private\r\n"
    )
    msg = parse_message(data)
    vias = msg.headers.get_all("Via")
    assert [parse_via(v).host for v in vias] == ["192.0.2.10", "a.example.com", "b.example.com"]
    assert msg.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    contacts = msg.headers.get_all("Contact")
    assert contacts[1:] == ['"Doe, John" <sip:j@x.example>;q=0.5', "<sip:k@y.example;a=1,2>"]
    assert parse_name_addr(contacts[1]).display_name == "Doe, John"
    assert msg.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE"]
    assert msg.headers.get_all("Supported") == ["timer", "replaces"]
    assert msg.headers.get_all("Accept") == ["application/sdp;level=1", "application/x-private"]
    validate_request(msg)  # type: ignore[arg-type]
    assert_roundtrip(msg)


def test_headers_with_commas_inside_are_not_split() -> None:
    auth = 'Digest username="alice", realm="atlanta.example.com", nonce="84a4cc", response="7587"'
    data = invite(
        f"Authorization: {auth}\r\n"
        "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
        'Warning: 370 devnull "Choose a bigger pipe", 371 x "y"\r\n'
        "Contact-Like-Unknown: a, b\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get_all("Authorization") == [auth]
    assert msg.headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert len(msg.headers.get_all("Warning")) == 1
    assert msg.headers.get_all("Contact-Like-Unknown") == ["a, b"]


def test_contact_star_and_empty_list_header() -> None:
    data = (
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKr\r\n"
        b"To: <sip:u@example.com>\r\nFrom: <sip:u@example.com>;tag=1\r\nCall-ID: r1\r\n"
        b"CSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\nSupported:\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get_all("Contact") == ["*"]
    assert msg.headers.get_all("Supported") == [""]
    validate_request(msg)  # type: ignore[arg-type]
    assert_roundtrip(msg)


def test_empty_list_element_is_400_with_message() -> None:
    err = protocol_error(invite("Allow: INVITE,,BYE\r\n"))
    assert err.status_hint == 400
    assert "Allow" in err.reason
    assert isinstance(err.message, SipRequest)
    assert err.message.headers.get_all("Allow") == ["INVITE", "BYE"]


# --- Content-Length on UDP (RFC 3261 §18.3) -------------------------------------------


def test_content_length_optional_on_udp() -> None:
    msg = parse_message(invite(content_length=""))
    assert msg.body == SDP
    assert msg.headers.get("Content-Length") == str(len(SDP))


def test_content_length_smaller_truncates_body() -> None:
    msg = parse_message(invite(content_length="10"))
    assert msg.body == SDP[:10]
    assert msg.headers.get_all("Content-Length") == ["10"]


def test_content_length_leading_zeros_and_compact() -> None:
    msg = parse_message(invite(content_length="0010"))
    assert msg.body == SDP[:10]
    assert msg.headers.get("Content-Length") == "10"  # normalized to the framed body


def test_content_length_larger_than_datagram() -> None:
    err = protocol_error(invite(content_length=str(len(SDP) + 1)))
    assert err.status_hint == 400
    assert err.reason == "Content-Length larger than datagram"
    assert isinstance(err.message, SipRequest)
    assert err.message.call_id == "a84b4c76e66710@pc33.example.com"


@pytest.mark.parametrize("value", ["-1", "five", "1 0", "0x10", "99999999999999999999", "١"])
def test_content_length_malformed(value: str) -> None:
    err = protocol_error(invite(content_length=value))
    assert err.status_hint == 400
    assert "Content-Length" in err.reason
    assert err.message is not None


def test_multiple_content_length_is_400_unless_equal() -> None:
    err = protocol_error(invite("Content-Length: 5\r\n"))
    assert err.status_hint == 400
    assert "Multiple Content-Length headers disagree" in err.reason
    msg = parse_message(invite(f"l: {len(SDP)}\r\n"))
    assert msg.body == SDP
    assert msg.headers.get_all("Content-Length") == [str(len(SDP))]


def test_body_with_crlfcrlf_inside_is_kept() -> None:
    body = b"part one\r\n\r\npart two"
    msg = parse_message(invite(body=body).replace(b"application/sdp", b"text/plain"))
    assert msg.body == body
    assert_roundtrip(msg)


# --- start-line and header-section errors -----------------------------------------------


def test_bad_version_is_505_with_message() -> None:
    err = protocol_error(invite().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
    assert err.status_hint == 505
    assert isinstance(err.message, SipRequest)
    assert err.message.version == "SIP/7.0"
    assert err.message.headers.get("CSeq") == "314159 INVITE"


def test_version_is_case_insensitive() -> None:
    msg = parse_message(invite().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert isinstance(msg, SipRequest)
    msg = parse_message(RESPONSE.replace(b"SIP/2.0 180", b"sip/2.0 180"))
    assert isinstance(msg, SipResponse) and msg.status == 180


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"INVITE  sip:agent@192.0.2.20 SIP/2.0", 400),  # RFC 4475 §3.1.2.9
        (b"INVITE sip:agent@192.0.2.20 SIP/2.0 ", 400),  # §3.1.2.10
        (b"INVITE sip:agent@192.0.2.20; lr SIP/2.0", 400),  # §3.1.2.8
        (b"INVITE <sip:agent@192.0.2.20> SIP/2.0", 400),  # §3.1.2.7
        (b"INVITE sip:agent@192.0.2.20", 400),
        (b"INVITE agent SIP/2.0", 400),
        (b"INVITE sip:agent@192.0.2.20 SIP/2", 400),
        (b"INVITE sip:agent@192.0.2.20 HTTP/1.1", 400),
        (b"INVITE sip:agent@192.0.2.20 SIP/3.0", 505),
    ],
)
def test_malformed_request_lines(line: bytes, status: int) -> None:
    data = invite()
    err = protocol_error(line + data[data.index(b"\r\n") :])
    assert err.status_hint == status
    assert isinstance(err.message, SipRequest)  # still answerable


@pytest.mark.parametrize(
    "line",
    [
        b"SIP/2.0 4294967301 better not break the receiver",  # RFC 4475 §3.1.2.19
        b"SIP/2.0 700 Too big",
        b"SIP/2.0 099 Too small",
        b"SIP/2.0 20 OK",
        b"SIP/2.0 2OO OK",
        b"SIP/2.0",
        b"I(NVITE sip:a@b SIP/2.0",
        b"",
    ],
)
def test_malformed_start_lines_without_message(line: bytes) -> None:
    err = protocol_error(line + RESPONSE[RESPONSE.index(b"\r\n") :])
    assert err.status_hint == 400


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "Empty datagram"),
        (b"\r\n\r\n", "Empty datagram"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\nVia: x\r\n", "no empty line"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\n folded-first: x\r\n\r\n", "continuation"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\nNoColonHere\r\n\r\n", "colon"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\n: empty name\r\n\r\n", "colon"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\nBad Name: x\r\n\r\n", "header name"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\nVia: a\nb\r\n\r\n", "Bare CR or LF"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\nVia: a\rb\r\n\r\n", "Bare CR or LF"),
        (b"OPTIONS sip:a@b.example SIP/2.0\r\nSubject: \xff\xfe\r\n\r\n", "UTF-8"),
        (b'OPTIONS sip:a@b.example SIP/2.0\r\nContact: "open, <sip:x@y>\r\n\r\n', "quoted"),
    ],
)
def test_malformed_header_sections(data: bytes, reason: str) -> None:
    err = protocol_error(data)
    assert err.status_hint == 400
    assert reason in err.reason


def test_size_limits() -> None:
    err = protocol_error(invite(body=b"x" * MAX_MESSAGE_BYTES))
    assert err.status_hint == 513
    many = "".join(f"X-H{i}: v\r\n" for i in range(MAX_HEADER_LINES))
    err = protocol_error(invite(many))
    assert f"More than {MAX_HEADER_LINES} header lines" in err.reason


def test_keepalive_detection() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and is_keepalive(b"")
    assert not is_keepalive(invite())


# --- validate_request / validate_response ---------------------------------------------


def request(
    *headers: tuple[str, str],
    method: str = "OPTIONS",
    uri: str = "sip:a@b.example",
    body: bytes = b"",
) -> SipRequest:
    base = [
        ("Via", "SIP/2.0/UDP h.example.com;branch=z9hG4bK1"),
        ("To", "<sip:a@b.example>"),
        ("From", "<sip:c@d.example>;tag=1"),
        ("Call-ID", "abc"),
        ("CSeq", f"1 {method}"),
    ]
    names = {n for n, _ in headers}
    items = [(n, v) for n, v in base if n not in names] + [(n, v) for n, v in headers if v]
    return SipRequest(headers=Headers(items), method=method, uri=uri, body=body)


def reject(req: SipRequest, **kw: bool) -> SipProtocolError:
    with pytest.raises(SipProtocolError) as exc:
        validate_request(req, **kw)
    return exc.value


def test_validate_minimal_request_passes() -> None:
    validate_request(request())
    validate_request(request(method="ACK"))
    validate_request(request(uri="sips:a@b.example:5061;transport=tls"))
    validate_request(request(uri="tel:+15551234567"))


@pytest.mark.parametrize("name", ["To", "From", "Call-ID", "CSeq", "Via"])
def test_missing_mandatory_header(name: str) -> None:
    err = reject(request((name, "")))
    assert (err.status_hint, err.reason) == (400, f"Missing {name} header")


@pytest.mark.parametrize("name", ["To", "From", "Call-ID", "CSeq"])
def test_repeated_single_header(name: str) -> None:
    req = request()
    req.headers.add(name, req.headers.get(name) or "")
    err = reject(req)
    assert err.status_hint == 400 and f"Multiple {name} headers" in err.reason


def test_cseq_method_mismatch() -> None:
    err = reject(request(("CSeq", "1 INVITE"), method="BYE"))
    assert err.reason == "CSeq method INVITE does not match request method BYE"
    assert err.status_hint == 400


def test_request_uri_scheme_and_headers() -> None:
    assert reject(request(uri="mailto:a@b.example")).status_hint == 416
    assert reject(request(uri="sip:a@b.example?Route=%3Csip:x%3E")).status_hint == 400
    assert reject(request(uri="sip:a b")).status_hint == 400


@pytest.mark.parametrize("value", ["256", "-1", "abc", "70 70", "99999999999999"])
def test_max_forwards_out_of_range(value: str) -> None:
    err = reject(request(("Max-Forwards", value)))
    assert err.status_hint == 400 and "Max-Forwards" in err.reason


def test_max_forwards_zero() -> None:
    # An endpoint processes it (RFC 4475 §3.3.11); a proxy answers 483 (RFC 3261 §16.3).
    validate_request(request(("Max-Forwards", "0")))
    assert reject(request(("Max-Forwards", "0")), proxy=True).status_hint == 483
    validate_request(request(("Max-Forwards", "1")), proxy=True)
    req = request(("Max-Forwards", "70"))
    req.headers.add("Max-Forwards", "70")
    assert "Multiple Max-Forwards" in reject(req).reason


def test_content_length_must_match_body_of_built_request() -> None:
    validate_request(request(("Content-Length", "2"), body=b"hi"))
    err = reject(request(("Content-Length", "3"), body=b"hi"))
    assert err.status_hint == 400 and "Content-Length" in err.reason


def test_malformed_to_from_via_contact() -> None:
    assert "quoted" in reject(request(("To", '"open <sip:a@b.example>'))).reason
    assert reject(request(("From", "Bell, Alexander <sip:a@b.example>;tag=1"))).status_hint == 400
    assert reject(request(("Via", "SIP/2.0/UDP"))).status_hint == 400
    assert reject(request(("Contact", "sip:a@b.example?x=y"))).status_hint == 400
    assert reject(request(("Call-ID", "a b"))).reason == "Malformed Call-ID 'a b'"
    assert reject(request(("Call-ID", " "))).status_hint == 400


def test_validate_response() -> None:
    validate_response(parse_message(RESPONSE))  # type: ignore[arg-type]
    bad = SipResponse(headers=Headers(), status=200)
    with pytest.raises(SipProtocolError, match="Missing To header"):
        validate_response(bad)
    resp = parse_message(RESPONSE)
    assert isinstance(resp, SipResponse)
    resp.status = 700
    with pytest.raises(SipProtocolError, match="out of range"):
        validate_response(resp)
    resp = parse_message(RESPONSE.replace(b"CSeq: 314159", b"CSeq: 9292394834772304023312"))
    with pytest.raises(SipProtocolError, match="CSeq"):
        validate_response(resp)  # type: ignore[arg-type]


# --- StreamParser (RFC 3261 §18.3) ----------------------------------------------------


def drain(parser: StreamParser) -> list[SipRequest | SipResponse]:
    out = []
    while (msg := parser.next_message()) is not None:
        out.append(msg)
    return out


def test_stream_two_messages_with_keepalives() -> None:
    parser = StreamParser()
    parser.feed(b"\r\n\r\n" + invite() + b"\r\n" + RESPONSE + b"\r\n\r\n")
    msgs = drain(parser)
    assert [type(m) for m in msgs] == [SipRequest, SipResponse]
    assert msgs[0] == parse_message(invite())
    assert msgs[1] == parse_message(RESPONSE)
    assert not parser.failed


def test_stream_byte_at_a_time() -> None:
    parser = StreamParser()
    got = []
    for b in invite() + RESPONSE:
        parser.feed(bytes([b]))
        got += drain(parser)
    assert got == [parse_message(invite()), parse_message(RESPONSE)]


def test_stream_waits_for_body() -> None:
    parser = StreamParser()
    data = invite()
    parser.feed(data[:-5])
    assert parser.next_message() is None
    assert parser.next_message() is None
    parser.feed(data[-5:])
    assert parser.next_message() == parse_message(data)


def test_stream_missing_content_length_is_fatal() -> None:
    parser = StreamParser()
    parser.feed(invite(content_length="") + RESPONSE)
    with pytest.raises(SipProtocolError, match="Missing Content-Length"):
        parser.next_message()
    assert parser.failed
    parser.feed(RESPONSE)  # ignored
    with pytest.raises(SipProtocolError, match="Missing Content-Length"):
        parser.next_message()  # sticky: the adapter must close the connection


def test_stream_negative_and_oversize_content_length_are_fatal() -> None:
    parser = StreamParser()
    parser.feed(invite(content_length="-999"))
    with pytest.raises(SipProtocolError, match="Content-Length"):
        parser.next_message()
    assert parser.failed
    parser = StreamParser()
    parser.feed(invite(content_length=str(MAX_BODY_BYTES + 1)))
    with pytest.raises(SipProtocolError) as exc:
        parser.next_message()
    assert exc.value.status_hint == 513 and parser.failed


def test_stream_oversize_header_is_fatal_without_blank_line() -> None:
    parser = StreamParser()
    parser.feed(b"INVITE sip:a@b.example SIP/2.0\r\nX: " + b"a" * MAX_HEADER_BYTES)
    with pytest.raises(SipProtocolError) as exc:
        parser.next_message()
    assert exc.value.status_hint == 513


def test_stream_message_level_error_keeps_stream_in_sync() -> None:
    parser = StreamParser()
    bad = invite().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    parser.feed(bad + RESPONSE)
    with pytest.raises(SipProtocolError) as exc:
        parser.next_message()
    assert exc.value.status_hint == 505
    assert isinstance(exc.value.message, SipRequest) and exc.value.message.body == SDP
    assert not parser.failed
    assert parser.next_message() == parse_message(RESPONSE)


def test_stream_equal_duplicate_content_length_is_accepted() -> None:
    parser = StreamParser()
    parser.feed(invite(f"Content-Length: {len(SDP)}\r\n"))
    msg = parser.next_message()
    assert msg is not None and msg.body == SDP
    parser = StreamParser()
    parser.feed(invite("Content-Length: 3\r\n"))
    with pytest.raises(SipProtocolError, match="disagree"):
        parser.next_message()


# --- no quadratic traps ---------------------------------------------------------------

N = 60_000
# (parser, input, whether it must raise)
PATHOLOGICAL = [
    (SipUri.parse, "sip:a@[" + ":" * N + "x]", True),
    (SipUri.parse, "sip:a@" + "a-" * N + "!", True),
    (SipUri.parse, "sip:a@b;" + "x" * N + "=" + "%4" * N, True),
    (parse_via, "SIP/2.0/UDP a" + " :" * N + "b", True),
    (parse_via, "SIP/2.0/UDP h;" + "a=b;" * N, True),
    (parse_name_addr, "a " * N + "@<sip:x@y>", True),
    (parse_name_addr, '"' + '\\"' * N, True),
    (parse_params, ';a="' * (N + 1), True),
    (parse_cseq, "1 " + "A" * N + "(", True),
    (split_header_list, '"a",' * N, False),
    (split_header_list, "<" * N + "," * N, False),
    (tag_of, ";tag" * N, False),
]


@pytest.mark.parametrize(("parser", "text", "raises"), PATHOLOGICAL)
def test_huge_values_finish(parser: Callable[[str], object], text: str, raises: bool) -> None:
    # A quadratic (regex backtracking) path would take minutes on 60k characters and trip
    # pytest-timeout; linear ones take milliseconds.
    try:
        parser(text)
    except SipProtocolError:
        assert raises
    else:
        assert not raises
