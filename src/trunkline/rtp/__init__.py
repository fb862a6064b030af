"""Sans-IO RTP (RFC 3550) for G.711 telephony.

- ``packet``: RTP packets, the hot-path header parser, the per-stream writer, RTP/RTCP demux.
- ``rtcp``: SR/RR/SDES/BYE compound packets and receiver statistics (RFC 3550 §6, App. A).
- ``g711``: bit-exact u-law / A-law codecs (ITU-T G.711).
- ``dtmf``: telephone-events (RFC 4733): payload, receiver, sender.
- ``jitter``: the adaptive jitter buffer.
- ``seq``: modular sequence and timestamp arithmetic.
- ``errors``: ``RtpError`` and its protocol / usage split.

Nothing is re-exported here, so importing ``packet`` does not pull in numpy via ``g711``.
"""
