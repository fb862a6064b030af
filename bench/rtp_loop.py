"""Server CPU per echo call on the RTP path alone: the legs and pacer, no SIP, no HTTP.

Run:  .venv/bin/python bench/rtp_loop.py --legs 600 1000 --window 10 --repeat 3

``media_density.py`` measures a whole ``trunkline serve``; this script isolates the media
path so that a change to it can be compared quickly, with the same accounting:

- this process holds N ``SipRtpLeg`` echo legs (``loop_back``) on uvloop with the real
  ``Pacer``, pinned to CPU 0, one UDP socket per leg;
- a child process (pinned to CPU 1) plays N callers from 8 sockets, each sending 20 ms
  G.711 packets on its own 1 ms slot of a 20 ms grid, as ``media_density``'s generator
  does, and counts what comes back;
- over a steady window it reports this process's CPU (``time.process_time``, so the
  child is not counted), µs CPU per call-frame (one packet in and one out), calls per
  core = 20,000 µs / that, the pacer's send lateness p50/p99/max, the echo ratio, and
  how often this process woke up (voluntary context switches per second), and the
  child's send lateness p99 (past 5 ms the figure is about the child, not the legs).

Traffic stays on 127.0.0.1; every loop is bounded by the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

from trunkline.net.leg import LegInfo, TransferResult
from trunkline.net.pacer import PERIOD_S, SLOT_S, SLOTS, LatenessHistogram, Pacer
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.rtp import g711
from trunkline.sdp.model import Direction
from trunkline.sdp.offer_answer import PCMU, NegotiatedMedia

HOST = "127.0.0.1"
PEER_SOCKETS = 8
SLOW_PEER_P99_S = 0.005
_HEADER = struct.Struct("!BBHII")


# --- the peer (child process) -------------------------------------------------------------


def run_peer(duration: float) -> None:
    """Callers: read leg ports from stdin, send on a 20 ms grid, report counts on stdout."""
    socks = []
    for _ in range(PEER_SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        socks.append(s)
    print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
    ports: list[int] = json.loads(sys.stdin.readline())
    # Call i sends from socket i % 8 to leg port i, in slot i % 20.
    slots: list[list[tuple[socket.socket, tuple[str, int]]]] = [[] for _ in range(SLOTS)]
    for i, port in enumerate(ports):
        slots[i % SLOTS].append((socks[i % PEER_SOCKETS], (HOST, port)))
    payload = g711.ulaw_encode(bytes(320))
    lateness = LatenessHistogram()
    sent = received = 0
    start = time.monotonic() + 0.05
    end = start + duration
    slot_index, grid, rnd = 0, start, 0
    while grid < end:
        delay = grid - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if slot_index == 0:
            rnd += 1
        packet = _HEADER.pack(0x80, 0, rnd & 0xFFFF, (rnd * 160) & 0xFFFFFFFF, 7) + payload
        for sock, addr in slots[slot_index]:
            try:
                sock.sendto(packet, addr)
                sent += 1
            except OSError:
                pass
        lateness.add(time.monotonic() - grid)
        for sock in socks:
            for _ in range(10_000):  # bounded drain
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                received += 1
        slot_index = (slot_index + 1) % SLOTS
        grid += SLOT_S
    print(json.dumps({"sent": sent, "received": received, "p99": lateness.percentile(99)}))


# --- the legs (this process) ----------------------------------------------------------------


class _NoControl:
    def hangup_leg(self, leg: SipRtpLeg, reason: str) -> None:
        return None

    def dtmf_info_leg(self, leg: SipRtpLeg, digit: str, duration_ms: int) -> None:
        return None

    async def transfer_leg(self, leg: SipRtpLeg, target: str) -> TransferResult:
        return TransferResult(False, 501)


def make_leg(i: int, pacer: Pacer, peer_port: int) -> SipRtpLeg:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    media = NegotiatedMedia(
        codec=PCMU,
        telephone_event_pt=101,
        remote_host=HOST,
        remote_port=peer_port,
        ptime=20,
        direction=Direction.SENDRECV,
        remote_rtcp_port=None,
        remote_direction=Direction.SENDRECV,
        media_index=0,
    )
    leg = SipRtpLeg(
        LegInfo("sip", f"bench-{i}"), media, sock, _NoControl(), pacer,
        ssrc=1000 + i, initial_seq=0, initial_ts=0,
    )  # fmt: skip
    leg.loop_back()
    return leg


@dataclass
class Point:
    legs: int
    cpu_share: float
    us_per_frame: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    echo: float
    peer_p99_ms: float
    wakes_per_s: float


def voluntary_switches() -> int:
    """Times this process blocked (each a wake-up of its loop), from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


