# ruff: noqa: SIM117  (the lab needs the server it calls: nested on purpose, for reading)
"""Redis-stream workers: ``trunkline pretest-worker`` processes and the coordinator.

A real ``redis-server`` on 127.0.0.1 and a ``trunkline serve --app delay`` target; the
workers are real processes started as an operator would start them.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from trunkline.lab.fanout import FanoutError
from trunkline.lab.runner import RunPlan
from trunkline.lab.workers_redis import GROUP, JOBS, results_key, run_remote

from ..stores.servers import RedisServer, free_port
from .test_fanout import Starts, delay_target, plan_for, planned_calls

__all__ = ["delay_target"]  # a fixture, used by name

RTP = (45000, 45999)


class Workers:
    """``trunkline pretest-worker`` processes, stopped (SIGTERM) at the end."""

    def __init__(self, url: str, tmp_path: pathlib.Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *names: str) -> None:
        for name in names:
            log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (the child owns it)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trunkline.cli", "pretest-worker",
                     "--redis", self.url, "--name", name],
                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            )
            log.close()
        for proc in self.procs[-len(names) :]:
            assert proc.stdout is not None
            assert b"taking jobs" in proc.stdout.readline()

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop(self) -> list[int]:
        for proc in self.procs:
            proc.terminate()
        codes = [proc.wait(20) for proc in self.procs]
        for proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()
        return codes


@pytest.fixture
def workers(redis: RedisServer, tmp_path: pathlib.Path) -> Iterator[Workers]:
    pool = Workers(redis.url, tmp_path)
    try:
        yield pool
    finally:
        for proc in pool.procs:
            if proc.poll() is None:
                proc.kill()
        pool.stop()


async def test_two_workers_run_a_share_each_and_reject_malformed_jobs(
    tmp_path: pathlib.Path, redis: RedisServer, workers: Workers, delay_target: str
) -> None:
    workers.start("wa", "wb")
    client = aioredis.from_url(redis.url)
    try:
        # Malformed jobs first: each is refused, acknowledged, and the workers go on.
        broken = json.dumps({"version": 1, "run_id": "bad1", "part": 0})
        await client.xadd(JOBS, {"job": "not json at all"})
        await client.xadd(JOBS, {"job": broken})
        plan = plan_for(tmp_path)
        progress = Starts()
        run = await asyncio.wait_for(
            run_remote(
                plan, delay_target, 2, redis_url=redis.url, rtp_ports=RTP,
                progress=progress, claim_timeout_s=20,
            ),
            90,
        )  # fmt: skip
        rejected = await client.xrange(results_key("bad1"))
        # A worker acknowledges its job just after sending its last message.
        for _ in range(100):
            pending = await client.xpending(JOBS, GROUP)
            if pending["pending"] == 0:
                break
            await asyncio.sleep(0.05)

    finally:
        await client.aclose()
    n = planned_calls(plan)
    assert [c.index for c in run.calls] == list(range(n))
    assert all(c.failure is None for c in run.calls), [c.failure_detail for c in run.calls]
    assert sorted(w.worker for w in run.lab_workers) == ["wa", "wb"]
    assert progress.started == n
    assert len(rejected) == 1
    assert "scenario_files" in json.loads(rejected[0][1][b"m"])["error"]
    assert pending["pending"] == 0  # the rejected jobs and the run's were acknowledged
    assert "rejected job" in workers.log("wa") + workers.log("wb")
    assert workers.stop() == [0, 0]  # SIGTERM: a clean exit


async def test_too_few_workers_is_a_clear_error_and_the_jobs_are_withdrawn(
    tmp_path: pathlib.Path, redis: RedisServer
) -> None:
    with pytest.raises(FanoutError, match="0 of 2 workers claimed the run"):
        await run_remote(
            plan_for(tmp_path), "sip:127.0.0.1:9", 2, redis_url=redis.url,
            rtp_ports=RTP, claim_timeout_s=0.5,
        )  # fmt: skip
    client = aioredis.from_url(redis.url)
    try:
        assert await client.xlen(JOBS) == 0
    finally:
        await client.aclose()


async def test_no_redis_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(FanoutError, match=f"Redis at {url}"):
        await asyncio.wait_for(
            run_remote(plan_for(tmp_path), "sip:127.0.0.1:9", 1, redis_url=url, rtp_ports=RTP),
            30,
        )


async def test_redis_stopping_mid_run_loses_the_unfinished_calls_without_a_hang(
    tmp_path: pathlib.Path, redis: RedisServer, workers: Workers, delay_target: str
) -> None:
    workers.start("wa")
    plan: RunPlan = plan_for(tmp_path)
    run = await asyncio.wait_for(
        run_remote(
            plan, delay_target, 1, redis_url=redis.url, rtp_ports=RTP,
            progress=Starts(redis.stop), claim_timeout_s=20,
        ),
        60,
    )  # fmt: skip
    assert run.lab.overloaded and "Redis at" in run.lab.note and "went away" in run.lab.note
    lost = [c for c in run.calls if c.failure == "lab_worker_lost"]
    assert len(lost) >= planned_calls(plan) - 1
    assert all("went away" in c.failure_detail for c in lost)
    # The worker outlives the outage: it notices at its next message, logs, keeps trying.
    for _ in range(200):
        if "trying again" in workers.log("wa"):
            break
        await asyncio.sleep(0.1)
    assert "cannot report to Redis" in workers.log("wa")
    assert "trying again" in workers.log("wa")
    assert workers.procs[0].poll() is None


async def test_a_worker_killed_mid_run_is_lost_after_its_silence(
    tmp_path: pathlib.Path, redis: RedisServer, workers: Workers, delay_target: str
) -> None:
    workers.start("wa", "wb")
    plan = plan_for(tmp_path)
    victim = workers.procs[0]
    run = await asyncio.wait_for(
        run_remote(
            plan, delay_target, 2, redis_url=redis.url, rtp_ports=RTP,
            progress=Starts(victim.kill), claim_timeout_s=20, silence_s=3,
        ),
        60,
    )  # fmt: skip
    lost = [c for c in run.calls if c.failure == "lab_worker_lost"]
    assert [c.index for c in run.calls] == list(range(planned_calls(plan)))
    assert lost and all("wa was lost: no word from it for 3 s" in c.failure_detail for c in lost)
    (part,) = {c.index % 2 for c in lost}
    assert all(c.failure is None for c in run.calls if c.index % 2 != part)
    assert run.lab.overloaded and "wa: lost" in run.lab.note
