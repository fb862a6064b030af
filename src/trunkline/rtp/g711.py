"""G.711 u-law and A-law codecs (ITU-T G.711), bit-exact, table driven.

The tables are built at import from the G.711 algorithm as written in the Sun/CCITT
reference ``g711.c`` (the code sox, SpanDSP and most PBXs carry). G.711 codes a 14-bit
(u-law) or 13-bit (A-law) linear sample; like sox we first round the 16-bit sample to the
nearest such step (half up, clipped at the top), where the Sun code truncates toward minus
infinity. Rounding removes truncation's bias of half a step toward negative values; the
two differ only for the few samples that sit within half a step of a decision level.
Decoding has no such choice. Tests compare all 65,536 samples and all 256 codes with sox.

Every call in the runtime decodes and encodes one 160-sample frame each way per 20 ms,
50,000 frames a second per 1,000 calls, so the per-frame cost is what matters:

- decode is two ``bytes.translate`` calls (low and high byte of each sample) interleaved
  by ``bytearray`` slice assignment: no Python-level loop, no numpy call overhead;
- encode is one ``take`` from a 65,536-entry ``uint8`` numpy table, indexed by the samples
  viewed as ``<u2`` (``take`` beats fancy indexing by a third at this size).

Measured by hand with ``timeit`` (CPython 3.11, a shared 2-core dev VM, 160-sample
frames): about 0.9 us per decode and 1.3 us per encode, so 50,000 frames a second each
way cost about 11% of one core. Alternatives measured and rejected: numpy decode through
an int16 table (1.5 us, call overhead dominates), ``b"".join`` of 2-byte strings (5 us).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from trunkline.rtp.errors import RtpUsageError

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

# G.711 constants, named as in the reference code.
_SIGN_BIT = 0x80
_QUANT_MASK = 0x0F
_SEG_SHIFT = 4
_SEG_MASK = 0x70
_ULAW_BIAS = 0x84  # 132: added so that every segment starts at a power of two
_ULAW_CLIP = 8159  # largest 14-bit magnitude u-law can represent
_ULAW_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _ulaw_to_linear(code: int) -> int:
    u = ~code & 0xFF
    t = ((u & _QUANT_MASK) << 3) + _ULAW_BIAS
    t <<= (u & _SEG_MASK) >> _SEG_SHIFT
    return _ULAW_BIAS - t if u & _SIGN_BIT else t - _ULAW_BIAS


def _linear_to_ulaw(samples: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    """Vectorised ``linear2ulaw`` of the reference code, over int32 samples."""
    # u-law codes a 14-bit sample: round to the nearest step (see the module docstring).
    value = np.minimum((samples + 2) >> 2, 0x1FFF)
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(np.array(_ULAW_SEG_END), value)  # first segment whose end >= value
    code = (seg << 4) | ((value >> (seg + 1)) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code)  # beyond the last segment: clip to the largest code
    return (code ^ mask).astype(np.uint8)


def _alaw_to_linear(code: int) -> int:
    a = code ^ 0x55  # A-law inverts the even bits on the wire (G.711 §A.2)
    t = (a & _QUANT_MASK) << 4
    seg = (a & _SEG_MASK) >> _SEG_SHIFT
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & _SIGN_BIT else -t


def _linear_to_alaw(samples: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    """Vectorised ``linear2alaw`` of the reference code, over int32 samples."""
    # A-law codes a 13-bit sample: round to the nearest step (see the module docstring).
    value = np.minimum((samples + 4) >> 3, 0xFFF)
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    seg = np.searchsorted(np.array(_ALAW_SEG_END), value)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << _SEG_SHIFT) | ((value >> shift) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _decode_tables(to_linear: list[int]) -> tuple[bytes, bytes]:
    """translate() tables giving the low and the high byte of each code's s16le sample."""
    lo = bytes(v & 0xFF for v in to_linear)
    hi = bytes((v >> 8) & 0xFF for v in to_linear)
    return lo, hi


_Encoder = Callable[[npt.NDArray[np.int32]], npt.NDArray[np.uint8]]


def _encode_table(to_code: _Encoder) -> npt.NDArray[np.uint8]:
    """Encode table indexed by the sample read as unsigned 16 bit (so -1 is index 65535)."""
    unsigned = np.arange(65536, dtype=np.int32)
    return to_code(np.where(unsigned >= 32768, unsigned - 65536, unsigned).astype(np.int32))


#: Decoded sample of each u-law / A-law code, as Python ints (for tests and tools).
ULAW_TO_LINEAR: tuple[int, ...] = tuple(_ulaw_to_linear(c) for c in range(256))
ALAW_TO_LINEAR: tuple[int, ...] = tuple(_alaw_to_linear(c) for c in range(256))

_ULAW_LO, _ULAW_HI = _decode_tables(list(ULAW_TO_LINEAR))
_ALAW_LO, _ALAW_HI = _decode_tables(list(ALAW_TO_LINEAR))
_ULAW_ENC = _encode_table(_linear_to_ulaw)
_ALAW_ENC = _encode_table(_linear_to_alaw)


_U16LE = np.dtype("<u2")

# The public functions bind their tables as default arguments: a local lookup instead of
# a global one and no helper call, which is a third of the cost at 160 samples.


def ulaw_decode(data: bytes | bytearray, _lo: bytes = _ULAW_LO, _hi: bytes = _ULAW_HI) -> bytes:
    """u-law codes to 16-bit signed little-endian PCM (twice the length)."""
    out = bytearray(len(data) << 1)
    out[0::2] = data.translate(_lo)
    out[1::2] = data.translate(_hi)
    return bytes(out)


def alaw_decode(data: bytes | bytearray, _lo: bytes = _ALAW_LO, _hi: bytes = _ALAW_HI) -> bytes:
    """A-law codes to 16-bit signed little-endian PCM (twice the length)."""
    out = bytearray(len(data) << 1)
    out[0::2] = data.translate(_lo)
    out[1::2] = data.translate(_hi)
    return bytes(out)


def ulaw_encode(pcm: bytes | bytearray, _table: npt.NDArray[np.uint8] = _ULAW_ENC) -> bytes:
    """16-bit signed little-endian PCM to u-law codes.

    Raises:
        RtpUsageError: ``pcm`` has an odd number of bytes.
    """
    if len(pcm) & 1:
        raise RtpUsageError(f"PCM must be whole 16-bit samples, got {len(pcm)} bytes")
    return _table.take(np.frombuffer(pcm, _U16LE)).tobytes()


def alaw_encode(pcm: bytes | bytearray, _table: npt.NDArray[np.uint8] = _ALAW_ENC) -> bytes:
    """16-bit signed little-endian PCM to A-law codes.

    Raises:
        RtpUsageError: ``pcm`` has an odd number of bytes.
    """
    if len(pcm) & 1:
        raise RtpUsageError(f"PCM must be whole 16-bit samples, got {len(pcm)} bytes")
    return _table.take(np.frombuffer(pcm, _U16LE)).tobytes()
