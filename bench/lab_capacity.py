"""How many concurrent callers one lab process sustains, RTP both ways, at lateness p99 <= 5 ms.

Run:  .venv/bin/python bench/lab_capacity.py --callers 250 500 750 1000 1250 --window 30

The cheap target is SIPp (Debian ``sip-tester``) as the callee, with ``-rtp_echo``: it
answers every INVITE (a scenario written beside the run, like the interop tests'
``uas.xml``) and a C thread sends every RTP packet back to its source from one socket,
so the target costs little and never decodes. It runs pinned to CPU 0; this process,
the lab, runs pinned to CPU 1 (the machine has two cores).

For each load N the lab (``trunkline.lab.engine.Lab``, its SIP stack, pacer and RTP
legs, as ``trunkline pretest`` uses them) places N calls at ``--cps`` a second, each a
long conversation: the caller says a line (espeak-ng, pre-encoded), hears it echoed,
waits for the "agent" to fall quiet, pauses, says the next, for the whole window. After
the ramp and ``--warmup`` it measures a steady ``--window``:

- the lab process's own CPU (user + system, ``resource.getrusage``), and
  **callers per core** = N / (lab CPU seconds per wall second);
- the lab pacer's **send lateness** p50/p99/max (its own histogram, the figure
  ``trunkline pretest`` watches to call a run overloaded); the knee is the largest N
  whose p99 is <= 5 ms;
- RTP **loss** the lab's legs counted (RFC 3550 expected vs received) in the window;
- SIPp's CPU, from /proc: a target near 100% of its core would make the loss its own.

``--profile N`` runs cProfile over the window at load N and prints the top functions
(cProfile roughly doubles the CPU per call: it ranks costs, it does not measure them).

Traffic stays on 127.0.0.1. Every loop is bounded by the call count and the window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, process_time

from proc_stats import own_cpu_s, pin, proc_cpu_s
from trunkline.lab.engine import Lab, Target
from trunkline.lab.legs import LabRtpLeg
from trunkline.lab.results import CallResult
from trunkline.lab.script import CallScript, Say

HOST = "127.0.0.1"
LAB_RTP = (20000, 39999)
LATE_P99_MS = 5.0
LINES = (
    "I would like my order status",
    "yes please",
    "can you tell me when it will arrive",
    "thank you very much",
)

# SIPp as the callee: 100/180/200 with the first offered payload type on its media
# port, then wait for the caller's BYE. With -rtp_echo every RTP packet arriving on
# [media_port] goes back to its source.
UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="lab capacity callee">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP ([0-9]+)" search_in="body" check_it="true"
            assign_to="mline,pt"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]></send>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[media_ip_type] [media_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP [$pt]
      a=sendrecv

    ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
  <timewait milliseconds="500"/>
  <Reference variables="mline"/>
</scenario>
"""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sipp_callee(workdir: Path, no_pin: bool) -> subprocess.Popen[bytes]:  # type: ignore[misc]
    """SIPp answering on a free port, echoing RTP; pinned to CPU 0 unless ``no_pin``."""
    binary = shutil.which("sipp")
    if binary is None:
        raise SystemExit("needs SIPp (Debian package sip-tester)")
    (workdir / "uas.xml").write_text(UAS_XML)
    port, media = free_port(), free_port()
    cmd = [
        binary, "-sf", "uas.xml", "-i", HOST, "-mi", HOST, "-p", str(port),
        "-mp", str(media), "-rtp_echo", "-t", "u1", "-nostdin", "-trace_err",
        "-error_file", "errors.log",
    ]  # fmt: skip
    with open(workdir / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=None if no_pin else lambda: pin(0),
        )
    proc.port = port  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def conversation(seconds: float) -> CallScript:
    """Lines said one after another (each after its echo fell quiet) for ``seconds``."""
    steps: list[Say] = [Say(LINES[0], gap_s=0.0, wait_for_agent=False)]
    # A line and its wait take about 2.5 s; more steps than the call can reach.
    steps += [Say(LINES[i % len(LINES)]) for i in range(1, int(seconds / 1.5) + 2)]
    return CallScript("capacity", seed=1, steps=tuple(steps), max_duration_s=seconds)


@dataclass
class Point:
    callers: int
    up: int
    lab_cpu: float
    target_cpu: float
    late_p50_ms: float
    late_p99_ms: float
    late_max_ms: float
    loss_pct: float
    packets_in: int
    packets_out: int
    cpu_s: float
    failed: dict[str, int]

    @property
    def per_core(self) -> float:
        return self.up / self.lab_cpu if self.lab_cpu else 0.0

    @property
    def us_per_packet(self) -> float:
        """Lab CPU per RTP packet handled (sent or received), everything included."""
        packets = self.packets_in + self.packets_out
        return 1e6 * self.cpu_s / packets if packets else 0.0

    @property
    def per_core_at_rate(self) -> float:
        """Callers per core at the full packet rate (50 out + 50 in a second each): the
        figure a starved lab, which handled fewer packets than its calls should have,
        cannot inflate."""
        return 1e6 / (self.us_per_packet * 100) if self.us_per_packet else 0.0


def rx_snapshot(lab: Lab) -> dict[int, tuple[int, int, int]]:
    """Per live RTP leg: (expected, received, sent) so far."""
    assert lab.sip is not None
    snap = {}
    for call in lab.sip.calls.values():
        leg = call.leg
        if isinstance(leg, LabRtpLeg):
            snap[id(leg)] = (leg.rx.expected, leg.rx.received, leg.stats.sent)
    return snap


