"""WAV reading and writing: round trips, files from sox and espeak-ng, and broken files."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.media import wav as wav_module
from trunkline.media.errors import MediaUsageError, WavError
from trunkline.media.tones import rms_dbfs, sine
from trunkline.media.wav import (
    FORMAT_ALAW,
    FORMAT_IEEE_FLOAT,
    FORMAT_MULAW,
    FORMAT_PCM,
    Wav,
    WavFormat,
    decode_wav,
    read_wav,
    write_wav,
)

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)

# Every (encoding, container bits) the reader supports.
ENCODINGS = [
    (FORMAT_PCM, 8),
    (FORMAT_PCM, 16),
    (FORMAT_PCM, 24),
    (FORMAT_PCM, 32),
    (FORMAT_IEEE_FLOAT, 32),
    (FORMAT_IEEE_FLOAT, 64),
    (FORMAT_ALAW, 8),
    (FORMAT_MULAW, 8),
]


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def _peak_hz(pcm: bytes) -> float:
    x = _samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * 8000 / len(x))


def _wav_bytes(fmt_body: bytes, data: bytes, data_size: int | None = None) -> bytes:
    size = len(data) if data_size is None else data_size
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    chunks += b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def _fmt(tag: int, channels: int, rate: int, bits: int, block_align: int | None = None) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    return struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)


# --- round trips ----------------------------------------------------------------------


def test_write_then_read_is_exact_at_8k(tmp_path: Path) -> None:
    pcm = sine(440.0, 500) + bytes(100) + sine(1000.0, 20, amplitude=1.0)
    path = tmp_path / "x.wav"
    write_wav(path, pcm)
    assert read_wav(path) == pcm
    assert read_wav(str(path)) == pcm


def test_write_at_16k_reads_back_at_8k(tmp_path: Path) -> None:
    n = np.arange(16000)
    pcm16k = np.rint(8000 * np.sin(2 * np.pi * 1000 * n / 16000)).astype("<i2").tobytes()
    path = tmp_path / "x.wav"
    write_wav(path, pcm16k, sample_rate=16000)
    pcm = read_wav(path)
    assert len(pcm) == 8000 * 2
    assert abs(_peak_hz(pcm) - 1000.0) < 2.0
    assert abs(rms_dbfs(pcm) - rms_dbfs(pcm16k)) < 0.1


@pytest.mark.parametrize(("encoding", "bits"), ENCODINGS)
@pytest.mark.parametrize("extensible", [False, True])
def test_every_format_round_trips(encoding: int, bits: int, extensible: bool) -> None:
    fmt = WavFormat(encoding, 2, 11025, bits, extensible)
    data = bytes(range(256)) * fmt.block_align  # whole frames of every byte value
    if encoding == FORMAT_IEEE_FLOAT:
        width = bits // 8
        data = np.linspace(-1, 1, 256).astype(f"<f{width}").tobytes()
    wav = Wav(fmt, data)
    raw = bytes(wav)
    parsed = Wav.parse(raw)
    assert parsed == wav
    assert bytes(parsed) == raw
    assert parsed.frames == len(data) // fmt.block_align


@st.composite
def wavs(draw: st.DrawFn) -> Wav:
    encoding, bits = draw(st.sampled_from(ENCODINGS))
    fmt = WavFormat(
        encoding,
        draw(st.integers(1, 3)),
        draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000])),
        bits,
        draw(st.booleans()),
    )
    frames = draw(st.integers(0, 40))
    return Wav(
        fmt, draw(st.binary(min_size=frames * fmt.block_align, max_size=frames * fmt.block_align))
    )


@settings(max_examples=60, deadline=None)
@given(wavs())
def test_parse_round_trips_any_wav(wav: Wav) -> None:
    raw = bytes(wav)
    assert bytes(Wav.parse(raw)) == raw
    pcm = decode_wav(raw)  # every valid file decodes, NaN floats included
    assert len(pcm) % 2 == 0


@settings(max_examples=25, deadline=None)
@given(wavs())
def test_every_truncation_is_a_wav_error(wav: Wav) -> None:
    raw = bytes(wav)
    end = len(raw) - (len(wav.data) & 1)  # a missing pad byte loses no audio: allowed
    for cut in range(end):
        with pytest.raises(WavError):
            Wav.parse(raw[:cut])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_wav_error(data: bytes) -> None:
    for candidate in (data, b"RIFF\0\0\0\0WAVE" + data, b"RIFF\0\0\0\0WAVEfmt " + data):
        try:
            decode_wav(candidate)
        except WavError:
            pass


# --- decoding details --------------------------------------------------------------------


def test_8_bit_pcm_is_unsigned() -> None:
    pcm = decode_wav(_wav_bytes(_fmt(FORMAT_PCM, 1, 8000, 8), bytes([128, 255, 0, 192])))
    assert list(_samples(pcm)) == [0, 32512, -32768, 16384]


def test_24_bit_pcm_is_signed() -> None:
    data = bytes([0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0x7F])
    pcm = decode_wav(_wav_bytes(_fmt(FORMAT_PCM, 1, 8000, 24), data))
    assert list(_samples(pcm)) == [0, -32768, 32767]  # -1/2^23 rounds to 0; +max clips


def test_float_nan_and_overload_do_not_escape() -> None:
    data = np.array([np.nan, np.inf, -np.inf, 2.0, -0.5], "<f4").tobytes()
    pcm = decode_wav(_wav_bytes(_fmt(FORMAT_IEEE_FLOAT, 1, 8000, 32), data))
    assert list(_samples(pcm)) == [0, 32767, -32768, 32767, -16384]


def test_stereo_is_averaged() -> None:
    frames = np.array([[1000, -1000], [1000, 0], [-32768, -32768]], "<i2").tobytes()
    pcm = decode_wav(_wav_bytes(_fmt(FORMAT_PCM, 2, 8000, 16), frames))
    assert list(_samples(pcm)) == [0, 500, -32768]


def test_fewer_valid_bits_than_the_container() -> None:
    data = struct.pack("<3h", 16, -16, 32752)  # 12-bit samples left-justified in 16
    pcm = decode_wav(_wav_bytes(_fmt(FORMAT_PCM, 1, 8000, 12, block_align=2), data))
    assert pcm == data


def test_unknown_chunks_are_skipped() -> None:
    body = _fmt(FORMAT_PCM, 1, 8000, 16)
    data = struct.pack("<2h", 5, -5)
    raw = (
        b"RIFF\0\0\0\0WAVE"
        + b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd size, then a pad byte
        + b"fmt " + struct.pack("<I", len(body)) + body
        + b"fact" + struct.pack("<I", 4) + bytes(4)
        + b"data" + struct.pack("<I", len(data)) + data
        + b"LIST" + struct.pack("<I", 100)  # after the data: never read
    )  # fmt: skip
    assert decode_wav(raw) == data


@pytest.mark.parametrize("placeholder", [0x7FFFF000, 0xFFFFFFFF])
def test_streaming_placeholder_sizes_read_to_the_end(placeholder: int) -> None:
    data = struct.pack("<3h", 1, 2, 3) + b"\x04"  # a cut-off last sample is dropped
    raw = _wav_bytes(_fmt(FORMAT_PCM, 1, 8000, 16), data, data_size=placeholder)
    assert decode_wav(raw) == data[:6]


def test_extensible_with_foreign_guid_is_refused() -> None:
    body = _fmt(0xFFFE, 1, 8000, 16) + struct.pack("<HHI", 22, 16, 0) + bytes(16)
    with pytest.raises(WavError, match="sub-format GUID"):
        decode_wav(_wav_bytes(body, bytes(4)))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "RIFF header: 0 of 12 bytes"),
        (b"RIFF\0\0\0\0WAV", "RIFF header: 11 of 12 bytes"),
        (b"RIFX\0\0\0\0WAVE", "big-endian"),
        (b"RF64\0\0\0\0WAVE", "RF64"),
        (b"ID3\x03" + bytes(100), "not a WAV file"),
        (b"RIFF\0\0\0\0AVI ", "not b'WAVE'"),
        (b"RIFF\0\0\0\0WAVE", "no fmt chunk"),
        (b"RIFF\0\0\0\0WAVEfmt \x10\0", "chunk header: 6 of 8 bytes"),
        (b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + bytes(10), "'fmt ' chunk truncated: 10 of 16"),
        (b"RIFF\0\0\0\0WAVEdata\0\0\0\0", "data chunk comes before the fmt chunk"),
        (_wav_bytes(_fmt(1, 1, 8000, 16)[:14], b""), "fmt chunk too short: 14 of 16"),
        (_wav_bytes(_fmt(0xFFFE, 1, 8000, 16), b""), "EXTENSIBLE fmt chunk too short: 16 of 40"),
        (_wav_bytes(_fmt(2, 1, 8000, 4), b""), "MS ADPCM is not supported"),
        (_wav_bytes(_fmt(0x55, 1, 8000, 0), b""), "MPEG layer 3 is not supported"),
        (_wav_bytes(_fmt(0x1234, 1, 8000, 16), b""), "format tag 0x1234 is not supported"),
        (_wav_bytes(_fmt(1, 0, 8000, 16, block_align=2), b""), "0 channels"),
        (_wav_bytes(_fmt(1, 1, 0, 16), b""), "sample rate 0 Hz"),
        (_wav_bytes(_fmt(1, 1, 4_000_000_000, 16), b""), "sample rate 4000000000 Hz"),
        (_wav_bytes(_fmt(1, 2, 8000, 16, block_align=3), b""), "block align 3"),
        (_wav_bytes(_fmt(1, 1, 8000, 16, block_align=5), b""), "16 bits in 5-byte samples"),
        (_wav_bytes(_fmt(7, 1, 8000, 16), b""), "u-law with 16 bits in 2-byte"),
        (_wav_bytes(_fmt(1, 1, 8000, 16), bytes(10), data_size=1000), "truncated: 10 of 1000"),
        (_wav_bytes(_fmt(1, 1, 8000, 16), bytes(3)), "3 bytes is not whole 2-byte frames"),
        (_wav_bytes(_fmt(1, 1, 8000, 16), b"")[:-8], "no data chunk"),
    ],
)
def test_broken_files_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(WavError, match=message.replace("(", r"\(")):
        decode_wav(raw)


def test_read_wav_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not audio at all")
    with pytest.raises(WavError, match=r"notes\.txt: not a WAV file"):
        read_wav(path)
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_read_wav_refuses_files_over_the_limit(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "x.wav"
    write_wav(path, bytes(200))
    monkeypatch.setattr(wav_module, "MAX_WAV_BYTES", 100)
    with pytest.raises(WavError, match="over the 100-byte limit"):
        read_wav(path)


def test_write_wav_rejects_misuse(tmp_path: Path) -> None:
    with pytest.raises(MediaUsageError):
        write_wav(tmp_path / "x.wav", b"\x01\x02\x03")
    with pytest.raises(MediaUsageError):
        write_wav(tmp_path / "x.wav", b"", sample_rate=0)
    with pytest.raises(MediaUsageError):
        Wav(WavFormat(FORMAT_PCM, 2, 8000, 16), bytes(6))  # not whole 4-byte frames
    with pytest.raises(MediaUsageError):
        WavFormat(FORMAT_ALAW, 1, 8000, 16)


# --- files written by sox and espeak-ng ---------------------------------------------------


def _sox(*args: str | Path) -> None:
    subprocess.run(["sox", *map(str, args)], check=True, capture_output=True, timeout=30)


SOX_FORMATS = {
    "16k-stereo-s16": ["-r", "16000", "-c", "2", "-e", "signed-integer", "-b", "16"],
    "22050-mono-s16": ["-r", "22050", "-c", "1", "-e", "signed-integer", "-b", "16"],
    "8k-ulaw": ["-r", "8000", "-c", "1", "-e", "u-law"],
    "8k-alaw": ["-r", "8000", "-c", "1", "-e", "a-law"],
    "16k-float32": ["-r", "16000", "-c", "1", "-e", "floating-point", "-b", "32"],
    "48k-float64-stereo": ["-r", "48000", "-c", "2", "-e", "floating-point", "-b", "64"],
    "44100-s24-3ch": ["-r", "44100", "-c", "3", "-e", "signed-integer", "-b", "24"],
    "32k-s32": ["-r", "32000", "-c", "1", "-e", "signed-integer", "-b", "32"],
    "11025-u8": ["-r", "11025", "-c", "1", "-e", "unsigned-integer", "-b", "8"],
}


@needs_sox
@pytest.mark.parametrize("name", sorted(SOX_FORMATS))
def test_reads_what_sox_writes(tmp_path: Path, name: str) -> None:
    """A 0.5 s 1 kHz tone in each format: right length, pitch and level; matches sox."""
    path = tmp_path / f"{name}.wav"
    _sox("-n", *SOX_FORMATS[name], path, "synth", "0.5", "sine", "1000", "vol", "0.5")
    pcm = read_wav(path)
    assert abs(len(pcm) // 2 - 4000) <= 1
    assert abs(_peak_hz(pcm) - 1000.0) < 3.0
    assert abs(rms_dbfs(pcm) - (-9.03)) < 0.3  # a 0.5 sine: 20*log10(0.5/sqrt(2))
    reference = tmp_path / "reference.wav"
    _sox(path, "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16", reference)
    ref = read_wav(reference)
    n = min(len(pcm), len(ref)) // 2
    mid = slice(200, n - 200)  # both resamplers fade the edges differently
    ours, theirs = _samples(pcm)[:n][mid], _samples(ref)[:n][mid]
    assert np.corrcoef(ours, theirs)[0, 1] > 0.999
    if name in ("8k-ulaw", "8k-alaw"):
        assert pcm == ref  # G.711 decoding is bit-exact with sox


@needs_sox
def test_reads_what_sox_streams_to_a_pipe() -> None:
    out = subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", "-t", "wav", "-",
         "synth", "0.25", "sine", "500"],
        check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    assert struct.unpack_from("<I", out, out.index(b"data") + 4)[0] > len(out)  # a placeholder
    pcm = decode_wav(out)
    assert len(pcm) // 2 == 2000
    assert abs(_peak_hz(pcm) - 500.0) < 5.0


@needs_espeak
def test_reads_espeak_ng_output(tmp_path: Path) -> None:
    path = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "hello"], check=True, timeout=30)
    assert Wav.parse(path.read_bytes()).format.sample_rate == 22050
    pcm = read_wav(path)
    seconds = len(pcm) / 16000
    assert 0.3 < seconds < 3.0
    assert rms_dbfs(pcm) > -35.0
    streamed = subprocess.run(
        ["espeak-ng", "--stdout", "hello"], check=True, capture_output=True, timeout=30
    ).stdout
    assert decode_wav(streamed) == pcm  # same synthesis, placeholder sizes in the header
