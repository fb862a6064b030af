"""``SqliteRecordBackend``: the embedded default record store, one file, no server.

sqlite3 blocks, so every statement runs on one worker thread that owns the connection
(a single thread also means no locking between our own statements). WAL mode lets
readers (the HTTP API listing calls) run while a batch is being written, and
``synchronous=FULL`` makes each committed batch survive a power cut, which is the point
of a record store; at one transaction per batch that costs one fsync per batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from trunkline.runtime.stores.records import (
    CallRecord,
    RecordStoreError,
    newest_per_call,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS call_records (
    call_id    TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    agent      TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL,
    outcome    TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS call_records_started_at ON call_records (started_at);
"""

# A stored record of a higher revision wins; an equal one is rewritten (a replay).
_UPSERT = """
INSERT INTO call_records (call_id, tenant, agent, started_at, ended_at, outcome, revision, record)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (call_id) DO UPDATE SET
    tenant = excluded.tenant, agent = excluded.agent, started_at = excluded.started_at,
    ended_at = excluded.ended_at, outcome = excluded.outcome, revision = excluded.revision,
    record = excluded.record
WHERE excluded.revision >= call_records.revision
"""


class SqliteRecordBackend:
    """Call records in an SQLite file.

    Args:
        path: the database file (created with its directory if missing).
        synchronous: ``FULL`` (a committed batch survives power loss) or ``NORMAL``
            (survives a crash of this process only; faster on slow disks).
        busy_timeout_s: how long a statement waits for another process's lock.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="records-db")

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            return fn(self._connect())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except sqlite3.Error as exc:
            # OperationalError covers "database is locked", a full disk and I/O errors,
            # which can pass; anything else (corruption, constraint) will not.
            retryable = isinstance(exc, sqlite3.OperationalError)
            raise RecordStoreError(f"sqlite {what}: {exc}", retryable=retryable) from exc
        except OSError as exc:  # the directory cannot be created
            raise RecordStoreError(f"sqlite {what}: {exc}", retryable=True) from exc
        except (ValueError, OverflowError) as exc:
            # A value SQLite cannot bind (a lone surrogate, an int past 64 bits): for good.
            raise RecordStoreError(f"sqlite {what}: {exc}", retryable=False) from exc

    def _connect(self) -> sqlite3.Connection:
        """The connection, opened on first use (runs on the worker thread)."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def start(self) -> None:
        """Open the file and create the table if needed."""
        await self._run("open", lambda conn: None)

    async def write_many(self, records: list[CallRecord]) -> None:
        """Upsert ``records`` in one transaction."""
        def write(conn: sqlite3.Connection) -> None:
            # Encoding here keeps the JSON work off the event loop's thread.
            rows = [
                (r.call_id, r.tenant, r.agent, r.started_at, r.ended_at, r.outcome, r.revision,
                 r.to_json().decode("ascii"))
                for r in newest_per_call(records)
            ]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run("write", write)

    async def get(self, call_id: str) -> CallRecord | None:
        def get(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT record FROM call_records WHERE call_id = ?", (call_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        text = await self._run("get", get)
        return None if text is None else CallRecord.from_json(text)

    async def count(self) -> int:
        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM call_records").fetchone()[0])

        return await self._run("count", count)

    async def list_recent(self, limit: int) -> list[CallRecord]:
        def recent(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT record FROM call_records ORDER BY started_at DESC, call_id LIMIT ?",
                (limit,),
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [CallRecord.from_json(text) for text in await self._run("list", recent)]

    async def aclose(self) -> None:
        """Close the connection and stop the worker thread."""

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        await asyncio.to_thread(self._thread.shutdown, True)
