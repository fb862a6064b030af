"""Microseconds per packet on the server's RTP path, measured in-process.

Run:  .venv/bin/python bench/rtp_path.py --legs 200 --rounds 200 --repeat 5

``media_density.py`` measures the whole server under a load generator on a shared
machine, which is noisy. This script times the pieces of the echo call's path one at a
time, with real loopback sockets but no event loop in the timed part, so the figures are
per packet and much steadier:

- ``rx``: one readable event, as the loop would call it: ``recv`` + RTP header +
  jitter-buffer push (the leg's ``_on_readable``);
- ``tick``: one pacer tick of a leg: jitter pop, G.711 decode, the echo app's
  ``on_audio``, RTP header pack and ``send``;
- reference costs: a bare ``send`` and ``recv`` of a 172-byte datagram on loopback, and
  the pure-Python pieces without any syscall (jitter push, jitter pop, decode, header
  pack).

Each figure is the median of ``--repeat`` runs, in µs CPU (``time.process_time``).
One call-second is 50 rx + 50 ticks, so calls per core ≈ 1e6 / (50 × (rx + tick)),
before the event loop's own dispatch and wake-ups (``rtp_loop.py`` measures those too).
Traffic stays on 127.0.0.1; every loop is bounded by ``--legs`` × ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import struct
import time
from collections.abc import Callable

from rtp_loop import make_leg  # this folder: the scripts run as files
from trunkline.net.pacer import PERIOD_S, Pacer
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.rtp import g711
from trunkline.rtp.jitter import JitterBuffer
from trunkline.rtp.packet import RtpWriter

HOST = "127.0.0.1"
_HEADER = struct.Struct("!BBHII")
PAYLOAD = g711.ulaw_encode(bytes(320))


class Rig:
    """``n`` echo legs, each with a connected peer socket on loopback."""

    def __init__(self, n: int, pacer: Pacer) -> None:
        self.legs: list[SipRtpLeg] = []
        self.peers: list[socket.socket] = []
        self.seq = 0
        for i in range(n):
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind((HOST, 0))
            peer.setblocking(False)
            peer_port = int(peer.getsockname()[1])
            leg = make_leg(i, pacer, peer_port)
            assert leg.sock is not None
            peer.connect(leg.sock.getsockname())
            self.legs.append(leg)
            self.peers.append(peer)

    def send_round(self) -> None:
        """Every peer sends its next packet."""
        self.seq += 1
        packet = _HEADER.pack(0x80, 0, self.seq & 0xFFFF, (self.seq * 160) & 0xFFFFFFFF, 7)
        packet += PAYLOAD
        for peer in self.peers:
            peer.send(packet)

    def drain_peers(self) -> int:
        got = 0
        for peer in self.peers:
            while True:
                try:
                    peer.recv(2048)
                except BlockingIOError:
                    break
                got += 1
        return got

    def close(self) -> None:
        for leg in self.legs:
            leg.close_media()
        for peer in self.peers:
            peer.close()


def _us_per(f: Callable[[], int]) -> float:
    t0 = time.process_time()
    count = f()
    return (time.process_time() - t0) / count * 1e6


def bench_rx_tick(rig: Rig, rounds: int) -> tuple[float, float]:
    """(µs per rx event, µs per tick), timed without the loop."""
    rx_cpu = tick_cpu = 0.0
    count = 0
    grid = time.monotonic()
    for _ in range(rounds):
        rig.send_round()
        t0 = time.process_time()
        for leg in rig.legs:
            leg._on_readable()
        t1 = time.process_time()
        for leg in rig.legs:
            leg.on_tick(grid)
        t2 = time.process_time()
        rx_cpu += t1 - t0
        tick_cpu += t2 - t1
        count += len(rig.legs)
        grid += PERIOD_S
        rig.drain_peers()
    return rx_cpu / count * 1e6, tick_cpu / count * 1e6


def bench_socket_refs(rig: Rig, rounds: int) -> tuple[float, float]:
    """(µs per bare send, µs per bare recv) of one RTP-sized datagram on loopback."""
    packet = _HEADER.pack(0x80, 0, 1, 160, 7) + PAYLOAD
    send_cpu = recv_cpu = 0.0
    count = 0
    socks = [leg.sock for leg in rig.legs]
    for _ in range(rounds):
        t0 = time.process_time()
        for peer in rig.peers:
            peer.send(packet)
        t1 = time.process_time()
        for sock in socks:
            assert sock is not None
            sock.recv(2048)
        t2 = time.process_time()
        send_cpu += t1 - t0
        recv_cpu += t2 - t1
        count += len(socks)
    return send_cpu / count * 1e6, recv_cpu / count * 1e6


def bench_pure(n: int) -> dict[str, float]:
    """µs per call of the pure-Python pieces, no syscalls."""
    out: dict[str, float] = {}
    payload = PAYLOAD

    def push_pop() -> int:
        jb = JitterBuffer()
        now = 0.0
        for i in range(n):
            jb.push(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, 7, payload, now)
            jb.pop()
            now += 0.02
        return n

    out["jitter push+pop"] = _us_per(push_pop)

    def decode() -> int:
        dec = g711.ulaw_decode
        for _ in range(n):
            dec(payload)
        return n

    out["g711 decode"] = _us_per(decode)
    writer = RtpWriter(7, 0, 0, 0)

    def pack() -> int:
        nxt = writer.next_packet
        for _ in range(n):
            nxt(payload)
        return n

    out["rtp header pack"] = _us_per(pack)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--legs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import uvloop

    async def run_once() -> dict[str, float]:  # legs need a running loop
        pacer = Pacer()
        rig = Rig(args.legs, pacer)
        try:
            for leg in rig.legs:
                leg._learn_source((HOST, int(leg.remote[1])))  # connected, as after latching
                leg._started = True
            rx, tick = bench_rx_tick(rig, args.rounds)
            send, recv = bench_socket_refs(rig, args.rounds)
            rig.drain_peers()
            row = {"rx": rx, "tick": tick, "bare send": send, "bare recv": recv}
            row.update(bench_pure(args.legs * args.rounds))
        finally:
            rig.close()
        return row

    rows = []
    for _ in range(args.repeat):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows.append(runner.run(run_once()))
    print(f"{args.legs} legs, {args.rounds} rounds, median of {args.repeat} (µs CPU per packet)")
    for key in rows[0]:
        values = sorted(r[key] for r in rows)
        median = statistics.median(values)
        print(f"  {key:<24} {median:7.2f}   (min {values[0]:.2f}, max {values[-1]:.2f})")
    rx = statistics.median(r["rx"] for r in rows)
    tick = statistics.median(r["tick"] for r in rows)
    print(f"  calls per core from rx + tick alone: {1e6 / (50 * (rx + tick)):.0f}")


if __name__ == "__main__":
    main()
