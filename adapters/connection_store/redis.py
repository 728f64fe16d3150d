"""Connection records and their connection-limit slots in Redis (redis-py), standalone or cluster.

Records: key ``ws:connection:{connectionId}`` holding the record's JSON (``record.py``),
with a TTL. Connection limits: three keys sharing the hash tag ``{connections}``, so they
live in one cluster slot and one Lua script can check and update all of them atomically:

- ``ws:limits:{connections}:expiry`` — sorted set, member connectionId, score the epoch
  milliseconds at which the slot expires (the record's TTL end plus :data:`SLOT_GRACE_MS`);
- ``ws:limits:{connections}:owner`` — hash, connectionId -> userId;
- ``ws:limits:{connections}:per-user`` — hash, userId -> number of counted connections.

Every acquire first frees the slots whose expiry has passed, so a connection whose
``$disconnect`` never arrived stops counting once its record has expired; a ping moves its
slot's expiry with the record's TTL. Each check-and-add is one Lua script on one slot, so
concurrent ``$connect``\\s can never push a count past its limit; counts err only on the
safe side.

One round trip per operation on a standalone Redis (ElastiCache cluster mode disabled,
``redis-server``): the record and its slot change in one script. In cluster mode the record
key and the limit keys sit in different hash slots, which one script may not touch, so the
record command and the limits script are two calls; there the limits are best effort (a
failure of the limits call is logged and the connection admitted uncounted: a Redis
failure must not stop users connecting), the record call decides the outcome.

Every command touches keys of one slot only, so nothing can fail with CROSSSLOT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis
import redis.cluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from adapters.connection_store.record import (
    CorruptRecordError,
    decode_record,
    encode_record,
    record_key,
)
from adapters.lazy import Lazy
from application.ports import Clock, ConnectionRepository
from domain.connection import Connection
from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)

RedisClient = redis.Redis | redis.cluster.RedisCluster

EXPIRY_KEY: Final = "ws:limits:{connections}:expiry"
OWNER_KEY: Final = "ws:limits:{connections}:owner"
PER_USER_KEY: Final = "ws:limits:{connections}:per-user"
CLOSED_KEY: Final = "ws:limits:{connections}:closed"
"""Sorted set: connectionIds deleted, scored with when that memory may go (epoch ms). A slot
is never counted again for a connection in it, so a ping that raced its ``$disconnect``
cannot bring a slot back."""
LIMIT_KEYS: Final = (EXPIRY_KEY, OWNER_KEY, PER_USER_KEY, CLOSED_KEY)
"""The limit keys in the order every script takes them (``KEYS[1..4]``)."""

PENDING_SECONDARY_DELETES_KEY: Final = "ws:pending:{connections}:secondary-deletes"
"""Sorted set: connectionIds whose delete the failover store could not take, scored with
when to give up (epoch ms); the failover repository replays them (``failover.py``)."""

CLOSED_MEMORY_MS: Final = 24 * 3600 * 1000
"""How long a deleted connection is remembered (ms): longer than its record could live."""

SLOT_GRACE_MS: Final = 1000
"""A slot outlives its record by this much (ms), so it never frees before Redis has expired
the record: the slot's expiry is computed on the Lambda's clock, the record's on Redis's."""

# One retry after a connection error or timeout: a Lambda thawed after minutes idle often
# holds a socket the server (or a NAT) has dropped, and one reconnect fixes that. Every
# command and script here is idempotent, so a retry after a lost reply is safe.
_RETRIES: Final = 1
_BACKOFF_BASE_SECONDS: Final = 0.01
_BACKOFF_CAP_SECONDS: Final = 0.05

# The limits, as Lua functions over KEYS[1..3] (expiry, owner, per-user). ``release(id)``
# frees one slot; ``acquire(...)`` returns 'ok', 'global' or 'user' (nothing counted then).
_LIMITS_LUA: Final = """
local function release(member)
  local owner = redis.call('HGET', KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  if owner then
    if redis.call('HINCRBY', KEYS[3], owner, -1) <= 0 then
      redis.call('HDEL', KEYS[3], owner)
    end
  end
end
local function close(member, forget_at_ms)
  if redis.call('ZSCORE', KEYS[1], member) then
    release(member)
  end
  if tonumber(forget_at_ms) > 0 then
    redis.call('ZADD', KEYS[4], forget_at_ms, member)
  end
end
local function count(member, user, expires_ms)
  if redis.call('ZSCORE', KEYS[4], member) then
    return 0
  end
  local owner = redis.call('HGET', KEYS[2], member)
  if owner ~= user then
    if owner then
      release(member)
    end
    redis.call('HSET', KEYS[2], member, user)
    redis.call('HINCRBY', KEYS[3], user, 1)
  end
  redis.call('ZADD', KEYS[1], expires_ms, member)
  return 1
end
local function acquire(now_ms, member, user, expires_ms, global_limit, per_user_limit)
  for _, expired in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)) do
    release(expired)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms)
  local owner = redis.call('HGET', KEYS[2], member)
  if owner == user then
    redis.call('ZADD', KEYS[1], expires_ms, member)
    return 'ok'
  elseif owner then
    release(member)
  end
  if tonumber(redis.call('HGET', KEYS[3], user) or '0') >= tonumber(per_user_limit) then
    return 'user'
  end
  if redis.call('ZCARD', KEYS[1]) >= tonumber(global_limit) then
    return 'global'
  end
  redis.call('ZADD', KEYS[1], expires_ms, member)
  redis.call('HSET', KEYS[2], member, user)
  redis.call('HINCRBY', KEYS[3], user, 1)
  return 'ok'
