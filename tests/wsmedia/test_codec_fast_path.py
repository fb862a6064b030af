"""The media fast path (``decode``'s compact shapes and ``inbound_payload``) against the full
path: whenever the fast path answers, the full path gives the same event; whatever it
does not take (other shapes, escapes, whitespace, bad base64) the full path decides."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.wsmedia import Media, WsMediaProtocolError, decode, encode
from trunkline.wsmedia.codec import (
    _decode_json,
    _fast_media,
    encode_media,
    inbound_payload,
    media_encoder,
)

FAST = settings(max_examples=200, deadline=None)

SID = "MZ" + "0123456789abcdef" * 2
PAYLOAD = bytes(range(160))
TWILIO = encode_media(SID, PAYLOAD, "inbound", 7, 140, 9)

sids = st.text(max_size=40)
counters = st.integers(min_value=0, max_value=10**20 - 1)
tracks = st.sampled_from(["inbound", "outbound", "inbound_track", ""]) | st.text(max_size=10)


def _unescaped(text: str) -> bool:
    """The JSON encoder writes ``text`` as it is (printable ASCII, no quote or backslash)."""
    return all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in text)


def test_twilio_shape_is_what_encode_media_writes() -> None:
    # The fast path's pattern is Twilio's documented order of keys; encode_media keeps it.
    expected = (
        '{"event":"media","sequenceNumber":"9","media":{"track":"inbound","chunk":"7",'
        f'"timestamp":"140","payload":"{base64.b64encode(PAYLOAD).decode()}"}},'
        f'"streamSid":"{SID}"}}'
    )
    assert expected == TWILIO
    assert inbound_payload(TWILIO) == PAYLOAD
    assert _fast_media(TWILIO) == Media(SID, PAYLOAD, "inbound", 7, 140, 9)


@FAST
@given(sids, st.binary(max_size=400), tracks, counters, counters, counters)
def test_twilio_shape_fast_equals_full(
    sid: str, payload: bytes, track: str, chunk: int, ts: int, seq: int
) -> None:
    text = encode_media(sid, payload, track, chunk, ts, seq)
    full = _decode_json(text)
    assert full == Media(sid, payload, track, chunk, ts, seq)
    assert decode(text) == full
    fast = _fast_media(text)
    assert fast is None or fast == full
    got = inbound_payload(text)
    assert got is None or (got == payload and track == "inbound")
    if _unescaped(sid) and _unescaped(track):
        assert fast == full  # escape-free Twilio messages all take the fast path
        assert (got is not None) == (track == "inbound")


@FAST
@given(sids, st.binary(max_size=400))
def test_app_shape_fast_equals_full(sid: str, payload: bytes) -> None:
    text = media_encoder(sid)(payload)
    assert text == encode(Media(sid, payload))
    fast = _fast_media(text)
    assert fast is None or fast == _decode_json(text) == Media(sid, payload)
    assert inbound_payload(text) is None  # no track: the server decodes it in full


def _mutations() -> st.SearchStrategy[str]:
    """Valid fast-path messages with one character inserted, deleted or replaced."""
    base = st.sampled_from([TWILIO, media_encoder(SID)(PAYLOAD)])
    chars = st.sampled_from(list('"\\{}:,= \n\x00/+A0é')) | st.characters()

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        text = draw(base)
        i = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        c = draw(chars)
        if kind == "insert":
            return text[:i] + c + text[i:]
        if kind == "delete":
            return text[:i] + text[i + 1 :]
        return text[:i] + c + text[i + 1 :]

    return mutate()


@settings(max_examples=400, deadline=None)
@given(_mutations())
def test_on_mutated_messages_the_fast_path_never_disagrees(text: str) -> None:
    try:
        full: Media | None = _decode_json(text)  # type: ignore[assignment]
    except WsMediaProtocolError:
        full = None
    fast = _fast_media(text)
    if fast is not None:
        assert fast == full
    got = inbound_payload(text)
    if got is not None:
        assert full is not None and full.payload == got and full.track == "inbound"
    try:
        assert decode(text) == full
    except WsMediaProtocolError:
        assert full is None


@pytest.mark.parametrize(
    "text",
    [
        TWILIO.replace('"media":{', '"media": {'),  # whitespace
        TWILIO.replace('"event":"media",', '"event":"media","extra":1,'),  # unknown field
        TWILIO.replace(SID, SID[:-1] + "\\u0041"),  # an escape in the sid
        TWILIO.replace("/", "\\/", 1) if "/" in TWILIO else TWILIO.replace("A", "\\u0041", 1),
    ],
)
def test_other_spellings_of_valid_media_go_the_full_way(text: str) -> None:
    assert inbound_payload(text) is None
    assert _fast_media(text) is None
    assert isinstance(decode(text), Media)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TWILIO.replace('"payload":"AA', '"payload":"A'), "not valid base64"),
        (TWILIO.replace('"chunk":"7"', '"chunk":"7a"'), "decimal counter"),
        (TWILIO.replace(SID, SID + "\x01"), "invalid JSON"),
        (TWILIO + " x", "invalid JSON"),
        (TWILIO[:-1], "truncated JSON"),
    ],
)
def test_broken_media_gets_the_full_paths_error(text: str, message: str) -> None:
    assert inbound_payload(text) is None
    with pytest.raises(WsMediaProtocolError, match=message):
        decode(text)


def test_a_counter_longer_than_twenty_digits_is_refused_on_both_paths() -> None:
    text = TWILIO.replace('"chunk":"7"', '"chunk":"' + "1" * 21 + '"')
    assert inbound_payload(text) is None
    with pytest.raises(WsMediaProtocolError, match="decimal counter"):
        decode(text)
