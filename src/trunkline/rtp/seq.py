"""Modular arithmetic on RTP sequence numbers (16 bit) and timestamps (32 bit).

RFC 3550 §5.1: both wrap around, so "greater" means "ahead by less than half the space"
(RFC 1982 serial number arithmetic). All comparisons in the package go through here.
"""

from __future__ import annotations

_U16 = 0x10000
_U16_HALF = 0x8000
_U32 = 0x100000000
_U32_HALF = 0x80000000


def uint16_add(a: int, b: int) -> int:
    """``a + b`` modulo 2**16 (``b`` may be negative)."""
    return (a + b) & 0xFFFF


def uint16_gt(a: int, b: int) -> bool:
    """True when sequence number ``a`` is ahead of ``b`` (RFC 1982 §3.2)."""
    half = _U16_HALF
    return (a < b and b - a > half) or (a > b and a - b < half)


def uint16_gte(a: int, b: int) -> bool:
    """True when ``a`` equals ``b`` or is ahead of it."""
    return a == b or uint16_gt(a, b)


def uint32_add(a: int, b: int) -> int:
    """``a + b`` modulo 2**32 (``b`` may be negative)."""
    return (a + b) & 0xFFFFFFFF


def uint32_gt(a: int, b: int) -> bool:
    """True when timestamp ``a`` is ahead of ``b`` (RFC 1982 §3.2)."""
    half = _U32_HALF
    return (a < b and b - a > half) or (a > b and a - b < half)


def seq_distance(a: int, b: int) -> int:
    """Signed distance from sequence number ``b`` to ``a`` in [-32768, 32767].

    ``seq_distance(1, 65535) == 2``: ``a`` is two packets after ``b`` across the wrap.
    """
    return ((a - b + _U16_HALF) & 0xFFFF) - _U16_HALF


def ts_distance(a: int, b: int) -> int:
    """Signed distance from timestamp ``b`` to ``a`` in [-2**31, 2**31 - 1]."""
    return ((a - b + _U32_HALF) & 0xFFFFFFFF) - _U32_HALF
