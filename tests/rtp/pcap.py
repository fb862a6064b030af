"""A tiny libpcap reader for test fixtures: UDP payloads from Ethernet or Linux SLL captures.

Format: a 24-byte global header (magic, version, snaplen, link type), then records of a
16-byte header (seconds, microseconds, captured length, original length) and the frame.
Only what the SIPp captures need: IPv4 (no fragments), UDP, link types Ethernet (1),
raw IP (101) and Linux cooked (113).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

# Where Debian's sip-tester package installs SIPp's sample captures.
SIPP_PCAPS = Path(os.environ.get("SIPP_PCAP_DIR", "/usr/share/sip-tester"))

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def read_udp(path: Path) -> list[UdpDatagram]:
    """Every IPv4/UDP datagram in a pcap file, in capture order."""
    data = path.read_bytes()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise ValueError(f"{path.name}: not a microsecond libpcap file")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    out: list[UdpDatagram] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        ip = _ip_packet(frame, linktype)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        sport, dport, length = struct.unpack_from("!HHH", udp)
        src = (".".join(map(str, ip[12:16])), sport)
        dst = (".".join(map(str, ip[16:20])), dport)
        out.append(UdpDatagram(sec + usec / 1e6, src, dst, bytes(udp[8:length])))
    return out


def _ip_packet(frame: bytes, linktype: int) -> bytes | None:
    if linktype == LINKTYPE_ETHERNET:
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        offset = 14
        if ethertype == 0x8100:  # 802.1Q VLAN tag
            ethertype = struct.unpack_from("!H", frame, 16)[0]
            offset = 18
        return frame[offset:] if ethertype == 0x0800 else None
    if linktype == LINKTYPE_LINUX_SLL:
        return frame[16:] if struct.unpack_from("!H", frame, 14)[0] == 0x0800 else None
    if linktype == LINKTYPE_RAW:
        return frame
    raise ValueError(f"unsupported pcap link type {linktype}")
