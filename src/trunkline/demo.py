"""``trunkline demo``: the main job on the embedded defaults.

It starts the echo server, calls it over SIP/RTP with trunkline's own UAC and over a
Twilio-compatible WebSocket stream with trunkline's own Media Streams client, plays a
tone burst on each call, and prints what came back and how long the round trip took.
Then it stays up so a person can call it with a softphone or SIPp.

(As the runtime and the pretest lab land, the demo grows into the Acme agent plus a
short pretest; the shape of the command stays the same.)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
from dataclasses import dataclass

from trunkline.apps.echo import echo
from trunkline.media.audio import FRAME_BYTES, FRAME_SECONDS
from trunkline.media.tones import rms_dbfs, silence, sine
from trunkline.net.calls import CallFailedError, SipCalls
from trunkline.net.leg import LegEvent, MediaLeg
from trunkline.net.rtp_pool import RtpPortPool
from trunkline.net.ws_client import WsMediaCaller
from trunkline.runtime.server import ServeConfig, Server
from trunkline.sip.ua import Peer

# A burst is "heard" back when a frame is louder than this (the tone is at about -13 dBFS).
HEARD_DBFS = -40.0
BURST_MS = 400
LISTEN_S = 1.5


class _Recorder:
    """Collects inbound frames with their arrival time on the loop clock."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.frames: list[tuple[float, bytes]] = []

    def on_audio(self, pcm: bytes) -> None:
        self.frames.append((self.loop.time(), pcm))

    def on_event(self, event: LegEvent) -> None:
        return None

    def first_loud(self) -> float | None:
        for at, pcm in self.frames:
            if rms_dbfs(pcm) > HEARD_DBFS:
                return at
        return None


@dataclass
class ProbeResult:
    transport: str
    ok: bool
    round_trip_ms: float | None
    frames_back: int
    detail: str = ""


async def probe(leg: MediaLeg, transport: str) -> ProbeResult:
    """Send a tone burst on ``leg`` and time its echo."""
    recorder = _Recorder()
    leg.attach(recorder)
    await asyncio.sleep(0.2)  # let media start flowing both ways
    loop = asyncio.get_running_loop()
    leg.send_audio(sine(1000, BURST_MS) + silence(200))
    sent_at = loop.time()
    await asyncio.sleep(LISTEN_S)
    heard = recorder.first_loud()
    await leg.hangup("demo done")
    frames = len(recorder.frames)
    if heard is None:
        return ProbeResult(transport, False, None, frames, "no echo heard")
    # The pacer sends the first queued frame within one 20 ms period of queuing it.
    return ProbeResult(transport, True, (heard - sent_at) * 1000, frames)


async def run_demo(args: argparse.Namespace) -> int:
    sip_host, sip_port = args.sip
    http_host, http_port = args.http
    server = Server(
        ServeConfig(sip_host=sip_host, sip_port=sip_port, http_host=http_host, http_port=http_port),
        echo,
    )
    try:
        await server.start()
    except OSError as exc:
        print(f"trunkline demo: cannot listen ({exc}); pass --sip/--http with free ports")
        return 2
    sip_host, sip_port = server.sip_address
    http_host, http_port = server.http_address
    print(
        f"echo agent up: sip:echo@{sip_host}:{sip_port} (udp+tcp), ws://{http_host}:{http_port}/media"
    )

    caller = SipCalls(
        host=sip_host,
        port=0,
        pool=RtpPortPool(sip_host, 40000, 40999),
        pacer=server.pacer,
        handler=echo,
        rand=random.Random(),
    )
    await caller.start()
    results: list[ProbeResult] = []
    for transport in ("udp", "tcp"):
        for _ in range(args.calls):
            try:
                leg = await caller.dial(
                    f"sip:echo@{sip_host}:{sip_port}",
                    Peer(transport, sip_host, sip_port),
                    answer_timeout_s=5,
                )
            except CallFailedError as exc:
                results.append(ProbeResult(f"sip/{transport}", False, None, 0, str(exc)))
                continue
            results.append(await probe(leg, f"sip/{transport}"))
    for _ in range(args.calls):
        try:
            ws_leg = await WsMediaCaller.connect(
                f"ws://{http_host}:{http_port}/media", server.pacer
            )
        except OSError as exc:
            results.append(ProbeResult("websocket", False, None, 0, str(exc)))
            continue
        results.append(await probe(ws_leg, "websocket"))
    await caller.close()

    print()
    print(f"{'transport':<10} {'result':<8} {'echo round trip':>16} {'frames back':>12}")
    for r in results:
        rt = f"{r.round_trip_ms:.0f} ms" if r.round_trip_ms is not None else "-"
        status = "ok" if r.ok else f"FAIL {r.detail}"
        print(f"{r.transport:<10} {status:<8} {rt:>16} {r.frames_back:>12}")
    expected = math.ceil(LISTEN_S / FRAME_SECONDS)
    print(f"(about {expected} frames of {FRAME_BYTES} bytes come back per call in {LISTEN_S} s)")
    failed = sum(1 for r in results if not r.ok)
    print(f"\n{len(results) - failed} of {len(results)} calls echoed the tone.")

    if not args.once:
        print(
            "\nThe echo agent stays up. Call it, for example:\n"
            f"  sipp -sn uac -s echo {sip_host}:{sip_port} -m 1\n"
            f"  or any SIP phone at sip:echo@{sip_host}:{sip_port}\n"
            "Press Ctrl+C to stop.",
            flush=True,
        )
        from trunkline.cli import _wait_for_signal

        await _wait_for_signal()
    await server.stop()
    sys.stdout.flush()
    return 1 if failed else 0
