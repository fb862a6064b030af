"""Running SIPp from tests, and checking the RTP it provokes.

SIPp 3.6.1 (Debian ``sip-tester``) runs one scenario per process. ``start_sipp`` copies
the scenario into a fresh work directory, links the pcap files it plays next to it (SIPp
looks for them beside the scenario), and starts SIPp in the foreground with every log
written to a named file there; ``SippProcess.wait`` returns a ``SippResult`` holding the
exit status, the last row of ``-trace_stat`` and the error and message logs.

What SIPp cannot do is count the RTP it receives: 3.6.1 shows RTP rates on its screen
only, and ``-rtp_echo`` would bounce an echo server's packets back forever. So the
offers in our scenarios name ``[media_port+4]``, a port SIPp leaves alone (it binds
``[media_port]`` and ``[media_port]+2`` itself), where an ``RtpSink`` of the test
receives. ``play_pcap_audio`` stamps that same port as the source port of what it
sends (it writes through a raw socket), so a server that answers to the SDP address and
one that latches onto the packets' source (symmetric RTP, RFC 4961) both reach the sink.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from trunkline.rtp.g711 import alaw_decode

SCENARIOS = Path(__file__).parent / "scenarios"

#: Where Debian's sip-tester puts the pcaps SIPp ships (g711a.pcap, dtmf_2833_*.pcap).
PCAP_DIR = Path(os.environ.get("TRUNKLINE_SIPP_PCAPS", "/usr/share/sip-tester"))

#: SIPp's exit statuses (``sipp -h``).
EXIT_ALL_OK = 0
EXIT_SOME_FAILED = 1

# sip-tester's DTMF pcaps are named after the digit, except these two.
_DTMF_PCAP_NAMES = {"*": "star", "#": "pound"}

_CAP_NET_RAW = 13  # linux/capability.h


def sipp_path() -> str | None:
    """The sipp binary on PATH, or None."""
    return shutil.which("sipp")


def pcap_play_problem() -> str | None:
    """Why ``play_pcap_audio`` cannot work here, or None when it can.

    SIPp replays pcaps through a raw socket, so it needs root or CAP_NET_RAW on its
    binary (``setcap cap_net_raw+ep "$(command -v sipp)"``).
    """
    path = sipp_path()
    if path is None:
        return "sipp is not on PATH (Debian package sip-tester)"
    if not (PCAP_DIR / "g711a.pcap").exists():
        return f"sip-tester's pcaps are not in {PCAP_DIR} (set TRUNKLINE_SIPP_PCAPS)"
    if os.geteuid() == 0:
        return None
    try:
        caps = os.getxattr(path, "security.capability")
    except OSError:
        caps = b""
    if len(caps) >= 8 and struct.unpack_from("<I", caps, 4)[0] & (1 << _CAP_NET_RAW):
        return None
    return (
        "SIPp's play_pcap_audio needs a raw socket: run as root or "
        f"`sudo setcap cap_net_raw+ep {path}`"
    )


def dtmf_pcap(digit: str) -> Path:
    """sip-tester's RFC 2833/4733 pcap for one digit (0-9, * or #)."""
    return PCAP_DIR / f"dtmf_2833_{_DTMF_PCAP_NAMES.get(digit, digit)}.pcap"


