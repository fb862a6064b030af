"""RecordWriter with a fake backend: slow, hung, down, poisoned; the spool and its recovery.

"submit never blocks" is checked the way it matters to calls: a ticker task keeps
ticking on the same event loop while records are submitted and the backend misbehaves.
No assertion is on a duration, so a loop that is merely slow is not caught here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from trunkline.runtime.stores.records import RecordFormatError, RecordStoreError
from trunkline.runtime.stores.records_sqlite import SqliteRecordBackend
from trunkline.runtime.stores.writer import RecordWriter

from .fakes import MemoryBackend, make_record

DRAIN_S = 20.0


class Ticker:
    """Counts 1 ms sleeps of the event loop; a blocked loop stops counting."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            self.ticks += 1

    @contextlib.contextmanager
    def running(self) -> Iterator[Ticker]:
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()


def fast_writer(backend: MemoryBackend | SqliteRecordBackend, spool: Path, **kw: object
                ) -> RecordWriter:
    options: dict[str, object] = {"retry_initial_s": 0.01, "retry_max_s": 0.05, **kw}
    return RecordWriter(backend, spool_dir=spool, **options)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[MemoryBackend]:
    yield MemoryBackend()


async def submit_paced(writer: RecordWriter, ids: range, ticker: Ticker, per_step: int = 20
                       ) -> list[int]:
    """Submit in steps, yielding between them like calls ending; ticks seen per step."""
    seen = []
    for start in range(ids.start, ids.stop, per_step):
        before = ticker.ticks
        for n in range(start, min(start + per_step, ids.stop)):
            writer.submit(make_record(n))
        await asyncio.sleep(0.002)
        seen.append(ticker.ticks - before)
    return seen


async def test_happy_path_writes_everything(fake: MemoryBackend, tmp_path: Path) -> None:
    writer = fast_writer(fake, tmp_path)
    await writer.start()
    for n in range(500):
        writer.submit(make_record(n))
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert len(fake.rows) == 500
    stats = writer.stats
    assert (stats.written, stats.spooled, stats.replayed, stats.queue_depth) == (500, 0, 0, 0)
    assert fake.closed


async def test_slow_backend_never_blocks_and_loses_nothing(fake: MemoryBackend, tmp_path: Path
                                                           ) -> None:
    fake.latency_s = 0.02  # 20 ms per batch of 50: slower than we submit
    writer = fast_writer(fake, tmp_path, queue_size=200, batch=50)
    await writer.start()
    with Ticker().running() as ticker:
        seen = await submit_paced(writer, range(2000), ticker, per_step=40)
        assert sum(seen) > 0  # the ticker ran between steps: submit yielded the loop back
        assert writer.stats.spooled > 0  # the queue overflowed to disk
        assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert sorted(fake.rows) == sorted(f"call-{n}" for n in range(2000))
    assert writer.stats.written == 2000
    assert writer.stats.replayed == writer.stats.spooled


async def test_hung_backend_times_out_and_spools(fake: MemoryBackend, tmp_path: Path) -> None:
    fake.gate = asyncio.Event()  # every write hangs until the gate opens
    writer = fast_writer(fake, tmp_path, queue_size=50, batch=10, write_timeout_s=0.05)
    await writer.start()
    for n in range(300):
        writer.submit(make_record(n))
    for _ in range(200):  # the first write times out: the queue moves to disk
        if writer.stats.queue_depth == 0:
            break
        await asyncio.sleep(0.01)
    assert writer.stats.queue_depth == 0
    assert writer.stats.failed_attempts >= 1
    assert writer.spool.size > 0
    fake.gate.set()
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert len(fake.rows) == 300


async def test_full_queue_goes_straight_to_spool(fake: MemoryBackend, tmp_path: Path) -> None:
    fake.gate = asyncio.Event()
    writer = fast_writer(fake, tmp_path, queue_size=5, batch=2)
    await writer.start()
    await asyncio.sleep(0)
    for n in range(100):
        writer.submit(make_record(n))
    stats = writer.stats
    assert stats.queue_depth <= 5 + 2  # the queue and the batch in flight
    assert stats.spooled == 100 - stats.queue_depth
    lines = (tmp_path / "records.jsonl").read_bytes().splitlines()
    assert len(lines) == stats.spooled  # already on disk, before any fsync
    fake.gate.set()
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert len(fake.rows) == 100
    assert writer.spool.size == 0 and (tmp_path / "records.jsonl").stat().st_size == 0


async def test_outage_spools_then_replays(fake: MemoryBackend, tmp_path: Path) -> None:
    writer = fast_writer(fake, tmp_path, batch=10)
    await writer.start()
    fake.down = True
    with Ticker().running() as ticker:
        seen = await submit_paced(writer, range(400), ticker)
        assert sum(seen) > 0  # the ticker ran between steps: submit yielded the loop back
    assert not fake.rows
    assert writer.stats.queue_depth == 0  # an outage puts everything on disk
    assert writer.stats.spooled == 400
    fake.down = False
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert len(fake.rows) == 400
    assert writer.stats.replayed == 400 and writer.stats.failed_attempts >= 1


