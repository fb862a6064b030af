"""SIP errors, split by whose fault it was (the h11 pattern).

``SipProtocolError``: the peer sent something we cannot accept. It carries the status a
UAS should answer with (``status_hint``) and a human reason that goes into the reason
phrase or a Warning header. ``SipUsageError``: our own code misused the API (answering a
call twice, sending BYE outside a dialog); that is a bug here, never the peer's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trunkline.sip.message import SipMessage


class SipError(Exception):
    """Base of every error the SIP package raises."""


class SipProtocolError(SipError):
    """The peer sent garbage or a request we refuse; answer with ``status_hint``.

    ``message`` is the message as far as it could be parsed, when the parser got through
    the header section before it found the fault (a bad SIP version, a bad
    Content-Length): a UAS needs its Via, From, To, Call-ID and CSeq to answer with
    ``status_hint`` (RFC 3261 §8.2.6). It is None when the head itself was unreadable.
    """

    def __init__(
        self, reason: str, status_hint: int = 400, *, message: SipMessage | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        self.message = message


class SipUsageError(SipError):
    """We called the API in a way the current state does not allow."""
