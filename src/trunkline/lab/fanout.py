"""``pretest --workers N``: one run fanned out over N lab processes on this machine.

Theory of operation
-------------------
One lab process is one event loop on one core; past a few hundred calls its pacer runs
late and the run is inconclusive. With ``--workers N`` the command becomes a
coordinator:

1. it starts N ``python -m trunkline.lab.worker`` processes and gives each a
   :class:`~trunkline.lab.job.RunJob` on its stdin: the scenario texts, the plan, its
   share (part ``k`` makes the calls whose index is ``k`` mod N: an open profile's at
   their planned offsets, so together they make the planned arrival process; a closed
   profile's at ``k``'s share of the concurrency) and its own slice of the RTP ports;
2. each worker renders its voices and says ``ready``; when all have (or are lost), the
   coordinator sends ``go`` with a start time a moment ahead, so every share's clock
   starts together and no share's arrivals wait on another's rendering;
3. workers stream JSON lines back (call starts, results, a tick a second, their lab
   health at the end) into a :class:`~trunkline.lab.merge.RunMerge`, which builds the
   one ``RunResult``, timeline and live progress.

A worker whose pipe closes before its ``end`` (it crashed, or was killed) is lost: its
unfinished calls become ``lab_worker_lost`` failures and the verdict "inconclusive".
Nothing waits forever: readiness and the whole run have deadlines, after which the
remaining workers are killed and lost. The same seed gives the same call at each index
as ``--workers 1`` (a closed profile's indices are ``k + j*N`` per worker, so with
uneven shares a few indices may be unused). A breakpoint search runs in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import sys
import time
from collections.abc import Sequence
from time import monotonic

from trunkline.lab.job import RunJob, scenario_files, split_ports
from trunkline.lab.merge import RunMerge
from trunkline.lab.profiles import BreakpointProfile
from trunkline.lab.results import RunResult
from trunkline.lab.runner import DRAIN_LIMIT_S, Progress, RunPlan, _Quiet
from trunkline.lab.worker import MAX_LINE_BYTES

log = logging.getLogger(__name__)

#: Rendering a run's lines takes a few seconds per worker; on a loaded machine, more.
READY_TIMEOUT_S = 120.0
#: ``go`` names a start this far ahead, so it reaches every worker before it is due.
GO_LEAD_S = 0.5
#: After the profile's end and the calls' drain limit, this much for the workers to
#: report and exit before they are killed and lost.
EXIT_SLACK_S = 30.0
#: A worker gets this long to exit after its ``end`` (or after being told to stop).
STOP_TIMEOUT_S = 5.0


class FanoutError(RuntimeError):
    """A fanned-out run cannot be set up (the message says why)."""


def check_fanout(plan: RunPlan, workers: int) -> None:
    """Refuse what fan-out cannot do.

    Raises:
        FanoutError: a breakpoint search (each level's calls depend on the last level's
            verdict, which one process decides), or fewer than one worker.
    """
    if workers < 1:
        raise FanoutError(f"--workers must be at least 1, not {workers}")
    if isinstance(plan.profile, BreakpointProfile):
        raise FanoutError("a breakpoint search runs in one process; drop --workers")


def run_deadline_s(plan: RunPlan) -> float:
    """How long after ``go`` a fanned-out run may take before its workers are lost."""
    return plan.profile.duration_s + DRAIN_LIMIT_S + EXIT_SLACK_S


def make_jobs(
    plan: RunPlan,
    target: str,
    parts: int,
    *,
    run_id: str,
    rtp_ports: tuple[int, int],
    transcript_url: str | None,
    split_rtp: bool,
    mos_codec: str = "g711",
) -> list[RunJob]:
    """One job per share (each with its own RTP slice when the workers share a host)."""
    files = scenario_files(plan.scenarios)
    ports = split_ports(rtp_ports, parts) if split_rtp else [rtp_ports] * parts
    return [
        RunJob(
            run_id=run_id,
            scenario_files=files,
            scenario_names=tuple(s.name for s in plan.scenarios),
            profile=plan.profile.text,
            seed=plan.seed,
            target=target,
            part=k,
            parts=parts,
            rtp_ports=ports[k],
            label=plan.label,
            variables=dict(plan.variables or {}),
            transcript_url=transcript_url,
            mos_codec=mos_codec,
        )
        for k in range(parts)
    ]


async def run_local(
    plan: RunPlan,
    target: str,
    workers: int,
    *,
    rtp_ports: tuple[int, int],
    transcript_url: str | None = None,
    mos_codec: str = "g711",
    progress: Progress | None = None,
    worker_argv: Sequence[str] = (sys.executable, "-m", "trunkline.lab.worker"),
) -> RunResult:
    """Run ``plan`` over ``workers`` local processes; see the module docstring.

    Raises:
        FanoutError: a breakpoint profile, or the worker processes cannot be started.
    """
    check_fanout(plan, workers)
    jobs = make_jobs(
        plan, target, workers, run_id="local", rtp_ports=rtp_ports,
        transcript_url=transcript_url, split_rtp=True, mos_codec=mos_codec,
    )  # fmt: skip
    merge = RunMerge(plan, target, workers, progress or _Quiet())
    procs: list[asyncio.subprocess.Process] = []
    try:
        for job in jobs:
            proc = await asyncio.create_subprocess_exec(
                *worker_argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=MAX_LINE_BYTES,
            )
            procs.append(proc)
            _send(proc, job.to_json())
        return await _drive(merge, procs, plan)
    except OSError as exc:
        raise FanoutError(f"cannot start a lab worker process: {exc}") from None
    finally:
        await _stop_all(procs)


async def _drive(
    merge: RunMerge, procs: list[asyncio.subprocess.Process], plan: RunPlan
) -> RunResult:
    readers = [asyncio.create_task(_read(merge, k, proc)) for k, proc in enumerate(procs)]
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        ready_by = monotonic() + READY_TIMEOUT_S
        while not all(p.ready or p.finished for p in merge.parts):
            if monotonic() > ready_by:
                for p in merge.parts:
                    if not (p.ready or p.finished):
                        merge.lose(p.part, f"not ready after {READY_TIMEOUT_S:.0f} s")
                break
            await asyncio.sleep(0.05)
        start_wall = time.time() + GO_LEAD_S
        merge.t0 = monotonic() + GO_LEAD_S
        for k, proc in enumerate(procs):
            if not merge.parts[k].finished:
                _send(proc, json.dumps({"t": "go", "start_at": start_wall}))
        deadline = merge.t0 + run_deadline_s(plan)
        next_sample = merge.t0 + 1.0
        while not merge.done:
            now = monotonic()
            if now > deadline:
                merge.lose_unfinished(f"still running {run_deadline_s(plan):.0f} s after start")
                break
            if now >= next_sample:
                merge.sample()
                next_sample += 1.0
            await asyncio.sleep(min(0.1, max(0.0, next_sample - now)))
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return merge.result(started_at, monotonic() - merge.t0)


async def _read(merge: RunMerge, part: int, proc: asyncio.subprocess.Process) -> None:
    """Feed one worker's lines to the merge; its pipe closing before ``end`` loses it."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        try:
            message = json.loads(line)
            merge.feed(part, message)
        except (ValueError, KeyError, TypeError) as exc:
            merge.lose(part, f"it sent a malformed message ({exc}): {line[:200]!r}")
            proc.kill()
            return
    code = await proc.wait()
    merge.lose(part, f"its process exited with status {code} before it finished")


def _send(proc: asyncio.subprocess.Process, line: str) -> None:
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.write(line.encode() + b"\n")


async def _stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # a worker waiting for go reads EOF and leaves
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