# --- ports ---------------------------------------------------------------------------------


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (SIP listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if _bindable(port, socket.SOCK_DGRAM):
            return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def free_udp_range(count: int, *, step: int = 1, even: bool = False) -> int:
    """First port of ``count`` UDP ports (``step`` apart) that are all free now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - count * step)
        if even:
            base &= ~1
        if all(_bindable(base + i * step, socket.SOCK_DGRAM) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} free UDP ports on 127.0.0.1")


def free_media_base() -> int:
    """An even port P with P, P+2 (SIPp's own media sockets) and P+4 (the sink) free."""
    return free_udp_range(3, step=2, even=True)


# --- RTP -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """The parts of a received RTP packet the checks look at."""

    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    source: tuple[str, int]


def parse_rtp(data: bytes, source: tuple[str, int]) -> RtpPacket | None:
    """Parse a fixed RTP header (RFC 3550 §5.1); None for anything that is not RTP."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:  # header extension (§5.3.1)
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if data[0] & 0x20:  # padding (§5.1): the last byte counts it
        end -= data[-1]
    if end < offset:
        return None
    seq, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
    return RtpPacket(data[1] & 0x7F, seq, timestamp, ssrc, data[offset:end], source)


class RtpSink:
    """A UDP socket on 127.0.0.1 that a thread drains into ``packets``.

    It sits on ``sipp_media_port + 4``; pass ``sipp_media_port`` to SIPp as ``-mp``.
    A thread (not the kernel buffer) holds the packets: seven seconds of 20 ms RTP
    would overflow a default receive buffer before the test reads it.
    """

    def __init__(self) -> None:
        for _ in range(20):
            self.sipp_media_port = free_media_base()
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.sock.bind(("127.0.0.1", self.sipp_media_port + 4))
                break
            except OSError:
                self.sock.close()
        else:
            raise RuntimeError("could not bind an RTP sink")
        self.port = self.sipp_media_port + 4
        self.sock.settimeout(0.1)
        self.packets: list[RtpPacket] = []
        self.not_rtp = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-sink-{self.port}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            packet = parse_rtp(data, (str(addr[0]), int(addr[1])))
            with self._lock:
                if packet is None:
                    self.not_rtp += 1
                else:
                    self.packets.append(packet)

    def snapshot(self) -> list[RtpPacket]:
        """The packets received so far, in arrival order."""
        with self._lock:
            return list(self.packets)

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def read_pcap_rtp(path: Path) -> list[bytes]:
    """The UDP payloads (RTP packets) of a classic pcap file, Ethernet or Linux SLL."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack_from(order + "I", data, 20)[0]
    link_header = {1: 14, 113: 16}[link]  # DLT_EN10MB, DLT_LINUX_SLL
    out: list[bytes] = []
    offset = 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from(order + "I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link_header:]
        if not ip or ip[0] >> 4 != 4 or ip[9] != 17:  # IPv4 carrying UDP only
            continue
        udp = ip[(ip[0] & 0x0F) * 4 :]
        out.append(bytes(udp[8:]))
    return out


def write_alaw_pcap(path: Path, alaw: bytes, ptime_ms: int = 20) -> int:
    """Write A-law audio as an RTP stream (payload type 8) in a pcap SIPp can replay.

    sip-tester's only speech pcap (g711a.pcap) uses 30 ms packets; this re-packs its
    audio (or any) at another packet time. Returns the number of packets written.
    Ethernet/IPv4/UDP framing as SIPp's prepare_pcap reads it (it ignores the
    addresses, recomputes the UDP checksum and keeps the inter-packet timing).
    """
    samples = 8 * ptime_ms
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # LINKTYPE_ETHERNET
    count = 0
    for count, start in enumerate(range(0, len(alaw) - samples + 1, samples), start=1):
        index = count - 1
        rtp = struct.pack(
            "!BBHII", 0x80, (0x80 if index == 0 else 0) | 8, (1000 + index) & 0xFFFF,
            index * samples, 0x5EED5EED,
        ) + alaw[start : start + samples]  # fmt: skip
        udp = struct.pack("!HHHH", 5000, 2006, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0, 64, 17, 0,
            bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
        ) + udp  # fmt: skip
        frame = bytes(6) + bytes(6) + b"\x08\x00" + ip
        usec = index * ptime_ms * 1000
        out.append(
            struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        )
        out.append(frame)
    path.write_bytes(b"".join(out))
    return count


def pcap_alaw_payload(path: Path) -> bytes:
    """The A-law bytes carried by the payload type 8 RTP packets of a pcap."""
    packets = [parse_rtp(p, ("", 0)) for p in read_pcap_rtp(path)]
    return b"".join(p.payload for p in packets if p and p.payload_type == 8)


def pcap_alaw_pcm(path: Path) -> bytes:
    """Decode the A-law RTP (payload type 8) in a pcap to 8 kHz s16le PCM."""
    return alaw_decode(pcap_alaw_payload(path))


def received_pcm(packets: Iterable[RtpPacket], payload_type: int = 8) -> bytes:
    """Decode the A-law payloads of received packets, in arrival order.

    Arrival order, not sequence order: loopback does not reorder, and sorting by
    sequence number would scramble a stream whose 16-bit numbers wrap.
    """
    audio = b"".join(p.payload for p in packets if p.payload_type == payload_type)
    return alaw_decode(audio)


def _floats(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def best_alignment(received: bytes, sent: bytes) -> tuple[int, float]:
    """Find where ``received`` sits in ``sent``; return (lag in samples, correlation).

    The lag maximises the normalised cross-correlation (computed with FFTs, over lags
    that overlap at least half of the shorter signal, so a loud passage cannot win
    on energy alone); the correlation returned is Pearson's over the overlapping
    samples at that lag: 1.0 for a sample-exact echo, near 0 for another sound.
    """
    r, s = _floats(received), _floats(sent)
    if len(r) == 0 or len(s) == 0 or not r.any() or not s.any():
        return 0, 0.0
    size = 1 << int(np.ceil(np.log2(len(r) + len(s))))
    xcorr = np.fft.irfft(np.fft.rfft(s, size) * np.conj(np.fft.rfft(r, size)), size)
    lags = np.arange(-(len(r) - 1), len(s))
    dots = xcorr[lags % size]  # dots[i] = sum over n of s[n + lag] * r[n]
    r_start = np.maximum(0, -lags)
    r_end = np.minimum(len(r), len(s) - lags)
    cum_r = np.concatenate(([0.0], np.cumsum(r * r)))
    cum_s = np.concatenate(([0.0], np.cumsum(s * s)))
    energy = (cum_r[r_end] - cum_r[r_start]) * (cum_s[r_end + lags] - cum_s[r_start + lags])
    usable = (r_end - r_start >= min(len(r), len(s)) // 2) & (energy > 0)
    if not usable.any():
        return 0, 0.0
    score = np.where(usable, dots / np.sqrt(np.where(usable, energy, 1.0)), -np.inf)
    lag = int(lags[int(np.argmax(score))])
    a = r[max(0, -lag) : min(len(r), len(s) - lag)]
    b = s[max(0, lag) : max(0, lag) + len(a)]
    if len(a) < 160 or not a.std() or not b.std():
        return lag, 0.0
    return lag, float(np.corrcoef(a, b)[0, 1])


def echo_similarity(
    received: bytes, sent: bytes, window_ms: int = 500, floor_dbfs: float = -45.0
) -> list[float]:
    """Correlation of each non-silent window of ``received`` with its best match in ``sent``.

    Window by window, so that a gap the server fills with silence (a jitter-buffer
    underrun) shifts the alignment without spoiling the rest; windows quieter than
    ``floor_dbfs`` are skipped since silence correlates with nothing.
    """
    size = window_ms * 8 * 2  # bytes of 8 kHz s16le
    scores: list[float] = []
    for start in range(0, len(received) - size + 1, size):
        chunk = received[start : start + size]
        rms = float(np.sqrt(np.mean(_floats(chunk) ** 2)))
        if rms == 0.0 or 20 * np.log10(rms / 32768.0) < floor_dbfs:
            continue
        scores.append(best_alignment(chunk, sent)[1])
    return scores


def dominant_frequency(pcm: bytes, sample_rate: int = 8000) -> float:
    """The frequency (Hz) of the largest FFT bin, DC excluded."""
    x = _floats(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * sample_rate / len(x))


# --- running SIPp ----------------------------------------------------------------------------


@dataclass
class SippResult:
    """What one SIPp run left behind."""

    returncode: int
    stats: dict[str, str]
    errors: str
    messages: str
    screen: str
    command: list[str]
    call_id_prefix: str
    workdir: Path

    def counter(self, name: str) -> int:
        """A cumulative counter of the last ``-trace_stat`` row, e.g. ``SuccessfulCall``."""
        return int(self.stats.get(f"{name}(C)", "0") or 0)

    @property
    def successful(self) -> int:
        return self.counter("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.counter("FailedCall")

    def call_id(self, number: int = 1) -> str:
        """The Call-ID SIPp gave its ``number``-th call (``-cid_str``)."""
        return f"{self.call_id_prefix}-{number}@127.0.0.1"

    def describe(self) -> str:
        """Everything useful for an assertion message."""
        failures = {
            k: v
            for k, v in self.stats.items()
            if k.startswith("Failed") and k.endswith("(C)") and v != "0"
        }
        return (
            f"sipp exit {self.returncode}, {self.successful} successful, {self.failed} failed "
            f"{failures}\ncommand: {' '.join(self.command)}\n--- errors ---\n{self.errors[-4000:]}"
            f"\n--- messages (tail) ---\n{self.messages[-6000:]}\n--- screen (tail) ---\n"
            f"{self.screen[-2000:]}"
        )


def _last_stats_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].rstrip(";").split(";")
    row = lines[-1].rstrip(";").split(";")
    return dict(zip(header, row, strict=False))


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class SippProcess:
    """A SIPp started by ``start_sipp``; ``wait`` collects its result."""

    process: subprocess.Popen[bytes]
    command: list[str]
    workdir: Path
    sip_port: int
    media_port: int
    call_id_prefix: str
    timeout: float
    transport: str
    _result: SippResult | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """Where SIPp listens for SIP, as ``host:port``."""
        return f"127.0.0.1:{self.sip_port}"

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit (killing it past ``timeout``) and collect the logs."""
        if self._result is not None:
            return self._result
        try:
            self.process.wait(timeout=self.timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        returncode = self.process.returncode
        self._result = SippResult(
            returncode=returncode if returncode is not None else -9,
            stats=_last_stats_row(self.workdir / "stats.csv"),
            errors=_read(self.workdir / "errors.log"),
            messages=_read(self.workdir / "messages.log"),
            screen=_read(self.workdir / "stdout.txt"),
            command=self.command,
            call_id_prefix=self.call_id_prefix,
            workdir=self.workdir,
        )
        return self._result

    def stop(self) -> None:
        """Ask SIPp to finish (SIGUSR1 is its 'q' key), then kill it if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGUSR1)
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_sipp(
    scenario: str | Path,
    workdir: Path,
    target: str | None = None,
    *args: str,
    calls: int = 1,
    transport: str = "u1",
    timeout: float = 30.0,
    pause_ms: int | None = None,
    media_port: int | None = None,
    sip_port: int | None = None,
    pcaps: Mapping[str, Path] | None = None,
) -> SippProcess:
    """Start SIPp on 127.0.0.1 with ``scenario`` (a name in ``scenarios/`` or a path).

    Args:
        workdir: an empty directory; SIPp runs there and writes its logs there.
        target: ``host:port`` to call (UAC scenarios); None for a UAS scenario.
        args: extra SIPp options, e.g. ``"-r", "10", "-l", "100"``.
        calls: ``-m``: SIPp exits after this many calls.
        transport: ``-t``: ``u1`` (UDP) or ``t1`` (TCP).
        timeout: ``-timeout`` (SIPp fails when it is reached); ``wait`` allows 10 s more.
        pause_ms: ``-d``, the length of every ``<pause/>`` without milliseconds.
        media_port: ``-mp`` (SIPp binds it and +2; offers name +4); default: free ones.
        sip_port: ``-p``; default: a free one.
        pcaps: files to link next to the scenario under the names it plays.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(scenario) if Path(scenario).is_absolute() else SCENARIOS / scenario
    local = workdir / source.name
    shutil.copyfile(source, local)
    for name, path in (pcaps or {}).items():
        (workdir / name).symlink_to(path)
    sip_port = sip_port or free_port()
    media_port = media_port or free_media_base()
    prefix = f"tl-{uuid.uuid4().hex[:12]}"
    binary = sipp_path() or "sipp"
    command = [binary]
    if target is not None:
        command.append(target)
    command += [
        "-sf", local.name,
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-bind_local",
        "-p", str(sip_port), "-mp", str(media_port),
        "-t", transport, "-m", str(calls),
        "-nostdin",
        "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-cid_str", f"{prefix}-%u@%s",
        "-trace_err", "-error_file", "errors.log",
        "-trace_msg", "-message_file", "messages.log",
        "-trace_stat", "-stf", "stats.csv", "-fd", "1",
    ]  # fmt: skip
    if pause_ms is not None:
        command += ["-d", str(pause_ms)]
    command += list(args)
    with open(workdir / "stdout.txt", "wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return SippProcess(
        process, command, workdir, sip_port, media_port, prefix, timeout + 10, transport
    )


def wait_until_listening(process: SippProcess, deadline_s: float = 5.0) -> None:
    """Wait until SIPp has bound its SIP port; raise with its logs if it exits first."""
    kind = socket.SOCK_STREAM if process.transport.startswith("t") else socket.SOCK_DGRAM
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and process.process.poll() is None:
        if not _bindable(process.sip_port, kind):
            return
        time.sleep(0.02)
    if process.process.poll() is not None:
        raise RuntimeError(f"sipp exited before listening:\n{process.wait().describe()}")
    raise RuntimeError(f"sipp did not bind {process.address} within {deadline_s} s")
