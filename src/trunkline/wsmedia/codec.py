"""Pure decode/encode of Twilio-compatible Media Streams messages: ``decode(text) -> Event``
and ``encode(Event) -> str``. No I/O, no clock, no framing: one WebSocket text message in,
one event out.

Wire shapes (Twilio's names; ``[x]`` is optional when decoding, always written by encode
when the event has it; counters are decimal strings on the wire):

    connected  {event, [protocol], [version]}
    start      {event, [sequenceNumber], start: {[accountSid], streamSid, [callSid], [tracks],
                [mediaFormat: {[encoding], [sampleRate], [channels]}], [customParameters]},
                streamSid}            (either streamSid may be missing; if both, they agree)
    media      {event, [sequenceNumber], media: {[track], [chunk], [timestamp], payload},
                streamSid}            (payload: base64 u-law)
    dtmf       {event, streamSid, [sequenceNumber], dtmf: {[track], digit}}
    mark       {event, [sequenceNumber], streamSid, mark: {name}}
    clear      {event, streamSid}
    stop       {event, [sequenceNumber], [stop: {[accountSid], [callSid]}], streamSid}
    -- trunkline extensions, not Twilio's --
    transfer         {event, streamSid, transfer: {target}}
    transfer_result  {event, streamSid, transfer_result: {target, ok, status, [detail]}}
    hangup           {event, streamSid, [hangup: {[reason]}]}

Unknown fields are ignored (Twilio adds fields over time); unknown events, missing or
wrong-typed fields and bad base64 raise :class:`WsMediaProtocolError`, and nothing else
escapes ``decode`` whatever the input. A JSON ``null`` is a wrong type, not an absence.

Both directions run 50 times a second per call, so ``media`` has a fast path each way.
Out, :func:`encode_media` / :func:`media_encoder` build the JSON by concatenation
instead of ``json.dumps``. In, ``decode`` first tries the two compact shapes that real
peers send (Twilio's, keys in Twilio's order, and the app's ``{event, streamSid,
media: {payload}}``) with anchored regular expressions, and :func:`inbound_payload`
returns just the audio of Twilio's shape: the payload is cut out with ``str.find`` and
checked by strict base64, so nothing walks it in Python or builds a dict. A text the
fast path takes is, by construction, a JSON object that the full path would decode to
the same event; anything else (other key orders, whitespace, escapes, bad base64) goes
the full way, so errors and edge cases are the full path's. About 4x cheaper per
message than ``json.loads`` and the field checks (see ``bench/agent_frame_path.py``).
"""

from __future__ import annotations

import re
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable
from json import JSONDecodeError, dumps, loads
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from trunkline.wsmedia.errors import WsMediaProtocolError
from trunkline.wsmedia.events import (
    DTMF_DIGITS,
    DTMF_TRACK,
    MULAW,
    MULAW_RATE,
    Clear,
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
)

__all__ = ["decode", "encode", "encode_media", "inbound_payload", "media_encoder"]

# A Twilio counter is a uint64 at most; more digits than that is garbage, and the bound
# keeps int() away from Python's 4,300-digit conversion limit.
MAX_COUNTER_DIGITS = 20

_MISSING: Any = object()
_SEPARATORS = (",", ":")

# The fast path's shapes. A JSON string without escapes: no quote, no backslash, no
# control character (json.loads refuses those raw). A counter: 1-20 ASCII digits
# (``\d`` would take other scripts' digits, which ``_counter`` refuses).
_PLAIN = r'"([^"\\\x00-\x1f]*)"'
_COUNT = "[0-9]{1,%d}" % MAX_COUNTER_DIGITS  # noqa: UP031 (a regex: braces are literal)
_DIGITS = f'"({_COUNT})"'
#: Twilio's media message up to the payload's first character.
_TWILIO_HEAD = re.compile(
    r'\{"event":"media","sequenceNumber":' + _DIGITS + r',"media":\{"track":' + _PLAIN
    + r',"chunk":' + _DIGITS + r',"timestamp":' + _DIGITS + r',"payload":"'
)  # fmt: skip
#: What follows Twilio's payload: the end of ``media``, then ``streamSid``.
_TWILIO_TAIL = re.compile(r'"\},"streamSid":' + _PLAIN + r"\}")
#: The app's media message (``media_encoder``'s output) up to the payload.
_APP_HEAD = re.compile(r'\{"event":"media","streamSid":' + _PLAIN + r',"media":\{"payload":"')
_APP_TAIL = '"}}'
#: Twilio's shape with the inbound track, as the server's per-frame path sees it.
_INBOUND_HEAD = re.compile(
    r'\{"event":"media","sequenceNumber":"' + _COUNT + r'","media":\{"track":"inbound",'
    + r'"chunk":"' + _COUNT + r'","timestamp":"' + _COUNT + r'","payload":"'
)  # fmt: skip
_INBOUND_TAIL = re.compile(r'"\},"streamSid":"[^"\\\x00-\x1f]*"\}')