async def run_point(n: int, window: float, warmup: float) -> Point:
    peer = subprocess.Popen(
        [sys.executable, __file__, "--peer", str(warmup + window + 1.0)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert peer.stdin is not None and peer.stdout is not None
    pacer = Pacer()
    legs: list[SipRtpLeg] = []
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(peer.pid, {1})
        peer_ports = json.loads(peer.stdout.readline())
        legs = [make_leg(i, pacer, peer_ports[i % PEER_SOCKETS]) for i in range(n)]
        for leg in legs:
            leg.start()
        pacer.start()
        peer.stdin.write(json.dumps([leg.local_port for leg in legs]) + "\n")
        peer.stdin.flush()
        await asyncio.sleep(warmup)
        pacer.lateness.reset()
        sent0 = sum(leg.stats.sent for leg in legs)
        cpu0, t0, wakes0 = time.process_time(), time.monotonic(), voluntary_switches()
        await asyncio.sleep(window)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        wakes = voluntary_switches() - wakes0
        sent = sum(leg.stats.sent for leg in legs) - sent0
        hist = pacer.lateness
        p50, p99 = hist.percentile(50), hist.percentile(99)
        late_max = max((i + 1 for i, c in enumerate(hist.counts) if c), default=0) * 1e-4
        result = json.loads(await asyncio.to_thread(peer.stdout.readline))
        peer.wait(timeout=10)
    finally:
        pacer.stop()
        for leg in legs:
            leg.close_media()
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    return Point(
        legs=n,
        cpu_share=cpu / wall,
        us_per_frame=cpu / max(sent, 1) * 1e6,
        p50_ms=p50 * 1e3,
        p99_ms=p99 * 1e3,
        max_ms=late_max * 1e3,
        echo=result["received"] / max(result["sent"], 1),
        peer_p99_ms=result["p99"] * 1e3,
        wakes_per_s=wakes / wall,
    )


def print_point(p: Point) -> None:
    note = " PEER-BOUND" if p.peer_p99_ms > SLOW_PEER_P99_S * 1e3 else ""
    print(
        f"{p.legs:>6} {p.cpu_share * 100:>6.1f}% {p.us_per_frame:>8.2f}"
        f" {PERIOD_S * 1e6 / p.us_per_frame:>8.0f}"
        f" {p.p50_ms:>5.1f} {p.p99_ms:>5.1f} {p.max_ms:>6.1f} {p.echo * 100:>6.1f}%"
        f" {p.wakes_per_s:>7.0f} {p.peer_p99_ms:>6.1f}{note}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})
    print("  legs    CPU  us/frame calls/core  late-p50 p99 max(ms)  echo  wakes/s  peer-p99(ms)")
    points: dict[int, list[Point]] = {n: [] for n in args.legs}
    for _ in range(args.repeat):
        for n in args.legs:
            p = await run_point(n, args.window, args.warmup)
            points[n].append(p)
            print_point(p)
    if args.repeat > 1:
        print("medians:")
        for n, ps in points.items():
            print_point(
                Point(
                    legs=n,
                    **{
                        k: statistics.median(getattr(p, k) for p in ps)
                        for k in Point.__dataclass_fields__
                        if k != "legs"
                    },
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--legs", type=int, nargs="+", default=[600, 1000])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--peer", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer is not None:
        run_peer(args.peer)
        return
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
