"""The outage test of the issue: stop PostgreSQL under load, count the records after it returns.

Submitting runs on the test's event loop beside a ticker task; stopping and starting the
server runs in a thread, so the loop keeps going through the whole outage. The checks
are that the ticker kept ticking (submit never blocked the loop), that the outage was
real (writes failed, records spooled and replayed), and that every call_id submitted is
in the database exactly once. Nothing asserts on durations.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from trunkline.runtime.stores.records_postgres import PostgresRecordBackend
from trunkline.runtime.stores.writer import RecordWriter

from .fakes import make_record
from .servers import PostgresServer
from .test_writer import Ticker

TOTAL = 2000
#: Guards of the condition waits below (a stuck test fails instead of hanging).
GUARD_S = 30.0
DRAIN_S = 60.0


async def stored_call_ids(dsn: str) -> Counter[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT call_id FROM call_records")
    finally:
        await conn.close()
    return Counter(row[0] for row in rows)


class Load:
    """Submits records in small steps, yielding to the loop between steps."""

    def __init__(self, writer: RecordWriter, ticker: Ticker) -> None:
        self.writer = writer
        self.ticker = ticker
        self.submitted: list[str] = []

    async def step(self, n: int = 10) -> None:
        for _ in range(n):
            record = make_record(len(self.submitted))
            self.writer.submit(record)
            self.submitted.append(record.call_id)
        await asyncio.sleep(0.005)

    async def until(self, done: Callable[[], bool], limit: int = TOTAL) -> int:
        """Step until ``done()`` (and at most until ``limit`` records); ticks seen meanwhile."""
        before = self.ticker.ticks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GUARD_S
        while not done() and len(self.submitted) < limit:
            assert loop.time() < deadline, "condition not reached under load"
            await self.step()
        return self.ticker.ticks - before


def in_thread(fn: Callable[[], None]) -> asyncio.Task[None]:
    async def run() -> None:
        await asyncio.to_thread(fn)

    return asyncio.get_running_loop().create_task(run())


async def test_postgres_stopped_under_load_loses_nothing(
    pg: tuple[PostgresServer, str], tmp_path: Path
) -> None:
    server, dsn = pg
    backend = PostgresRecordBackend(dsn, timeout_s=1.0)
    writer = RecordWriter(backend, spool_dir=tmp_path, queue_size=500, batch=100,
                          retry_initial_s=0.05, retry_max_s=0.3)
    await writer.start()
    with Ticker().running() as ticker:
        load = Load(writer, ticker)
        await load.until(lambda: False, limit=600)
        assert writer.stats.written > 0  # the database took records before the outage

        stopping = in_thread(server.stop)
        # Keep submitting until the server is gone and the writer has noticed.
        ticks_down = await load.until(
            lambda: stopping.done() and writer.stats.failed_attempts > 0, limit=10**6
        )
        await stopping
        spooled_before = writer.stats.spooled
        ticks_down += await load.until(lambda: False, limit=len(load.submitted) + 400)
        assert writer.stats.spooled > spooled_before  # new records went to disk

        starting = in_thread(server.start)
        ticks_up = await load.until(starting.done, limit=10**6)
        await starting
        await load.until(lambda: False, limit=TOTAL)
        assert ticks_down > 0 and ticks_up > 0  # the loop ran all through the outage

        assert await writer.flush(DRAIN_S), writer.stats
    stats = writer.stats
    await writer.aclose()

    assert stats.failed_attempts > 0 and stats.replayed > 0
    assert stats.written == len(load.submitted)
    stored = await stored_call_ids(dsn)
    assert sorted(stored) == sorted(load.submitted)
    assert set(stored.values()) == {1}
    check = PostgresRecordBackend(dsn)
    try:
        assert await check.count() == len(load.submitted)
    finally:
        await check.aclose()


async def test_postgres_hung_then_back(pg: tuple[PostgresServer, str], tmp_path: Path) -> None:
    """SIGSTOP: connections open, no answers. Writes time out, records spool, then land."""
    server, dsn = pg
    backend = PostgresRecordBackend(dsn, timeout_s=0.3)
    writer = RecordWriter(backend, spool_dir=tmp_path, queue_size=100, batch=50,
                          retry_initial_s=0.05, retry_max_s=0.2)
    await writer.start()
    with Ticker().running() as ticker:
        load = Load(writer, ticker)
        await load.until(lambda: False, limit=200)
        await until(writer.flush)
        server.pause()
        try:
            ticks = await load.until(lambda: writer.stats.failed_attempts > 0, limit=10**6)
            ticks += await load.until(lambda: False, limit=len(load.submitted) + 200)
            assert ticks > 0
            assert writer.stats.spooled > 0
        finally:
            server.resume()
        assert await writer.flush(DRAIN_S), writer.stats
    await writer.aclose()
    stored = await stored_call_ids(dsn)
    assert sorted(stored) == sorted(load.submitted)


async def until(flush: Callable[[float], Awaitable[bool]]) -> None:
    assert await flush(DRAIN_S)
