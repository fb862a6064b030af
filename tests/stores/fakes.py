"""Record backends for writer tests: in memory, with switches for outages, latency and poison."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from trunkline.runtime.stores.records import CallRecord, RecordStoreError, newest_per_call

_ids = itertools.count()


def make_record(n: int | None = None, **changes: object) -> CallRecord:
    """A plausible record; ``n`` makes the call_id ``call-<n>``."""
    n = next(_ids) if n is None else n
    record = CallRecord(
        call_id=f"call-{n}",
        agent="acme",
        tenant="t1",
        started_at=1_700_000_000.0 + n,
        ended_at=1_700_000_030.0 + n,
        transcript=[{"role": "caller", "text": f"order {n}", "at": 1.5}],
        dtmf="1234#",
        tool_calls=[{"name": "crm.lookup", "ok": True, "ms": 12}],
        outcome="completed",
        extra={"n": n},
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


class MemoryBackend:
    """A dict with the backends' upsert rule, and switches:

    - ``down``: every write raises a retryable error;
    - ``latency_s``: every write takes this long first;
    - ``gate``: writes wait for this event (a hung database);
    - ``poison``: call_ids refused for good (a non-retryable error).
    """

    def __init__(self) -> None:
        self.rows: dict[str, CallRecord] = {}
        self.write_calls = 0
        self.rows_written = Counter[str]()
        self.log: list[tuple[str, str]] = []  # (call_id, outcome) of every row written
        self.down = False
        self.latency_s = 0.0
        self.gate: asyncio.Event | None = None
        self.poison: set[str] = set()
        self.closed = False

    async def start(self) -> None:
        if self.down:
            raise RecordStoreError("fake: down", retryable=True)

    async def write_many(self, records: list[CallRecord]) -> None:
        self.write_calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise RecordStoreError("fake: connection refused", retryable=True)
        if any(r.call_id in self.poison for r in records):
            raise RecordStoreError("fake: value refused", retryable=False)
        for r in newest_per_call(records):
            kept = self.rows.get(r.call_id)
            if kept is None or r.revision >= kept.revision:
                self.rows[r.call_id] = r
            self.rows_written[r.call_id] += 1
            self.log.append((r.call_id, r.outcome))

    async def get(self, call_id: str) -> CallRecord | None:
        return self.rows.get(call_id)

    async def count(self) -> int:
        return len(self.rows)

    async def list_recent(self, limit: int) -> list[CallRecord]:
        return sorted(self.rows.values(), key=lambda r: -r.started_at)[:limit]

    async def aclose(self) -> None:
        self.closed = True
