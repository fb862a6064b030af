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
at input time ``k * A / B`` and reads ``HALF`` input samples either side, zeros beyond
the ends. Resampling every chunk on its own would put those zeros at every chunk
boundary (a click every chunk). Instead the stream keeps the input it has not finished
with and, when more arrives, runs ``resample`` over a window that starts on a multiple
of the rates' period (``A / gcd(A, B)`` inputs = ``B / gcd`` outputs, so window outputs
line up with stream outputs) at least ``CONTEXT_S`` before the next output's support.
Only outputs whose whole support has arrived are taken; ``finish`` takes the rest, with
the stream's true end padded with zeros as ``resample`` does.
"""

from __future__ import annotations

import struct
from math import ceil, gcd

import numpy as np
import numpy.typing as npt

from trunkline.media.audio import SAMPLE_RATE
from trunkline.media.errors import MediaUsageError, WavError
from trunkline.media.resample import resample_float
from trunkline.media.wav import FORMAT_PCM, Wav

__all__ = ["PcmStreamDecoder", "StreamResampler", "WavHeader"]

#: Input kept either side of an output, in seconds. The filter of ``media.resample``
#: reads about 10.5 ms either side when the output is 8 kHz (its half length is
#: ~84 / output-rate seconds), and ~67 input samples when upsampling; 40 ms covers every
#: input rate from 2 kHz up with room to spare.
CONTEXT_S = 0.040
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
        self.from_rate = from_rate
        self.to_rate = to_rate
        g = gcd(from_rate, to_rate) if from_rate > 0 and to_rate > 0 else 1
        self._p_in = from_rate // g
        self._p_out = to_rate // g
        # Context in input samples, rounded up to whole periods.
        periods = ceil(CONTEXT_S * from_rate / max(1, self._p_in))
        self._context = max(1, periods) * self._p_in
        self._buf: Floats = np.zeros(0)
        self._start = 0  # stream index of _buf[0]; a multiple of _p_in
        self._received = 0  # input samples so far
        self._emitted = 0  # output samples so far
        resample_float(np.zeros(1), from_rate, to_rate)  # validates the rates now

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
        # Output k reads inputs up to about k * A / B + half; wait for context past it.
        ready = (self._received - self._context) * self.to_rate // self.from_rate
        if ready <= self._emitted:
            return b""
        return self._take(ready)

    def finish(self) -> bytes:
        """The remaining outputs (the stream's end padded with zeros)."""
        if self.from_rate == self.to_rate:
            return b""
        total = ceil(self._received * self.to_rate / self.from_rate)
        return self._take(total) if total > self._emitted else b""

    def _take(self, upto: int) -> bytes:
        y = resample_float(self._buf, self.from_rate, self.to_rate)
        first = self._start // self._p_in * self._p_out  # stream index of y[0]
        piece = y[self._emitted - first : upto - first]
        self._emitted = upto
        # Keep only what later outputs can still read.
        keep_from = self._emitted * self.from_rate // self.to_rate - self._context
        keep_from = max(0, keep_from // self._p_in * self._p_in)
        if keep_from > self._start:
            self._buf = self._buf[keep_from - self._start :]
            self._start = keep_from
        out: bytes = np.clip(np.rint(piece), -32768, 32767).astype("<i2").tobytes()
        return out


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
