"""Twilio-compatible Media Streams messages, as frozen dataclasses.

Twilio's bidirectional Media Streams ("Media Streams - WebSocket Messages" in Twilio's
docs) carry one JSON object per WebSocket text frame. Field names here are snake_case;
the wire names are given in each docstring. Numbers that Twilio sends as decimal strings
(``sequenceNumber``, ``chunk``, ``timestamp``) are ints here; audio is raw u-law bytes,
not base64.

Telephony side -> app: ``Connected``, ``Start``, ``Media``, ``Dtmf``, ``Mark`` (the echo of
the app's mark), ``Stop``.
App -> telephony side: ``Media``, ``Mark``, ``Clear``.

Trunkline extensions (ours, NOT Twilio's; real Twilio ignores unknown events, so an app
that sends them to Twilio loses nothing but the feature): ``Transfer`` and ``Hangup``
(app -> telephony side) and ``TransferResult`` (telephony side -> app).

Each message type's JSON shape is written out in :mod:`trunkline.wsmedia.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Twilio's values for the fields it says are constant (start.mediaFormat, dtmf.track).
MULAW = "audio/x-mulaw"
MULAW_RATE = 8000
DTMF_TRACK = "inbound_track"
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Connected:
    """``{"event": "connected", "protocol": "Call", "version": "1.0.0"}``: first message."""

    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """``start.mediaFormat``: ``encoding``, ``sampleRate``, ``channels``."""

    encoding: str = MULAW
    sample_rate: int = MULAW_RATE
    channels: int = 1


@dataclass(frozen=True, slots=True)
class Start:
    """``start``: stream metadata, sent once right after ``connected``.

    Wire: ``sequenceNumber``, ``start.{accountSid, streamSid, callSid, tracks,
    customParameters, mediaFormat}`` and a top-level ``streamSid``. Not hashable
    (``custom_parameters`` is a dict).
    """

    stream_sid: str
    call_sid: str = ""
    account_sid: str = ""
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_format: MediaFormat = MediaFormat()
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """``media``: audio, ``payload`` as raw u-law bytes.

    From the telephony side it carries ``sequenceNumber`` and ``media.{track, chunk,
    timestamp}`` (milliseconds since the stream started); from the app only
    ``media.payload``, and those fields are None.
    """

    stream_sid: str
    payload: bytes
    track: str | None = None
    chunk: int | None = None
    timestamp: int | None = None
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    """``dtmf``: a key the caller pressed; wire ``dtmf.{track, digit}``."""

    stream_sid: str
    digit: str
    track: str = DTMF_TRACK
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """``mark``: a label in the app's audio; Twilio echoes it once the audio before it played.

    ``sequence_number`` is set on the echo (telephony side -> app), None from the app.
    """

    stream_sid: str
    name: str
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    """``clear`` (app -> telephony): drop buffered audio; every pending mark is echoed."""

    stream_sid: str


@dataclass(frozen=True, slots=True)
class Stop:
    """``stop``: the stream ended (the call hung up); wire ``stop.{accountSid, callSid}``."""

    stream_sid: str
    account_sid: str = ""
    call_sid: str = ""
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """Trunkline extension, app -> telephony: ``{"event": "transfer", "streamSid",
    "transfer": {"target"}}``: move the caller to ``target`` (a SIP URI or number)."""

    stream_sid: str
    target: str


@dataclass(frozen=True, slots=True)
class TransferResult:
    """Trunkline extension, telephony -> app: how a ``transfer`` ended.

    Wire: ``{"event": "transfer_result", "streamSid", "transfer_result": {"target", "ok",
    "status", "detail"}}``; ``status`` is SIP-like (200 reached, 486 busy, 408 timeout).
    """

    stream_sid: str
    target: str
    ok: bool
    status: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Hangup:
    """Trunkline extension, app -> telephony: ``{"event": "hangup", "streamSid",
    "hangup": {"reason"}}``: end the call, not just the stream. Twilio would need a REST
    call for this; here the socket close that follows is only the stream's end."""

    stream_sid: str
    reason: str = "normal"


Event = Connected | Start | Media | Dtmf | Mark | Clear | Stop | Transfer | TransferResult | Hangup
