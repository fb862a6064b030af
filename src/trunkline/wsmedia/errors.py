"""Media Streams errors, split by whose fault it was (the h11 pattern), and close codes.

``WsMediaProtocolError``: the peer sent a message we cannot accept. It carries the
WebSocket close code to answer with (``close_code``) should the adapter decide the
connection cannot go on. ``WsMediaUsageError``: our own code misused the API (a second
transfer while one is pending, a DTMF digit that does not exist); a bug here, never the peer's.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """WebSocket close codes we send (RFC 6455 §7.4.1; 1013 from the IANA registry, §11.7)."""

    NORMAL = 1000  # §7.4.1: the purpose of the connection is fulfilled
    GOING_AWAY = 1001  # §7.4.1: server going down
    UNSUPPORTED_DATA = 1003  # §7.4.1: a data type we cannot accept (binary frames here)
    INVALID_PAYLOAD = 1007  # §7.4.1: data not consistent with the message type (bad JSON)
    POLICY_VIOLATION = 1008  # §7.4.1: generic refusal (no ``start``, silent peer)
    MESSAGE_TOO_BIG = 1009  # §7.4.1: message too big to process
    INTERNAL_ERROR = 1011  # §7.4.1: an unexpected condition on our side
    TRY_AGAIN_LATER = 1013  # IANA registry: out of capacity, retry later


class WsMediaError(Exception):
    """Base of every error the wsmedia package raises."""


class WsMediaProtocolError(WsMediaError):
    """The peer sent a message we cannot accept; close with ``close_code`` if it is fatal."""

    def __init__(self, reason: str, close_code: int = CloseCode.INVALID_PAYLOAD) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


class WsMediaUsageError(WsMediaError, ValueError):
    """We called the API in a way it does not allow (a bug on our side)."""
