"""How many concurrent G.711 echo calls one ``trunkline serve`` process carries.

Run:  .venv/bin/python bench/media_density.py --calls 250 500 1000 --window 30

For each load N it starts a fresh ``trunkline serve --app echo`` pinned to CPU 0, places N
calls over SIP/UDP from this process (pinned to CPU 1), streams G.711 μ-law RTP both ways
at 50 packets/s per call, and after a warm-up measures over a steady window:

- the server's own CPU seconds per call-second, from /proc/<pid>/stat (utime+stime);
  calls per core = 1 / that (MEASURE.md: per-process accounting, not machine idle);
- the server's RSS per call: (RSS at N calls − RSS at 0 calls) / N;
- the server pacer's send lateness p50/p99/max and the share of ticks > 20 ms late,
  from its ``GET /stats`` (every tick is counted in a histogram there);
- echo loss: packets the generator got back / packets it sent;
- the generator's own CPU and send lateness. When its p99 lateness passes 5 ms the
  figure is about the generator, not the server, and the row says so.

Traffic goes only to 127.0.0.1. Every loop is bounded by the call count and the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from trunkline.net.pacer import Pacer
from trunkline.net.sip_endpoint import SipEndpoint
from trunkline.rtp import g711
from trunkline.sdp.model import SessionDescription
from trunkline.sip import events as ev
from trunkline.sip.ua import Peer, UserAgent

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
MEDIA_SOCKETS = 8  # the generator shares a few sockets between all its calls
SLOW_GENERATOR_P99_S = 0.005
_RTP_HEADER = struct.Struct("!BBHII")  # V=2, PT=0 (PCMU), seq, timestamp, SSRC


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def http_json(port: int, path: str, method: str = "GET") -> dict[str, object]:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback only)
        data: dict[str, object] = json.loads(resp.read())
        return data


@dataclass
class GenCall:
    """One call's media on the generator side: sends one packet per pacer tick."""

    index: int
    sock: asyncio.DatagramTransport
    payload: bytes
    remote: tuple[str, int] | None = None
    seq: int = 0
    ts: int = 0
    ssrc: int = 0
    sent: int = 0
    received: int = 0
    sip: object = None

    def on_tick(self, now: float) -> None:
        if self.remote is None:
            return
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        header = _RTP_HEADER.pack(0x80, 0, self.seq, self.ts, self.ssrc)
        self.sock.sendto(header + self.payload, self.remote)
        self.sent += 1


class _MediaSocket(asyncio.DatagramProtocol):
    def __init__(self, gen: Generator) -> None:
        self.gen = gen

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        call = self.gen.by_remote_port.get(int(addr[1]))
        if call is not None:
            call.received += 1


