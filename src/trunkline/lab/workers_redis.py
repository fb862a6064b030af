"""Pretest workers on other machines, fed through Redis streams.

Theory of operation
-------------------
``trunkline pretest-worker --redis URL`` runs until SIGINT/SIGTERM, reading jobs from
the stream :data:`JOBS` as a member of the consumer group :data:`GROUP` (``XREADGROUP``:
each job goes to one worker). A job is a :class:`~trunkline.lab.job.RunJob`, one share
of a run. The worker says ``claimed`` on the run's results stream, renders its voices,
says ``ready``, waits on the run's control stream for ``go`` (a start time on the wall
clock), runs its share and streams every message to the results stream, then
acknowledges the job (``XACK``). A job that does not parse is logged, reported
(``error``) where its run can be told, acknowledged as rejected, and the worker goes on.

``trunkline pretest ... --redis URL --remote-workers K`` is the coordinator
(:func:`run_remote`): it publishes K jobs, waits ``--claim-timeout`` for K workers to
claim them (else it calls the run off and exits 2 saying so), waits for them to be
ready, sends ``go`` and merges the results stream (:class:`~trunkline.lab.merge.RunMerge`).
A worker silent for :data:`SILENCE_S` is lost, and so are its unfinished calls; if Redis
itself goes away mid-run, every unfinished share is lost with a sentence saying so, and
the report is written as inconclusive. No wait is unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import signal
import socket
import time
import uuid
from collections.abc import Callable
from time import monotonic
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from trunkline.lab.fanout import (
    GO_LEAD_S,
    READY_TIMEOUT_S,
    FanoutError,
    check_fanout,
    make_jobs,
    run_deadline_s,
)
from trunkline.lab.job import JobError, RunJob
from trunkline.lab.merge import RunMerge
from trunkline.lab.results import RunResult
from trunkline.lab.runner import Progress, RunPlan, _Quiet
from trunkline.lab.worker import Message, RunAborted, run_share

log = logging.getLogger(__name__)

JOBS = "trunkline:pretest:jobs"
GROUP = "pretest-workers"
#: A worker that says nothing (it ticks once a second) for this long is lost.
SILENCE_S = 15.0
#: Machines' wall clocks differ by milliseconds under NTP; a second covers Redis's hop.
REMOTE_GO_LEAD_S = max(GO_LEAD_S, 1.0)
#: Longer than any BLOCK we issue, so a hung Redis is an error, not a hang.
SOCKET_TIMEOUT_S = 10.0
BLOCK_MS = 200
#: A worker that lost Redis tries again this often.
RETRY_S = 2.0
#: A run's streams stay this long after it, for a look with redis-cli.
KEEP_S = 3600
#: The jobs stream is trimmed to about this many entries.
JOBS_MAXLEN = 10_000


def results_key(run_id: str) -> str:
    return f"trunkline:pretest:{run_id}:results"


def control_key(run_id: str) -> str:
    return f"trunkline:pretest:{run_id}:control"


def connect(url: str) -> aioredis.Redis:
    return aioredis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5.0
    )


async def ensure_group(client: aioredis.Redis) -> None:
    """Create the jobs stream and its consumer group if they do not exist yet."""
    try:
        await client.xgroup_create(JOBS, GROUP, id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def stream_entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of an ``XREAD``/``XREADGROUP`` reply (RESP2: ``[[stream, entries]]``)."""
    return [entry for _stream, entries in reply or [] for entry in entries]


# --- the worker -------------------------------------------------------------------------


class _Outbox:
    """Messages queued by the run (which must not wait) and sent in batches."""

    def __init__(self, client: aioredis.Redis, stream: str, part: int | None) -> None:
        self.client = client
        self.stream = stream
        self.part = part
        self.queue: list[Message] = []
        self.wake = asyncio.Event()
        self.closed = False

    def put(self, message: Message) -> None:
        if self.part is not None:
            message["part"] = self.part
        self.queue.append(message)
        self.wake.set()

    async def flush(self) -> None:
        batch, self.queue = self.queue, []
        self.wake.clear()
        if batch:
            async with self.client.pipeline(transaction=False) as pipe:
                for message in batch:
                    pipe.xadd(self.stream, {"m": json.dumps(message, separators=(",", ":"))})
                await pipe.execute()

    async def run(self) -> None:
        """Send batches until :meth:`close`, then what is left. (Never cancel it while a
        command is under way: redis-py cannot tell a cancelled reply from the next one.)"""
        while not self.closed:
            await self.wake.wait()
            await self.flush()
        await self.flush()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