def _kind(value: object) -> str:
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _bad(where: str, value: object, want: str) -> WsMediaProtocolError:
    if value is _MISSING:
        return WsMediaProtocolError(f"{where} is missing")
    return WsMediaProtocolError(f"{where} must be {want}, got {_kind(value)}")


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key, _MISSING)
    if type(value) is str:
        return value
    raise _bad(where, value, "a string")


def _opt_str(obj: dict[str, Any], key: str, where: str, default: str) -> str:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        return default
    if type(value) is str:
        return value
    raise _bad(where, value, "a string")


def _obj(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key, _MISSING)
    if type(value) is dict:
        return value
    raise _bad(where, value, "an object")


def _opt_obj(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        return {}
    if type(value) is dict:
        return value
    raise _bad(where, value, "an object")


def _opt_int(obj: dict[str, Any], key: str, where: str, default: int) -> int:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        return default
    if type(value) is int:
        return value
    raise _bad(where, value, "an integer")


def _counter(obj: dict[str, Any], key: str, where: str) -> int | None:
    """An optional non-negative counter, sent by Twilio as a decimal string."""
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        return None
    if type(value) is str:
        # isdigit() alone accepts other scripts' digits and superscripts; isascii() does not.
        if 0 < len(value) <= MAX_COUNTER_DIGITS and value.isascii() and value.isdigit():
            return int(value)
        raise WsMediaProtocolError(f"{where} must be a decimal counter, got {value[:40]!r}")
    if type(value) is int and 0 <= value < 10**MAX_COUNTER_DIGITS:
        return value
    raise _bad(where, value, "a decimal counter")


def _stream_sid(obj: dict[str, Any]) -> str:
    return _str(obj, "streamSid", "streamSid")


def _media(obj: dict[str, Any]) -> Media:
    media = obj.get("media", _MISSING)
    if type(media) is not dict:
        raise _bad("media", media, "an object")
    payload = media.get("payload", _MISSING)
    if type(payload) is not str:
        raise _bad("media.payload", payload, "a string")
    try:
        raw = a2b_base64(payload, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters
        raise WsMediaProtocolError(f"media.payload is not valid base64 ({exc})") from None
    stream_sid = obj.get("streamSid", _MISSING)
    if type(stream_sid) is not str:
        raise _bad("streamSid", stream_sid, "a string")
    if len(media) == 1 and len(obj) == 3:  # {event, streamSid, media: {payload}}: from the app
        return Media(stream_sid, raw)
    track = media.get("track", _MISSING)
    if track is _MISSING:
        track = None
    elif type(track) is not str:
        raise _bad("media.track", track, "a string")
    return Media(
        stream_sid,
        raw,
        track,
        _counter(media, "chunk", "media.chunk"),
        _counter(media, "timestamp", "media.timestamp"),
        _counter(obj, "sequenceNumber", "sequenceNumber"),
    )


def _connected(obj: dict[str, Any]) -> Connected:
    return Connected(
        _opt_str(obj, "protocol", "protocol", "Call"),
        _opt_str(obj, "version", "version", "1.0.0"),
    )


def _start(obj: dict[str, Any]) -> Start:
    start = _obj(obj, "start", "start")
    inner = start.get("streamSid", _MISSING)
    outer = obj.get("streamSid", _MISSING)
    if inner is _MISSING and outer is _MISSING:
        raise WsMediaProtocolError("start.streamSid is missing")
    sid = _str(start, "streamSid", "start.streamSid") if inner is not _MISSING else None
    top = _str(obj, "streamSid", "streamSid") if outer is not _MISSING else None
    if sid is not None and top is not None and sid != top:
        raise WsMediaProtocolError("start.streamSid and streamSid differ")
    stream_sid = sid if sid is not None else top
    assert stream_sid is not None

    tracks_value = start.get("tracks", _MISSING)
    if tracks_value is _MISSING:
        tracks: tuple[str, ...] = ("inbound",)
    elif type(tracks_value) is list and all(type(t) is str for t in tracks_value):
        tracks = tuple(tracks_value)
    else:
        raise _bad("start.tracks", tracks_value, "an array of strings")

    params = _opt_obj(start, "customParameters", "start.customParameters")
    for key, value in params.items():
        if type(value) is not str:
            raise _bad(f"start.customParameters.{key[:40]}", value, "a string")

    fmt = _opt_obj(start, "mediaFormat", "start.mediaFormat")
    return Start(
        stream_sid=stream_sid,
        call_sid=_opt_str(start, "callSid", "start.callSid", ""),
        account_sid=_opt_str(start, "accountSid", "start.accountSid", ""),
        tracks=tracks,
        custom_parameters=params,
        media_format=MediaFormat(
            _opt_str(fmt, "encoding", "start.mediaFormat.encoding", MULAW),
            _opt_int(fmt, "sampleRate", "start.mediaFormat.sampleRate", MULAW_RATE),
            _opt_int(fmt, "channels", "start.mediaFormat.channels", 1),
        ),
        sequence_number=_counter(obj, "sequenceNumber", "sequenceNumber"),
    )


def _dtmf(obj: dict[str, Any]) -> Dtmf:
    dtmf = _obj(obj, "dtmf", "dtmf")
    digit = _str(dtmf, "digit", "dtmf.digit")
    if digit not in DTMF_DIGITS:
        raise WsMediaProtocolError(f"dtmf.digit must be one of 0-9 * # A-D, got {digit[:8]!r}")
    return Dtmf(
        _stream_sid(obj),
        digit,
        _opt_str(dtmf, "track", "dtmf.track", DTMF_TRACK),
        _counter(obj, "sequenceNumber", "sequenceNumber"),
    )


def _mark(obj: dict[str, Any]) -> Mark:
    mark = _obj(obj, "mark", "mark")
    return Mark(
        _stream_sid(obj),
        _str(mark, "name", "mark.name"),
        _counter(obj, "sequenceNumber", "sequenceNumber"),
    )


def _clear(obj: dict[str, Any]) -> Clear:
    return Clear(_stream_sid(obj))


def _stop(obj: dict[str, Any]) -> Stop:
    stop = _opt_obj(obj, "stop", "stop")
    return Stop(
        _stream_sid(obj),
        _opt_str(stop, "accountSid", "stop.accountSid", ""),
        _opt_str(stop, "callSid", "stop.callSid", ""),
        _counter(obj, "sequenceNumber", "sequenceNumber"),
    )


def _transfer(obj: dict[str, Any]) -> Transfer:
    transfer = _obj(obj, "transfer", "transfer")
    return Transfer(_stream_sid(obj), _str(transfer, "target", "transfer.target"))


def _transfer_result(obj: dict[str, Any]) -> TransferResult:
    result = _obj(obj, "transfer_result", "transfer_result")
    ok = result.get("ok", _MISSING)
    if type(ok) is not bool:
        raise _bad("transfer_result.ok", ok, "a boolean")
    status = result.get("status", _MISSING)
    if type(status) is not int:
        raise _bad("transfer_result.status", status, "an integer")
    return TransferResult(
        _stream_sid(obj),
        _str(result, "target", "transfer_result.target"),
        ok,
        status,
        _opt_str(result, "detail", "transfer_result.detail", ""),
    )


def _hangup(obj: dict[str, Any]) -> Hangup:
    hangup = _opt_obj(obj, "hangup", "hangup")
    return Hangup(_stream_sid(obj), _opt_str(hangup, "reason", "hangup.reason", "normal"))


_DECODERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "connected": _connected,
    "start": _start,
    "media": _media,
    "dtmf": _dtmf,
    "mark": _mark,
    "clear": _clear,
    "stop": _stop,
    "transfer": _transfer,
    "transfer_result": _transfer_result,
    "hangup": _hangup,
}


_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


def _truncated(exc: JSONDecodeError) -> bool:
    """Whether the text was valid JSON so far and merely ended too soon."""
    if exc.msg.startswith("Unterminated string"):  # the scanner hit the end inside a string
        return True
    rest = exc.doc[exc.pos :].strip()
    return not rest or any(literal.startswith(rest) for literal in _LITERALS)


def _fast_media(text: str) -> Media | None:
    """``decode(text)`` for a media message in one of the two compact shapes, else None."""
    head = _TWILIO_HEAD.match(text)
    if head is not None:
        start = head.end()
        end = text.find('"', start)
        tail = _TWILIO_TAIL.fullmatch(text, end) if end >= 0 else None
        if tail is None:
            return None
        try:
            raw = a2b_base64(text[start:end], strict_mode=True)
        except ValueError:
            return None  # the full path says what is wrong with it
        seq, track, chunk, timestamp = head.groups()
        return Media(tail[1], raw, track, int(chunk), int(timestamp), int(seq))
    head = _APP_HEAD.match(text)
    if head is not None:
        start = head.end()
        end = text.find('"', start)
        if end != len(text) - len(_APP_TAIL) or not text.endswith(_APP_TAIL):
            return None
        try:
            return Media(head[1], a2b_base64(text[start:end], strict_mode=True))
        except ValueError:
            return None
    return None


def inbound_payload(text: str) -> bytes | None:
    """The u-law audio of a Twilio-shaped ``media`` message on the inbound track.

    The server's per-frame path: Twilio's compact shape (keys in Twilio's order, no
    whitespace, no escapes) with ``"track":"inbound"``, whose payload is valid base64,
    gives its audio without building an event. Anything else, valid or not, gives None:
    the caller then runs :func:`decode`, which handles (or rejects) it in full. When this
    returns bytes, ``decode(text)`` would have returned a ``Media`` with that payload on
    the inbound track.
    """
    head = _INBOUND_HEAD.match(text)
    if head is None:
        return None
    start = head.end()
    end = text.find('"', start)
    if end < 0 or _INBOUND_TAIL.fullmatch(text, end) is None:
        return None
    try:
        return a2b_base64(text[start:end], strict_mode=True)
    except ValueError:
        return None


def decode(text: str | bytes) -> Event:
    """Parse one WebSocket text message into an event.

    Raises:
        WsMediaProtocolError: the text is not JSON, not an object, names no known event,
            or a field is missing, of the wrong type, or (``payload``) not base64.
    """
    if type(text) is str:
        media = _fast_media(text)
        if media is not None:
            return media
    return _decode_json(text)


def _decode_json(text: str | bytes) -> Event:
    """``decode`` without the fast path: ``json.loads`` and a check of every field."""
    try:
        obj = loads(text)
    except JSONDecodeError as exc:
        what = "truncated JSON" if _truncated(exc) else "invalid JSON"
        raise WsMediaProtocolError(
            f"{what}: {exc.msg} at char {exc.pos} of {len(exc.doc)}"
        ) from None
    except ValueError as exc:  # bytes that are not UTF-8, or a number too long for int()
        raise WsMediaProtocolError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise WsMediaProtocolError("invalid JSON: nested too deeply") from None
    if type(obj) is not dict:
        raise WsMediaProtocolError(f"message must be a JSON object, got {_kind(obj)}")
    event = obj.get("event", _MISSING)
    if event == "media":
        return _media(obj)
    if type(event) is not str:
        raise _bad("event", event, "a string")
    decoder = _DECODERS.get(event)
    if decoder is None:
        raise WsMediaProtocolError(f"unknown event {event[:40]!r}")
    return decoder(obj)


def encode_media(
    stream_sid: str,
    payload: bytes,
    track: str | None = None,
    chunk: int | None = None,
    timestamp: int | None = None,
    sequence_number: int | None = None,
) -> str:
    """``encode(Media(...))`` without building the event: the per-frame path of a caller."""
    b64 = b2a_base64(payload, newline=False).decode("ascii")
    if track is None and chunk is None and timestamp is None and sequence_number is None:
        head = '{"event":"media","streamSid":' + _quote(stream_sid)
        return head + ',"media":{"payload":"' + b64 + '"}}'
    parts = ['{"event":"media"']
    if sequence_number is not None:
        parts.append(f',"sequenceNumber":"{sequence_number}"')
    parts.append(',"media":{')
    if track is not None:
        parts.append('"track":' + _quote(track) + ",")
    if chunk is not None:
        parts.append(f'"chunk":"{chunk}",')
    if timestamp is not None:
        parts.append(f'"timestamp":"{timestamp}",')
    parts.append('"payload":"' + b64 + '"},"streamSid":' + _quote(stream_sid) + "}")
    return "".join(parts)


def media_encoder(stream_sid: str) -> Callable[[bytes], str]:
    """A function that encodes app -> telephony ``media`` for one stream (prefix built once).

    ``media_encoder(sid)(payload) == encode(Media(sid, payload))``; it is the per-frame
    path of the server side, where the stream never changes.
    """
    head = '{"event":"media","streamSid":' + _quote(stream_sid) + ',"media":{"payload":"'

    def encode_payload(payload: bytes) -> str:
        return head + b2a_base64(payload, newline=False).decode("ascii") + '"}}'

    return encode_payload


def _seq(wire: dict[str, Any], sequence_number: int | None) -> dict[str, Any]:
    if sequence_number is not None:
        wire["sequenceNumber"] = str(sequence_number)
    return wire


def _to_wire(event: Event) -> dict[str, Any]:
    if isinstance(event, Connected):
        return {"event": "connected", "protocol": event.protocol, "version": event.version}
    if isinstance(event, Start):
        fmt = event.media_format
        wire = _seq({"event": "start"}, event.sequence_number)
        wire["start"] = {
            "accountSid": event.account_sid,
            "streamSid": event.stream_sid,
            "callSid": event.call_sid,
            "tracks": list(event.tracks),
            "mediaFormat": {
                "encoding": fmt.encoding,
                "sampleRate": fmt.sample_rate,
                "channels": fmt.channels,
            },
            "customParameters": dict(event.custom_parameters),
        }
        wire["streamSid"] = event.stream_sid
        return wire
    if isinstance(event, Dtmf):
        wire = _seq({"event": "dtmf", "streamSid": event.stream_sid}, event.sequence_number)
        wire["dtmf"] = {"track": event.track, "digit": event.digit}
        return wire
    if isinstance(event, Mark):
        wire = _seq({"event": "mark"}, event.sequence_number)
        wire["streamSid"] = event.stream_sid
        wire["mark"] = {"name": event.name}
        return wire
    if isinstance(event, Clear):
        return {"event": "clear", "streamSid": event.stream_sid}
    if isinstance(event, Stop):
        wire = _seq({"event": "stop"}, event.sequence_number)
        wire["stop"] = {"accountSid": event.account_sid, "callSid": event.call_sid}
        wire["streamSid"] = event.stream_sid
        return wire
    if isinstance(event, Transfer):
        return {
            "event": "transfer",
            "streamSid": event.stream_sid,
            "transfer": {"target": event.target},
        }
    if isinstance(event, TransferResult):
        return {
            "event": "transfer_result",
            "streamSid": event.stream_sid,
            "transfer_result": {
                "target": event.target,
                "ok": event.ok,
                "status": event.status,
                "detail": event.detail,
            },
        }
    if isinstance(event, Hangup):
        hangup = {"reason": event.reason}
        return {"event": "hangup", "streamSid": event.stream_sid, "hangup": hangup}
    raise TypeError(f"not a Media Streams event: {event!r}")


def encode(event: Event) -> str:
    """Serialize one event as the JSON text of one WebSocket message (ASCII, compact)."""
    if type(event) is Media:
        return encode_media(
            event.stream_sid,
            event.payload,
            event.track,
            event.chunk,
            event.timestamp,
            event.sequence_number,
        )
    return dumps(_to_wire(event), separators=_SEPARATORS)
