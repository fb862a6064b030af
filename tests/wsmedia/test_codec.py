"""decode/encode of Media Streams messages: Twilio's documented examples, round trips and
the error messages for each kind of bad input."""

from __future__ import annotations

import base64
import json

import pytest

from trunkline.wsmedia import (
    Clear,
    CloseCode,
    Connected,
    Dtmf,
    Event,
    Hangup,
    Mark,
    Media,
    MediaFormat,
    Start,
    Stop,
    Transfer,
    TransferResult,
    WsMediaProtocolError,
    decode,
    encode,
    encode_media,
    media_encoder,
)

SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
CALL = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
PAYLOAD = bytes(range(160))  # 20 ms of u-law codes
PAYLOAD_B64 = base64.b64encode(PAYLOAD).decode()

# Verbatim from Twilio's "Media Streams - WebSocket Messages" page, except that the docs
# abbreviate media payloads ("no+JhoaJjpz..."), which is not base64: those carry 160 real
# bytes here (the abbreviated form itself is tested to be refused).
TWILIO_CONNECTED = """{
  "event": "connected",
  "protocol": "Call",
  "version": "1.0.0"
}"""
TWILIO_START = """{
  "event": "start",
  "sequenceNumber": "1",
  "start": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "tracks": ["inbound"],
    "mediaFormat": {
      "encoding": "audio/x-mulaw",
      "sampleRate": 8000,
      "channels": 1
    },
    "customParameters": {
      "FirstName": "Jane",
      "LastName": "Doe",
      "RemoteParty": "Bob"
    }
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}"""
TWILIO_MEDIA_OUTBOUND_TRACK = """{
  "event": "media",
  "sequenceNumber": "3",
  "media": {
    "track": "outbound",
    "chunk": "1",
    "timestamp": "5",
    "payload": "@PAYLOAD@"
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}""".replace("@PAYLOAD@", PAYLOAD_B64)
TWILIO_MEDIA_INBOUND_TRACK = """{
  "event": "media",
  "sequenceNumber": "4",
  "media": {
    "track": "inbound",
    "chunk": "2",
    "timestamp": "5",
    "payload": "@PAYLOAD@"
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}""".replace("@PAYLOAD@", PAYLOAD_B64)
TWILIO_STOP = """{
  "event": "stop",
  "sequenceNumber": "5",
  "stop": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}"""
TWILIO_DTMF = """{
  "event": "dtmf",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "sequenceNumber": "5",
  "dtmf": {
    "track": "inbound_track",
    "digit": "1"
  }
}"""
TWILIO_MARK = """{
  "event": "mark",
  "sequenceNumber": "4",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "mark": {
    "name": "my label"
  }
}"""
APP_MEDIA = """{
  "event": "media",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "media": {
    "payload": "@PAYLOAD@"
  }
}""".replace("@PAYLOAD@", PAYLOAD_B64)
APP_MARK = """{
  "event": "mark",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "mark": {
    "name": "my label"
  }
}"""
APP_CLEAR = """{
  "event": "clear",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}"""

DOCUMENTED: list[tuple[str, Event]] = [
    (TWILIO_CONNECTED, Connected("Call", "1.0.0")),
    (
        TWILIO_START,
        Start(
            stream_sid=SID,
            call_sid=CALL,
            account_sid=ACCOUNT,
            tracks=("inbound",),
            custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
            media_format=MediaFormat("audio/x-mulaw", 8000, 1),
            sequence_number=1,
        ),
    ),
    (TWILIO_MEDIA_OUTBOUND_TRACK, Media(SID, PAYLOAD, "outbound", 1, 5, 3)),
    (TWILIO_MEDIA_INBOUND_TRACK, Media(SID, PAYLOAD, "inbound", 2, 5, 4)),
    (TWILIO_STOP, Stop(SID, ACCOUNT, CALL, 5)),
    (TWILIO_DTMF, Dtmf(SID, "1", "inbound_track", 5)),
    (TWILIO_MARK, Mark(SID, "my label", 4)),
    (APP_MEDIA, Media(SID, PAYLOAD)),
    (APP_MARK, Mark(SID, "my label")),
    (APP_CLEAR, Clear(SID)),
]

# Trunkline's own extensions, in the shape the codec's docstring gives.
EXTENSIONS: list[tuple[str, Event]] = [
    (
        '{"event":"transfer","streamSid":"MZ1","transfer":{"target":"sip:desk@example.com"}}',
        Transfer("MZ1", "sip:desk@example.com"),
    ),
    (
        '{"event":"transfer_result","streamSid":"MZ1","transfer_result":'
        '{"target":"sip:desk@example.com","ok":false,"status":486,"detail":"busy"}}',
        TransferResult("MZ1", "sip:desk@example.com", False, 486, "busy"),
    ),
    ('{"event":"hangup","streamSid":"MZ1","hangup":{"reason":"done"}}', Hangup("MZ1", "done")),
    ('{"event":"hangup","streamSid":"MZ1"}', Hangup("MZ1", "normal")),
]


@pytest.mark.parametrize(("text", "expected"), DOCUMENTED + EXTENSIONS)
def test_documented_message_decodes_and_round_trips(text: str, expected: Event) -> None:
    event = decode(text)
    assert event == expected
    again = encode(event)
    assert decode(again) == event
    # encode writes the same JSON Twilio documents (whitespace aside), key for key.
    assert json.loads(again) == json.loads(text) or isinstance(event, Hangup)


@pytest.mark.parametrize(("text", "expected"), DOCUMENTED)
def test_documented_message_decodes_from_utf8_bytes(text: str, expected: Event) -> None:
    assert decode(text.encode()) == expected


