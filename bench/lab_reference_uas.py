"""A reference callee whose RTP to the lab carries known, recorded loss and jitter.

Used by ``bench/lab_accuracy.py`` (as its own process) and by
``tests/lab/test_lab_accuracy.py`` (in the test's loop) to check the lab's RFC 3550 loss
and jitter figures against the impairment that was actually applied.

Theory of operation
-------------------
It is built from our own pieces: ``SipCalls`` answers the lab's INVITE with a
``ReferenceLeg``, the lab's own RTP leg (it streams the codec's silence every 20 ms),
with a seeded :class:`~trunkline.lab.netem.PacketScheduler` on its send path: the
callee-to-lab direction, the one the lab's ear measures. The scheduler is a
``RecordingScheduler``, which keeps, per packet, its sequence number, its nominal time
on the 20 ms grid, whether the loss model dropped it and the send time the jitter
model gave it; the leg also keeps when each packet really left.

From that record, ``expected`` computes what an exact receiver must report for the
packets the lab counted (the range from its first to its highest sequence number):

- loss: the share of packets in that range that did not leave during the call:
  dropped by the loss model, or (rarely, at the very end) still held back by the
  jitter when the call ended;
- jitter: the RFC 3550 A.8 estimate (transit differences, gain 1/16) over the kept
  packets in the order they were scheduled to leave, from the scheduled times (what
  was injected) and from the real send times (what this process managed to do; the
  difference is the sender's own timer error, about half a millisecond).

The A.8 estimate is an exponential average over the last ~16 packets, so one call's
figure scatters around its mean (for exponential delays the mean is the delay's mean,
``jitter_ms``); comparing the lab with the same estimate over the same packets is what
tells the lab's error apart from that scatter.

Run alone (the bench does)::

    python bench/lab_reference_uas.py --jitter-ms 10 --loss-percent 5 --out records.json

It prints ``reference: sip:HOST:PORT`` once listening, and writes every finished call's
record to ``--out`` when it gets SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import Any, ClassVar

from trunkline.lab.legs import LabRtpLeg
from trunkline.lab.loss import Bernoulli, GilbertElliott, LossModel
from trunkline.lab.netem import PacketScheduler
from trunkline.media.audio import SAMPLE_RATE
from trunkline.net.calls import SipCalls
from trunkline.net.leg import MediaLeg
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_pool import RtpPortPool

HOST = "127.0.0.1"
_SEQ = struct.Struct("!H")
SAMPLES_PER_PACKET = 160


@dataclass
class Impairment:
    """What the callee does to its packets: a loss model (made fresh per call) and jitter."""

    seed: int = 1
    loss_percent: float = 0.0
    ge: tuple[float, float] | None = None  # Gilbert-Elliott (p, r), h = 0, k = 1
    jitter_ms: float = 0.0

    def loss_model(self) -> LossModel | None:
        if self.ge is not None:
            return GilbertElliott(*self.ge)
        return Bernoulli.percent(self.loss_percent) if self.loss_percent else None

    @property
    def nominal_loss_pct(self) -> float:
        model = self.loss_model()
        return 100.0 * model.loss_rate if model is not None else 0.0

    def describe(self) -> str:
        loss = (
            f"Gilbert-Elliott p={self.ge[0]} r={self.ge[1]}"
            if self.ge
            else f"random {self.loss_percent}%"
        )
        return (
            f"{loss} (long-run {self.nominal_loss_pct:.2f}%), "
            f"exponential jitter, mean {self.jitter_ms} ms"
        )


class RecordingScheduler(PacketScheduler[bytes]):
    """A packet scheduler that keeps what it did to every packet (see the module doc)."""

    def __init__(self, seed: tuple[int, ...], impairment: Impairment) -> None:
        super().__init__(seed, loss=impairment.loss_model(), jitter_ms=impairment.jitter_ms)
        #: (sequence number, nominal time, lost) per pushed packet, in push order.
        self.pushes: list[tuple[int, float, bool]] = []
        #: sequence number -> the send time the jitter model gave it.
        self.scheduled: dict[int, float] = {}

    def push(self, nominal_time: float, packet: bytes) -> None:
        dropped = self.stats.dropped
        super().push(nominal_time, packet)
        seq = _SEQ.unpack_from(packet, 2)[0]
        self.pushes.append((seq, nominal_time, self.stats.dropped > dropped))

    def pop_due(self, now: float) -> list[tuple[float, bytes]]:
        out = super().pop_due(now)
        for send_time, packet in out:
            self.scheduled[_SEQ.unpack_from(packet, 2)[0]] = send_time
        return out


@dataclass
class StreamRecord:
    """One call's outbound stream as the callee impaired and sent it."""

    call_id: str
    pushes: list[tuple[int, float, bool]]
    scheduled: dict[int, float]
    sent_at: dict[int, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "pushes": self.pushes,
            "scheduled": list(self.scheduled.items()),
            "sent_at": list(self.sent_at.items()),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StreamRecord:
        return cls(
            doc["call_id"],
            [(int(s), float(t), bool(lost)) for s, t, lost in doc["pushes"]],
            {int(s): float(t) for s, t in doc["scheduled"]},
            {int(s): float(t) for s, t in doc["sent_at"]},
        )


@dataclass
class Expected:
    """What an exact receiver reports for the packets the lab counted."""

    packets: int  # in the lab's range (its RFC 3550 "expected")
    lost: int  # of those, dropped by the loss model
    sent: int  # of those, sent (kept, and not still held by the jitter when the call ended)
    jitter_scheduled_ms: float  # A.8 over the injected send times
    jitter_sent_ms: float  # A.8 over the real send times
    mean_delay_ms: float  # mean injected extra delay of the kept packets

    @property
    def loss_pct(self) -> float:
        """Packets the impairment kept from the lab during the call: dropped by the loss
        model, or delayed by the jitter past the call's end (any receiver counts those
        as lost: it cannot wait for them)."""
        return 100.0 * (self.packets - self.sent) / self.packets if self.packets else 0.0

    @property
    def dropped_pct(self) -> float:
        """Packets the loss model dropped."""
        return 100.0 * self.lost / self.packets if self.packets else 0.0


def rfc3550_jitter_ms(arrivals: list[tuple[float, int]]) -> float:
    """RFC 3550 A.8 interarrival jitter (ms) of ``(arrival_s, rtp_timestamp)`` in arrival order."""
    jitter = 0.0
    previous: float | None = None
    for arrival, ts in arrivals:
        transit = arrival * SAMPLE_RATE - ts
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
    return jitter / SAMPLE_RATE * 1000


def expected(record: StreamRecord, lab_expected: int) -> Expected:
    """The loss and jitter an exact receiver reports over the lab's ``lab_expected`` packets.

    The lab's range starts at the lowest sequence number it heard (the first packet
    the callee sent at all) and spans ``lab_expected`` numbers (RFC 3550 A.3:
    highest - lowest + 1).
    """
    pushes = record.pushes
    if not pushes or not record.scheduled:
        return Expected(0, 0, 0, 0.0, 0.0, 0.0)
    first_seq = pushes[0][0]
    index = {seq: (i, nominal, lost) for i, (seq, nominal, lost) in enumerate(pushes)}
    base = min(index[seq][0] for seq in record.scheduled)
    in_range = pushes[base : base + lab_expected]
    lost = sum(1 for _, _, dropped in in_range if dropped)
    kept = [(seq, nominal) for seq, nominal, dropped in in_range if not dropped]
    delays: list[float] = []
    scheduled: list[tuple[float, int]] = []
    sent: list[tuple[float, int]] = []
    for seq, nominal in kept:
        at = record.scheduled.get(seq)
        if at is None:  # still held when the call ended: never sent
            continue
        ts = ((seq - first_seq) & 0xFFFF) * SAMPLES_PER_PACKET
        delays.append(at - nominal)
        scheduled.append((at, ts))
        sent.append((record.sent_at.get(seq, at), ts))
    scheduled.sort()
    sent.sort()
    return Expected(
        packets=len(in_range),
        lost=lost,
        sent=len(scheduled),
        jitter_scheduled_ms=rfc3550_jitter_ms(scheduled),
        jitter_sent_ms=rfc3550_jitter_ms(sent),
        mean_delay_ms=1000 * sum(delays) / len(delays) if delays else 0.0,
    )


class ReferenceLeg(LabRtpLeg):
    """The callee's leg: silence every 20 ms through a recording scheduler.

    ``impairment`` and ``records`` are set on a subclass per server (see
    ``ReferenceServer``); each leg gets its own loss chain and random streams.
    """

    impairment: ClassVar[Impairment] = Impairment()
    records: ClassVar[list[StreamRecord]] = []
    counter: ClassVar[list[int]] = [0]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        n = self.counter[0]
        self.counter[0] += 1
        self.recorder = RecordingScheduler((self.impairment.seed, n), self.impairment)
        self.netem = self.recorder
        self.sent_at: dict[int, float] = {}

    def _send(self, packet: bytes) -> None:
        super()._send(packet)
        if len(packet) >= 4:
            self.sent_at[_SEQ.unpack_from(packet, 2)[0]] = monotonic()

    def close_media(self) -> None:
        if self.sock is not None:
            rec = self.recorder
            self.records.append(StreamRecord(self.call_id, rec.pushes, rec.scheduled, self.sent_at))
        super().close_media()


async def _wait_for_hangup(leg: MediaLeg) -> None:
    await leg.wait_closed()


@dataclass
class ReferenceServer:
    """The callee's SIP stack; ``records`` fills as calls end."""

    impairment: Impairment
    rtp_ports: tuple[int, int] = (44000, 44999)
    records: list[StreamRecord] = field(default_factory=list)
    calls: SipCalls | None = None
    address: tuple[str, int] = (HOST, 0)

    async def start(self, pacer: Pacer, port: int = 0) -> tuple[str, int]:
        leg_class = type(
            "BoundReferenceLeg",
            (ReferenceLeg,),
            {"impairment": self.impairment, "records": self.records, "counter": [0]},
        )
        self.calls = SipCalls(
            host=HOST,
            port=port,
            pool=RtpPortPool(HOST, *self.rtp_ports),
            pacer=pacer,
            handler=_wait_for_hangup,
            leg_class=leg_class,
        )
        self.address = await self.calls.start()
        return self.address

    async def close(self) -> None:
        if self.calls is not None:
            await self.calls.close()


@asynccontextmanager
async def reference_server(
    impairment: Impairment, rtp_ports: tuple[int, int] = (44000, 44999)
) -> AsyncIterator[ReferenceServer]:
    """The reference callee in the running loop (for tests), with its own pacer."""
    pacer = Pacer()
    pacer.start()
    server = ReferenceServer(impairment, rtp_ports)
    try:
        await server.start(pacer)
        yield server
    finally:
        await server.close()
        pacer.stop()


async def _main(args: argparse.Namespace) -> list[StreamRecord]:
    ge = (args.ge_p, args.ge_r) if args.ge_p is not None else None
    impairment = Impairment(args.seed, args.loss_percent, ge, args.jitter_ms)
    pacer = Pacer()
    pacer.start()
    lo, hi = (int(x) for x in args.rtp_ports.split("-"))
    server = ReferenceServer(impairment, (lo, hi))
    host, port = await server.start(pacer, args.port)
    print(f"reference: sip:{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()
    pacer.stop()
    return server.records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rtp-ports", default="44000-44999")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss-percent", type=float, default=0.0)
    parser.add_argument("--ge-p", type=float, default=None, help="Gilbert-Elliott p")
    parser.add_argument("--ge-r", type=float, default=None, help="Gilbert-Elliott r")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        records = runner.run(_main(args))
    Path(args.out).write_text(json.dumps([r.as_json() for r in records]))


if __name__ == "__main__":
    main()
