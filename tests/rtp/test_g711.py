"""G.711 codecs: reference values, round trips, and bit-exactness against sox."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from trunkline.rtp.errors import RtpUsageError
from trunkline.rtp.g711 import (
    ALAW_TO_LINEAR,
    ULAW_TO_LINEAR,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

ALL_SAMPLES = b"".join(s.to_bytes(2, "little", signed=True) for s in range(-32768, 32768))
ALL_CODES = bytes(range(256))
Codec = Callable[[bytes], bytes]

needs_sox = pytest.mark.skipif(
    shutil.which("sox") is None, reason="sox is not installed (Debian package sox)"
)


def _sox(data: bytes, src: list[str], dst: list[str]) -> bytes:
    # -D: no dither, which sox otherwise adds when it reduces the sample size.
    cmd = ["sox", "-D", "-t", "raw", "-r", "8000", "-c", "1", *src, "-", "-t", "raw", *dst, "-"]
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


def _samples(pcm: bytes) -> list[int]:
    return [int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)]


def test_ulaw_reference_values() -> None:
    # G.711 Table 2a: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes.
    codes = bytes([0xFF, 0x7F, 0x00, 0x80, 0xFE, 0x7E])
    assert _samples(ulaw_decode(codes)) == [0, 0, -32124, 32124, 8, -8]
    assert ulaw_encode((0).to_bytes(2, "little")) == b"\xff"
    assert ulaw_encode((32767).to_bytes(2, "little")) == b"\x80"
    assert ulaw_encode((-32768).to_bytes(2, "little", signed=True)) == b"\x00"


def test_alaw_reference_values() -> None:
    # G.711 Table 1a: 0xD5 / 0x55 are the smallest steps, 0xAA / 0x2A the extremes.
    assert _samples(alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))) == [8, -8, 32256, -32256]
    assert alaw_encode((0).to_bytes(2, "little")) == b"\xd5"
    assert alaw_encode((32767).to_bytes(2, "little")) == b"\xaa"
    assert alaw_encode((-32768).to_bytes(2, "little", signed=True)) == b"\x2a"


def test_tables_match_decode_functions() -> None:
    assert _samples(ulaw_decode(ALL_CODES)) == list(ULAW_TO_LINEAR)
    assert _samples(alaw_decode(ALL_CODES)) == list(ALAW_TO_LINEAR)


def test_decode_then_encode_gives_the_code_back() -> None:
    # Every decoded value is a reconstruction level, so it encodes to its own code,
    # except u-law's negative zero 0x7F which decodes to 0 and encodes as 0xFF.
    back = ulaw_encode(ulaw_decode(ALL_CODES))
    assert back == bytes(0xFF if c == 0x7F else c for c in ALL_CODES)
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


def test_encode_is_monotonic() -> None:
    # Larger samples never get a smaller reconstruction level.
    for encode, table in ((ulaw_encode, ULAW_TO_LINEAR), (alaw_encode, ALAW_TO_LINEAR)):
        levels = [table[c] for c in encode(ALL_SAMPLES)]
        assert all(a <= b for a, b in zip(levels, levels[1:], strict=False))
        assert levels[0] < 0 < levels[-1]


def test_empty_and_frame_sizes() -> None:
    assert ulaw_decode(b"") == b"" and ulaw_encode(b"") == b""
    assert len(alaw_decode(bytes(160))) == 320
    assert len(alaw_encode(bytes(320))) == 160


def test_odd_length_pcm_is_a_usage_error() -> None:
    with pytest.raises(RtpUsageError, match="whole 16-bit samples, got 3 bytes"):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(RtpUsageError):
        alaw_encode(b"\x00")


def test_accepts_bytearray() -> None:
    pcm = bytes(range(200))
    assert ulaw_encode(bytearray(pcm)) == ulaw_encode(pcm)
    assert alaw_decode(bytearray(pcm)) == alaw_decode(pcm)


@needs_sox
@pytest.mark.skipif(sys.byteorder != "little", reason="raw s16 from sox is host order")
@pytest.mark.parametrize(("sox_name", "encode"), [("u-law", ulaw_encode), ("a-law", alaw_encode)])
def test_encode_bit_exact_with_sox(sox_name: str, encode: Codec) -> None:
    expected = _sox(ALL_SAMPLES, ["-e", "signed", "-b", "16"], ["-e", sox_name])
    got = encode(ALL_SAMPLES)
    assert len(got) == 65536
    mismatches = [i - 32768 for i in range(65536) if got[i] != expected[i]]
    assert mismatches == []


@needs_sox
@pytest.mark.skipif(sys.byteorder != "little", reason="raw s16 from sox is host order")
@pytest.mark.parametrize(("sox_name", "decode"), [("u-law", ulaw_decode), ("a-law", alaw_decode)])
def test_decode_bit_exact_with_sox(sox_name: str, decode: Codec) -> None:
    expected = _sox(ALL_CODES, ["-e", sox_name, "-b", "8"], ["-e", "signed", "-b", "16"])
    assert decode(ALL_CODES) == expected
