"""Modular sequence and timestamp arithmetic (RFC 3550 §5.1, RFC 1982)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.rtp.seq import (
    seq_distance,
    ts_distance,
    uint16_add,
    uint16_gt,
    uint16_gte,
    uint32_add,
    uint32_gt,
)


def test_uint16_across_the_wrap() -> None:
    assert uint16_gt(1, 65535) and not uint16_gt(65535, 1)
    assert uint16_gt(100, 99) and not uint16_gt(99, 100)
    assert not uint16_gt(5, 5) and uint16_gte(5, 5)
    assert uint16_add(65535, 2) == 1 and uint16_add(0, -1) == 65535
    assert seq_distance(1, 65535) == 2 and seq_distance(65535, 1) == -2
    assert seq_distance(0x8000, 0) == -0x8000  # exactly half way: the negative side


def test_uint32_across_the_wrap() -> None:
    assert uint32_gt(10, 0xFFFFFFF0) and not uint32_gt(0xFFFFFFF0, 10)
    assert uint32_add(0xFFFFFFFF, 1) == 0
    assert ts_distance(10, 0xFFFFFFF0) == 26 and ts_distance(0xFFFFFFF0, 10) == -26


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(-0x7FFF, 0x7FFF))
def test_uint16_distance_inverts_add(a: int, delta: int) -> None:
    b = uint16_add(a, delta)
    assert seq_distance(b, a) == delta
    assert uint16_gt(b, a) == (delta > 0)
    assert uint16_gt(a, b) == (delta < 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(-0x7FFFFFFF, 0x7FFFFFFF))
def test_uint32_distance_inverts_add(a: int, delta: int) -> None:
    b = uint32_add(a, delta)
    assert ts_distance(b, a) == delta
    assert uint32_gt(b, a) == (delta > 0)