def test_the_docs_abbreviated_payload_is_refused_as_base64() -> None:
    text = TWILIO_MEDIA_INBOUND_TRACK.replace(PAYLOAD_B64, "no+JhoaJjpzS...")
    with pytest.raises(WsMediaProtocolError, match="media.payload is not valid base64"):
        decode(text)


@pytest.mark.parametrize(("text", "_expected"), DOCUMENTED)
def test_every_truncation_of_a_documented_message_says_truncated(
    text: str, _expected: Event
) -> None:
    for cut in range(len(text) - 1):  # the last char is "}"; without it, still truncated
        with pytest.raises(WsMediaProtocolError, match="^truncated JSON") as info:
            decode(text[:cut])
        assert info.value.close_code == CloseCode.INVALID_PAYLOAD


def test_encode_media_fast_paths_match_the_generic_encoder() -> None:
    twilio = Media('MZ"odd\u00e9', PAYLOAD, "inbound", 7, 140, 9)
    app = Media('MZ"odd\u00e9', PAYLOAD)
    assert decode(encode_media(twilio.stream_sid, PAYLOAD, "inbound", 7, 140, 9)) == twilio
    assert media_encoder(app.stream_sid)(PAYLOAD) == encode(app)
    assert decode(media_encoder(app.stream_sid)(PAYLOAD)) == app
    assert encode(app).isascii()


def test_start_without_the_inner_stream_sid_uses_the_outer_one() -> None:
    obj = json.loads(TWILIO_START)
    del obj["start"]["streamSid"]
    event = decode(json.dumps(obj))
    assert isinstance(event, Start)
    assert event.stream_sid == SID


def test_optional_fields_take_twilio_defaults() -> None:
    start = decode('{"event":"start","start":{"streamSid":"MZ1"}}')
    assert start == Start("MZ1")
    assert decode('{"event":"connected"}') == Connected()
    assert decode('{"event":"stop","streamSid":"MZ1"}') == Stop("MZ1")


def test_unknown_fields_are_ignored() -> None:
    obj = json.loads(TWILIO_MEDIA_INBOUND_TRACK)
    obj["future"] = {"x": [1]}
    obj["media"]["extra"] = 1
    assert decode(json.dumps(obj)) == Media(SID, PAYLOAD, "inbound", 2, 5, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "^truncated JSON"),
        ("not json", "^invalid JSON"),
        ("[1, 2]", "must be a JSON object, got an array"),
        ('"media"', "must be a JSON object, got a string"),
        ("{}", "event is missing"),
        ('{"event": 3}', "event must be a string, got a number"),
        ('{"event": "ring"}', "unknown event 'ring'"),
        ('{"event": "media", "streamSid": "MZ1"}', "media is missing"),
        ('{"event": "media", "streamSid": "MZ1", "media": []}', "media must be an object"),
        ('{"event": "media", "streamSid": "MZ1", "media": {}}', "media.payload is missing"),
        ('{"event": "media", "media": {"payload": ""}}', "streamSid is missing"),
        ('{"event": "media", "streamSid": null, "media": {"payload": ""}}', "got null"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "@@"}}', "base64"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "\u00e9A=="}}', "base64"),
        (
            '{"event": "media", "streamSid": "M", "media": {"payload": "", "chunk": "-1"}}',
            "media.chunk must be a decimal counter",
        ),
        (
            '{"event": "media", "streamSid": "M", "media": {"payload": "", "chunk": "\u0661"}}',
            "media.chunk must be a decimal counter",
        ),
        (
            '{"event": "media", "streamSid": "M", "sequenceNumber": "%s", "media": {"payload": ""}}'
            % ("9" * 21),
            "sequenceNumber must be a decimal counter",
        ),
        (
            '{"event": "media", "streamSid": "M", "sequenceNumber": true, '
            '"media": {"payload": ""}}',
            "sequenceNumber must be a decimal counter, got a boolean",
        ),
        ('{"event": "start", "start": {}}', "start.streamSid is missing"),
        (
            '{"event": "start", "start": {"streamSid": "A"}, "streamSid": "B"}',
            "start.streamSid and streamSid differ",
        ),
        ('{"event": "start", "start": {"streamSid": "A", "tracks": [1]}}', "start.tracks"),
        (
            '{"event": "start", "start": {"streamSid": "A", "customParameters": {"k": 1}}}',
            "start.customParameters.k must be a string",
        ),
        (
            '{"event": "start", "start": {"streamSid": "A", '
            '"mediaFormat": {"sampleRate": "8000"}}}',
            "start.mediaFormat.sampleRate must be an integer",
        ),
        ('{"event": "dtmf", "streamSid": "M", "dtmf": {"digit": "x"}}', "dtmf.digit must be one"),
        ('{"event": "mark", "streamSid": "M", "mark": {}}', "mark.name is missing"),
        ('{"event": "transfer", "streamSid": "M", "transfer": {}}', "transfer.target is missing"),
        (
            '{"event": "transfer_result", "streamSid": "M", "transfer_result": '
            '{"target": "t", "ok": 1, "status": 200}}',
            "transfer_result.ok must be a boolean, got a number",
        ),
        ("[" * 100_000, "nested too deeply"),
        ('{"event": "media", "n": %s}' % ("1" * 5000), "^invalid JSON"),
    ],
)
def test_bad_message_raises_a_precise_protocol_error(text: str, message: str) -> None:
    with pytest.raises(WsMediaProtocolError, match=message) as info:
        decode(text)
    assert info.value.close_code == CloseCode.INVALID_PAYLOAD


def test_bytes_that_are_not_utf8_raise_a_protocol_error() -> None:
    with pytest.raises(WsMediaProtocolError, match="invalid JSON"):
        decode(b'{"event": "\xff"}')
