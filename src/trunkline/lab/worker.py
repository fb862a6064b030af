"""A lab worker: runs one :class:`~trunkline.lab.job.RunJob` and streams what happens.

:func:`run_share` is the whole life of a share, whatever carries its messages: render
the voices, say ``ready``, wait for ``go``, run the share's calls with a
:class:`~trunkline.lab.runner.Runner` at the shared start time, and ``emit`` a message
per call start and result, a tick a second and the share's lab health at the end.

``python -m trunkline.lab.worker`` is the local transport (``pretest --workers N``): the
job and then ``go`` arrive as JSON lines on stdin, messages leave as JSON lines on
stdout. Everything else the process might print goes to stderr, so nothing but
messages ever reaches the pipe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

from trunkline.lab.emodel import codec_profile
from trunkline.lab.engine import Lab, Target, TargetError
from trunkline.lab.job import JobError, RunJob
from trunkline.lab.results import CallResult, LabHealth
from trunkline.lab.runner import Runner, RunPlan

log = logging.getLogger(__name__)

Message = dict[str, Any]
Emit = Callable[[Message], None]
#: A share that waits longer than this for ``go`` gives up: the coordinator is gone.
GO_TIMEOUT_S = 300.0
#: Lines up to this long on the pipe (a call with hundreds of turns is some 100 kB).
MAX_LINE_BYTES = 16 * 1024 * 1024


class RunAborted(Exception):
    """The coordinator called the run off (or went away) before ``go``."""


class _Emitter:
    """The runner's progress, turned into messages."""

    def __init__(self, emit: Emit, lab: Lab) -> None:
        self.emit = emit
        self.lab = lab
        self.started = 0

    def call_started(self) -> None:
        self.started += 1

    def call_finished(self, result: CallResult) -> None:
        self.emit({"t": "result", "call": result.as_dict()})

    def lab_health(self, health: LabHealth) -> None:
        self.emit(
            {
                "t": "tick",
                "active": self.lab.active,
                "started": self.started,
                "late_p99_ms": health.send_lateness_p99_ms,
                "cpu_pct": health.cpu_pct,
            }
        )


async def run_share(
    job: RunJob, name: str, emit: Emit, wait_go: Callable[[], Awaitable[float]]
) -> LabHealth:
    """Run ``job``'s share of calls; see the module docstring.

    Args:
        name: this worker's name, put into its lab health.
        emit: queues one message for the coordinator (must not block).
        wait_go: waits for ``go`` and returns the run's start on the wall clock.

    Raises:
        JobError: the job's scenarios, profile or target do not parse.
    """
    scenarios, profile = job.build()
    try:
        target = Target.parse(job.target)
    except TargetError as exc:
        raise JobError(f"job's target: {exc}") from None
    plan = RunPlan(scenarios, profile, job.seed, label=job.label, variables=job.variables)
    codec = codec_profile(job.mos_codec)
    lab = Lab(target, transcript_url=job.transcript_url, rtp_ports=job.rtp_ports, mos_codec=codec)
    async with lab:
        emitter = _Emitter(emit, lab)
        runner = Runner(
            lab,
            plan,
            emitter,
            share=job.share,
            on_start=lambda index: emit({"t": "start", "i": index}),
        )
        await lab.prepare(runner.prewarm_scripts())
        emit({"t": "ready", "worker": name, "part": job.part, "pid": os.getpid()})
        start_wall = await asyncio.wait_for(wait_go(), GO_TIMEOUT_S)
        # The wall clock is what machines share; the runner keeps to the monotonic one.
        runner.start_at = monotonic() + (start_wall - time.time())
        run = await runner.run()
    health = run.lab
    health.worker = name
    emit({"t": "end", "lab": health.as_dict(), "calls": len(run.calls)})
    return health


async def serve_stdio() -> int:
    """The local worker: job and ``go`` on stdin, messages on stdout (JSON lines)."""
    loop = asyncio.get_running_loop()
    # Our messages keep the real stdout; anything else printing to fd 1 goes to stderr.
    pipe_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe_out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    def emit(message: Message) -> None:
        writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def wait_go() -> float:
        while line := await reader.readline():
            message = json.loads(line)
            if message.get("t") == "go":
                return float(message["start_at"])
            if message.get("t") == "abort":
                break
        raise RunAborted("the coordinator called the run off")

    name = f"worker {os.getpid()}"
    try:
        job = RunJob.from_json(await reader.readline())
        name = f"worker {job.part}"
        await run_share(job, name, emit, wait_go)
        code = 0
    except JobError as exc:
        emit({"t": "error", "error": str(exc)})
        code = 2
    except (RunAborted, TimeoutError) as exc:
        log.warning("%s: no run: %s", name, exc or "no go in time")
        code = 1
    await writer.drain()
    writer.close()
    return code


def main() -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from trunkline.cli import run

    return run(serve_stdio())


if __name__ == "__main__":
    sys.exit(main())
