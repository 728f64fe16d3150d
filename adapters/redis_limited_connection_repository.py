"""Connection records and connection limits in one standalone Redis, one round trip per call.

What :class:`~adapters.limited_connection_repository.LimitedConnectionRepository` over
:class:`~adapters.redis_connection_repository.RedisConnectionRepository` and
:class:`~adapters.redis_connection_limiter.RedisConnectionLimiter` does in two round trips,
this adapter does in one Lua script per call, on the same keys and with the same rules:

- ``save``: the limiter's acquire and, only when it admits the connection, ``SET key value
  EX ttl`` — one atomic script, so a refused connection stores nothing, ever, and there is
  no slot to give back when the write fails;
- ``refresh``: ``EXPIRE``, and only when the record exists, ``ZADD XX`` of its slot;
- ``delete``: ``DEL`` and the slot's release;
- ``get``: ``GET``, unchanged.

Standalone Redis only (ElastiCache with cluster mode disabled, ``redis-server``): in cluster
mode the record key ``ws:connection:{connectionId}`` and the limit keys
(``ws:limits:{connections}:*``) sit in different hash slots, and one script may not touch
both. The container uses this adapter when Redis is the only store and not a cluster; with
failover or cluster mode it keeps the two-adapter composition.

Failure mode: the record and the slot share one server, so they fail together. A Redis
error is ``StoreUnavailableError`` for the whole call (as the record's command alone would
be); the composition's "limits fail open while the record is written" case cannot arise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import redis
from redis.exceptions import RedisError

from adapters.connection_record import encode_record, record_key
from adapters.redis_connection_limiter import (
    DEFAULT_GLOBAL_LIMIT,
    DEFAULT_PER_USER_LIMIT,
    LIMIT_KEYS,
    LUA_ACQUIRE_FUNCTION,
    LUA_RELEASE_FUNCTION,
    LUA_RELEASE_IF_HELD,
    epoch_ms,
    slot_expiry_ms,
)
from adapters.redis_connection_repository import RedisConnectionRepository
from application.ports import Clock, ConnectionRepository
from domain.connection import Connection
from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)

_T = TypeVar("_T")

# KEYS: expiry, owner, per-user, record. ARGV: the acquire arguments (now_ms, connectionId,
# userId, expires_ms, global_limit, per_user_limit), then the record's JSON and its TTL (s).
# Returns the acquire's answer: "ok" (record written), "global" or "user" (nothing written).
_SAVE_SCRIPT: Final = (
    LUA_RELEASE_FUNCTION
    + LUA_ACQUIRE_FUNCTION
    + """
local scope = acquire()
if scope == 'ok' then
  redis.call('SET', KEYS[4], ARGV[7], 'EX', ARGV[8])
