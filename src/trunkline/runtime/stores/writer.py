"""``RecordWriter``: how the runtime stores call records without ever blocking a call.

Theory of operation
-------------------
``submit`` is synchronous and cheap: it encodes the record (so a record that is not JSON
fails in the caller, at once) and appends it to a bounded in-memory queue. When the queue
is full, or the database is known to be down, the record is appended to the local spool
instead (one ``os.write``; fsync follows in a worker thread). ``submit`` never waits and
never raises because of the database or a full queue.

One background task writes batches to the backend. It takes from the queue and the
spool in turn, so a backlog on disk drains even while calls keep ending. When a batch
from the queue fails with a retryable error, the database is considered down: that
batch and the rest of the queue move to the spool (a crash during the outage loses
nothing) and new records go straight there. The task then retries from the spool with
exponential backoff; the first success ends the outage.

A non-retryable error means some record is poison (the database refuses it for good).
The batch is split in halves until the refused records are isolated; those go to the
spool's ``.rejected`` file with a log line, and the others are written.

Every record carries a ``revision`` (the submit time in ns unless the caller set one)
and backends never replace a higher revision. So a replay after a crash between a
database write and the spool truncation rewrites identical rows, and the order in which
queue and spool drain does not matter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trunkline.aio import cancel_and_wait
from trunkline.runtime.stores.records import CallRecord, RecordBackend, RecordStoreError
from trunkline.runtime.stores.spool import Spool

log = logging.getLogger(__name__)

T = TypeVar("T")
_Entry = tuple[CallRecord, bytes]  # the record and its spool line


@dataclasses.dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of a :class:`RecordWriter` since it was created.

    ``written`` counts records the backend acknowledged (``replayed`` of them came from
    the spool); ``spooled`` counts records appended to the spool; ``rejected`` counts
    records the backend refused for good (kept in the ``.rejected`` file);
    ``queue_depth`` is records in memory (queued or being written); ``spool_bytes`` is
    the size of the spool file (it shrinks to zero once all of it is replayed).
    """

    written: int
    spooled: int
    replayed: int
    failed_attempts: int
    rejected: int
    queue_depth: int
    spool_bytes: int