def rx_deltas(
    before: dict[int, tuple[int, int, int]], after: dict[int, tuple[int, int, int]]
) -> tuple[int, int, int, int]:
    """(legs up throughout, expected, received, sent) in between, over those legs."""
    legs = expected = received = sent = 0
    for key, (e1, r1, s1) in after.items():
        if key in before:
            e0, r0, s0 = before[key]
            legs += 1
            expected += e1 - e0
            received += r1 - r0
            sent += s1 - s0
    return legs, expected, received, sent


async def run_point(n: int, args: argparse.Namespace) -> Point:
    with tempfile.TemporaryDirectory() as tmp, sipp_callee(Path(tmp), args.no_pin) as sipp:
        await asyncio.sleep(0.5)
        ramp_s = n / args.cps
        # Long enough for a ramp three times slower than asked; the calls are hung up
        # when the window is over.
        script = conversation(3 * ramp_s + args.warmup + args.window + 60.0)
        target = Target.parse(f"sip:sipp@{HOST}:{sipp.port}")  # type: ignore[attr-defined]
        async with Lab(target, rtp_ports=LAB_RTP, setup_timeout_s=20.0) as lab:
            await lab.prepare([script])
            tasks: list[asyncio.Task[CallResult]] = []
            for i in range(n):
                tasks.append(asyncio.create_task(lab.call(script, i)))
                await asyncio.sleep(1 / args.cps)
            await asyncio.sleep(args.warmup)
            # CPU time, not wall time: on a shared machine a preempted call would
            # otherwise be charged the time other processes ran.
            profile = cProfile.Profile(process_time) if n == args.profile else None
            before = rx_snapshot(lab)
            lab.pacer.lateness.reset()
            cpu0, tcpu0, t0 = own_cpu_s(), proc_cpu_s(sipp.pid), monotonic()
            if profile is not None:
                profile.enable()
            await asyncio.sleep(args.window)
            if profile is not None:
                profile.disable()
            wall = monotonic() - t0
            cpu, tcpu = own_cpu_s() - cpu0, proc_cpu_s(sipp.pid) - tcpu0
            late = lab.pacer.lateness
            p50, p99 = late.percentile(50) * 1000, late.percentile(99) * 1000
            late_max = _max_ms(late.counts)
            legs, expected, received, sent = rx_deltas(before, rx_snapshot(lab))
            # End every call now (a starved lab may run its ramp late: a fixed call
            # length could end the first calls inside the window).
            assert lab.sip is not None
            for call in list(lab.sip.calls.values()):
                if call.leg is not None:
                    await call.leg.hangup("window over")
            results = await asyncio.gather(*tasks)
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile_top)
        print(out.getvalue())
    failed: dict[str, int] = {}
    for r in results:
        if args.verbose and r.failure != "max_duration":
            print(r.index, r.failure, r.failure_detail, r.duration_ms, r.hangup_by, len(r.turns))
        if r.failure not in (None, "max_duration", "expectation", "stream_closed"):
            failed[str(r.failure)] = failed.get(str(r.failure), 0) + 1
    return Point(
        callers=n,
        up=legs,
        lab_cpu=cpu / wall,
        target_cpu=tcpu / wall,
        late_p50_ms=p50,
        late_p99_ms=p99,
        late_max_ms=late_max,
        loss_pct=100 * (expected - received) / expected if expected > 0 else 0.0,
        packets_in=received,
        packets_out=sent,
        cpu_s=cpu,
        failed=failed,
    )


def _max_ms(counts: list[int]) -> float:
    from trunkline.net.pacer import HIST_BUCKET_S

    top = max((i for i, c in enumerate(counts) if c), default=-1)
    return (top + 1) * HIST_BUCKET_S * 1000


def print_point(p: Point) -> None:
    knee = "ok" if p.late_p99_ms <= LATE_P99_MS else "LATE"
    print(
        f"{p.callers:>7} {p.up:>5} {p.lab_cpu * 100:>7.1f}% {p.per_core:>9.0f}"
        f" {p.late_p50_ms:>6.1f} {p.late_p99_ms:>6.1f} {p.late_max_ms:>7.1f} {knee:>4}"
        f" {p.loss_pct:>7.3f}% {p.packets_in / 1000:>6.0f}k {p.packets_out / 1000:>6.0f}k"
        f" {p.us_per_packet:>6.2f} {p.per_core_at_rate:>8.0f} {p.target_cpu * 100:>6.1f}%"
        f"{' failed=' + str(p.failed) if p.failed else ''}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    if not args.no_pin:
        pin(1)
    print(
        "callers    up  labCPU  per-core  late-p50  p99    max(ms)  SLO     loss      in     out"
        "  us/pkt  per-core@rate  sippCPU"
    )
    points: list[Point] = []
    for _ in range(args.repeat):
        for n in args.callers:
            point = await run_point(n, args)
            points.append(point)
            print_point(point)
    held = [p.callers for p in points if p.late_p99_ms <= LATE_P99_MS]
    print(f"largest load with lateness p99 <= {LATE_P99_MS:g} ms: {max(held, default=0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, nargs="+", default=[250, 500, 750, 1000, 1250])
    parser.add_argument("--window", type=float, default=30.0, help="steady window, seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--cps", type=float, default=100.0, help="call setup rate")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=int, default=None, metavar="N", help="cProfile at N")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument(
        "--no-pin", action="store_true", help="let the scheduler place lab and SIPp"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every call")
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
