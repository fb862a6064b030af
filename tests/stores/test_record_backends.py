"""RecordBackend contract on SQLite and a real PostgreSQL, and the CallRecord JSON form."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.runtime.stores.records import (
    RECORD_FORMAT,
    CallRecord,
    RecordBackend,
    RecordFormatError,
    RecordStoreError,
    TurnTiming,
)
from trunkline.runtime.stores.records_postgres import PostgresRecordBackend
from trunkline.runtime.stores.records_sqlite import SqliteRecordBackend

from .fakes import make_record
from .servers import PostgresServer, free_port


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecordBackend]:
    if request.param == "sqlite":
        b: RecordBackend = SqliteRecordBackend(tmp_path / "db" / "records.sqlite3")
    else:
        _, dsn = request.getfixturevalue("pg")
        b = PostgresRecordBackend(dsn, timeout_s=5.0)
    await b.start()
    yield b
    await b.aclose()


def full_record(n: int) -> CallRecord:
    return make_record(
        n,
        turns=[TurnTiming(1, 0.5, 0.7, 0.9, 1.1, 1.12), TurnTiming(2, 5.0, None, None, None, None)],
        transfer={"to": "sip:human@example.com", "summary": "wants a person"},
        revision=42,
    )


async def test_round_trip(backend: RecordBackend) -> None:
    records = [full_record(n) for n in range(5)]
    await backend.write_many(records)
    assert await backend.count() == 5
    for r in records:
        assert await backend.get(r.call_id) == r
    assert await backend.get("nope") is None
    recent = await backend.list_recent(3)
    assert [r.call_id for r in recent] == ["call-4", "call-3", "call-2"]


async def test_upsert_is_idempotent_and_respects_revision(backend: RecordBackend) -> None:
    first = make_record(1, revision=10, outcome="first")
    await backend.write_many([first])
    await backend.write_many([first])  # a replay
    assert await backend.count() == 1
    older = make_record(1, revision=5, outcome="older")
    await backend.write_many([older])
    assert (await backend.get("call-1")) == first
    newer = make_record(1, revision=11, outcome="newer")
    await backend.write_many([newer])
    assert (await backend.get("call-1")) == newer


async def test_duplicates_in_one_batch(backend: RecordBackend) -> None:
    batch = [make_record(7, revision=3, outcome="c"), make_record(7, revision=1, outcome="a"),
             make_record(8, revision=1)]
    await backend.write_many(batch)
    assert await backend.count() == 2
    stored = await backend.get("call-7")
    assert stored is not None and stored.outcome == "c"


async def test_unstorable_value_is_not_retryable(backend: RecordBackend) -> None:
    with pytest.raises(RecordStoreError) as info:
        await backend.write_many([make_record(1), make_record(2, call_id="bad\ud800")])
    assert info.value.retryable is False
    assert await backend.count() == 0  # all or nothing


async def test_nul_in_transcript_is_stored(backend: RecordBackend) -> None:
    r = make_record(3, transcript=[{"role": "caller", "text": "a\x00b"}])
    await backend.write_many([r])
    assert await backend.get("call-3") == r


async def test_postgres_down_is_retryable(pg: tuple[PostgresServer, str]) -> None:
    b = PostgresRecordBackend(f"postgresql://postgres@127.0.0.1:{free_port()}/x", timeout_s=1.0)
    try:
        with pytest.raises(RecordStoreError) as info:
            await b.write_many([make_record(1)])
        assert info.value.retryable is True
    finally:
        await b.aclose()


async def test_postgres_restart_reconnects(pg: tuple[PostgresServer, str]) -> None:
    server, dsn = pg
    b = PostgresRecordBackend(dsn, timeout_s=2.0)
    try:
        await b.write_many([make_record(1)])
        server.stop()
        with pytest.raises(RecordStoreError) as info:
            await b.write_many([make_record(2)])
        assert info.value.retryable is True
        server.start()
        for _ in range(5):  # the pooled connection is dead; it is replaced on the way
            try:
                await b.write_many([make_record(2)])
                break
            except RecordStoreError as exc:
                assert exc.retryable
        assert await b.count() == 2
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(DISTINCT call_id) FROM call_records") == 2
        finally:
            await conn.close()
    finally:
        await b.aclose()


async def test_sqlite_unwritable_path_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    b = SqliteRecordBackend(tmp_path / "file" / "records.sqlite3")
    with pytest.raises(RecordStoreError):
        await b.start()
    await b.aclose()


# --- CallRecord JSON -----------------------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
timings = st.none() | st.floats(min_value=0, max_value=1e5)
records = st.builds(
    CallRecord,
    call_id=st.text(min_size=1, max_size=30),
    agent=st.text(max_size=10),
    tenant=st.text(max_size=10),
    started_at=st.floats(min_value=0, max_value=4e9),
    ended_at=st.none() | st.floats(min_value=0, max_value=4e9),
    transcript=st.lists(st.dictionaries(st.text(max_size=5), json_leaf, max_size=3), max_size=3),
    turns=st.lists(st.builds(TurnTiming, st.integers(0, 1000), timings, timings, timings,
                             timings, timings), max_size=3),
    dtmf=st.text(alphabet="0123456789*#ABCD", max_size=8),
    tool_calls=st.lists(st.dictionaries(st.text(max_size=5), json_leaf, max_size=3), max_size=2),
    outcome=st.text(max_size=10),
    transfer=st.none() | st.dictionaries(st.text(max_size=5), json_leaf, max_size=2),
    extra=st.dictionaries(st.text(max_size=5), json_leaf, max_size=3),
    revision=st.integers(0, 2**63 - 1),
)


@settings(max_examples=60, deadline=None)
@given(records)
def test_record_json_round_trip(record: CallRecord) -> None:
    line = record.to_json()
    assert b"\n" not in line  # one spool line per record
    assert CallRecord.from_json(line) == record
    assert CallRecord.from_json(line).to_json() == line


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.builds(lambda r, n: r.to_json()[:n], records,
                                           st.integers(0, 300)))
def test_record_garbage_raises_format_error_only(data: bytes) -> None:
    try:
        CallRecord.from_json(data)
    except RecordFormatError:
        pass


@pytest.mark.parametrize(
    ("field", "value"),
    [("turns", [{"turn": 1, "bogus": 2}]), ("turns", [{"turn": "1"}]),
     ("turns", [{"turn": 1, "asr_final": "x"}]), ("started_at", 10**400), ("revision", 1.5),
     ("format", RECORD_FORMAT + 1), ("transfer", [1]), ("transcript", ["x"]),
     ("tool_calls", [[]])],
)
def test_record_bad_fields(field: str, value: Any) -> None:
    doc = json.loads(make_record(1).to_json())
    doc[field] = value
    with pytest.raises(RecordFormatError):
        CallRecord.from_json(json.dumps(doc))


async def test_postgres_hung_at_first_use_times_out(pg: tuple[PostgresServer, str]) -> None:
    server, dsn = pg
    b = PostgresRecordBackend(dsn, timeout_s=0.3)
    server.pause()
    try:
        with pytest.raises(RecordStoreError, match="no answer") as info:
            await b.start()
        assert info.value.retryable is True
    finally:
        server.resume()
    try:
        await b.write_many([make_record(1)])  # the schema is created once it answers
        assert await b.count() == 1
    finally:
        await b.aclose()
