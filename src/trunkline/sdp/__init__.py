"""Sans-IO SDP: the session description model (RFC 4566) and offer/answer (RFC 3264).

- ``model``: ``SessionDescription.parse`` / ``bytes(sdp)`` and the media helpers.
- ``offer_answer``: ``answer_offer``, ``make_offer``, ``read_answer`` -> ``NegotiatedMedia``.
- ``errors``: ``SdpError``, ``SdpProtocolError`` (400), ``SdpNegotiationError`` (488).
"""
