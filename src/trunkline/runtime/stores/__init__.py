"""Where calls keep state outside their process.

- :mod:`.session`: the per-turn checkpoint of a live call (``SessionStore``), in memory
  or in Redis (:mod:`.session_redis`), so another worker can take a call over.
- :mod:`.records`: the record of a finished call and the ``RecordBackend`` interface,
  with SQLite (:mod:`.records_sqlite`) and PostgreSQL (:mod:`.records_postgres`)
  backends, and :mod:`.writer`'s ``RecordWriter``, the queue and local :mod:`.spool` that
  keep a slow or absent database from blocking a call or losing a record.

The Redis and PostgreSQL classes are imported from their modules, so that a process
that uses neither does not import their clients.
"""

from trunkline.runtime.stores.records import (
    CallRecord,
    RecordBackend,
    RecordFormatError,
    RecordStoreError,
    TurnTiming,
)
from trunkline.runtime.stores.records_sqlite import SqliteRecordBackend
from trunkline.runtime.stores.session import (
    MemorySessionStore,
    Session,
    SessionConflict,
    SessionFormatError,
    SessionStore,
    SessionStoreError,
)
from trunkline.runtime.stores.writer import RecordWriter, WriterStats

__all__ = [
    "CallRecord",
    "MemorySessionStore",
    "RecordBackend",
    "RecordFormatError",
    "RecordStoreError",
    "RecordWriter",
    "Session",
    "SessionConflict",
    "SessionFormatError",
    "SessionStore",
    "SessionStoreError",
    "SqliteRecordBackend",
    "TurnTiming",
    "WriterStats",
]
