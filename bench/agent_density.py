"""How many concurrent voice-agent calls one server process carries, trunkline and Pipecat.

Run:  .venv/bin/python bench/agent_density.py --calls 50 100 200 --window 30 --repeat 3
      (add --pipecat to run Pipecat at each load too, alternating with trunkline)

For each load N it starts a fresh server pinned to CPU 0: trunkline (``agent_server.py``:
``trunkline serve --agent`` on the Acme flow, webrtcvad on, fake ASR and TTS) or Pipecat
(``pipecat_side.py``: FastAPI WebSocket transport, Twilio serializer, the same fakes and
scripted replies). From this process, pinned to CPU 1, N Twilio Media Streams callers
(``agent_load.ScriptedCaller``) connect at ``--cps`` and talk: they speak espeak-ng
renderings, wait for the reply, listen to it, and answer again (``agent_script``).
After ``--warmup`` seconds it measures a steady window:

- server CPU (user+system) from /proc/<pid>/stat; ms CPU per call-second = CPU s /
  (calls x window); calls per core = 1000 / that (what one core would carry at 100%);
- RSS per call = (RSS at N calls - RSS at 0 calls) / N;
- turn latency at the caller (last speech frame sent -> first reply media with speech
  received), and the orchestration overhead: that minus the endpoint silence and the
  fakes' scripted latencies (ASR final after the end of the turn, TTS first byte), at
  p50/p95/p99 over the turns whose speech ended inside the window. trunkline serves a
  reply that opens with a fixed prompt from its prompt cache, without the TTS, so for
  those turns no TTS latency is subtracted (the window opens once every fixed prompt
  of the loop has been said); Pipecat has no such cache and always waits for it;
- the server's event-loop lag (sampled inside it, ``loop_lag``) and, for trunkline,
  its pacer's send lateness (``GET /stats``);
- the generator's own CPU and tick lateness: past 5 ms p99 the row says GENERATOR-BOUND.

With ``--embedded`` (trunkline only) the server runs the real embedded providers, as
``trunkline serve --agent`` does (PocketsphinxASR's worker pool, one child process per
CPU, all pinned to CPU 0 with the server, and EspeakTTS), and the callers' espeak-ng
speech is what the recognizer decodes. Its rows are labelled ``embedded`` and differ so:

- server CPU and RSS include the ASR worker children (psutil, the process tree summed at
  each end of the window; RSS summed over the processes, so pages they share count once
  per process, and RSS per call is the growth of that sum over the idle server's);
- the overhead is the latency minus the endpoint silence only: the real decode and TTS
  are in it;
- after the run, the call records (the server's SQLite store) are read back: a caller
  turn whose reply is not the scripted one (``agent_texts``) is ``misrec`` (over every
  turn of the calls, not only the window's; once a call leaves the script, its later
  replies are all off it, so ``offcalls`` counts the calls that left it).

Traffic goes only to 127.0.0.1; every loop is bounded by the call count or a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil

import agent_script
import pipecat_side
from agent_load import ScriptedCaller
from media_density import HOST, free_port, proc_cpu_s, proc_rss_bytes
from server_process import ServerProcess
from trunkline.net.pacer import Pacer

BENCH = Path(__file__).resolve().parent
SLOW_GENERATOR_P99_S = 0.005
SATURATED_CPU_SHARE = 0.95
#: The knee's SLO on orchestration overhead per turn (the project's target).
SLO_P95_OVERHEAD_MS = 50.0
#: Longest wait for a server to answer /health, and for the callers to connect.
START_TIMEOUT_S = 60.0
#: Replies a call must have heard before the window opens: the loop's first three
#: replies are all it says (then it repeats), so every fixed prompt is cached by then.
WARM_TURNS = 4
#: How long the idle server's CPU is measured before the calls come.
IDLE_S = 3.0
#: Replies the Pipecat side may replay: more turns than any call holds in a window.
SCRIPTED_TURNS = 400


@dataclass
class Point:
    side: str
    calls: int
    up: int
    idle_cpu_share: float  # the same server with no call, before the calls came
    cpu_share: float
    sys_share: float
    rss_per_call_kb: float
    turns: int
    missed: int
    overhead_ms: tuple[float, float, float]  # p50, p95, p99
    latency_p50_ms: float
    lag_ms: tuple[float, float, float]  # p50, p99, max
    pacer_p99_ms: float | None
    gen_cpu_share: float
    gen_p99_ms: float
    failed: int
    notes: list[str] = field(default_factory=list)
    misrec: tuple[int, int, int] | None = None  # (off-script replies, replies, calls off)
    latency_p95_ms: float = np.nan
    # the server's RSS idle and at N calls, and of that its own process's (no children)
    rss_mb: tuple[float, float, float, float] = (np.nan, np.nan, np.nan, np.nan)

    @property
    def cpu_per_call_ms(self) -> float:
        return 1000 * self.cpu_share / max(self.up, 1)

    @property
    def calls_per_core(self) -> float:
        return 1000 / self.cpu_per_call_ms if self.cpu_per_call_ms else 0.0

    @property
    def net_cpu_per_call_ms(self) -> float:
        """CPU per call-second above what the idle server spends (its timers, monitors)."""
        return 1000 * (self.cpu_share - self.idle_cpu_share) / max(self.up, 1)

    @property
    def saturated(self) -> bool:
        return self.cpu_share >= SATURATED_CPU_SHARE

    @property
    def generator_bound(self) -> bool:
        return self.gen_p99_ms > SLOW_GENERATOR_P99_S * 1000


def server_for(side: str, args: argparse.Namespace, workdir: Path) -> ServerProcess:
    port = free_port(socket.SOCK_STREAM)
    timing = ["--asr-final-ms", str(args.asr_final_ms), "--tts-first-byte-ms", str(args.tts_ms)]
    if side == "trunkline":
        cmd = [
            sys.executable, str(BENCH / "agent_server.py"), "--http", f"{HOST}:{port}",
            "--workdir", str(workdir / f"server-{port}"),
        ]  # fmt: skip
        if args.embedded:
            cmd.append("--embedded")
        if args.profile:
            cmd += ["--profile", str(Path(args.profile) / f"trunkline-{args.calls_now}.prof")]
    else:
        python = pipecat_side.ensure_venv()
        cmd = [
            str(python), str(BENCH / "pipecat_bot.py"), "--port", str(port),
            "--script", str(workdir / "script.json"), "--vad", args.pipecat_vad,
            "--endpoint-ms", str(args.endpoint_ms),
        ]  # fmt: skip
    return ServerProcess(side, cmd + timing, port, workdir / f"{side}-{port}.log")


def tree_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its live descendants (the ASR workers)."""
    user = system = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        user, system = user + times.user, system + times.system
    return user, system