end
return scope
"""
)

# KEYS: expiry, owner, per-user, record. ARGV: connectionId, TTL (s), the slot's new expiry
# (epoch ms). Returns 1 when the record existed (its slot, if any, moved too), else 0.
_REFRESH_SCRIPT: Final = """
if redis.call('EXPIRE', KEYS[4], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
  return 1
end
return 0
"""

# KEYS: expiry, owner, per-user, record. ARGV: connectionId. Returns 1 when a slot was freed.
_DELETE_SCRIPT: Final = LUA_RELEASE_FUNCTION + "redis.call('DEL', KEYS[4])\n" + LUA_RELEASE_IF_HELD


class RedisLimitedConnectionRepository(ConnectionRepository):
    """Connection records with connection limits on one standalone Redis; see the module rules.

    Args:
        client: the process's ``redis.Redis`` client (not a cluster client).
        clock: "now" for slot expiry (aware UTC; slots are scored in epoch milliseconds).
        global_limit: concurrent connections across all users (default 1000).
        per_user_limit: concurrent connections of one user (default 10).

    Raises:
        ValueError: on limits below 1, or a cluster client.
        (per operation) ``StoreUnavailableError`` when Redis fails; ``save`` raises
        ``ConnectionLimitExceededError`` (nothing stored), ``refresh`` and ``get``
        ``ConnectionNotFoundError``, and ``save``/``refresh`` ``ValueError`` on a TTL that
        is not a positive whole number of seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        clock: Clock,
        global_limit: int = DEFAULT_GLOBAL_LIMIT,
        per_user_limit: int = DEFAULT_PER_USER_LIMIT,
    ) -> None:
        if not isinstance(client, redis.Redis):
            raise ValueError("one script per call needs a standalone Redis client")
        if global_limit < 1 or per_user_limit < 1:
            raise ValueError("connection limits must be at least 1")
        self._records = RedisConnectionRepository(client)
        self._clock = clock
        self._global_limit = global_limit
        self._per_user_limit = per_user_limit
        self._save = client.register_script(_SAVE_SCRIPT)
        self._refresh = client.register_script(_REFRESH_SCRIPT)
        self._delete = client.register_script(_DELETE_SCRIPT)

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Count a slot for ``connection`` and write its record, in one script.

        A retried ``save`` of the same connectionId and user only moves its slot's expiry.

        Raises:
            ConnectionLimitExceededError: ``scope="user"`` or ``"global"``; nothing stored.
            StoreUnavailableError: Redis did not answer or refused the script.
            ValueError: when ``ttl_seconds`` is not a positive whole number.
        """
        _require_positive_ttl(ttl_seconds)
        now_ms = epoch_ms(self._clock)
        connection_id = connection.connection_id
        scope = self._call(
            "save",
            lambda: self._save(
                keys=self._keys(connection_id),
                args=[
                    now_ms,
                    connection_id,
                    connection.user_id,
                    slot_expiry_ms(now_ms, ttl_seconds),
                    self._global_limit,
                    self._per_user_limit,
                    encode_record(connection),
                    ttl_seconds,
                ],
            ),
        )
        answer = scope.decode() if isinstance(scope, bytes) else str(scope)
        if answer != "ok":
            raise ConnectionLimitExceededError(answer)

    def get(self, connection_id: str) -> Connection:
        """``GET`` and decode, as :meth:`RedisConnectionRepository.get`.

        Raises:
            ConnectionNotFoundError: no such key (expired or never stored), or a corrupt value.
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        return self._records.get(connection_id)

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Reset the record's TTL and, when it exists, its slot's expiry; never creates either.

        Raises:
            ConnectionNotFoundError: no such record (its slot is left to expire).
            StoreUnavailableError: Redis did not answer or refused the script.
            ValueError: when ``ttl_seconds`` is not a positive whole number.
        """
        _require_positive_ttl(ttl_seconds)
        expires_ms = slot_expiry_ms(epoch_ms(self._clock), ttl_seconds)
        found = self._call(
            "refresh",
            lambda: self._refresh(
                keys=self._keys(connection_id), args=[connection_id, ttl_seconds, expires_ms]
            ),
        )
        if not found:
            raise ConnectionNotFoundError()

    def delete(self, connection_id: str) -> None:
        """Remove the record and free its slot (idempotent).

        Raises:
            StoreUnavailableError: Redis did not answer or refused the script; the record and
                the slot then both remain until their TTL ends.
        """
        self._call(
            "delete", lambda: self._delete(keys=self._keys(connection_id), args=[connection_id])
        )

    @staticmethod
    def _keys(connection_id: str) -> list[str]:
        return [*LIMIT_KEYS, record_key(connection_id)]

    @staticmethod
    def _call(operation: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except RedisError as exc:
            raise StoreUnavailableError(
                f"Redis {operation} script failed: {type(exc).__name__}"
            ) from exc


def _require_positive_ttl(ttl_seconds: Any) -> None:
    # bool is an int; True seconds is a bug, not a TTL.
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be a positive whole number, got {ttl_seconds!r}")
