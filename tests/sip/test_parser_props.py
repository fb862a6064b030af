"""Property tests for the SIP message layer: the parser contract and round trips.

Contract (STYLE.md, h11's fuzzer): any input either parses or raises SipProtocolError,
whole, mutated, or cut at any byte; nothing else escapes. Valid messages survive
serialize -> parse unchanged, and a stream framed in any chunking gives the same messages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import SipProtocolError
from trunkline.sip.headers import (
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_header_list,
    tag_of,
)
from trunkline.sip.message import Headers, SipRequest, SipResponse
from trunkline.sip.parser import StreamParser, parse_message, validate_request, validate_response
from trunkline.sip.uri import SipUri

FIXTURES = Path(__file__).parent / "fixtures" / "rfc4475"
# Modest budgets: the whole tests/sip folder must stay well under 30 s on two cores.
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -----------------------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
UNRESERVED = ALNUM + "-_.!~*'()"


def chars(alphabet: str, min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


def escaped(alphabet: str, min_size: int = 1) -> st.SearchStrategy[str]:
    """Text from ``alphabet`` with some %HH escapes mixed in."""
    piece = st.one_of(st.sampled_from(list(alphabet)), st.sampled_from(["%41", "%00", "%3a"]))
    return st.lists(piece, min_size=min_size, max_size=10).map("".join)


tokens = chars(TOKEN_CHARS)
lower_names = chars("abcdefghijklmnopqrstuvwxyz0123456789-", max_size=8)
labels = chars("abcdefghijklmnopqrstuvwxyz0123456789", max_size=8)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
hosts = st.one_of(
    hostnames,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
ports = st.none() | st.integers(0, 65535)
uri_params = st.lists(
    st.tuples(lower_names, st.none() | escaped(UNRESERVED + "[]/:&+$")), max_size=3
).map(tuple)
uri_headers = st.lists(st.tuples(chars(ALNUM), escaped(UNRESERVED + "[]/?:+$", 0)), max_size=2)

sip_uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | escaped(UNRESERVED + "&=+$,;?/"),
    host=hosts,
    port=ports,
    password=st.none(),
    params=uri_params,
)
# A password only exists with a user.
sip_uris_with_password = st.builds(
    SipUri,
    scheme=st.just("sip"),
    user=escaped(UNRESERVED),
    host=hosts,
    port=ports,
    password=escaped(UNRESERVED + "&=+$,", 0),
    params=uri_params,
    headers=uri_headers.map(tuple),
)
tel_uris = st.builds(
    lambda number, params: SipUri("tel", number, "", params=params),
    st.from_regex(r"\+?[0-9][0-9\-.()]{0,14}", fullmatch=True),
    uri_params,
)
any_uris = st.one_of(sip_uris, sip_uris_with_password, tel_uris)

# Characters of a quoted-string that need no escaping; any text for display names.
qdtext = st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\r\n')
text_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")
gen_values = st.one_of(
    st.none(),
    tokens,
    hosts,
    st.text(qdtext, max_size=10).map(lambda s: f'"{s}"'),
)
header_params = st.dictionaries(lower_names, gen_values, max_size=3)
display_names = st.none() | st.text(text_chars, max_size=20)
name_addrs = st.builds(NameAddr, uri=any_uris, display_name=display_names, params=header_params)
vias = st.builds(
    Via,
    transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"]),
    host=hosts,
    port=ports,
    params=st.builds(
        lambda branch, rest: {"branch": "z9hG4bK" + branch, **rest}, tokens, header_params
    ),
)
methods = st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"]) | tokens
header_text = st.text(text_chars, max_size=30).map(lambda s: s.strip(" \t"))
tagged_name_addrs = name_addrs.map(
    lambda a: NameAddr(a.uri, a.display_name, {**a.params, "tag": "t1"})
)


@st.composite
def requests(draw: st.DrawFn) -> SipRequest:
    method = draw(methods)
    items: list[tuple[str, str]] = [
        ("Via", str(v)) for v in draw(st.lists(vias, min_size=1, max_size=3))
    ]
    items += [
        ("From", str(draw(tagged_name_addrs))),
        ("To", str(draw(name_addrs))),
        ("Call-ID", draw(tokens) + "@" + draw(hostnames)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    items += [("Contact", str(c)) for c in draw(st.lists(name_addrs, max_size=2))]
    items += [("Supported", t) for t in draw(st.lists(tokens, max_size=3))]
    items += [("X-" + draw(tokens), draw(header_text)) for _ in range(draw(st.integers(0, 3)))]
    items = draw(st.permutations(items))
    body = draw(st.binary(max_size=200))
    uri = draw(st.one_of(sip_uris, tel_uris))
    req = SipRequest(headers=Headers(items), body=body, method=method, uri=str(uri))
    req.headers.add("Content-Length", str(len(body)))
    return req


@st.composite
def responses(draw: st.DrawFn) -> SipResponse:
    reason = draw(st.text(text_chars, max_size=20))
    items = [("Via", str(v)) for v in draw(st.lists(vias, min_size=1, max_size=3))]
    items += [
        ("From", str(draw(name_addrs))),
        ("To", str(draw(name_addrs))),
        ("Call-ID", draw(tokens)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {draw(methods)}"),
    ]
    body = draw(st.binary(max_size=100))
    status = draw(st.integers(100, 699))
    resp = SipResponse(headers=Headers(items), body=body, status=status, reason=reason)
    resp.headers.add("Content-Length", str(len(body)))
    return resp


messages = st.one_of(requests(), responses())


def parse_or_protocol_error(data: bytes) -> SipRequest | SipResponse | None:
    """The contract: a message or SipProtocolError, and validation keeps to it too."""
    try:
        msg = parse_message(data)
    except SipProtocolError:
        return None
    try:
        if isinstance(msg, SipRequest):
            validate_request(msg)
        else:
            validate_response(msg)
    except SipProtocolError:
        pass
    return msg


# --- (1) arbitrary input --------------------------------------------------------------

sip_fragments = st.sampled_from([
    b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK", b"\r\n", b"\r\n\r\n", b": ", b";", b",",
    b"\"", b"<", b">", b"Via: SIP/2.0/UDP h;branch=z9hG4bK", b"Content-Length: ", b"l: 5",
    b"CSeq: 1 INVITE", b" ", b"\t", b"\xff", b"%", b"[::1]", b"From: ", b"tag=", b"99999999999",
])  # fmt: skip


@SETTINGS
@given(st.binary(max_size=400) | st.lists(sip_fragments, max_size=40).map(b"".join))
@example(b"SIP/2.0 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
@example(b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: " + b"9" * 5000 + b"\r\n\r\n")
def test_arbitrary_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    parse_or_protocol_error(data)


VALUE_FRAGMENTS = list('<>"\\;=,@:[]?& 1a') + ["sip:", "SIP/2.0/UDP ", "%4", "tag"]
VALUE_PARSERS: tuple[Callable[[str], object], ...] = (
    parse_via,
    parse_name_addr,
    SipUri.parse,
    lambda text: SipUri.parse(text, any_scheme=True),
    parse_cseq,
    parse_params,
    split_header_list,
)


@SETTINGS
@given(st.text(max_size=80) | st.lists(st.sampled_from(VALUE_FRAGMENTS), max_size=20).map("".join))
def test_value_parsers_raise_only_protocol_errors(text: str) -> None:
    for parser in VALUE_PARSERS:
        try:
            parser(text)
        except SipProtocolError:
            pass
    tag_of(text)  # never raises


# --- (2) round trips ------------------------------------------------------------------


@SLOW
@given(messages)
def test_valid_messages_round_trip(msg: SipRequest | SipResponse) -> None:
    parsed = parse_message(bytes(msg))
    assert parsed == msg
    if isinstance(parsed, SipRequest):
        validate_request(parsed)
    else:
        validate_response(parsed)


@SETTINGS
@given(any_uris)
def test_uri_round_trip(uri: SipUri) -> None:
    assert SipUri.parse(str(uri)) == uri


@SETTINGS
@given(vias)
def test_via_round_trip(via: Via) -> None:
    assert parse_via(str(via)) == via


@SETTINGS
@given(name_addrs)
def test_name_addr_round_trip(addr: NameAddr) -> None:
    assert parse_name_addr(str(addr)) == addr
    assert tag_of(str(addr)) == addr.tag


# --- (3) mutations and truncations ----------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(bytes(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"\r\n", b" ", b",", b";", b"\x00", b"\xc3"]))
        elif data:
            del data[pos]
    return bytes(data)


@SLOW
@given(mutated())
def test_mutated_messages_parse_or_raise_protocol_error(data: bytes) -> None:
    parse_or_protocol_error(data)


@settings(max_examples=25, deadline=None)
@given(messages)
def test_truncated_at_every_offset(msg: SipRequest | SipResponse) -> None:
    data = bytes(msg)
    for cut in range(len(data)):
        got = parse_or_protocol_error(data[:cut])
        if got is not None:
            # A cut inside the body is not a parsed message: Content-Length catches it.
            assert cut >= len(data) - len(msg.body)
            assert len(got.body) == len(msg.body) or "Content-Length" not in msg.headers


def test_torture_messages_truncated_at_every_offset() -> None:
    for path in sorted(FIXTURES.glob("*.dat")):
        data = path.read_bytes()
        for cut in range(len(data)):
            parse_or_protocol_error(data[:cut])
        parser = StreamParser()
        for cut in range(0, len(data), 7):
            parser.feed(data[cut : cut + 7])
            try:
                parser.next_message()
            except SipProtocolError:
                break


# --- (4) stream framing ---------------------------------------------------------------


@SLOW
@given(
    st.lists(st.tuples(messages, st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])), min_size=1,
             max_size=4),
    st.lists(st.integers(0, 4000), max_size=12),
)  # fmt: skip
def test_stream_chunking_does_not_change_messages(
    msgs: list[tuple[SipRequest | SipResponse, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(keepalive + bytes(m) for m, keepalive in msgs)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    chunked = StreamParser()
    got: list[SipRequest | SipResponse] = []
    for a, b in zip(points, points[1:], strict=False):
        chunked.feed(wire[a:b])
        while (m := chunked.next_message()) is not None:
            got.append(m)
    whole = StreamParser()
    whole.feed(wire)
    expected = []
    while (m := whole.next_message()) is not None:
        expected.append(m)
    assert got == expected == [m for m, _ in msgs]
    assert not chunked.failed


@SLOW
@given(mutated(), st.integers(1, 50))
def test_stream_parser_contract_on_mutated_streams(data: bytes, step: int) -> None:
    parser = StreamParser()
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        try:
            while parser.next_message() is not None:
                pass
        except SipProtocolError:
            if parser.failed:
                return
