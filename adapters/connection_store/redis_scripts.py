"""Redis's side of the connection store: the keys, the Lua scripts, and one command set per
topology (standalone or cluster), chosen once for a client by :func:`commands_for`.

On a standalone Redis a record and its connection-limit slot change in one script, one
round trip per operation. In cluster mode the record key and the limit keys sit in
different hash slots, which one script may not touch: the record command decides the
outcome and the limits are a second, best-effort call (a failure is logged and the
connection admitted uncounted). ``redis.py`` maps every Redis error to the port's errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol

import redis
import redis.cluster
from redis.exceptions import RedisClusterException, RedisError

from adapters.connection_store.record import CorruptRecordError, decode_record, record_key

logger = logging.getLogger("adapters.connection_store.redis")  # the store's one logger

EXPIRY_KEY: Final = "ws:limits:{connections}:expiry"
OWNER_KEY: Final = "ws:limits:{connections}:owner"
PER_USER_KEY: Final = "ws:limits:{connections}:per-user"
CLOSED_KEY: Final = "ws:limits:{connections}:closed"
"""Sorted set: connectionIds deleted, scored with when that memory may go (epoch ms). A slot
is never counted again for a connection in it, so a ping that raced its ``$disconnect``
cannot bring a slot back."""
DIRECTORY_KEY: Final = "ws:limits:{connections}:by-user"
"""Sorted set, every score 0: one member per counted connection, ``<n>:<userId>:<connectionId>``
(``n`` the userId's length in UTF-8 bytes), so a user's connections are one lexicographic
range (``ZRANGEBYLEX``, :func:`directory_range`). It mirrors the owner hash exactly: the
scripts add and remove a member wherever they set and delete the owner's field."""
LIMIT_KEYS: Final = (EXPIRY_KEY, OWNER_KEY, PER_USER_KEY, CLOSED_KEY, DIRECTORY_KEY)
"""The limit keys in the order every script takes them (``KEYS[1..5]``)."""

PENDING_SECONDARY_DELETES_KEY: Final = "ws:pending:{connections}:secondary-deletes"
"""Sorted set: connectionIds whose delete the failover store could not take, scored with
when to give up (epoch ms); the failover repository replays them (``failover.py``)."""

CLOSED_MEMORY_MS: Final = 24 * 3600 * 1000
"""How long a deleted connection is remembered (ms): longer than its record could live."""

SLOT_GRACE_MS: Final = 1000
"""A slot outlives its record by this much (ms), so it never frees before Redis has expired
the record: the slot's expiry is computed on the Lambda's clock, the record's on Redis's."""

ADMITTED: Final = frozenset({"ok", "uncounted"})
"""The save's answers that admit a connection ("uncounted": the limits call failed)."""

# The limits, as Lua functions over KEYS[1..5] (expiry, owner, per-user, closed, directory).
# ``release(id)`` frees one slot; ``acquire(...)`` returns 'ok', 'global' or 'user' (nothing
# counted then). ``own(id, user)`` and ``release`` are the only writers of the owner hash and
# of the directory, so the two always agree.
LIMITS_LUA: Final = """
local function entry(member, user)
  return string.len(user) .. ':' .. user .. ':' .. member
end
local function own(member, user)
  redis.call('HSET', KEYS[2], member, user)
  redis.call('HINCRBY', KEYS[3], user, 1)
  redis.call('ZADD', KEYS[5], 0, entry(member, user))
end
local function reassert(member)
  local owner = redis.call('HGET', KEYS[2], member)
  if owner then
    redis.call('ZADD', KEYS[5], 0, entry(member, owner))
  end
end
local function release(member)
  local owner = redis.call('HGET', KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  if owner then
    redis.call('ZREM', KEYS[5], entry(member, owner))
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
    own(member, user)
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
  own(member, user)
  return 'ok'
end
"""
"""The limits, as Lua functions over ``KEYS[1..5]`` (expiry, owner, per-user, closed,
directory):
``acquire`` returns ``'ok'``, ``'global'`` or ``'user'`` (nothing counted then); ``count``
counts a connection that is already open, never refusing it (0 when it is known closed);
``close`` frees a slot and, given a time to forget it, remembers the connection closed."""

# Standalone: KEYS[6] is the record. ARGV: the acquire arguments, the record's JSON, its TTL (s).
SAVE_LUA: Final = (
    LIMITS_LUA
    + """
local scope = acquire(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if scope == 'ok' then
  redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8])
end
return scope
"""
)
# Standalone. ARGV: connectionId, TTL (s), the slot's new expiry (epoch ms). 1 when found.
# A record without its slot (admitted while the limits could not be counted) gets it back;
# one with its slot re-asserts its directory entry (idempotent: a store written by a version
# without the directory converges within one ping interval).
REFRESH_LUA: Final = (
    LIMITS_LUA
    + """
if redis.call('EXPIRE', KEYS[6], ARGV[2]) == 0 then
  return 0
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  reassert(ARGV[1])
else
  local ok, record = pcall(cjson.decode, redis.call('GET', KEYS[6]))
  if ok and type(record) == 'table' and type(record.userId) == 'string' then
    count(ARGV[1], record.userId, ARGV[3])
  end
end
return 1
"""
)
# Standalone. ARGV: connectionId, until when to remember it closed (epoch ms).
DELETE_LUA: Final = LIMITS_LUA + "redis.call('DEL', KEYS[6])\nclose(ARGV[1], ARGV[2])\n"
# Cluster: the limit keys only.
ACQUIRE_LUA: Final = (
    LIMITS_LUA + "return acquire(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])\n"
)
CLOSE_LUA: Final = LIMITS_LUA + "close(ARGV[1], ARGV[2])\n"
COUNT_LUA: Final = LIMITS_LUA + "return count(ARGV[1], ARGV[2], ARGV[3])\n"
# Cluster. ARGV: connectionId, the slot's new expiry. 1 when the slot was held (and moved).
TOUCH_LUA: Final = (
    LIMITS_LUA
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  reassert(ARGV[1])
  return 1
end
return 0
"""
)


RedisClient = redis.Redis | redis.cluster.RedisCluster


class RedisCommands(Protocol):
    """One topology's commands for the store's operations; each raises redis-py's errors.

    ``save`` answers ``'ok'``, ``'uncounted'`` (admitted, the limits call failed),
    ``'global'`` or ``'user'`` (refused, nothing stored); ``refresh`` answers whether the
    record exists.
    """

    client: RedisClient

    def save(self, connection_id: str, limits: list[Any], record: str, ttl_seconds: int) -> str:
        """Take a slot (``limits``: the acquire's arguments) and store ``record``."""
        ...

    def refresh(self, connection_id: str, ttl_seconds: int, expires_ms: int) -> bool:
        """Move the record's TTL and its slot's expiry; count a record that has no slot."""
        ...

    def delete(self, connection_id: str, forget_at_ms: int) -> None:
        """Delete the record, free its slot, remember it closed until ``forget_at_ms``."""
        ...

    def delete_many(self, connection_ids: Sequence[str], forget_at_ms: int) -> None:
        """:meth:`delete` each one."""
        ...

    def count(self, connection_id: str, user_id: str, expires_ms: int) -> None:
        """Count an open connection whose record another store holds (never refuses)."""
        ...

    def listed(self, user_id: str) -> list[tuple[str, bytes | None]]:
        """The connectionIds the directory lists for ``user_id``, each with its record's
        value (``None``: no such key); two round trips, never a scan."""
        ...

    def superseded(self, ids: list[str]) -> tuple[list[Any], list[Any]]:
        """For each of ``ids``, in order: its score in the closed set (``None``: not
        closed) and whether its record key exists (truthy)."""
        ...


class StandaloneCommands(RedisCommands):
    """A standalone Redis: one script per operation, the record and its slot together."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        register = client.register_script
        self._save = register(SAVE_LUA)
        self._refresh = register(REFRESH_LUA)
        self._delete = register(DELETE_LUA)
        self._count = register(COUNT_LUA)

    def save(self, connection_id: str, limits: list[Any], record: str, ttl_seconds: int) -> str:
        """One script: acquire, and ``SET EX`` when admitted."""
        keys = [*LIMIT_KEYS, record_key(connection_id)]
        return _answer(self._save(keys=keys, args=[*limits, record, ttl_seconds]))

    def refresh(self, connection_id: str, ttl_seconds: int, expires_ms: int) -> bool:
        """One script: ``EXPIRE`` and move (or count) the slot."""
        keys = [*LIMIT_KEYS, record_key(connection_id)]
        return bool(self._refresh(keys=keys, args=[connection_id, ttl_seconds, expires_ms]))

    def delete(self, connection_id: str, forget_at_ms: int) -> None:
        """One script: ``DEL`` and close the slot."""
        keys = [*LIMIT_KEYS, record_key(connection_id)]
        self._delete(keys=keys, args=[connection_id, forget_at_ms])

    def delete_many(self, connection_ids: Sequence[str], forget_at_ms: int) -> None:
        """One round trip: a pipeline of the delete script."""
        pipeline = self.client.pipeline(transaction=False)
        for connection_id in connection_ids:
            self._delete(
                keys=[*LIMIT_KEYS, record_key(connection_id)],
                args=[connection_id, forget_at_ms],
                client=pipeline,
            )
        pipeline.execute()

    def count(self, connection_id: str, user_id: str, expires_ms: int) -> None:
        """The count script."""
        self._count(keys=list(LIMIT_KEYS), args=[connection_id, user_id, expires_ms])

    def listed(self, user_id: str) -> list[tuple[str, bytes | None]]:
        """``ZRANGEBYLEX`` of the user's range, then one ``MGET`` of the records."""
        ids = listed_ids(self.client, user_id)
        if not ids:
            return []
        values: list[Any] = self.client.mget([record_key(i) for i in ids])
        return list(zip(ids, values, strict=True))

    def superseded(self, ids: list[str]) -> tuple[list[Any], list[Any]]:
        """One round trip: ``ZMSCORE`` of the closed set and ``EXISTS`` of each record."""
        pipeline = self.client.pipeline(transaction=False)
        pipeline.zmscore(CLOSED_KEY, ids)
        for connection_id in ids:
            pipeline.exists(record_key(connection_id))
        closed, *held = pipeline.execute()
        return list(closed), held


class ClusterCommands(RedisCommands):
    """A Redis Cluster: the record command decides; the limits are a best-effort script."""

    def __init__(self, client: redis.cluster.RedisCluster) -> None:
        self.client = client
        register = client.register_script
        self._acquire = register(ACQUIRE_LUA)
        self._close = register(CLOSE_LUA)
        self._touch = register(TOUCH_LUA)
        self._count = register(COUNT_LUA)

    def save(self, connection_id: str, limits: list[Any], record: str, ttl_seconds: int) -> str:
        """Acquire (best effort), then ``SET EX`` when admitted; a failed ``SET`` frees the slot."""
        answer = self._acquire_best_effort(limits)
        if answer in ADMITTED:
            try:
                self.client.set(record_key(connection_id), record, ex=ttl_seconds)
            except (RedisError, RedisClusterException):
                self._release_best_effort(connection_id)
                raise
        return answer

    def refresh(self, connection_id: str, ttl_seconds: int, expires_ms: int) -> bool:
        """``EXPIRE``, then move the slot (best effort)."""
        found = bool(self.client.expire(record_key(connection_id), ttl_seconds))
        if found:
            self._touch_best_effort(connection_id, expires_ms)
        return found

    def delete(self, connection_id: str, forget_at_ms: int) -> None:
        """``DEL``, then close the slot."""
        self.client.delete(record_key(connection_id))
        self._close(keys=list(LIMIT_KEYS), args=[connection_id, forget_at_ms])

    def delete_many(self, connection_ids: Sequence[str], forget_at_ms: int) -> None:
        """One :meth:`delete` after the other."""
        for connection_id in connection_ids:
            self.delete(connection_id, forget_at_ms)

    def count(self, connection_id: str, user_id: str, expires_ms: int) -> None:
        """The count script."""
        self._count(keys=list(LIMIT_KEYS), args=[connection_id, user_id, expires_ms])

    def listed(self, user_id: str) -> list[tuple[str, bytes | None]]:
        """``ZRANGEBYLEX`` of the user's range, then the records: ``MGET`` per hash slot,
        pipelined per node (``mget_nonatomic``), since the records spread over every shard."""
        ids = listed_ids(self.client, user_id)
        if not ids:
            return []
        values = self.client.mget_nonatomic([record_key(i) for i in ids])
        return list(zip(ids, values, strict=True))

    def superseded(self, ids: list[str]) -> tuple[list[Any], list[Any]]:
        """``ZMSCORE`` of the closed set, then the records per hash slot (``mget_nonatomic``)."""
        closed = self.client.zmscore(CLOSED_KEY, ids)
        values = self.client.mget_nonatomic([record_key(i) for i in ids])
        return list(closed), [value is not None for value in values]

    def _acquire_best_effort(self, limits: list[Any]) -> str:
        try:
            return _answer(self._acquire(keys=list(LIMIT_KEYS), args=limits))
        except (RedisError, RedisClusterException) as exc:
            _limits_not_enforced("save", exc, str(limits[1]))
            return "uncounted"

    def _touch_best_effort(self, connection_id: str, expires_ms: int) -> None:
        try:
            if self._touch(keys=list(LIMIT_KEYS), args=[connection_id, expires_ms]):
                return
            raw = self.client.get(record_key(connection_id))
            if raw is not None:  # a record without its slot: count it
                record = decode_record(raw)
                self.count(connection_id, record.user_id, expires_ms)
        except (RedisError, RedisClusterException, CorruptRecordError) as exc:
            _limits_not_enforced("refresh", exc, connection_id)

    def _release_best_effort(self, connection_id: str) -> None:
        try:
            self._close(keys=list(LIMIT_KEYS), args=[connection_id, 0])
        except (RedisError, RedisClusterException) as exc:
            _limits_not_enforced("save", exc, connection_id)


def directory_range(user_id: str) -> tuple[bytes, bytes]:
    """The ``ZRANGEBYLEX`` bounds (``[`` inclusive, ``(`` exclusive) of ``user_id``'s members
    of :data:`DIRECTORY_KEY`: every member starting ``<n>:<userId>:``, which no other user's
    can (the length fixes where the userId ends). UTF-8 has no 0xFF byte, so the upper
    bound follows every connectionId."""
    user = user_id.encode("utf-8")
    prefix = b"%d:%s:" % (len(user), user)
    return b"[" + prefix, b"(" + prefix + b"\xff"


def listed_ids(client: RedisClient, user_id: str) -> list[str]:
    """The connectionIds :data:`DIRECTORY_KEY` holds for ``user_id`` (one ``ZRANGEBYLEX``)."""
    low, high = directory_range(user_id)
    skip = len(low) - 1
    members = client.zrangebylex(DIRECTORY_KEY, low, high)
    return [_bytes(member)[skip:].decode("utf-8") for member in members]


def commands_for(client: RedisClient) -> RedisCommands:
    """The command set of ``client``'s topology, its scripts registered (not yet loaded)."""
    if isinstance(client, redis.cluster.RedisCluster):
        return ClusterCommands(client)
    return StandaloneCommands(client)


def _bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


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