class RecordWriter:
    """Queue, spool and retry in front of a :class:`RecordBackend`.

    Args:
        backend: where records end up. The writer owns it and closes it in ``aclose``.
        spool_dir: a local directory for the spool; one writer per directory.
        queue_size: records held in memory before new ones go to the spool.
        batch: records per backend write.
        retry_initial_s, retry_max_s: the backoff between attempts while the backend fails.
        write_timeout_s: a write that takes longer counts as failed (and is retried).
    """

    def __init__(
        self,
        backend: RecordBackend,
        *,
        spool_dir: Path,
        queue_size: int = 10_000,
        batch: int = 100,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        write_timeout_s: float = 10.0,
    ) -> None:
        if queue_size < 1 or batch < 1:
            raise ValueError("queue_size and batch must be at least 1")
        self.backend = backend
        self.spool = Spool(Path(spool_dir))
        self._queue: deque[_Entry] = deque()
        self._queue_size = queue_size
        self._batch = batch
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._write_timeout_s = write_timeout_s
        self._in_flight: list[_Entry] = []
        self._outage = False
        self._closing = False
        self._closed = False
        self._last_revision = 0
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._drained = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Spool reads and fsyncs run on one thread of our own, so aclose can wait for them
        # before closing the file.
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="record-spool")
        self._written = self._spooled = self._replayed = 0
        self._failed_attempts = self._rejected = 0

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            spooled=self._spooled,
            replayed=self._replayed,
            failed_attempts=self._failed_attempts,
            rejected=self._rejected,
            queue_depth=len(self._queue) + len(self._in_flight),
            spool_bytes=self.spool.size,
        )

    async def start(self) -> None:
        """Open the spool (replaying what a previous run left), start the background tasks
        and connect the backend; a backend that is down now is retried by the writes.

        Raises:
            RecordStoreError: the spool cannot be opened or another writer holds it.
        """
        if self._tasks or self._closed:
            raise RuntimeError("RecordWriter.start called twice or after aclose")
        self._open_spool()
        try:
            await self.backend.start()
        except Exception as exc:
            log.warning("record store not reachable at start (%s); records will spool", exc)
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="record-writer"),
            asyncio.create_task(self._sync_loop(), name="record-spool-sync"),
        ]

    def _open_spool(self) -> None:
        if not self.spool.is_open:
            self.spool.open()
            if self.spool.size:
                log.info("spool %s holds %d bytes to replay", self.spool.path, self.spool.size)

    def submit(self, record: CallRecord) -> None:
        """Hand a finished call's record over; returns at once. Call it on the event loop's
        thread. ``record`` is not modified (the stamped revision goes on a copy).

        Raises:
            RecordFormatError: the record holds a value that is not JSON (a bug in the caller).
        """
        if record.revision == 0:
            self._last_revision = max(time.time_ns(), self._last_revision + 1)
            record = dataclasses.replace(record, revision=self._last_revision)
        entry = (record, record.to_json())
        self._drained.clear()
        self._wake.set()
        to_disk = self._outage or self._closing or len(self._queue) >= self._queue_size
        if not (to_disk and self._to_spool([entry])):
            self._queue.append(entry)

    def _to_spool(self, entries: list[_Entry]) -> bool:
        """Append to the spool; False (and a log line) if the disk refuses."""
        try:
            self._open_spool()
            self.spool.append([line for _, line in entries])
        except (OSError, RecordStoreError) as exc:
            # Memory is the last resort: the records stay queued past the bound.
            log.error("cannot spool %d record(s), keeping them in memory: %s", len(entries), exc)
            return False
        self._spooled += len(entries)
        self._dirty.set()
        return True

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queue and the spool are empty; False if ``timeout_s`` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self, drain_timeout_s: float = 5.0) -> None:
        """Drain for up to ``drain_timeout_s``, spool whatever is still in memory, fsync,
        and close the backend. Records submitted from now on go to the spool."""
        if self._closed:
            return
        self._closed = self._closing = True
        if self._tasks:
            await self.flush(drain_timeout_s)
            for task in self._tasks:
                await cancel_and_wait(task)
            self._tasks = []
        left = self._in_flight + list(self._queue)
        self._in_flight = []
        self._queue.clear()
        if left and not self._to_spool(left):
            log.error("%d record(s) lost at shutdown: neither database nor disk took them",
                      len(left))
        if self.spool.is_open:
            try:
                await self._in_thread(self.spool.sync)
            except OSError as exc:
                log.error("spool fsync at shutdown failed: %s", exc)
        await asyncio.to_thread(self._io.shutdown, True)
        self.spool.close()
        try:
            await self.backend.aclose()
        except Exception:
            log.exception("closing the record store failed")

    def _in_thread(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._io, fn)

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._in_thread(self.spool.sync)
            except OSError as exc:
                log.error("spool fsync failed: %s", exc)

    async def _write_loop(self) -> None:
        delay = self._retry_initial_s
        spool_turn = False
        while True:
            from_spool = self.spool.pending_bytes > 0 and (
                self._outage or spool_turn or not self._queue
            )
            spool_turn = not spool_turn
            if not from_spool and not self._queue:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                ok = await (self._replay_chunk() if from_spool else self._write_queued())
            except OSError as exc:  # the spool's disk failed under a read or a truncation
                log.error("record spool I/O failed: %s", exc)
                ok = False
            if ok:
                if self._outage:
                    log.warning("record store is back; replaying the spool")
                self._outage = False
                delay = self._retry_initial_s
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _write_queued(self) -> bool:
        """Write one batch from the queue; on failure move the whole queue to the spool."""
        n = min(self._batch, len(self._queue))
        entries = self._in_flight = [self._queue.popleft() for _ in range(n)]
        left, rejected = await self._write(entries)
        self._in_flight = []
        self._written += len(entries) - len(left) - rejected
        if not left:
            return True
        if not self._outage:
            log.warning("record store failed; spooling records to %s", self.spool.path)
        self._outage = True
        backlog = left + list(self._queue)
        self._queue.clear()
        if not self._to_spool(backlog):
            self._queue.extendleft(reversed(backlog))
        return False

    async def _replay_chunk(self) -> bool:
        """Write one batch read back from the spool; consume it only if all of it landed."""
        chunk = await self._in_thread(lambda: self.spool.read(self._batch))
        if not chunk.records and not chunk.bad:
            # Cannot happen (the spool's size only counts whole lines); never spin on it.
            log.error("spool %s: no whole line at offset %d", self.spool.path, chunk.end)
            return False
        left, rejected = await self._write(chunk.records)
        if left:
            self._outage = True
            return False  # the chunk stays in the spool; what did land is rewritten later
        done = len(chunk.records) - rejected
        self._written += done
        self._replayed += done
        self.spool.consume(chunk)
        return True

    async def _write(self, entries: list[_Entry]) -> tuple[list[_Entry], int]:
        """Write ``entries``; return those that failed retryably and how many were refused.

        Records refused for good (a non-retryable error) are isolated by halving the batch
        and moved to the rejected file; they count as done.
        """
        if not entries:
            return [], 0
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self.backend.write_many([r for r, _ in entries])
            return [], 0
        except RecordStoreError as exc:
            self._failed_attempts += 1
            if exc.retryable:
                log.debug("record write failed (%s); will retry", exc)
                return entries, 0
            if len(entries) == 1:
                record, line = entries[0]
                log.error("record store refused record %r for good (%s); kept in %s",
                          record.call_id, exc, self.spool.rejected_path)
                self.spool.reject([line])
                self._rejected += 1
                return [], 1
        except TimeoutError:
            self._failed_attempts += 1
            log.debug("record write took over %s s; will retry", self._write_timeout_s)
            return entries, 0
        except Exception:
            # Not our error type: a backend bug. Retry rather than reject good records.
            self._failed_attempts += 1
            log.exception("record write failed unexpectedly; will retry")
            return entries, 0
        half = len(entries) // 2
        left_a, rejected_a = await self._write(entries[:half])
        left_b, rejected_b = await self._write(entries[half:])
        return left_a + left_b, rejected_a + rejected_b
