"""``RedisSessionStore``: session checkpoints shared by a fleet of workers.

Layout (``prefix`` defaults to ``trunkline:``):

- ``<prefix>session:<call_id>``: a hash with ``version`` and ``data`` (the session JSON).
  Keeping the version beside the JSON lets the check run in Lua without decoding JSON.
- ``<prefix>sessions``: a sorted set of call-IDs scored by the time their key expires,
  so :meth:`RedisSessionStore.list_active` can drop calls whose key lapsed by TTL.

The version check and the write are one Lua script, so two workers racing on one call
cannot both win. Every save refreshes the TTL: a call that stops checkpointing (its
worker died and nobody took it over) disappears after ``ttl_s``.

Every operation runs under one deadline (``timeout_s``) that covers connecting and the
single reconnect redis-py makes on a stale connection, so a dead Redis costs a call at
most ``timeout_s`` and never hangs it. Multi-key scripts mean Redis Cluster is not
supported; use a single primary (with replicas and Sentinel for failover).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from trunkline.runtime.stores.session import (
    Session,
    SessionConflict,
    SessionStoreError,
)

T = TypeVar("T")

# KEYS: session key, active set. ARGV: version, data, ttl_s, call_id.
# Returns -1 when stored, else the stored version (the caller raises SessionConflict).
_SAVE_LUA = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local offered = tonumber(ARGV[1])
if offered ~= stored + 1 then
  return stored
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'data', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(ARGV[3]), ARGV[4])
return -1
"""

# KEYS: active set. Drops the members whose TTL has passed, returns the rest.
_LIST_LUA = """
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed Redis call may succeed if tried again (decided here only)."""
    if isinstance(exc, AuthenticationError):
        return False  # a wrong password stays wrong
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError))


class RedisSessionStore:
    """Sessions in Redis, for workers that must take over each other's calls.

    Args:
        url: ``redis://[[user]:password@]host:port/db`` (or ``rediss://`` for TLS).
        ttl_s: a session not saved for this long is forgotten.
        timeout_s: deadline of each operation, connecting included.
        prefix: namespace of every key, so several deployments can share one Redis.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int = 3600,
        timeout_s: float = 0.5,
        prefix: str = "trunkline:",
    ) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be at least 1 second, not {ttl_s}")
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._prefix = prefix
        self._active_key = f"{prefix}sessions"
        # One retry without backoff: after a Redis restart a pooled connection is dead and
        # the first command on it fails; the retry reconnects. The deadline bounds both.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._save_script = self._redis.register_script(_SAVE_LUA)
        self._list_script = self._redis.register_script(_LIST_LUA)

    def _key(self, call_id: str) -> str:
        return f"{self._prefix}session:{call_id}"

    async def _run(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await op()
        except TimeoutError as exc:
            raise SessionStoreError(
                f"redis {what}: no answer within {self.timeout_s} s", retryable=True
            ) from exc
        except (RedisError, OSError) as exc:
            raise SessionStoreError(
                f"redis {what}: {type(exc).__name__}: {exc}", retryable=is_retryable(exc)
            ) from exc
        except UnicodeError as exc:  # a call_id with a lone surrogate cannot be a key
            raise SessionStoreError(f"redis {what}: {exc}", retryable=False) from exc

    async def save(self, session: Session) -> None:
        """Store ``session`` if its version follows the stored one; refresh its TTL.

        Raises:
            SessionConflict: the stored version is not ``session.version - 1``.
            SessionFormatError: the session holds a value that is not JSON.
            SessionStoreError: Redis is down, slow or refused the command.
        """
        data = session.to_json()
        keys = [self._key(session.call_id), self._active_key]
        args: list[Any] = [session.version, data, self.ttl_s, session.call_id]
        result = await self._run("save", lambda: self._save_script(keys=keys, args=args))
        stored = int(result)
        if stored != -1:
            raise SessionConflict(session.call_id, stored=stored, offered=session.version)

    async def load(self, call_id: str) -> Session | None:
        """The last saved session of ``call_id``, or None if there is none (or it expired).

        Raises:
            SessionFormatError: the stored data is corrupt or of an unknown format.
            SessionStoreError: Redis is down, slow or refused the command.
        """
        key = self._key(call_id)
        data = await self._run("load", lambda: self._redis.hget(key, "data"))
        if data is None:
            return None
        return Session.from_json(data.encode() if isinstance(data, str) else data)

    async def delete(self, call_id: str) -> None:
        """Forget ``call_id``. Deleting an unknown call is not an error."""

        async def op() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(call_id))
                pipe.zrem(self._active_key, call_id)
                await pipe.execute()

        await self._run("delete", op)

    async def list_active(self) -> list[str]:
        """Call-IDs with a live session (expired ones are pruned on the way)."""
        raw = await self._run("list", lambda: self._list_script(keys=[self._active_key]))
        return [m.decode() if isinstance(m, bytes) else str(m) for m in raw]

    async def aclose(self) -> None:
        """Close the connection pool."""
        try:
            await self._redis.aclose()
        except (RedisError, OSError):
            pass  # closing a connection to a dead server has nothing left to release