@dataclass
class Generator:
    sip_port: int
    pacer: Pacer = field(default_factory=Pacer)
    calls: list[GenCall] = field(default_factory=list)
    by_remote_port: dict[int, GenCall] = field(default_factory=dict)
    by_sip: dict[int, GenCall] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    ended: int = 0
    ua: UserAgent | None = None
    endpoint: SipEndpoint | None = None
    sockets: list[tuple[asyncio.DatagramTransport, int]] = field(default_factory=list)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.ua = UserAgent(local_host=HOST, local_port=0, rand=random.Random(7))
        self.endpoint = SipEndpoint(self.ua, self.on_event)
        _, port = await self.endpoint.start(HOST, 0)
        self.ua.local_port = port
        for _ in range(MEDIA_SOCKETS):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _MediaSocket(self), local_addr=(HOST, 0)
            )
            self.sockets.append((transport, int(transport.get_extra_info("sockname")[1])))
        self.pacer.start()

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.CallAnswered):
            call = self.by_sip.get(id(event.call))
            if call is None:
                return
            media = SessionDescription.parse(event.sdp).media[0]
            call.remote = (HOST, media.port)  # the server under test is on loopback
            self.by_remote_port[media.port] = call
        elif isinstance(event, ev.CallFailed):
            key = f"{event.status} {event.reason}"
            self.failed[key] = self.failed.get(key, 0) + 1
        elif isinstance(event, ev.CallEnded):
            self.ended += 1

    def place(self, index: int, payload: bytes) -> None:
        assert self.ua is not None and self.endpoint is not None
        transport, port = self.sockets[index % len(self.sockets)]
        sdp = (
            "v=0\r\no=gen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        ).encode()
        call = GenCall(index, transport, payload, ssrc=random.getrandbits(32))
        sip = self.ua.invite(
            f"sip:echo@{HOST}:{self.sip_port}",
            sdp,
            Peer("udp", HOST, self.sip_port),
            from_uri=f"sip:gen{index}@{HOST}",
            now=asyncio.get_running_loop().time(),
        )
        call.sip = sip
        self.by_sip[id(sip)] = call
        self.calls.append(call)
        self.pacer.add(call)
        self.endpoint.pump()

    def hangup_all(self) -> None:
        assert self.ua is not None and self.endpoint is not None
        for call in self.calls:
            self.pacer.remove(call)
            if call.remote is not None:
                self.ua.hangup(call.sip, now=asyncio.get_running_loop().time())
        self.endpoint.pump()

    @property
    def up(self) -> int:
        return sum(1 for c in self.calls if c.remote is not None)


@dataclass
class Point:
    calls: int
    up: int
    cpu_per_call_s: float
    calls_per_core: float
    server_cpu_share: float
    server_sys_share: float
    rss_per_call_kb: float
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    late_share: float
    echo_ratio: float
    gen_cpu_share: float
    gen_p99_ms: float
    failed: dict[str, int]


async def run_point(n: int, args: argparse.Namespace) -> Point:
    sip_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    cmd = [
        sys.executable, "-m", "trunkline", "serve", "--app", "echo",
        "--sip", f"{HOST}:{sip_port}", "--http", f"{HOST}:{http_port}",
        "--rtp-ports", "20000-39999", "--max-calls", str(n + 100),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        os.sched_setaffinity(server.pid, {0})
        for _ in range(100):
            try:
                http_json(http_port, "/health")
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        await asyncio.sleep(1.0)
        rss0 = proc_rss_bytes(server.pid)

        gen = Generator(sip_port)
        await gen.start()
        payload = g711.ulaw_encode(bytes(320))
        interval = 1.0 / args.cps
        deadline = time.monotonic() + n / args.cps + 30
        for i in range(n):
            gen.place(i, payload)
            await asyncio.sleep(interval)
        while gen.up + sum(gen.failed.values()) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.warmup)

        http_json(http_port, "/stats/reset", "POST")
        gen.pacer.lateness.reset()
        sent0 = sum(c.sent for c in gen.calls)
        recv0 = sum(c.received for c in gen.calls)
        cpu0, gcpu0, t0 = proc_cpu_s(server.pid), time.process_time(), time.monotonic()
        rss_n = proc_rss_bytes(server.pid)
        await asyncio.sleep(args.window)
        cpu1, gcpu1, t1 = proc_cpu_s(server.pid), time.process_time(), time.monotonic()
        stats = http_json(http_port, "/stats")
        sent = sum(c.sent for c in gen.calls) - sent0
        recv = sum(c.received for c in gen.calls) - recv0
        gen_p99 = gen.pacer.lateness.percentile(99)
        gen.hangup_all()
        await asyncio.sleep(2)
        up = gen.up
        wall = t1 - t0
        cpu_share = (cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / wall
        cpu_per_call = cpu_share / max(up, 1)
        return Point(
            calls=n,
            up=up,
            cpu_per_call_s=cpu_per_call,
            calls_per_core=1 / cpu_per_call if cpu_per_call else 0.0,
            server_cpu_share=cpu_share,
            server_sys_share=(cpu1[1] - cpu0[1]) / wall,
            rss_per_call_kb=(rss_n - rss0) / max(up, 1) / 1024,
            lateness_p50_ms=float(stats["lateness_p50_ms"]),  # type: ignore[arg-type]
            lateness_p99_ms=float(stats["lateness_p99_ms"]),  # type: ignore[arg-type]
            lateness_max_ms=float(stats["lateness_max_ms"]),  # type: ignore[arg-type]
            late_share=float(stats["late_over_20ms_share"]),  # type: ignore[arg-type]
            echo_ratio=recv / sent if sent else 0.0,
            gen_cpu_share=(gcpu1 - gcpu0) / wall,
            gen_p99_ms=gen_p99 * 1000,
            failed=dict(gen.failed),
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def print_point(p: Point) -> None:
    note = " GENERATOR-BOUND" if p.gen_p99_ms > SLOW_GENERATOR_P99_S * 1000 else ""
    print(
        f"{p.calls:>6} {p.up:>6} {p.server_cpu_share * 100:>6.1f}%"
        f" ({p.server_sys_share * 100:>4.1f}% sys) {p.cpu_per_call_s * 1e3:>9.3f}"
        f" {p.calls_per_core:>9.0f} {p.rss_per_call_kb:>8.1f} {p.lateness_p50_ms:>6.1f}"
        f" {p.lateness_p99_ms:>6.1f} {p.lateness_max_ms:>7.1f} {p.late_share * 100:>6.2f}%"
        f" {p.echo_ratio * 100:>6.1f}% {p.gen_cpu_share * 100:>6.1f}% {p.gen_p99_ms:>6.1f}"
        f"{note}{' failed=' + str(p.failed) if p.failed else ''}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})
    print(
        "calls(N) up  srvCPU (of which sys)  ms-cpu/call-s  calls/core  RSS-KB/call"
        "  late-p50 p99 max(ms)  >20ms  echo  genCPU gen-p99(ms)"
    )
    for _ in range(args.repeat):
        for n in args.calls:
            print_point(await run_point(n, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--window", type=float, default=30.0, help="steady window, seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--cps", type=float, default=100.0, help="call setup rate")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
