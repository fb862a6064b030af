"""Microseconds per 20 ms frame on the voice-agent server's per-frame path, step by step.

Run:  .venv/bin/python bench/agent_frame_path.py [--number 20000] [--repeat 7]

``agent_density.py`` measures whole servers, which on a shared machine moves by 10-20%
from run to run; these per-step timings (the process's CPU time, best of ``--repeat``
runs of ``--number`` calls, ``timeit``) are steadier, so they are what a change to the
frame path is judged on first. Each step is the code a ``trunkline serve --agent``
process runs per frame of one Media Streams call:

- inbound, per message from the caller (Twilio's shape, 160 bytes of u-law): the codec
  (``decode``; ``inbound_payload``, the server's fast path, where it exists), then the
  whole ``WsMediaLeg`` message handler (codec, u-law decode, the sink), with the VAD as
  the sink on a quiet frame and on a speech frame;
- the VAD alone (``VadProcessor.process_frame``): a silent frame, line noise at
  -60 dBFS, a speech frame;
- outbound, per pacer tick with a frame queued: ``WsMediaLeg.on_tick`` (u-law encode,
  the ``media`` message, the WebSocket frame) into a socket that only counts bytes.

It runs on the tree it is started from, so the same script measures before and after a
change (``PYTHONPATH=<old checkout>/src``). Functions an older tree lacks are skipped.
Figures are per call of the step; the whole server's CPU per call-second is
``agent_density.py``'s (the event loop, system calls and aiohttp's reader are not here).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSMsgType
from aiohttp._websocket.writer import WebSocketWriter

from trunkline.pipeline.processor import Pipeline, Processor
from trunkline.pipeline.vad import VadProcessor
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode
from trunkline.wsmedia import codec
from trunkline.wsmedia import events as wire

STREAM_SID = "MZ" + "0123456789abcdef" * 2


class NullSink(Processor):
    """The end of the chain: drops every frame."""

    def process_frame(self, frame: object) -> None:
        pass


class CountingTransport:
    """Just enough of an asyncio transport for the server's frame writer."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)


class WriterSocket:
    """Just enough of aiohttp's WebSocketResponse for ``WsMediaLeg``: ``send_str`` is
    aiohttp's own (its ``WebSocketWriter`` over ``transport``), as a served call uses."""

    closed = False

    def __init__(self, transport: CountingTransport) -> None:
        protocol = type("Protocol", (), {"_paused": False})()
        self._writer = WebSocketWriter(protocol, transport, use_mask=False)  # type: ignore[arg-type]

    async def send_str(self, text: str) -> None:  # what WebSocketResponse.send_str does
        if not isinstance(text, str):
            raise TypeError(f"data argument must be str ({type(text)!r})")
        await self._writer.send_frame(text.encode("utf-8"), WSMsgType.TEXT)


def frames() -> dict[str, bytes]:
    """PCM frames: digital silence, -60 dBFS noise, and a loud voice-like frame."""
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 32768 * 10 ** (-60 / 20), 160)
    t = np.arange(160) / 8000
    voice = 6000 * np.sin(2 * np.pi * 220 * t) + 2500 * np.sin(2 * np.pi * 660 * t)
    voice += rng.normal(0, 300, 160)

    def pcm(x: np.ndarray) -> bytes:
        return ulaw_decode(ulaw_encode(x.astype(np.int16).tobytes()))

    return {"silence": bytes(320), "noise": pcm(noise), "speech": pcm(voice)}


def media_text(pcm: bytes) -> str:
    return codec.encode_media(STREAM_SID, ulaw_encode(pcm), "inbound", 1234, 24680, 1236)


async def measure(number: int, repeat: int) -> list[tuple[str, float]]:
    from trunkline.net.pacer import Pacer
    from trunkline.net.ws_server import WsMediaLeg

    pcm = frames()
    rows: list[tuple[str, float]] = []

    def time_it(name: str, step: Callable[[], Any]) -> None:
        # CPU time, not wall time: on a shared machine the process is often preempted
        # mid-run, which wall time would count.
        runs = timeit.repeat(step, number=number, repeat=repeat, timer=time.process_time)
        best = min(runs)
        rows.append((name, best / number * 1e6))

    speech_msg, quiet_msg = media_text(pcm["speech"]), media_text(pcm["noise"])
    time_it("codec: decode(media)", lambda: codec.decode(speech_msg))
    fast = getattr(codec, "inbound_payload", None)
    if fast is not None:
        time_it("codec: inbound_payload(media)", lambda: fast(speech_msg))
    ulaw = ulaw_encode(pcm["speech"])
    time_it("u-law decode (160 samples)", lambda: ulaw_decode(ulaw))

    for kind in ("silence", "noise", "speech"):
        vad = VadProcessor(2)
        vad.link(NullSink())
        frame = pcm[kind]
        step = vad.process_frame
        time_it(f"VAD: process_frame({kind})", lambda step=step, frame=frame: step(frame))

    start = wire.Start(STREAM_SID, "CA1")
    transport = CountingTransport()
    sock = WriterSocket(transport)
    try:
        leg = WsMediaLeg(sock, start, Pacer(), transport=transport)  # type: ignore[arg-type,call-arg]
        writer = "frame writer"
    except TypeError:  # an older tree: aiohttp's send_str, run one step each time
        leg = WsMediaLeg(sock, start, Pacer())  # type: ignore[arg-type]
        writer = "send_str"
    leg.attach(Pipeline(VadProcessor(2), NullSink()))
    handle = getattr(leg, "_on_text", None)
    if handle is None:  # an older tree: the body of its receive loop
        def handle(text: str) -> None:
            event = codec.decode(text)
            if type(event) is wire.Media:
                leg._on_media(event)

    for kind, msg in (("quiet", quiet_msg), ("speech", speech_msg)):
        time_it(f"leg inbound: message -> VAD ({kind})", lambda msg=msg: handle(msg))

    out = pcm["speech"]

    def tick() -> None:
        leg._idle_ticks = 0  # the caller's messages would reset it
        leg.out.append(out)
        leg.on_tick(0.0)

    time_it(f"leg outbound: on_tick ({writer})", tick)
    leg._finish("done", "local")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the best is reported")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.number, args.repeat))
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:7.2f} us")


if __name__ == "__main__":
    main()
