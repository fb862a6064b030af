"""Streamed audio from a remote TTS to the project's 8 kHz PCM, chunk by chunk, sans-IO.

A TTS answer arrives as HTTP chunks cut anywhere: inside a sample (odd byte counts),
inside a WAV header. :class:`PcmStreamDecoder` takes those chunks and gives back 8 kHz
s16le mono PCM as soon as it can:

- raw PCM (OpenAI's ``pcm``: 24 kHz s16le mono, no header) or a WAV whose header is
  read first (:class:`WavHeader`; streaming writers put a placeholder in the data
  size, so the data runs to the end of the answer);
- an odd byte at the end of a chunk waits for its partner in the next chunk;
- the rate is converted by :class:`StreamResampler`, which gives exactly the samples
  that ``media.resample.resample`` would give for the whole answer at once.

Theory of operation (the resampler)
-----------------------------------
``resample`` is a linear-phase filter centred on each output sample: output ``k`` sits
at input time ``k * A / B`` and reads ``half`` input samples either side (about 10 ms
at 8 kHz out), zeros beyond the ends. Resampling every chunk on its own would put those
zeros at every chunk boundary (a click every chunk). Instead the stream keeps the input
it has not finished with and, when more arrives, runs ``resample`` over a window that
starts on a multiple of the rates' period (``A / gcd(A, B)`` inputs = ``B / gcd``
outputs, so window outputs line up with stream outputs) ``half`` before the next
output's support, and takes only the outputs whose whole support has arrived; so each
input sample is filtered about once, plus ``2 * half`` per chunk. ``finish`` takes the
rest, with the stream's true end padded with zeros as ``resample`` does.
"""

from __future__ import annotations

import struct
from math import ceil, gcd, pi

import numpy as np
import numpy.typing as npt

from trunkline.media.audio import SAMPLE_RATE
from trunkline.media.errors import MediaUsageError, WavError
from trunkline.media.resample import PASSBAND_FRACTION, STOPBAND_DB, resample_float
from trunkline.media.wav import FORMAT_PCM, Wav

__all__ = ["PcmStreamDecoder", "StreamResampler", "WavHeader"]

#: Input samples kept beyond the filter's half length: the filter's taps sit at
#: floor(position) - half + 1 .. floor(position) + half, so one more covers rounding.
_HALF_MARGIN = 2
#: Longest WAV header accepted (fmt plus LIST/INFO tags and the like); past this the
#: answer is not a WAV we would want.
MAX_WAV_HEADER = 64 * 1024
#: The data-size placeholder of streaming WAV writers (the real size is not known when
#: the header is sent).
_STREAMING_SIZE = 0xFFFFFFFF

Floats = npt.NDArray[np.float64]


