"""SDP errors, split by whose fault it was (the h11 pattern).

``SdpProtocolError``: the peer's session description cannot be parsed; a UAS answers
``status_hint`` (400). ``SdpNegotiationError``: it parsed, but offers nothing we can use
(no common codec, no audio stream), so the UAS answers 488 Not Acceptable Here (RFC 3261
§21.4.26, RFC 3264 §6). ``SdpUsageError``: our own code misused the API.
"""

from __future__ import annotations


class SdpError(Exception):
    """Base of every error the SDP package raises."""


class SdpProtocolError(SdpError):
    """The peer sent a session description we cannot accept; answer ``status_hint``."""

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


class SdpNegotiationError(SdpProtocolError):
    """Offer and answer have nothing in common (RFC 3264 §6); answer 488."""

    def __init__(self, reason: str, status_hint: int = 488) -> None:
        super().__init__(reason, status_hint)


class SdpUsageError(SdpError, ValueError):
    """We called the API with arguments it does not accept (a bug on our side)."""
