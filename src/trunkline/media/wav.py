"""WAV files in and out: any common WAV in, the project's 8 kHz mono s16le out.

Reading takes the encodings prompts and TTS engines actually produce: integer PCM of 8,
16, 24 or 32 bits (format tag 1), IEEE float of 32 or 64 bits (tag 3), A-law (tag 6)
and u-law (tag 7), each also inside WAVE_FORMAT_EXTENSIBLE (tag 0xFFFE), at any rate
and channel count. Channels are averaged to mono and the rate converted to 8 kHz with
``media.resample`` (anti-aliased); 16-bit or G.711 files already at 8 kHz mono pass
through bit-exact. Compressed encodings (ADPCM, GSM, MP3 in WAV) are refused.

Parsing is strict about what would corrupt audio and lenient about what does not:

- every truncation inside the header chunks, and a data chunk shorter than its header
  says, raises ``WavError`` naming what was cut;
- a data size larger than any file we accept is a streaming placeholder (sox and
  espeak-ng writing to a pipe put 0x7FFFF000 there, others 0xFFFFFFFF): the data then
  runs to the end of the file, whole frames only;
- unknown chunks (LIST, fact, cue) are skipped; chunks after the data chunk are not
  read; the RIFF size field is not trusted (streaming writers leave it wrong too).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from trunkline.media.audio import SAMPLE_RATE, SAMPLE_WIDTH
from trunkline.media.errors import MediaUsageError, WavError
from trunkline.media.resample import resample_float
from trunkline.rtp.g711 import alaw_decode, ulaw_decode

__all__ = [
    "FORMAT_ALAW",
    "FORMAT_EXTENSIBLE",
    "FORMAT_IEEE_FLOAT",
    "FORMAT_MULAW",
    "FORMAT_PCM",
    "Wav",
    "WavFormat",
    "decode_wav",
    "read_wav",
    "write_wav",
]

# Format tags (Microsoft mmreg.h / RFC 2361).
FORMAT_PCM = 0x0001
FORMAT_IEEE_FLOAT = 0x0003
FORMAT_ALAW = 0x0006
FORMAT_MULAW = 0x0007
FORMAT_EXTENSIBLE = 0xFFFE

_ENCODING_NAMES = {
    FORMAT_PCM: "PCM",
    FORMAT_IEEE_FLOAT: "IEEE float",
    FORMAT_ALAW: "A-law",
    FORMAT_MULAW: "u-law",
    0x0002: "MS ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0055: "MPEG layer 3",
}
# Container sizes (bytes per sample) each encoding allows.
_CONTAINERS = {
    FORMAT_PCM: (1, 2, 3, 4),
    FORMAT_IEEE_FLOAT: (4, 8),
    FORMAT_ALAW: (1,),
    FORMAT_MULAW: (1,),
}

# WAVE_FORMAT_EXTENSIBLE sub-formats are KSDATAFORMAT GUIDs: the format tag as the
# first 32-bit field, then this fixed tail ({xxxxxxxx-0000-0010-8000-00aa00389b71}).
_GUID_TAIL = struct.pack("<HH", 0x0000, 0x0010) + bytes.fromhex("800000aa00389b71")

#: Largest WAV read: prompts and test recordings last minutes (an hour of 8 kHz audio is
#: 58 MB, an hour of 48 kHz stereo float 1.4 GB); the file is read whole into memory.
MAX_WAV_BYTES = 256 * 1024 * 1024
#: Sample rates accepted: below 1 kHz there is no speech band to speak of, and 768 kHz is
#: the highest rate audio interfaces ship; anything outside is a garbled header.
MIN_RATE, MAX_RATE = 1000, 768_000
#: WAVE_FORMAT_EXTENSIBLE's channel mask names 18 speaker positions; 64 is generous.
MAX_CHANNELS = 64

_RIFF_HEADER = 12
_CHUNK_HEADER = 8
_FMT_SIZE = 16  # WAVEFORMAT + wBitsPerSample
_FMT_EXTENSIBLE_SIZE = 40  # + cbSize, wValidBitsPerSample, dwChannelMask, SubFormat


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What a WAV's fmt chunk says, with EXTENSIBLE resolved to its sub-format."""

    encoding: int  # FORMAT_PCM, FORMAT_IEEE_FLOAT, FORMAT_ALAW or FORMAT_MULAW
    channels: int
    sample_rate: int
    bits_per_sample: int  # the container: 8, 16, 24, 32 or 64
    extensible: bool = False

    def __post_init__(self) -> None:
        containers = _CONTAINERS.get(self.encoding)
        if (
            containers is None
            or self.bits_per_sample // 8 not in containers
            or self.bits_per_sample % 8
        ):
            raise MediaUsageError(
                f"no WAV encoding {self.encoding:#x} with {self.bits_per_sample}-bit samples"
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise MediaUsageError(f"channels must be 1..{MAX_CHANNELS}, got {self.channels}")
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise MediaUsageError(
                f"sample rate must be {MIN_RATE}..{MAX_RATE}, got {self.sample_rate}"
            )

    @property
    def block_align(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.channels * self.bits_per_sample // 8


@dataclass(frozen=True, slots=True)
class Wav:
    """A WAV file: its format and its sample data (whole frames).

    ``Wav.parse(data)`` reads a file's bytes; ``bytes(wav)`` writes the canonical file
    (fmt then data, nothing else), so ``Wav.parse(bytes(wav)) == wav``.
    """

    format: WavFormat
    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) % self.format.block_align:
            raise MediaUsageError(
                f"WAV data must be whole {self.format.block_align}-byte frames, "
                f"got {len(self.data)} bytes"
            )

    @property
    def frames(self) -> int:
        """Number of sample frames."""
        return len(self.data) // self.format.block_align

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.format.sample_rate

    @classmethod
    def parse(cls, data: bytes) -> Wav:
        """Parse a whole WAV file.

        Raises:
            WavError: not RIFF/WAVE, truncated, inconsistent, or an unsupported encoding.
        """
        if len(data) < _RIFF_HEADER:
            raise WavError(f"WAV truncated in the RIFF header: {len(data)} of 12 bytes")
        magic, form = data[0:4], data[8:12]
        if magic == b"RIFX":
            raise WavError("big-endian WAV (RIFX) is not supported")
        if magic == b"RF64":
            raise WavError("RF64 (WAV over 4 GiB) is not supported")
        if magic != b"RIFF":
            raise WavError(f"not a WAV file: starts with {magic!r}, not b'RIFF'")
        if form != b"WAVE":
            raise WavError(f"RIFF file of form {form!r}, not b'WAVE'")
        fmt: WavFormat | None = None
        offset = _RIFF_HEADER
        while True:
            remaining = len(data) - offset
            if remaining == 0:
                raise WavError("WAV has no data chunk" if fmt else "WAV has no fmt chunk")
            if remaining < _CHUNK_HEADER:
                raise WavError(f"WAV truncated in a chunk header: {remaining} of 8 bytes")
            chunk_id = data[offset : offset + 4]
            (size,) = struct.unpack_from("<I", data, offset + 4)
            body = offset + _CHUNK_HEADER
            available = len(data) - body
            if chunk_id == b"data":
                if fmt is None:
                    raise WavError("WAV data chunk comes before the fmt chunk")
                return cls(fmt, _data_chunk(data[body:], size, fmt.block_align))
            if size > available:
                name = chunk_id.decode("latin-1")
                raise WavError(f"WAV {name!r} chunk truncated: {available} of {size} bytes")
            if chunk_id == b"fmt ":
                fmt = _parse_fmt(data[body : body + size])
            offset = body + size + (size & 1)  # chunks are padded to even length
            offset = min(offset, len(data))

    def __bytes__(self) -> bytes:
        f = self.format
        head = struct.pack(
            "<HHIIHH",
            FORMAT_EXTENSIBLE if f.extensible else f.encoding,
            f.channels,
            f.sample_rate,
            f.sample_rate * f.block_align,
            f.block_align,
            f.bits_per_sample,
        )
        if f.extensible:
            head += struct.pack("<HHI", 22, f.bits_per_sample, 0)
            head += struct.pack("<I", f.encoding) + _GUID_TAIL
        elif f.encoding != FORMAT_PCM:
            head += struct.pack("<H", 0)  # cbSize: non-PCM fmt chunks carry it
        pad = b"\0" if len(self.data) & 1 else b""
        chunks = (
            b"fmt " + struct.pack("<I", len(head)) + head
            + b"data" + struct.pack("<I", len(self.data)) + self.data + pad
        )  # fmt: skip
        return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks

    def samples(self) -> npt.NDArray[np.float64]:
        """The samples as floats in [-1, 1], shaped (frames, channels)."""
        f = self.format
        width = f.bits_per_sample // 8
        raw = self.data
        if f.encoding in (FORMAT_ALAW, FORMAT_MULAW):
            decode = alaw_decode if f.encoding == FORMAT_ALAW else ulaw_decode
            x = np.frombuffer(decode(raw), "<i2") / 32768.0
        elif f.encoding == FORMAT_IEEE_FLOAT:
            # Files may hold NaNs, signalling ones included, whose cast warns.
            with np.errstate(invalid="ignore"):
                x = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
            x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        elif width == 1:  # 8-bit WAV PCM is unsigned, centred on 128
            x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
        elif width == 3:
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = ((v ^ 0x800000) - 0x800000) / float(1 << 23)
        else:
            x = np.frombuffer(raw, f"<i{width}") / float(1 << (8 * width - 1))
        return np.asarray(x, dtype=np.float64).reshape(-1, f.channels)

    def to_pcm8k(self) -> bytes:
        """Mono 8 kHz s16le: channels averaged, resampled, rounded and clipped."""
        f = self.format
        if f.channels == 1 and f.sample_rate == SAMPLE_RATE:
            if f.encoding == FORMAT_PCM and f.bits_per_sample == 16:
                return self.data
            if f.encoding == FORMAT_ALAW:
                return alaw_decode(self.data)
            if f.encoding == FORMAT_MULAW:
                return ulaw_decode(self.data)
        mono: npt.NDArray[np.float64] = self.samples().mean(axis=1)
        if f.sample_rate != SAMPLE_RATE:
            mono = resample_float(mono, f.sample_rate, SAMPLE_RATE)
        pcm: bytes = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()
        return pcm


def _parse_fmt(chunk: bytes) -> WavFormat:
    if len(chunk) < _FMT_SIZE:
        raise WavError(f"WAV fmt chunk too short: {len(chunk)} of 16 bytes")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    extensible = tag == FORMAT_EXTENSIBLE
    if extensible:
        if len(chunk) < _FMT_EXTENSIBLE_SIZE:
            raise WavError(f"WAVE_FORMAT_EXTENSIBLE fmt chunk too short: {len(chunk)} of 40 bytes")
        (sub,) = struct.unpack_from("<I", chunk, 24)
        if chunk[28:40] != _GUID_TAIL or sub > 0xFFFF:
            raise WavError(f"WAV sub-format GUID {chunk[24:40].hex()} is not a WAVE format")
        tag = sub
    name = _ENCODING_NAMES.get(tag, f"format tag {tag:#06x}")
    if tag not in _CONTAINERS:
        raise WavError(f"WAV encoding {name} is not supported (PCM, float, A-law, u-law are)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise WavError(f"WAV has {channels} channels; 1..{MAX_CHANNELS} are accepted")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise WavError(f"WAV sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
    # The container comes from the frame size; bits may be fewer (20 bits in 3 bytes).
    if block_align == 0 or block_align % channels:
        raise WavError(f"WAV block align {block_align} does not fit {channels} channels")
    width = block_align // channels
    if width not in _CONTAINERS[tag] or not 0 < bits <= 8 * width:
        raise WavError(f"WAV {name} with {bits} bits in {width}-byte samples is not supported")
    return WavFormat(tag, channels, rate, 8 * width, extensible)


def _data_chunk(rest: bytes, size: int, block_align: int) -> bytes:
    if size > MAX_WAV_BYTES:
        # A streaming placeholder: no file we accept could be that long.
        size = len(rest) - len(rest) % block_align
    elif size > len(rest):
        raise WavError(f"WAV data chunk truncated: {len(rest)} of {size} bytes")
    elif size % block_align:
        raise WavError(f"WAV data chunk of {size} bytes is not whole {block_align}-byte frames")
    return rest[:size]


def decode_wav(data: bytes) -> bytes:
    """A WAV file's bytes (e.g. ``espeak-ng --stdout``) to 8 kHz mono s16le PCM.

    Raises:
        WavError: see ``Wav.parse``.
    """
    return Wav.parse(data).to_pcm8k()


def read_wav(path: str | Path) -> bytes:
    """Read a WAV file as 8 kHz mono s16le PCM (the format of ``media.audio``).

    Raises:
        WavError: the file is not a WAV we can read; the message starts with the path.
        OSError: the file cannot be opened.
    """
    size = os.stat(path).st_size
    if size > MAX_WAV_BYTES:
        raise WavError(f"{path}: {size} bytes is over the {MAX_WAV_BYTES}-byte limit")
    try:
        return decode_wav(Path(path).read_bytes())
    except WavError as exc:
        raise WavError(f"{path}: {exc}") from None


def write_wav(path: str | Path, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono s16le PCM as a 16-bit PCM WAV file.

    Raises:
        MediaUsageError: odd-length ``pcm`` or a rate outside ``MIN_RATE..MAX_RATE``.
    """
    if len(pcm) % SAMPLE_WIDTH:
        raise MediaUsageError(f"PCM must be whole 16-bit samples, got {len(pcm)} bytes")
    wav = Wav(WavFormat(FORMAT_PCM, 1, sample_rate, 16), bytes(pcm))
    Path(path).write_bytes(bytes(wav))
