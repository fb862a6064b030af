"""Sans-IO Twilio-compatible Media Streams: events and a pure ``decode``/``encode``.

Nothing in this package does I/O or reads a clock; the WebSocket legs live in
:mod:`trunkline.net.ws_server` (we are the app) and :mod:`trunkline.net.ws_client` (we are
the telephony side).
"""

from trunkline.wsmedia.codec import decode, encode, encode_media, media_encoder
from trunkline.wsmedia.errors import (
    CloseCode,
    WsMediaError,
    WsMediaProtocolError,
    WsMediaUsageError,
)
from trunkline.wsmedia.events import (
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

__all__ = [
    "Clear",
    "CloseCode",
    "Connected",
    "Dtmf",
    "Event",
    "Hangup",
    "Mark",
    "Media",
    "MediaFormat",
    "Start",
    "Stop",
    "Transfer",
    "TransferResult",
    "WsMediaError",
    "WsMediaProtocolError",
    "WsMediaUsageError",
    "decode",
    "encode",
    "encode_media",
    "media_encoder",
]
