"""How exactly the pretest lab measures: known, injected delays and impairments, measured back.

Run:  .venv/bin/python bench/lab_accuracy.py --calls 20 --concurrency 5

Part 1, timing. ``trunkline serve --app delay FIRST_WORD_MS REPLY_MS`` (the reference
agent: it greets, and answers every utterance with a tone, after exactly those delays,
timed to the sample) runs in its own process pinned to CPU 0; the lab runs here, on CPU
1. ``--calls`` calls of three turns each, ``--concurrency`` at a time, over SIP and over
WebSocket. Printed: time to first word and turn latency, p50/p95, and the p50's error
against the injected values (the issue's bar: +-10 ms at p50). Also the lab's own
send lateness p99 and CPU, and the reference's CPU: a saturated side makes the figures
about itself.

Part 2, loss and jitter. A reference callee (``bench/lab_reference_uas.py``) in its own
process streams to the lab through a seeded loss model and exponential jitter, and
records per packet what it did. Per impairment, printed: the model's long-run loss,
the share it really dropped, the share the lab could not receive (dropped, or held past
the call's end), and the lab's figure; for jitter, the model's mean delay (= the
RFC 3550 jitter of independent exponential delays), the A.8 estimate over the
injected schedule, over the packets as really sent, and the lab's figure, as means
over the calls and as the median per-call error. The bar: within 10%.

Traffic stays on 127.0.0.1. Every loop is bounded by the call count and a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

from trunkline.lab.engine import Lab, Target
from trunkline.lab.results import CallResult
from trunkline.lab.script import CallScript, HangUp, Listen, Say

sys.path.insert(0, str(Path(__file__).parent))
import lab_reference_uas as ref  # noqa: E402  (a helper beside this script)
from proc_stats import own_cpu_s, pin, proc_cpu_s  # noqa: E402

HOST = "127.0.0.1"
LAB_RTP = (45000, 49999)
SERVER_RTP = "40000-44999"
REFERENCE_RTP = "50000-54999"
CALL_DEADLINE_S = 120.0
#: Over WebSocket the delay app queues its reply when the caller's audio arrives, and
#: the server sends it on its next pacer tick, 0-20 ms later (uniform): 10 ms on average.
WS_REFERENCE_LATE_MS = 10.0

THREE_TURNS = CallScript(
    "three turns",
    seed=7,
    steps=(
        Say("I would like my order status"),
        Say("yes please"),
        Say("thank you very much"),
        HangUp(),
    ),
)


@contextlib.asynccontextmanager
async def child(cmd: Sequence[str], ready: bytes) -> AsyncIterator[tuple[int, bytes]]:
    """A target process pinned to CPU 0; yields (pid, the stdout line matching ``ready``)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=lambda: pin(0),
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{cmd[3:5]} exited before it was ready")
                if re.search(ready, line):
                    break
        yield proc.pid, line
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_calls(lab: Lab, script: CallScript, calls: int, concurrency: int) -> list[CallResult]:
    """``calls`` calls, ``concurrency`` at a time, each bounded by CALL_DEADLINE_S."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> CallResult:
        async with gate:
            return await lab.call(script, i)

    async with asyncio.timeout(CALL_DEADLINE_S + calls * 10):
        return await asyncio.gather(*(one(i) for i in range(calls)))


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- part 1: timing ------------------------------------------------------------------------


@dataclass
class TimingRow:
    transport: str
    calls: int
    failed: int
    ttfw: list[float]
    turns: list[float]
    lab_p99_ms: float
    lab_cpu: float
    target_cpu: float


async def timing(transport: str, args: argparse.Namespace) -> TimingRow:
    cmd = [
        sys.executable, "-m", "trunkline.cli", "serve",
        "--app", "delay", str(args.first_word_ms), str(args.reply_ms),
        "--sip", f"{HOST}:0", "--http", f"{HOST}:0", "--rtp-ports", SERVER_RTP,
    ]  # fmt: skip
    async with child(cmd, rb"sip:") as (pid, line):
        sip = re.search(rb"sip:([0-9.]+):(\d+)", line)
        http = re.search(rb"http://([0-9.]+):(\d+)", line)
        assert sip and http, line
        text = (
            f"sip:agent@{sip[1].decode()}:{int(sip[2])}"
            if transport == "sip"
            else f"ws://{http[1].decode()}:{int(http[2])}/media"
        )
        async with Lab(Target.parse(text), rtp_ports=LAB_RTP) as lab:
            await lab.prepare([THREE_TURNS])
            lab.pacer.lateness.reset()
            cpu0, tcpu0, t0 = own_cpu_s(), proc_cpu_s(pid), monotonic()
            results = await run_calls(lab, THREE_TURNS, args.calls, args.concurrency)
            wall = monotonic() - t0
            cpu, tcpu = own_cpu_s() - cpu0, proc_cpu_s(pid) - tcpu0
            p99 = lab.pacer.lateness.percentile(99) * 1000
    ok = [r for r in results if r.failure is None]
    return TimingRow(
        transport=transport,
        calls=len(results),
        failed=len(results) - len(ok),
        ttfw=[r.time_to_first_word_ms for r in ok if r.time_to_first_word_ms is not None],
        turns=[lat for r in ok for lat in r.turn_latencies_ms],
        lab_p99_ms=p99,
        lab_cpu=cpu / wall,
        target_cpu=tcpu / wall,
    )


def print_timing(rows: list[TimingRow], args: argparse.Namespace) -> None:
    print(
        f"\nPart 1: timing against `serve --app delay {args.first_word_ms} {args.reply_ms}`"
        f" ({args.calls} calls x 3 turns, {args.concurrency} at a time)"
    )
    print(
        "transport  calls failed | first word p50   p95  err@p50 |"
        " turn p50   p95  err@p50 (n) | lab late-p99 CPU | target CPU"
    )
    for r in rows:
        f50, f95 = pct(r.ttfw, 50), pct(r.ttfw, 95)
        t50, t95 = pct(r.turns, 50), pct(r.turns, 95)
        print(
            f"{r.transport:<9} {r.calls:>6} {r.failed:>6} |"
            f" {f50:>12.1f} {f95:>5.1f} {f50 - args.first_word_ms:>+8.1f} |"
            f" {t50:>8.1f} {t95:>5.1f} {t50 - args.reply_ms:>+8.1f} ({len(r.turns)}) |"
            f" {r.lab_p99_ms:>8.1f} ms {r.lab_cpu * 100:>4.0f}% | {r.target_cpu * 100:>5.0f}%",
            flush=True,
        )
    if any(r.transport == "ws" for r in rows):
        print(
            "  ws: the reference itself answers 0-20 ms late over WebSocket (it cannot see"
            " the server's send tick; apps/delay.py), +10 ms on average: the lab's own"
            f" error at p50 is about the ws err@p50 minus {WS_REFERENCE_LATE_MS:g} ms."
        )


# --- part 2: loss and jitter ----------------------------------------------------------------


@dataclass
class MediaRow:
    impairment: ref.Impairment
    calls: int
    lab_loss: list[float]
    injected_dropped: list[float]
    receivable_loss: list[float]  # dropped + held past the end: what any receiver sees
    lab_jitter: list[float]
    jitter_scheduled: list[float]
    jitter_sent: list[float]
    mean_delay: list[float]


async def media(impairment: ref.Impairment, args: argparse.Namespace) -> MediaRow:
    script = CallScript(
        "listen",
        seed=1,
        steps=(Listen(timeout_s=args.seconds),),
        reply_timeout_s=0.1,  # the callee streams silence: no reply to wait for
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "records.json"
        cmd = [
            sys.executable, str(Path(__file__).parent / "lab_reference_uas.py"),
            "--seed", str(impairment.seed), "--jitter-ms", str(impairment.jitter_ms),
            "--loss-percent", str(impairment.loss_percent), "--rtp-ports", REFERENCE_RTP,
            "--out", str(out),
        ]  # fmt: skip
        if impairment.ge is not None:
            cmd += ["--ge-p", str(impairment.ge[0]), "--ge-r", str(impairment.ge[1])]
        async with child(cmd, rb"reference: sip:") as (_pid, line):
            found = re.search(rb"sip:([0-9.]+):(\d+)", line)
            assert found, line
            target = Target.parse(f"sip:agent@{found[1].decode()}:{int(found[2])}")
            async with Lab(target, rtp_ports=LAB_RTP) as lab:
                results = await run_calls(lab, script, args.calls, args.concurrency)
            await asyncio.sleep(0.5)  # the callee keeps a record when the BYE reaches it
        records = {
            r.call_id: r for r in map(ref.StreamRecord.from_json, json.loads(out.read_text()))
        }
    row = MediaRow(impairment, len(results), [], [], [], [], [], [], [])
    for result in results:
        record = records.get(result.agent_call_id)
        if record is None or not result.media.packets_expected:
            continue
        exp = ref.expected(record, result.media.packets_expected)
        row.lab_loss.append(result.media.loss_pct)
        row.injected_dropped.append(exp.dropped_pct)
        row.receivable_loss.append(exp.loss_pct)
        row.lab_jitter.append(result.media.jitter_ms)
        row.jitter_scheduled.append(exp.jitter_scheduled_ms)
        row.jitter_sent.append(exp.jitter_sent_ms)
        row.mean_delay.append(exp.mean_delay_ms)
    return row


def _rel(measured: float, expected: float) -> str:
    if expected == 0:
        return "   n/a"
    return f"{100 * (measured - expected) / expected:>+5.1f}%"


def _median_pct(shares: list[float]) -> str:
    return f"{100 * statistics.median(shares):.1f}%" if shares else "n/a"


def print_media(rows: list[MediaRow], args: argparse.Namespace) -> None:
    print(f"\nPart 2: loss and jitter on the callee-to-lab RTP ({args.seconds:g} s calls)")
    for r in rows:
        imp = r.impairment
        n = len(r.lab_loss)
        mean = statistics.fmean
        print(f"- {imp.describe()}, seed {imp.seed}: {n} of {r.calls} calls compared")
        lab_l, drop_l, recv_l = mean(r.lab_loss), mean(r.injected_dropped), mean(r.receivable_loss)
        per_call = [abs(a - b) / b for a, b in zip(r.lab_loss, r.receivable_loss, strict=True) if b]
        print(
            f"  loss %: model {imp.nominal_loss_pct:.2f} | dropped {drop_l:.2f}"
            f" | not receivable {recv_l:.2f} | lab {lab_l:.2f}"
            f" (vs dropped {_rel(lab_l, drop_l)}, vs model {_rel(lab_l, imp.nominal_loss_pct)};"
            f" per call |err| vs receivable: median {_median_pct(per_call)})"
        )
        lab_j, sched_j, sent_j = mean(r.lab_jitter), mean(r.jitter_scheduled), mean(r.jitter_sent)
        per_sched = [
            abs(a - b) / b for a, b in zip(r.lab_jitter, r.jitter_scheduled, strict=True) if b
        ]
        per_sent = [abs(a - b) / b for a, b in zip(r.lab_jitter, r.jitter_sent, strict=True) if b]
        print(
            f"  jitter ms (RFC 3550 A.8, mean of calls): model {imp.jitter_ms:.2f}"
            f" (injected mean delay {mean(r.mean_delay):.2f}) | A.8 of injected schedule"
            f" {sched_j:.2f} | A.8 as sent {sent_j:.2f} | lab {lab_j:.2f}"
            f" (vs schedule {_rel(lab_j, sched_j)}, vs model {_rel(lab_j, imp.jitter_ms)})"
        )
        print(
            f"  per call |lab - expected| / expected, median (max): vs schedule"
            f" {_median_pct(per_sched)} ({100 * max(per_sched or [0]):.1f}%),"
            f" vs as sent {_median_pct(per_sent)} ({100 * max(per_sent or [0]):.1f}%)",
            flush=True,
        )


async def main_async(args: argparse.Namespace) -> None:
    pin(1)
    if "timing" in args.parts:
        rows = [await timing(t, args) for t in args.transports]
        print_timing(rows, args)
    if "media" in args.parts:
        impairments = [
            ref.Impairment(seed=101, loss_percent=5.0, jitter_ms=10.0),
            ref.Impairment(seed=102, ge=(0.02, 0.3), jitter_ms=20.0),
            ref.Impairment(seed=103, loss_percent=1.0, jitter_ms=5.0),
        ]
        print_media([await media(i, args) for i in impairments], args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--first-word-ms", type=int, default=300)
    parser.add_argument("--reply-ms", type=int, default=700)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of part 2's calls")
    parser.add_argument("--transports", nargs="+", default=["sip", "ws"], choices=["sip", "ws"])
    parser.add_argument(
        "--parts", nargs="+", default=["timing", "media"], choices=["timing", "media"]
    )
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