async def serve_worker(url: str, name: str, stop: asyncio.Event) -> None:
    """Take jobs until ``stop`` is set; a Redis outage is logged and retried."""
    client = connect(url)
    try:
        while not stop.is_set():
            try:
                await ensure_group(client)
                reply = await client.xreadgroup(GROUP, name, {JOBS: ">"}, count=1, block=1000)
                for entry_id, fields in stream_entries(reply):
                    await handle_job(client, name, entry_id, fields, stop)
            except (RedisError, OSError) as exc:
                log.error("%s: Redis at %s: %s; trying again in %.0f s", name, url, exc, RETRY_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_S)
    finally:
        await client.aclose()


async def handle_job(
    client: aioredis.Redis,
    name: str,
    entry_id: bytes,
    fields: dict[bytes, bytes],
    stop: asyncio.Event,
) -> None:
    """Run one job to its end (or reject it), then acknowledge it."""
    raw = fields.get(b"job", b"")
    try:
        job = RunJob.from_json(raw)
    except JobError as exc:
        log.warning("%s: rejected job %s: %s", name, entry_id, exc)
        await _reject(client, raw, str(exc))
        await client.xack(JOBS, GROUP, entry_id)
        return
    if job.claim_by and time.time() > job.claim_by:
        log.warning("%s: skipped job %s of run %s: its claim deadline passed", name, entry_id,
                    job.run_id)  # fmt: skip
        await client.xack(JOBS, GROUP, entry_id)
        return
    outbox = _Outbox(client, results_key(job.run_id), job.part)
    outbox.put({"t": "claimed", "worker": name})
    await outbox.flush()
    sender = asyncio.create_task(outbox.run())
    run = asyncio.create_task(
        run_share(job, name, outbox.put, lambda: _wait_go(client, job.run_id, stop))
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({run, sender, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if run.done() and not run.cancelled():
            problem = run.exception()
            if problem is not None:
                log.warning("%s: job of run %s: %r", name, job.run_id, problem)
                outbox.put({"t": "error", "error": str(problem) or type(problem).__name__})
            outbox.close()
            with contextlib.suppress(RedisError, OSError):
                await asyncio.wait_for(sender, SOCKET_TIMEOUT_S)
        elif sender.done() and sender.exception() is not None:
            log.error(
                "%s: cannot report to Redis (%s), giving up run %s",
                name, sender.exception(), job.run_id,
            )  # fmt: skip
    finally:
        for task in (run, sender, stopping):
            task.cancel()
        await asyncio.gather(run, sender, stopping, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await client.xack(JOBS, GROUP, entry_id)


async def _reject(client: aioredis.Redis, raw: Any, error: str) -> None:
    """Tell a rejected job's run, if it names one, why its job was refused."""
    try:
        data = json.loads(raw)
        run_id, part = data["run_id"], data.get("part")
        if not isinstance(run_id, str) or not run_id or not isinstance(part, int):
            return
    except (ValueError, TypeError, KeyError):
        return
    message = {"t": "error", "part": part, "error": error}
    with contextlib.suppress(RedisError, OSError):
        await client.xadd(results_key(run_id), {"m": json.dumps(message)})


async def _wait_go(client: aioredis.Redis, run_id: str, stop: asyncio.Event) -> float:
    last: bytes | str = "0"
    while not stop.is_set():
        reply = await client.xread({control_key(run_id): last}, block=1000)
        for entry_id, fields in stream_entries(reply):
            last = entry_id
            message = json.loads(fields[b"m"])
            if message.get("t") == "go":
                return float(message["start_at"])
            if message.get("t") == "abort":
                raise RunAborted("the coordinator called the run off")
    raise RunAborted("the worker is stopping")


async def run_worker_command(args: Any) -> int:
    """``trunkline pretest-worker``: serve jobs until SIGINT or SIGTERM."""
    name = args.name or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"pretest-worker {name}: taking jobs from {args.redis}", flush=True)
    await serve_worker(args.redis, name, stop)
    return 0


# --- the coordinator --------------------------------------------------------------------


async def run_remote(
    plan: RunPlan,
    target: str,
    workers: int,
    *,
    redis_url: str,
    rtp_ports: tuple[int, int],
    transcript_url: str | None = None,
    mos_codec: str = "g711",
    progress: Progress | None = None,
    claim_timeout_s: float = 30.0,
    silence_s: float = SILENCE_S,
) -> RunResult:
    """Run ``plan`` on ``workers`` remote workers; see the module docstring.

    ``silence_s``: a worker that says nothing for this long is lost.

    Raises:
        FanoutError: Redis cannot be reached, or fewer than ``workers`` workers claimed
            the run's jobs in ``claim_timeout_s``.
    """
    check_fanout(plan, workers)
    run_id = uuid.uuid4().hex[:12]
    client = connect(redis_url)
    merge = RunMerge(plan, target, workers, progress or _Quiet())
    feed = _Feed(client, run_id, merge)
    job_ids: list[Any] = []
    try:
        try:
            await client.ping()
            await ensure_group(client)
            jobs = make_jobs(
                plan, target, workers, run_id=run_id, rtp_ports=rtp_ports,
                transcript_url=transcript_url, split_rtp=False, mos_codec=mos_codec,
            )  # fmt: skip
            claim_by = time.time() + claim_timeout_s
            for job in jobs:
                text = dataclasses.replace(job, claim_by=claim_by).to_json()
                job_ids.append(
                    await client.xadd(JOBS, {"job": text}, maxlen=JOBS_MAXLEN, approximate=True)
                )
            claimed = await feed.until(lambda: feed.claimed >= workers, claim_timeout_s)
            if not claimed:
                await _call_off(client, run_id, job_ids)
                raise FanoutError(
                    f"{feed.claimed} of {workers} workers claimed the run in "
                    f"{claim_timeout_s:.0f} s; start `trunkline pretest-worker --redis "
                    f"{redis_url}` on the lab machines"
                )
            if not await feed.until(_all_ready(merge), READY_TIMEOUT_S):
                for state in merge.parts:
                    if not (state.ready or state.finished):
                        merge.lose(state.part, f"not ready after {READY_TIMEOUT_S:.0f} s")
        except (RedisError, OSError) as exc:
            raise FanoutError(f"Redis at {redis_url}: {exc}") from None
        return await _run(client, feed, merge, plan, run_id, redis_url, silence_s)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.xadd(control_key(run_id), {"m": json.dumps({"t": "abort"})})
            await client.expire(control_key(run_id), KEEP_S)
            await client.expire(results_key(run_id), KEEP_S)
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()


async def _run(
    client: aioredis.Redis,
    feed: _Feed,
    merge: RunMerge,
    plan: RunPlan,
    run_id: str,
    url: str,
    silence_s: float,
) -> RunResult:
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    merge.t0 = monotonic() + REMOTE_GO_LEAD_S
    deadline = merge.t0 + run_deadline_s(plan)
    try:
        go = {"t": "go", "start_at": time.time() + REMOTE_GO_LEAD_S}
        await client.xadd(control_key(run_id), {"m": json.dumps(go)})
        for state in merge.parts:
            state.last_heard = merge.t0
        next_sample = merge.t0 + 1.0
        while not merge.done:
            await feed.pump(BLOCK_MS)
            now = monotonic()
            for state in merge.parts:
                if not state.finished and now - state.last_heard > silence_s:
                    merge.lose(state.part, f"no word from it for {silence_s:.0f} s")
            if now > deadline:
                merge.lose_unfinished(f"still running {run_deadline_s(plan):.0f} s after start")
            while now >= next_sample:
                merge.sample()
                next_sample += 1.0
    except (RedisError, OSError) as exc:
        log.error("lost Redis at %s mid-run: %s", url, exc)
        merge.lose_unfinished(f"Redis at {url} went away mid-run ({exc})")
    return merge.result(started_at, monotonic() - merge.t0)


class _Feed:
    """The run's results stream, read in order into the merge."""

    def __init__(self, client: aioredis.Redis, run_id: str, merge: RunMerge) -> None:
        self.client = client
        self.stream = results_key(run_id)
        self.merge = merge
        self.last: Any = "0"
        self.claimed = 0

    async def pump(self, block_ms: int) -> None:
        reply = await self.client.xread({self.stream: self.last}, count=1000, block=block_ms)
        for entry_id, fields in stream_entries(reply):
            self.last = entry_id
            self._one(fields.get(b"m", b""))

    def _one(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            part = message["part"]
            if not isinstance(part, int) or not 0 <= part < len(self.merge.parts):
                raise ValueError(f"no share {part!r} in this run")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropped a malformed result message (%s): %r", exc, raw[:200])
            return
        if message.get("t") == "claimed":
            self.claimed += 1
        try:
            self.merge.feed(part, message)
        except (ValueError, KeyError, TypeError) as exc:
            self.merge.lose(part, f"it sent a malformed message ({exc})")

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = monotonic() + timeout_s
        while not condition():
            if monotonic() >= deadline:
                return False
            await self.pump(BLOCK_MS)
        return True


def _all_ready(merge: RunMerge) -> Callable[[], bool]:
    return lambda: all(p.ready or p.finished for p in merge.parts)


async def _call_off(client: aioredis.Redis, run_id: str, job_ids: list[Any]) -> None:
    """Withdraw unclaimed jobs and tell claimed ones not to start."""
    if job_ids:
        await client.xdel(JOBS, *job_ids)
    await client.xadd(control_key(run_id), {"m": json.dumps({"t": "abort"})})

