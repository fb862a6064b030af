"""RTP/RTCP errors, split by whose fault it was (the h11 pattern).

``RtpProtocolError``: the peer sent a datagram we cannot parse. RTP runs over UDP, so the
only answer is to drop the datagram and count it; there is no status to send back.
``RtpUsageError``: our own code misused the API (odd-length PCM, a digit that is not DTMF).
"""

from __future__ import annotations


class RtpError(Exception):
    """Base of every error the RTP package raises."""


class RtpProtocolError(RtpError):
    """The peer sent an RTP, RTCP or telephone-event packet we cannot parse."""


class RtcpProtocolError(RtpProtocolError):
    """The peer sent an RTCP compound packet we cannot parse."""


class RtpUsageError(RtpError, ValueError):
    """We called the API with arguments it does not accept (a bug on our side)."""