end
"""
"""The limits, as Lua functions over ``KEYS[1..4]`` (expiry, owner, per-user, closed):
``acquire`` returns ``'ok'``, ``'global'`` or ``'user'`` (nothing counted then); ``count``
counts a connection that is already open, never refusing it (0 when it is known closed);
``close`` frees a slot and, given a time to forget it, remembers the connection closed."""

# Standalone: KEYS[5] is the record. ARGV: the acquire arguments, the record's JSON, its TTL (s).
_SAVE_LUA: Final = (
    _LIMITS_LUA
    + """
local scope = acquire(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if scope == 'ok' then
  redis.call('SET', KEYS[5], ARGV[7], 'EX', ARGV[8])
end
return scope
"""
)
# Standalone. ARGV: connectionId, TTL (s), the slot's new expiry (epoch ms). 1 when found.
# A record without its slot (admitted while the limits could not be counted) gets it back.
_REFRESH_LUA: Final = (
    _LIMITS_LUA
    + """
if redis.call('EXPIRE', KEYS[5], ARGV[2]) == 0 then
  return 0
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
else
  local ok, record = pcall(cjson.decode, redis.call('GET', KEYS[5]))
  if ok and type(record) == 'table' and type(record.userId) == 'string' then
    count(ARGV[1], record.userId, ARGV[3])
  end
end
return 1
"""
)
# Standalone. ARGV: connectionId, until when to remember it closed (epoch ms).
_DELETE_LUA: Final = _LIMITS_LUA + "redis.call('DEL', KEYS[5])\nclose(ARGV[1], ARGV[2])\n"
# Cluster: the limit keys only.
_ACQUIRE_LUA: Final = (
    _LIMITS_LUA + "return acquire(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])\n"
)
_CLOSE_LUA: Final = _LIMITS_LUA + "close(ARGV[1], ARGV[2])\n"
_COUNT_LUA: Final = _LIMITS_LUA + "return count(ARGV[1], ARGV[2], ARGV[3])\n"
# Cluster. ARGV: connectionId, the slot's new expiry. 1 when the slot was held (and moved).
_TOUCH_LUA: Final = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0
"""


def create_redis_client(
    url: str,
    *,
    connect_timeout_seconds: float = 0.25,
    read_timeout_seconds: float = 0.25,
    cluster: bool = False,
    password: str | None = None,
) -> RedisClient:
    """Build the process's one Redis client from a URL.

    Args:
        url: ``redis://[[user]:password@]host:port/db`` or ``rediss://`` for TLS (ElastiCache
            with in-transit encryption). Percent-encode special characters in the password.
            With ``rediss://`` the server certificate and host name are verified against the
            system CAs; for a private CA append ``?ssl_ca_certs=/path/ca.pem`` (redis-py reads
            ``ssl_*`` query parameters). Never ``ssl_cert_reqs=none``.
        connect_timeout_seconds: TCP connect timeout, seconds.
        read_timeout_seconds: wait for each reply, seconds. Short on purpose: a hung Redis
            must fail the call (``StoreUnavailableError``) well inside the Lambda timeout.
        cluster: build a :class:`redis.cluster.RedisCluster` (cluster mode enabled). It
            reads the slot map while being built, so building fails when no node answers.
        password: the AUTH token when it does not travel in the URL (read from Secrets
            Manager in AWS); ``None`` keeps whatever the URL carries.

    The client keeps a connection pool and reconnects lazily; commands are retried once
    (small exponential backoff) on connection errors and timeouts. The URL is never logged
    or put into an error message (it may carry the password).

    Raises:
        ValueError: on a URL redis-py cannot parse.
        StoreUnavailableError: ``cluster=True`` and no node answered the slot map query.
    """
    retry = Retry(
        ExponentialBackoff(cap=_BACKOFF_CAP_SECONDS, base=_BACKOFF_BASE_SECONDS), _RETRIES
    )
    auth: dict[str, str] = {} if password is None else {"password": password}
    if cluster:
        try:
            return redis.cluster.RedisCluster.from_url(
                url,
                socket_connect_timeout=connect_timeout_seconds,
                socket_timeout=read_timeout_seconds,
                retry=retry,
                **auth,
            )
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(
                f"Redis Cluster slot map unavailable: {type(exc).__name__}"
            ) from exc
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_seconds,
        socket_timeout=read_timeout_seconds,
        retry=retry,
        **auth,
    )


