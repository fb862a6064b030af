"""``PostgresRecordBackend``: call records in PostgreSQL, for a fleet of workers.

An asyncpg pool, connected lazily: a backend created while the database is down works
as soon as it comes back, which is what lets :class:`RecordWriter` ride out an outage.
The table is created on first use, under an advisory lock so that workers starting
together do not race on ``CREATE TABLE IF NOT EXISTS`` (which is not atomic in
PostgreSQL). The record is kept as JSON text beside a few indexed columns: ``text``
rather than ``jsonb`` because ``jsonb`` refuses ``\\u0000``, and a transcript must not be
able to make a record unstorable; cast ``record::jsonb`` to query into it.

Every operation runs under ``timeout_s`` (connecting, taking a pooled connection and the
statement), so a database that hangs fails the write and the writer spools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from trunkline.runtime.stores.records import CallRecord, RecordStoreError, newest_per_call

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
SELECT pg_advisory_xact_lock(hashtext('trunkline.call_records'));
CREATE TABLE IF NOT EXISTS call_records (
    call_id    text PRIMARY KEY,
    tenant     text NOT NULL,
    agent      text NOT NULL,
    started_at double precision NOT NULL,
    ended_at   double precision,
    outcome    text NOT NULL,
    revision   bigint NOT NULL,
    record     text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS call_records_started_at ON call_records (started_at);
"""

# A stored record of a higher revision wins; an equal one is rewritten (a replay).
_UPSERT = """
INSERT INTO call_records (call_id, tenant, agent, started_at, ended_at, outcome, revision, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (call_id) DO UPDATE SET
    tenant = EXCLUDED.tenant, agent = EXCLUDED.agent, started_at = EXCLUDED.started_at,
    ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome, revision = EXCLUDED.revision,
    record = EXCLUDED.record, written_at = now()
WHERE EXCLUDED.revision >= call_records.revision
"""

#: SQLSTATE classes worth retrying: connection exception, transaction rollback
#: (serialization, deadlock), insufficient resources, operator intervention (shutdown,
#: "the database system is starting up") and system error (I/O).
_RETRYABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed PostgreSQL call may succeed if tried again (decided here only)."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in _RETRYABLE_SQLSTATE_CLASSES
    if isinstance(exc, (UnicodeError, OverflowError, asyncpg.DataError)):
        return False  # a value PostgreSQL cannot take: it will not take it later either
    # Connection refused or reset, timeouts, a pooled connection found closed.
    return isinstance(exc, (OSError, TimeoutError, asyncpg.InterfaceError))


class PostgresRecordBackend:
    """Call records in PostgreSQL.

    Args:
        dsn: ``postgresql://user:password@host:port/database``.
        timeout_s: deadline of every operation, connecting included.
        max_connections: size of the pool (the writer uses one; readers share the rest).
    """

    def __init__(self, dsn: str, *, timeout_s: float = 5.0, max_connections: int = 4) -> None:
        self._dsn = dsn
        self.timeout_s = timeout_s
        self._max_connections = max_connections
        self._pool: Any = None  # asyncpg.Pool; asyncpg ships no type information
        self._schema_ready = False
        self._lock = asyncio.Lock()

    async def _ensure(self) -> Any:
        async with self._lock:
            if self._pool is None:
                # min_size=0: creating the pool does not connect, so it cannot fail here.
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._max_connections,
                    timeout=self.timeout_s,
                    command_timeout=self.timeout_s,
                )
            if not self._schema_ready:
                # One simple query: its statements run as one transaction, which holds the
                # advisory lock until the table and index exist.
                await self._on_connection(self._pool, lambda conn: conn.execute(_SCHEMA))
                self._schema_ready = True
        return self._pool

    async def _on_connection(self, pool: Any, op: Callable[[Any], Awaitable[T]]) -> T:
        async with pool.acquire(timeout=self.timeout_s) as conn:
            try:
                return await op(conn)
            except asyncio.CancelledError:
                # Timed out (or cancelled): the server may be hung, and a clean release
                # would wait on it to reset the session. Drop the socket instead.
                conn.terminate()
                raise

    async def _run(self, what: str, op: Callable[[Any], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                pool = await self._ensure()
                return await self._on_connection(pool, op)
        except TimeoutError as exc:
            raise RecordStoreError(
                f"postgres {what}: no answer within {self.timeout_s} s", retryable=True
            ) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError,
                OverflowError) as exc:
            raise RecordStoreError(
                f"postgres {what}: {type(exc).__name__}: {exc}", retryable=is_retryable(exc)
            ) from exc

    async def start(self) -> None:
        """Connect and create the table if needed.

        Raises:
            RecordStoreError: the database cannot be reached (``retryable``) or refused us.
        """
        await self._run("start", lambda conn: asyncio.sleep(0))

    async def write_many(self, records: list[CallRecord]) -> None:
        """Upsert ``records`` in one transaction."""
        rows = [
            (r.call_id, r.tenant, r.agent, r.started_at, r.ended_at, r.outcome, r.revision,
             r.to_json().decode("ascii"))
            for r in newest_per_call(records)
        ]

        # executemany is atomic (asyncpg >= 0.22): all rows or none, in one round trip.
        await self._run("write", lambda conn: conn.executemany(_UPSERT, rows))

    async def get(self, call_id: str) -> CallRecord | None:
        text = await self._run(
            "get",
            lambda conn: conn.fetchval(
                "SELECT record FROM call_records WHERE call_id = $1", call_id
            ),
        )
        return None if text is None else CallRecord.from_json(text)

    async def count(self) -> int:
        n = await self._run(
            "count", lambda conn: conn.fetchval("SELECT count(*) FROM call_records")
        )
        return int(n)

    async def list_recent(self, limit: int) -> list[CallRecord]:
        rows = await self._run(
            "list",
            lambda conn: conn.fetch(
                "SELECT record FROM call_records ORDER BY started_at DESC, call_id LIMIT $1",
                limit,
            ),
        )
        return [CallRecord.from_json(row[0]) for row in rows]

    async def aclose(self) -> None:
        """Close the pool; connections that do not close in time are terminated."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await pool.close()
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pool.terminate()
