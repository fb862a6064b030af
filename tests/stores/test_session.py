"""SessionStore: the same contract on the memory store and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from trunkline.runtime.stores.session import (
    MemorySessionStore,
    Session,
    SessionConflict,
    SessionFormatError,
    SessionStore,
    SessionStoreError,
)
from trunkline.runtime.stores.session_redis import RedisSessionStore

from .servers import RedisServer, free_port

#: Guard against a hang only; the store's own timeout is far shorter.
HANG_GUARD_S = 10.0


def a_session(call_id: str = "call-1", version: int = 1) -> Session:
    return Session(
        call_id=call_id,
        agent="acme",
        tenant="t1",
        flow_state="order_status",
        slots={"order_number": "12345", "confirmed": True, "n": 3, "nested": {"a": [1, None]}},
        transcript=[
            {"role": "agent", "text": "Hello, how can I help?", "at": 0.5},
            {"role": "caller", "text": "Où est ma commande ?", "at": 2.25, "confidence": 0.9},
        ],
        pending_tool={"name": "crm.lookup", "args": {"order": "12345"}, "started_at": 3.0},
        sip_dialog={"call_id": call_id, "local_tag": "abc", "remote_tag": "xyz", "cseq": 2},
        version=version,
        updated_at=1_700_000_000.25,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        s: SessionStore = MemorySessionStore()
    else:
        server: RedisServer = request.getfixturevalue("redis")
        s = RedisSessionStore(server.url, timeout_s=2.0)
    yield s
    await s.aclose()


async def test_save_load_round_trip(store: SessionStore) -> None:
    session = a_session()
    await store.save(session)
    assert await store.load("call-1") == session
    session.version = 2
    session.slots["extra"] = "x"
    session.transcript.append({"role": "caller", "text": "yes", "at": 5.0})
    await store.save(session)
    loaded = await store.load("call-1")
    assert loaded == session
    assert loaded is not session


async def test_load_unknown_is_none(store: SessionStore) -> None:
    assert await store.load("nobody") is None


async def test_delete_and_list_active(store: SessionStore) -> None:
    for n in range(3):
        await store.save(a_session(f"call-{n}"))
    assert sorted(await store.list_active()) == ["call-0", "call-1", "call-2"]
    await store.delete("call-1")
    await store.delete("never-existed")
    assert sorted(await store.list_active()) == ["call-0", "call-2"]
    assert await store.load("call-1") is None
    # A deleted call starts over at version 1.
    await store.save(a_session("call-1"))
    assert (await store.load("call-1")) == a_session("call-1")


@pytest.mark.parametrize("offered", [1, 3, 7])
async def test_version_must_follow(store: SessionStore, offered: int) -> None:
    await store.save(a_session(version=1))
    with pytest.raises(SessionConflict) as info:
        await store.save(a_session(version=offered))
    assert (info.value.stored, info.value.offered) == (1, offered)
    assert info.value.retryable is False
    assert (await store.load("call-1")) == a_session(version=1)  # the refused write left no trace


async def test_first_save_must_be_version_1(store: SessionStore) -> None:
    with pytest.raises(SessionConflict):
        await store.save(a_session(version=2))
    assert await store.load("call-1") is None


async def test_two_workers_racing_one_wins(store: SessionStore) -> None:
    await store.save(a_session(version=1))
    a, b = a_session(version=2), a_session(version=2)
    a.flow_state, b.flow_state = "worker_a", "worker_b"
    results = await asyncio.gather(store.save(a), store.save(b), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, SessionConflict) for r in results) == 1
    winner = a if results[0] is None else b
    assert (await store.load("call-1")) == winner


async def test_unencodable_call_id_is_not_retryable(store: SessionStore) -> None:
    try:
        await store.save(a_session("bad\ud800"))
    except SessionStoreError as exc:  # Redis keys are UTF-8; memory takes anything
        assert exc.retryable is False
    else:
        assert isinstance(store, MemorySessionStore)


async def test_non_json_slot_is_refused(store: SessionStore) -> None:
    session = a_session()
    session.slots["when"] = {1, 2}  # a set
    with pytest.raises(SessionFormatError):
        await store.save(session)
    assert await store.load("call-1") is None


# --- Redis specifics -------------------------------------------------------------------------


async def test_redis_ttl_expires_and_list_prunes(redis: RedisServer) -> None:
    store = RedisSessionStore(redis.url, ttl_s=1, timeout_s=2.0)
    try:
        await store.save(a_session("short"))
        assert await store.list_active() == ["short"]
        for _ in range(60):  # the key lapses one second after the save
            if await store.load("short") is None:
                break
            await asyncio.sleep(0.05)
        assert await store.load("short") is None
        for _ in range(40):  # the set's score has whole-second resolution
            if await store.list_active() == []:
                break
            await asyncio.sleep(0.05)
        assert await store.list_active() == []
    finally:
        await store.aclose()


async def test_redis_corrupt_data_is_a_format_error(redis: RedisServer) -> None:
    store = RedisSessionStore(redis.url, timeout_s=2.0, prefix="t:")
    try:
        await store._redis.hset("t:session:bad", mapping={"version": 1, "data": b"{not json"})
        with pytest.raises(SessionFormatError):
            await store.load("bad")
        await store._redis.hset("t:session:future", "version", 1)
        await store._redis.hset("t:session:future", "data", b'{"format":99}')
        with pytest.raises(SessionFormatError, match="format 99"):
            await store.load("future")
    finally:
        await store.aclose()


async def test_redis_down_is_retryable_not_a_hang(redis: RedisServer) -> None:
    store = RedisSessionStore(redis.url, timeout_s=0.3)
    try:
        await store.save(a_session())
        redis.stop()
        async with asyncio.timeout(HANG_GUARD_S):
            for op in (store.save(a_session(version=2)), store.load("call-1"),
                       store.list_active(), store.delete("call-1")):
                with pytest.raises(SessionStoreError) as info:
                    await op
                assert info.value.retryable is True
        # Redis comes back (empty: no persistence); the same store object reconnects.
        redis.start()
        await store.save(a_session("after"))
        assert await store.list_active() == ["after"]
    finally:
        await store.aclose()


async def test_redis_hung_server_times_out(redis: RedisServer) -> None:
    store = RedisSessionStore(redis.url, timeout_s=0.3)
    try:
        await store.save(a_session())
        redis.pause()  # accepts connections at kernel level, never answers
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                with pytest.raises(SessionStoreError, match="no answer") as info:
                    await store.load("call-1")
            assert info.value.retryable is True
        finally:
            redis.resume()
        assert (await store.load("call-1")) == a_session()
    finally:
        await store.aclose()


async def test_redis_nothing_listening() -> None:
    store = RedisSessionStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.3)
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            with pytest.raises(SessionStoreError) as info:
                await store.save(a_session())
        assert info.value.retryable is True
    finally:
        await store.aclose()