async def test_later_revision_wins_whatever_drains_first(fake: MemoryBackend, tmp_path: Path
                                                         ) -> None:
    # An older copy of call-1 waits in the spool (left by an outage); the final record
    # is submitted before start, so it is in memory and is written first.
    older = make_record(1, outcome="in progress", revision=1)
    (tmp_path / "records.jsonl").write_bytes(older.to_json() + b"\n")
    writer = fast_writer(fake, tmp_path, batch=10)
    writer.submit(make_record(1, outcome="final"))
    await writer.start()
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert fake.log == [("call-1", "final"), ("call-1", "in progress")]
    assert fake.rows["call-1"].outcome == "final"


async def test_poison_record_is_set_aside_others_written(fake: MemoryBackend, tmp_path: Path
                                                         ) -> None:
    fake.poison = {"call-13"}
    writer = fast_writer(fake, tmp_path, batch=16)
    await writer.start()
    for n in range(40):
        writer.submit(make_record(n))
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert len(fake.rows) == 39 and "call-13" not in fake.rows
    assert writer.stats.rejected == 1
    rejected = (tmp_path / "records.jsonl.rejected").read_bytes().splitlines()
    assert [json.loads(line)["call_id"] for line in rejected] == ["call-13"]


async def test_non_json_record_fails_in_the_caller(fake: MemoryBackend, tmp_path: Path) -> None:
    writer = fast_writer(fake, tmp_path)
    await writer.start()
    with pytest.raises(RecordFormatError):
        writer.submit(make_record(1, extra={"x": {1, 2}}))
    await writer.aclose()


async def test_close_during_outage_then_next_start_replays(tmp_path: Path) -> None:
    down = MemoryBackend()
    down.down = True
    writer = fast_writer(down, tmp_path, queue_size=1000)
    await writer.start()
    for n in range(250):
        writer.submit(make_record(n))
    await writer.aclose(drain_timeout_s=0.1)
    writer.submit(make_record(999))  # after close: lands in the spool for the next run
    writer.spool.close()
    assert not down.rows

    up = MemoryBackend()
    second = fast_writer(up, tmp_path)
    await second.start()
    assert await second.flush(DRAIN_S)
    await second.aclose()
    assert len(up.rows) == 251 and "call-999" in up.rows


async def test_crash_replay_makes_no_duplicates(tmp_path: Path) -> None:
    """Records in the database and still in the spool (crash before truncation)."""
    db = SqliteRecordBackend(tmp_path / "records.sqlite3")
    records = [make_record(n, revision=n + 1) for n in range(300)]
    await db.write_many(records[:200])
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "records.jsonl").write_bytes(b"".join(r.to_json() + b"\n" for r in records))
    writer = fast_writer(db, spool)
    await writer.start()
    assert await writer.flush(DRAIN_S)
    assert await db.count() == 300
    assert [r.call_id for r in await db.list_recent(1000)] == [
        f"call-{n}" for n in reversed(range(300))]
    await writer.aclose()
    assert writer.stats.replayed == 300


async def test_corrupt_spool_good_lines_replay_bad_set_aside(fake: MemoryBackend, tmp_path: Path
                                                             ) -> None:
    good = [make_record(n).to_json() for n in range(5)]
    junk = b'{"format": 1, "call_id": "half'
    torn = make_record(99).to_json()[:40]  # the crash cut the last write
    (tmp_path / "records.jsonl").write_bytes(
        good[0] + b"\n" + good[1] + b"\n" + junk + b"\n" + b"\xff\xfe\n"
        + b"\n".join(good[2:]) + b"\n" + torn
    )
    writer = fast_writer(fake, tmp_path)
    await writer.start()
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert sorted(fake.rows) == [f"call-{n}" for n in range(5)]
    bad = (tmp_path / "records.jsonl.bad").read_bytes().splitlines()
    assert sorted(bad) == sorted([torn, junk, b"\xff\xfe"])
    assert (tmp_path / "records.jsonl").stat().st_size == 0


async def test_spool_dir_has_one_writer(fake: MemoryBackend, tmp_path: Path) -> None:
    first = fast_writer(fake, tmp_path)
    await first.start()
    second = fast_writer(MemoryBackend(), tmp_path)
    with pytest.raises(RecordStoreError, match="in use"):
        await second.start()
    await first.aclose()


async def test_backend_down_at_start_is_not_fatal(fake: MemoryBackend, tmp_path: Path) -> None:
    fake.down = True
    writer = fast_writer(fake, tmp_path)
    await writer.start()
    writer.submit(make_record(1))
    await asyncio.sleep(0.05)
    fake.down = False
    assert await writer.flush(DRAIN_S)
    await writer.aclose()
    assert "call-1" in fake.rows