def tree_rss_bytes(pid: int) -> int:
    """RSS of a process plus its live descendants' (shared pages counted per process)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def off_script(db: Path, replies: list[str]) -> tuple[int, int, int, Counter[str]]:
    """(replies off the script, replies, calls that left the script, what was heard where
    each call left it) in the call records.

    Each caller entry of a record's transcript is paired with the agent text after it
    (up to the next caller entry) and compared with the scripted reply of that turn.
    """
    off = total = calls_off = 0
    heard: Counter[str] = Counter()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT record FROM call_records").fetchall()
    for (text,) in rows:
        said: list[list[str]] = []
        callers: list[str] = []
        for entry in json.loads(text).get("transcript", []):
            if entry.get("role") == "caller":
                said.append([])
                callers.append(str(entry.get("text", "")))
            elif said and entry.get("text"):
                said[-1].append(entry["text"])
        left = False
        for turn, parts in enumerate(said):
            if not parts:  # the call ended before the reply
                continue
            total += 1
            if turn >= len(replies) or " ".join(parts) != replies[turn]:
                if not left:
                    expected = agent_script.caller_text(turn)
                    heard[f"{expected!r} heard as {callers[turn]!r}"] += 1
                off += 1
                left = True
        calls_off += left
    return off, total, calls_off, heard


async def run_point(side: str, n: int, args: argparse.Namespace, workdir: Path) -> Point:
    args.calls_now = n
    server = server_for(side, args, workdir)
    embedded = side == "trunkline" and args.embedded
    cpu_s = tree_cpu_s if embedded else proc_cpu_s
    rss_bytes = tree_rss_bytes if embedded else proc_rss_bytes
    await server.start()
    pacer = Pacer()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    callers: list[ScriptedCaller] = []
    failed = 0
    try:
        await asyncio.sleep(1.0)
        rss0, own0 = rss_bytes(server.pid), proc_rss_bytes(server.pid)
        idle0, idle_t0 = cpu_s(server.pid), time.monotonic()
        await asyncio.sleep(IDLE_S)
        idle_share = (sum(cpu_s(server.pid)) - sum(idle0)) / (time.monotonic() - idle_t0)
        pacer.start()
        url = f"ws://{HOST}:{server.port}/media"

        async def connect() -> None:
            nonlocal failed
            try:
                callers.append(await ScriptedCaller.connect(url, pacer, session=session))
            except (aiohttp.ClientError, OSError, TimeoutError):
                failed += 1

        connecting = set()
        for _ in range(n):
            connecting.add(asyncio.create_task(connect()))
            await asyncio.sleep(1 / args.cps)
        async with asyncio.timeout(START_TIMEOUT_S):
            await asyncio.gather(*connecting)
        await asyncio.sleep(args.warmup)
        # trunkline's window starts once some call has heard every reply of the loop: its
        # prompt cache then holds every fixed prompt, as in a server that has run a while.
        # A server too loaded to get there in time is measured anyway (and says so).
        deadline = time.monotonic() + START_TIMEOUT_S
        warm = side != "trunkline"
        while not warm and time.monotonic() < deadline:
            warm = max((len(c.turns) for c in callers), default=0) >= WARM_TURNS
            await asyncio.sleep(0.5)

        server.signal(signal.SIGUSR1)
        if side == "trunkline":
            async with session.post(f"http://{HOST}:{server.port}/stats/reset"):
                pass
        pacer.lateness.reset()
        cpu0, gcpu0, t0 = cpu_s(server.pid), time.process_time(), time.monotonic()
        await asyncio.sleep(args.window)
        cpu1, gcpu1, t1 = cpu_s(server.pid), time.process_time(), time.monotonic()
        rss_n, own_n = rss_bytes(server.pid), proc_rss_bytes(server.pid)
        lag = await server.lag()
        pacer_p99 = None
        if side == "trunkline":
            async with session.get(f"http://{HOST}:{server.port}/stats") as resp:
                pacer_p99 = float((await resp.json())["lateness_p99_ms"])
        gen_p99 = pacer.lateness.percentile(99) * 1000
        up = sum(1 for c in callers if not c.closed.done())
        latencies, over = [], []
        fixed = args.endpoint_ms + (0 if embedded else args.asr_final_ms)  # every turn's wait

        for c in callers:
            for turn, sent, lat in c.turns:
                if t0 <= sent < t1:
                    # trunkline's cache answers a fixed prompt without the TTS's wait
                    cached = side == "trunkline" and args.cached[turn]
                    tts = 0.0 if embedded or cached else args.tts_ms
                    latencies.append(lat * 1000)
                    over.append(lat * 1000 - fixed - tts)
        missed = sum(1 for c in callers for sent in c.missed if t0 <= sent < t1)
    finally:
        async with asyncio.timeout(30):
            await asyncio.gather(*(c.hangup() for c in callers), return_exceptions=True)
        await session.close()
        pacer.stop()
        await server.stop()
    misrec = None
    if embedded:
        db = Path(server.cmd[server.cmd.index("--workdir") + 1]) / "records.sqlite3"
        misrec = (0, 0, 0)
        if db.exists():
            off, total, calls_off, heard = off_script(db, args.replies)
            misrec = (off, total, calls_off)
            for what, count in heard.most_common(5):
                print(f"  embedded N={n}: {count} call(s) left the script: {what}", flush=True)
    errors = server.error_lines()
    for line in errors:
        print(f"  {side} server: {line}", file=sys.stderr)
    wall = t1 - t0
    over_ms = np.array(over or [np.nan])  # no turn in the window: no figure
    return Point(
        side="embedded" if embedded else side,
        misrec=misrec,
        latency_p95_ms=float(np.percentile(latencies, 95)) if latencies else np.nan,
        rss_mb=(rss0 / 2**20, rss_n / 2**20, own0 / 2**20, own_n / 2**20),
        calls=n,
        up=up,
        idle_cpu_share=idle_share,
        cpu_share=(sum(cpu1) - sum(cpu0)) / wall,
        sys_share=(cpu1[1] - cpu0[1]) / wall,
        rss_per_call_kb=(rss_n - rss0) / max(up, 1) / 1024,
        turns=len(latencies),
        missed=missed,
        overhead_ms=tuple(float(np.percentile(over_ms, p)) for p in (50, 95, 99)),  # type: ignore[arg-type]
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else np.nan,
        lag_ms=(lag["lag_p50_ms"], lag["lag_p99_ms"], lag["lag_max_ms"]),
        pacer_p99_ms=pacer_p99,
        gen_cpu_share=(gcpu1 - gcpu0) / wall,
        gen_p99_ms=gen_p99,
        failed=failed,
        notes=([] if warm else ["cache-not-warm"]) + (["server-errors"] if errors else []),
    )


HEADER = (
    "side       calls   up  srvCPU(sys) idle  ms/call-s (net) calls/core RSS-KB/call turns miss"
    "  overhead p50/p95/p99 ms  lat-p50  lag p50/p99/max ms  pacer-p99  genCPU gen-p99"
)


EMBEDDED_LABEL = (
    "embedded: real PocketsphinxASR + EspeakTTS; CPU and RSS include the ASR worker"
    " children; overhead = latency - endpoint silence (decode and TTS in it)"
)


def print_point(p: Point) -> None:
    flags = []
    if p.saturated:
        flags.append("SATURATED")
    if p.generator_bound:
        flags.append("GENERATOR-BOUND")
    if p.failed:
        flags.append(f"failed={p.failed}")
    flags += p.notes
    if p.misrec is not None:
        flags.append(f"misrec={p.misrec[0]}/{p.misrec[1]} offcalls={p.misrec[2]}")
        flags.append(f"lat-p95={p.latency_p95_ms:.0f}")
        mb = p.rss_mb
        flags.append(f"RSS={mb[0]:.0f}->{mb[1]:.0f}MB(server alone {mb[2]:.0f}->{mb[3]:.0f})")
    over, lag = p.overhead_ms, p.lag_ms
    fields = [
        f"{p.side:<10} {p.calls:>5} {p.up:>4}",
        f"{p.cpu_share * 100:>5.1f}%({p.sys_share * 100:>4.1f})",
        f"{p.idle_cpu_share * 100:>4.1f}%",
        f"{p.cpu_per_call_ms:>6.2f} ({p.net_cpu_per_call_ms:>4.2f})",
        f"{p.calls_per_core:>10.0f} {p.rss_per_call_kb:>11.1f} {p.turns:>5} {p.missed:>4}",
        f" {over[0]:>7.1f} {over[1]:>7.1f} {over[2]:>7.1f}  {p.latency_p50_ms:>7.0f}",
        f" {lag[0]:>5.1f} {lag[1]:>6.1f} {lag[2]:>6.1f}    ",
        f"{p.pacer_p99_ms:>6.1f} " if p.pacer_p99_ms is not None else "     - ",
        f" {p.gen_cpu_share * 100:>5.1f}% {p.gen_p99_ms:>6.1f}",
        " ".join(flags),
    ]
    print(" ".join(fields), flush=True)


def summarize(points: list[Point]) -> None:
    """Medians per side and load, the knee of each side, and Pipecat / trunkline ratios."""
    groups: dict[tuple[str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.side, p.calls), []).append(p)
    print("\nmedians over repeats (the run with the median CPU per call-second):")
    if any(p.side == "embedded" for p in points):
        print(EMBEDDED_LABEL)
    print(HEADER)
    for key in sorted(groups, key=lambda k: (k[1], k[0])):
        print_point(median_by(groups[key], lambda p: p.cpu_per_call_ms))
    knees: dict[str, Point] = {}
    for side in ("trunkline", "pipecat"):
        for key in sorted(k for k in groups if k[0] == side):
            # Each figure of the SLO is judged on its own median over the repeats.
            if meets_slo(groups[key]):
                knees[side] = median_by(groups[key], lambda p: p.cpu_per_call_ms)
        knee = knees.get(side)
        if knee is not None:
            bound = ", GENERATOR-BOUND there" if knee.generator_bound else ""
            print(
                f"knee of {side} (p95 overhead <= {SLO_P95_OVERHEAD_MS:g} ms, no turn missed):"
                f" {knee.calls} calls at {knee.cpu_share * 100:.0f}% of a core"
                f" ({knee.calls_per_core:.0f} calls per core at 100%{bound})"
            )
        elif any(k[0] == side for k in groups):
            print(f"knee of {side}: no load met the SLO")
    if len(knees) == 2:
        ours, theirs = knees["trunkline"], knees["pipecat"]
        print(
            f"at the knees, trunkline / Pipecat: calls x{ours.calls / theirs.calls:.1f},"
            f" calls per core x{ours.calls_per_core / theirs.calls_per_core:.1f};"
            f" Pipecat / trunkline: CPU per call-second"
            f" x{theirs.cpu_per_call_ms / ours.cpu_per_call_ms:.1f},"
            f" RSS per call x{theirs.rss_per_call_kb / max(ours.rss_per_call_kb, 1e-9):.1f}"
        )
    for n in sorted({k[1] for k in groups}):
        ours, theirs = groups.get(("trunkline", n)), groups.get(("pipecat", n))
        if ours is None or theirs is None:
            continue

        def ratio(attr: str, ours: list[Point] = ours, theirs: list[Point] = theirs) -> float:
            mine = statistics.median(getattr(p, attr) for p in ours)
            return statistics.median(getattr(p, attr) for p in theirs) / max(mine, 1e-9)

        print(
            f"N={n}: Pipecat / trunkline: CPU per call-second x{ratio('cpu_per_call_ms'):.1f}"
            f" (net of idle x{ratio('net_cpu_per_call_ms'):.1f}),"
            f" RSS per call x{ratio('rss_per_call_kb'):.1f}"
        )


def median_by(group: list[Point], key: Callable[[Point], float]) -> Point:
    """The run whose ``key`` is the (lower) median of the group."""
    ordered = sorted(group, key=key)
    return ordered[(len(ordered) - 1) // 2]


def meets_slo(group: list[Point]) -> bool:
    """The knee's SLO, on the medians of the repeats: p95 overhead within
    ``SLO_P95_OVERHEAD_MS``, no turn missed, every call up, the server not saturated."""
    return (
        statistics.median(p.overhead_ms[1] for p in group) <= SLO_P95_OVERHEAD_MS
        and statistics.median(p.missed for p in group) == 0
        and all(p.up == p.calls for p in group)
        and statistics.median(p.cpu_share for p in group) < SATURATED_CPU_SHARE
    )


async def main_async(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})
    spec = agent_script.load_spec()
    args.endpoint_ms = agent_script.endpoint_silence_ms(spec)
    ScriptedCaller.utterances = agent_script.caller_audio()
    loads = {"trunkline": [] if args.pipecat_only else args.calls, "pipecat": []}
    if args.pipecat or args.pipecat_only:
        loads["pipecat"] = args.pipecat_calls or args.calls
    with tempfile.TemporaryDirectory(prefix="agent-density-") as tmp:
        workdir = Path(tmp)
        texts = await agent_script.agent_texts(spec, SCRIPTED_TURNS)
        args.cached = texts.cached
        args.replies = texts.replies
        script = {
            "greeting": texts.greeting,
            "replies": texts.replies,
            "caller": [agent_script.caller_text(t) for t in range(SCRIPTED_TURNS)],
        }
        (workdir / "script.json").write_text(json.dumps(script))
        print(
            f"endpoint silence {args.endpoint_ms} ms, ASR final {args.asr_final_ms:g} ms, "
            f"TTS first byte {args.tts_ms:g} ms; window {args.window:g} s after "
            f"{args.warmup:g} s; Pipecat VAD: {args.pipecat_vad}",
            flush=True,
        )
        if args.embedded:
            print(EMBEDDED_LABEL)
        print(HEADER)
        points: list[Point] = []
        for _ in range(args.repeat):
            for n in sorted(set(loads["trunkline"]) | set(loads["pipecat"])):
                for side in ("trunkline", "pipecat"):  # alternating, load by load
                    if n not in loads[side]:
                        continue
                    point = await run_point(side, n, args, workdir)
                    print_point(point)
                    points.append(point)
        summarize(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--window", type=float, default=30.0, help="steady window, seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="after the last connect")
    parser.add_argument("--cps", type=float, default=20.0, help="calls connected per second")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--asr-final-ms", type=float, default=150.0)
    parser.add_argument("--tts-ms", type=float, default=100.0, help="TTS first byte")
    parser.add_argument("--pipecat", action="store_true", help="also run Pipecat")
    parser.add_argument("--pipecat-only", action="store_true", help="only run Pipecat")
    parser.add_argument(
        "--pipecat-calls", type=int, nargs="+", help="Pipecat's loads (default: --calls)"
    )
    parser.add_argument("--pipecat-vad", choices=["none", "silero"], default="none")
    parser.add_argument(
        "--profile", metavar="DIR", help="profile trunkline's server (cProfile; not for figures)"
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="trunkline on the real embedded ASR and TTS (not with --pipecat)",
    )
    args = parser.parse_args()
    if args.embedded and (args.pipecat or args.pipecat_only):
        parser.error("--embedded runs trunkline only (Pipecat stays on the fakes)")
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