class StreamResampler:
    """Resample s16le mono PCM from ``from_rate`` to ``to_rate`` chunk by chunk.

    Raises:
        MediaUsageError: a rate outside what ``media.resample`` accepts.
    """

    def __init__(self, from_rate: int, to_rate: int = SAMPLE_RATE) -> None:
        resample_float(np.zeros(1), from_rate, to_rate)  # validates the rates
        self.from_rate = from_rate
        self.to_rate = to_rate
        g = gcd(from_rate, to_rate)
        self._p_in = from_rate // g
        self._p_out = to_rate // g
        self._half = filter_half(from_rate, to_rate) + _HALF_MARGIN
        self._buf: Floats = np.zeros(0)
        self._start = 0  # stream index of _buf[0]
        self._received = 0  # input samples so far
        self._emitted = 0  # output samples so far

    def feed(self, pcm: bytes) -> bytes:
        """Add whole samples; return the outputs now final.

        Raises:
            MediaUsageError: odd-length ``pcm``.
        """
        if len(pcm) % 2:
            raise MediaUsageError(f"PCM must be whole 16-bit samples, got {len(pcm)} bytes")
        if self.from_rate == self.to_rate:
            return bytes(pcm)
        if pcm:
            x = np.frombuffer(pcm, "<i2").astype(np.float64)
            self._buf = np.concatenate((self._buf, x))
            self._received += len(x)
        # Output k reads inputs up to k * A / B + half: it is final once those arrived.
        ready = (self._received - self._half) * self.to_rate // self.from_rate
        if ready <= self._emitted:
            return b""
        return self._take(ready, self._received)

    def finish(self) -> bytes:
        """The remaining outputs (the stream's end padded with zeros)."""
        if self.from_rate == self.to_rate:
            return b""
        total = ceil(self._received * self.to_rate / self.from_rate)
        return self._take(total, self._received) if total > self._emitted else b""

    def _take(self, upto: int, end: int) -> bytes:
        """Outputs ``_emitted`` to ``upto``, from the inputs before ``end``."""
        a, b = self.from_rate, self.to_rate
        # A window starting on a whole period, early enough for output _emitted's support
        # (before it, only the stream's true start, where zeros are right).
        first_in = max(0, (self._emitted * a // b - self._half) // self._p_in * self._p_in)
        window = self._buf[first_in - self._start : end - self._start]
        y = resample_float(window, a, b)
        first = first_in // self._p_in * self._p_out  # stream index of y[0]
        piece = y[self._emitted - first : upto - first]
        self._emitted = upto
        keep_from = max(0, (upto * a // b - self._half) // self._p_in * self._p_in)
        if keep_from > self._start:
            self._buf = self._buf[keep_from - self._start :]
            self._start = keep_from
        out: bytes = np.clip(np.rint(piece), -32768, 32767).astype("<i2").tobytes()
        return out


def filter_half(from_rate: int, to_rate: int) -> int:
    """Input samples ``media.resample``'s filter reads either side of an output.

    The same formula as ``resample_float`` (Kaiser's length estimate for its stopband
    and transition band); the stream-equals-whole test fails if the two ever differ.
    """
    nyquist = min(from_rate, to_rate) / 2
    transition = (1 - PASSBAND_FRACTION) * nyquist
    taps = (STOPBAND_DB - 8) / (2.285 * 2 * pi * transition / from_rate)
    return max(2, ceil(taps / 2))


class WavHeader:
    """Collects a streamed WAV's header; ``feed`` returns the data bytes after it."""

    def __init__(self) -> None:
        self._head = b""
        self.sample_rate: int | None = None  # known once the header is complete

    @property
    def done(self) -> bool:
        """True once the data chunk has begun."""
        return self.sample_rate is not None

    def feed(self, chunk: bytes) -> bytes:
        """Take bytes; return audio data bytes once past the header.

        Raises:
            WavError: not a 16-bit mono PCM WAV, or a header over ``MAX_WAV_HEADER``.
        """
        if self.done:
            return chunk
        self._head += chunk
        offset = _data_offset(self._head)
        if offset is None:
            if len(self._head) > MAX_WAV_HEADER:
                raise WavError(f"no WAV data chunk in the first {MAX_WAV_HEADER} bytes")
            return b""
        head = self._head[:offset]
        # Parse the header alone: a placeholder size makes the data run to the end.
        wav = Wav.parse(head[:-4] + struct.pack("<I", _STREAMING_SIZE))
        fmt = wav.format
        if fmt.encoding != FORMAT_PCM or fmt.bits_per_sample != 16 or fmt.channels != 1:
            raise WavError(
                f"streamed WAV must be 16-bit PCM mono, got encoding {fmt.encoding:#x}, "
                f"{fmt.bits_per_sample} bits, {fmt.channels} channels"
            )
        self.sample_rate = fmt.sample_rate
        data, self._head = self._head[offset:], b""
        return data


def _data_offset(head: bytes) -> int | None:
    """Where the data chunk's bytes begin, once the header up to it is here."""
    if len(head) < 12:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE stream")
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        (size,) = struct.unpack_from("<I", head, offset + 4)
        if chunk_id == b"data":
            return offset + 8
        if size > MAX_WAV_HEADER:
            raise WavError(f"WAV {chunk_id!r} chunk of {size} bytes before the data")
        offset += 8 + size + (size & 1)
    return None


class PcmStreamDecoder:
    """Chunks of a TTS answer in, 8 kHz s16le mono out (see the module docstring).

    Args:
        response_format: ``"pcm"`` (raw s16le mono at ``pcm_rate``) or ``"wav"``.
        pcm_rate: the rate of raw PCM (OpenAI's is 24 kHz).

    Raises (from ``feed``):
        WavError: a WAV answer whose header is not 16-bit mono PCM.
    """

    def __init__(self, response_format: str, pcm_rate: int = 24_000) -> None:
        if response_format not in ("pcm", "wav"):
            raise MediaUsageError(f"response_format must be pcm or wav, got {response_format!r}")
        self._wav = WavHeader() if response_format == "wav" else None
        self._resampler = None if self._wav is not None else StreamResampler(pcm_rate)
        self._odd = b""

    def feed(self, chunk: bytes) -> bytes:
        """Take a chunk; return the 8 kHz PCM it completes (maybe empty)."""
        if self._wav is not None and not self._wav.done:
            chunk = self._wav.feed(chunk)
            rate = self._wav.sample_rate
            if rate is None:
                return b""
            self._resampler = StreamResampler(rate)
        if self._odd:
            chunk = self._odd + chunk
        cut = len(chunk) - len(chunk) % 2
        self._odd = chunk[cut:]
        if self._resampler is None or not cut:
            return b""
        return self._resampler.feed(chunk[:cut] if cut < len(chunk) else chunk)

    def finish(self) -> bytes:
        """The rest of the audio (a dangling half sample is dropped).

        Raises:
            WavError: a WAV answer ended inside its header.
        """
        if self._wav is not None and not self._wav.done:
            raise WavError("the WAV answer ended inside its header")
        self._odd = b""
        return self._resampler.finish() if self._resampler is not None else b""