class _Scripts:
    """The client and its registered scripts (standalone: record and limits together;
    cluster: the limits alone)."""

    __slots__ = (
        "acquire",
        "client",
        "close",
        "cluster",
        "count",
        "delete",
        "refresh",
        "save",
        "touch",
    )

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.cluster = isinstance(client, redis.cluster.RedisCluster)
        register = client.register_script
        self.count = register(_COUNT_LUA)
        self.save = None if self.cluster else register(_SAVE_LUA)
        self.refresh = None if self.cluster else register(_REFRESH_LUA)
        self.delete = None if self.cluster else register(_DELETE_LUA)
        self.acquire = register(_ACQUIRE_LUA) if self.cluster else None
        self.close = register(_CLOSE_LUA) if self.cluster else None
        self.touch = register(_TOUCH_LUA) if self.cluster else None


class RedisConnectionRepository(ConnectionRepository):
    """Connection records with a TTL, and their connection-limit slots, in one Redis.

    Args:
        client: the process's Redis client (``redis.Redis`` or ``RedisCluster``), or a
            callable returning it, called on the first operation (again after a failure):
            a cluster client cannot be built while every node is down, nor any client
            before its AUTH token is read; until then every operation is
            ``StoreUnavailableError``.
        clock: "now" for slot expiry (aware UTC; slots are scored in epoch milliseconds).
        global_limit: concurrent connections across all users.
        per_user_limit: concurrent connections of one user.

    Operations (see the module for the keys; TTLs are whole seconds):

    - ``save``: take a slot (``ConnectionLimitExceededError`` past a limit, nothing stored)
      and ``SET key value EX ttl``; a retried save of the same id and user only moves its
      slot's expiry;
    - ``get``: ``GET`` and decode; a missing key, or a corrupt value (logged), is
      ``ConnectionNotFoundError``;
    - ``refresh``: ``EXPIRE`` and, when the record exists, move its slot's expiry, or count
      it when it has none (admitted while the limits could not be counted); a missing record
      is ``ConnectionNotFoundError`` and is never created;
    - ``delete``: ``DEL``, free the slot, and remember the connection closed (idempotent);
    - ``count_slot``: count a connection whose record another store holds (never refuses;
      a connection remembered closed is not counted again).

    Every Redis error (connection refused, timeout, auth, cluster down, ...) is
    ``StoreUnavailableError`` naming the operation and the error class, never the URL.
    """

    def __init__(
        self,
        client: RedisClient | Callable[[], RedisClient],
        *,
        clock: Clock,
        global_limit: int,
        per_user_limit: int,
    ) -> None:
        if isinstance(client, redis.Redis | redis.cluster.RedisCluster):
            ready = client
            self._scripts = Lazy(lambda: _Scripts(ready))
        else:
            build = client
            self._scripts = Lazy(lambda: _Scripts(build()))
        self._clock = clock
        self._global_limit = global_limit
        self._per_user_limit = per_user_limit

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Take a slot for ``connection`` and store its record for ``ttl_seconds``.

        Raises:
            ConnectionLimitExceededError: ``scope="user"`` or ``"global"``; nothing stored.
            StoreUnavailableError: Redis did not answer or refused the write.
        """
        connection_id = connection.connection_id
        now_ms = self._now_ms()
        limits: list[Any] = [
            now_ms,
            connection_id,
            connection.user_id,
            now_ms + ttl_seconds * 1000 + SLOT_GRACE_MS,
            self._global_limit,
            self._per_user_limit,
        ]
        try:
            scripts = self._scripts.get()
            if not scripts.cluster:
                scope = scripts.save(  # type: ignore[misc]
                    keys=[*LIMIT_KEYS, record_key(connection_id)],
                    args=[*limits, encode_record(connection), ttl_seconds],
                )
            else:
                scope = self._acquire_best_effort(scripts, limits)
                if _answer(scope) in _ADMITTED:
                    try:
                        scripts.client.set(
                            record_key(connection_id), encode_record(connection), ex=ttl_seconds
                        )
                    except (RedisError, RedisClusterException):
                        self._release_best_effort(scripts, connection_id)
                        raise
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis save failed: {type(exc).__name__}") from exc
        answer = _answer(scope)
        if answer not in _ADMITTED:
            raise ConnectionLimitExceededError(answer)

    def get(self, connection_id: str) -> Connection:
        """Read the record with ``GET``.

        Raises:
            ConnectionNotFoundError: no such key (expired or never stored), or a corrupt value.
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        try:
            raw = self._scripts.get().client.get(record_key(connection_id))
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis get failed: {type(exc).__name__}") from exc
        if raw is None:
            raise ConnectionNotFoundError()
        try:
            return decode_record(raw)
        except CorruptRecordError as exc:
            # Treated as absent so the client reconnects and a fresh record replaces it; the
            # stored text is not logged (it is not ours to echo), only why it was rejected.
            logger.warning(
                "corrupt connection record treated as absent",
                extra={"connection_id": connection_id, "reason": str(exc)},
            )
            raise ConnectionNotFoundError() from exc

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Make the record expire ``ttl_seconds`` from now, and its slot with it.

        A record without a slot gets one (never refused: the connection is open).

        Raises:
            ConnectionNotFoundError: no such record (its slot is left to expire).
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        key = record_key(connection_id)
        expires_ms = self._now_ms() + ttl_seconds * 1000 + SLOT_GRACE_MS
        try:
            scripts = self._scripts.get()
            if not scripts.cluster:
                found = scripts.refresh(  # type: ignore[misc]
                    keys=[*LIMIT_KEYS, key], args=[connection_id, ttl_seconds, expires_ms]
                )
            else:
                found = scripts.client.expire(key, ttl_seconds)
                if found:
                    self._touch_best_effort(scripts, connection_id, expires_ms)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis refresh failed: {type(exc).__name__}") from exc
        if not found:
            raise ConnectionNotFoundError()

    def delete(self, connection_id: str) -> None:
        """Remove the record, free its slot, remember the connection closed; idempotent.

        Raises:
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        key = record_key(connection_id)
        forget_at_ms = self._memory_ms()
        try:
            scripts = self._scripts.get()
            if not scripts.cluster:
                scripts.delete(  # type: ignore[misc]
                    keys=[*LIMIT_KEYS, key], args=[connection_id, forget_at_ms]
                )
            else:
                scripts.client.delete(key)
                scripts.close(keys=list(LIMIT_KEYS), args=[connection_id, forget_at_ms])  # type: ignore[misc]
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis delete failed: {type(exc).__name__}") from exc

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        """:meth:`delete` each of ``connection_ids``: one round trip on a standalone Redis
        (a pipeline of the delete script), one ``delete`` after the other in cluster mode.

        Raises:
            StoreUnavailableError: Redis did not answer or refused a command; the deletes
                before it may have been done (each is idempotent).
        """
        if not connection_ids:
            return
        try:
            scripts = self._scripts.get()
            if scripts.cluster:
                for connection_id in connection_ids:
                    self.delete(connection_id)
                return
            forget_at_ms = self._memory_ms()
            pipeline = scripts.client.pipeline(transaction=False)
            for connection_id in connection_ids:
                scripts.delete(  # type: ignore[misc]
                    keys=[*LIMIT_KEYS, record_key(connection_id)],
                    args=[connection_id, forget_at_ms],
                    client=pipeline,
                )
            pipeline.execute()
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis delete failed: {type(exc).__name__}") from exc

    def count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        """Count ``connection``, whose record another store holds, for ``ttl_seconds``.

        Never refuses (the connection is open); does nothing for a connection remembered
        closed (a ping that raced its ``$disconnect``).

        Raises:
            StoreUnavailableError: Redis did not answer or refused the script.
        """
        expires_ms = self._now_ms() + ttl_seconds * 1000 + SLOT_GRACE_MS
        try:
            self._scripts.get().count(
                keys=list(LIMIT_KEYS),
                args=[connection.connection_id, connection.user_id, expires_ms],
            )
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis count failed: {type(exc).__name__}") from exc

    def remember_secondary_delete(self, connection_id: str) -> None:
        """Remember that another store still holds ``connection_id`` (its delete failed there).

        Raises:
            StoreUnavailableError: Redis did not answer.
        """
        try:
            self._scripts.get().client.zadd(
                PENDING_SECONDARY_DELETES_KEY, {connection_id: self._memory_ms()}
            )
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis zadd failed: {type(exc).__name__}") from exc

    def pending_secondary_deletes(self, limit: int) -> list[str]:
        """Up to ``limit`` connectionIds :meth:`remember_secondary_delete` holds (old ones dropped).

        Raises:
            StoreUnavailableError: Redis did not answer.
        """
        try:
            client = self._scripts.get().client
            client.zremrangebyscore(PENDING_SECONDARY_DELETES_KEY, "-inf", self._now_ms())
            members = client.zrange(PENDING_SECONDARY_DELETES_KEY, 0, limit - 1)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis zrange failed: {type(exc).__name__}") from exc
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    def forget_secondary_deletes(self, connection_ids: Sequence[str]) -> None:
        """The other store took these deletes: forget them (one ``ZREM``).

        Raises:
            StoreUnavailableError: Redis did not answer.
        """
        if not connection_ids:
            return
        try:
            self._scripts.get().client.zrem(PENDING_SECONDARY_DELETES_KEY, *connection_ids)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis zrem failed: {type(exc).__name__}") from exc

    def _now_ms(self) -> int:
        return math.floor(self._clock.now().timestamp() * 1000)

    def _memory_ms(self) -> int:
        """Until when a closed connection (or a pending delete) is remembered: a day, far
        longer than any record or slot, or a message in flight, may live."""
        return self._now_ms() + CLOSED_MEMORY_MS

    # -- cluster mode: the limits are a separate, best-effort call ------------------------

    @staticmethod
    def _acquire_best_effort(scripts: _Scripts, limits: list[Any]) -> Any:
        try:
            return scripts.acquire(keys=list(LIMIT_KEYS), args=limits)  # type: ignore[misc]
        except (RedisError, RedisClusterException) as exc:
            _limits_not_enforced("save", exc, str(limits[1]))
            return "uncounted"

    def _touch_best_effort(self, scripts: _Scripts, connection_id: str, expires_ms: int) -> None:
        try:
            if scripts.touch(keys=list(LIMIT_KEYS), args=[connection_id, expires_ms]):  # type: ignore[misc]
                return
            raw = scripts.client.get(record_key(connection_id))
            if raw is not None:  # a record without its slot: count it
                record = decode_record(raw)
                scripts.count(
                    keys=list(LIMIT_KEYS), args=[connection_id, record.user_id, expires_ms]
                )
        except (RedisError, RedisClusterException, CorruptRecordError) as exc:
            _limits_not_enforced("refresh", exc, connection_id)

    @staticmethod
    def _release_best_effort(scripts: _Scripts, connection_id: str) -> None:
        try:
            scripts.close(keys=list(LIMIT_KEYS), args=[connection_id, 0])  # type: ignore[misc]
        except (RedisError, RedisClusterException) as exc:
            _limits_not_enforced("save", exc, connection_id)


_ADMITTED: Final = frozenset({"ok", "uncounted"})
"""The acquire's answers that admit a connection ("uncounted": the limits call failed)."""


def _answer(scope: Any) -> str:
    return scope.decode() if isinstance(scope, bytes) else str(scope)


def _limits_not_enforced(operation: str, exc: Exception, connection_id: str) -> None:
    logger.warning(
        "connection limits not enforced: Redis failed",
        extra={
            "operation": operation,
            "reason": type(exc).__name__,
            "connection_id": connection_id,
        },
    )
