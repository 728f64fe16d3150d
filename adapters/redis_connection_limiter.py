"""Global and per-user connection limits, counted in Redis (standalone or cluster mode).

Three keys share one hash tag, ``{connections}``, so they live in one cluster slot and one
Lua script can check and update all of them atomically, with no CROSSSLOT error:

- ``ws:limits:{connections}:expiry`` — sorted set, member connectionId, score the epoch
  milliseconds at which the slot expires (the record's TTL end);
- ``ws:limits:{connections}:owner`` — hash, connectionId -> userId;
- ``ws:limits:{connections}:per-user`` — hash, userId -> number of counted connections.

Every ``acquire`` first frees the slots whose expiry has passed (``ZRANGEBYSCORE -inf now``),
so a connection whose ``$disconnect`` never arrived stops counting once its record has
expired; a heartbeat moves its slot's expiry with the record's TTL (``ZADD XX``).

Exactness: each check-and-add runs as one Lua script on one slot, so concurrent
``$connect``s can never push a count past its limit, on one node or in a cluster. Counts err
only on the safe side: a slot is held from ``acquire`` until the record's TTL ends (plus
:data:`SLOT_GRACE_MS`), even if the Lambda died before ``save`` (it frees itself then).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import attrs
import pybreaker
import redis
import redis.cluster
from redis.exceptions import RedisClusterException, RedisError

from adapters.limited_connection_repository import ConnectionLimiter
from application.ports import Clock
from domain.connection import Connection
from domain.errors import ConnectionLimitExceededError, StoreUnavailableError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

RedisClient = redis.Redis | redis.cluster.RedisCluster

DEFAULT_GLOBAL_LIMIT: Final = 1000
"""Concurrent connections across all users (the specification's figure)."""

DEFAULT_PER_USER_LIMIT: Final = 10
"""Concurrent connections of one user."""

SLOT_GRACE_MS: Final = 1000
"""A slot outlives its record by this much (ms), so it never frees before Redis has expired
the record: the slot's expiry is computed just before the record is written, on the
Lambda's clock, the record's on Redis's."""

EXPIRY_KEY: Final = "ws:limits:{connections}:expiry"
OWNER_KEY: Final = "ws:limits:{connections}:owner"
PER_USER_KEY: Final = "ws:limits:{connections}:per-user"
LIMIT_KEYS: Final = (EXPIRY_KEY, OWNER_KEY, PER_USER_KEY)
"""The limit keys in the order every script takes them (``KEYS[1..3]``)."""
_KEYS: Final = LIMIT_KEYS

# Lua fragments shared by the scripts below and by the one-round-trip repository
# (adapters/redis_limited_connection_repository.py), which appends its keys and arguments
# after these. ``release(member)`` frees one slot.
LUA_RELEASE_FUNCTION: Final = """
local function release(member)
  local owner = redis.call('HGET', KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  if owner then
    if redis.call('HINCRBY', KEYS[3], owner, -1) <= 0 then
      redis.call('HDEL', KEYS[3], owner)
    end
  end
  return owner
end
"""

# KEYS: expiry, owner, per-user. ARGV: now_ms, connectionId, userId, expires_ms, global_limit,
# per_user_limit. ``acquire()`` returns "ok", "global" or "user".
LUA_ACQUIRE_FUNCTION: Final = """
local function acquire()
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
    release(member)
  end
  local owner = redis.call('HGET', KEYS[2], ARGV[2])
  if owner == ARGV[3] then
    redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
    return 'ok'
  elseif owner then
    release(ARGV[2])
  end
  local used = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
  if used >= tonumber(ARGV[6]) then
    return 'user'
  end
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then
    return 'global'
  end
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  return 'ok'
end
"""

_ACQUIRE_SCRIPT: Final = LUA_RELEASE_FUNCTION + LUA_ACQUIRE_FUNCTION + "return acquire()\n"

# Frees the slot of ARGV[1] (connectionId) if it holds one; returns 1 when it did, else 0.
LUA_RELEASE_IF_HELD: Final = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  release(ARGV[1])
  return 1
end
return 0
"""

# KEYS: expiry, owner, per-user. ARGV: connectionId. Returns 1 when a slot was freed.
_RELEASE_SCRIPT: Final = LUA_RELEASE_FUNCTION + LUA_RELEASE_IF_HELD


_CLIENT_TYPES: Final = (redis.Redis, redis.cluster.RedisCluster)


def epoch_ms(clock: Clock) -> int:
    """``clock.now()`` in whole epoch milliseconds (the slots' score unit)."""
    return math.floor(clock.now().timestamp() * 1000)


def slot_expiry_ms(now_ms: int, ttl_seconds: int) -> int:
    """When a slot taken or touched at ``now_ms`` expires: the record's TTL plus the grace (ms)."""
    return now_ms + ttl_seconds * 1000 + SLOT_GRACE_MS


@attrs.frozen
class _Scripts:
    client: Any
    acquire: Any
    release: Any


class RedisConnectionLimiter(ConnectionLimiter):
    """Counts connection slots in Redis and refuses those beyond the limits.

    Args:
        client: the process's Redis client (``redis.Redis`` or ``RedisCluster``), or a
            callable returning it, called on first use (a cluster client cannot be built
            while every node is down; the limiter then fails open until it can).
        clock: "now" for slot expiry (aware UTC; slots are scored in epoch milliseconds).
        global_limit: concurrent connections across all users (default 1000).
        per_user_limit: concurrent connections of one user (default 10).
        breaker: the circuit breaker guarding Redis, shared with the failover repository;
            while it is open the limiter is skipped without paying Redis's timeout.

    When Redis cannot be reached the limiter fails open: the connection is admitted
    uncounted and a warning is logged (a Redis outage must not stop users connecting; the
    records go to DynamoDB meanwhile). ``acquire`` returns whether the slot was counted.

    Raises:
        ValueError: on limits below 1.
    """

    def __init__(
        self,
        client: RedisClient | Callable[[], RedisClient],
        *,
        clock: Clock,
        global_limit: int = DEFAULT_GLOBAL_LIMIT,
        per_user_limit: int = DEFAULT_PER_USER_LIMIT,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        if global_limit < 1 or per_user_limit < 1:
            raise ValueError("connection limits must be at least 1")
        self._client_source = client
        self._clock = clock
        self._global_limit = global_limit
        self._per_user_limit = per_user_limit
        self._breaker = breaker
        self._scripts: _Scripts | None = None
        self._scripts_lock = threading.Lock()
        self._attempts = 0
        self._attempts_lock = threading.Lock()

    @property
    def redis_attempts(self) -> int:
        """How many calls reached Redis (the breaker, when given, let them through)."""
        return self._attempts

    def acquire(self, connection: Connection, ttl_seconds: int) -> bool:
        """Count ``connection`` until ``now + ttl_seconds``, or refuse it.

        Acquiring an id that already holds a slot (a retried ``$connect``) only moves its
        expiry. Returns ``True`` when counted, ``False`` when Redis could not be asked.

        Raises:
            ConnectionLimitExceededError: ``scope="user"`` when the user already holds
                ``per_user_limit`` slots, ``scope="global"`` when ``global_limit`` slots are
                held; nothing is counted then.
        """
        now_ms = self._now_ms()
        outcome = self._redis(
            "acquire",
            lambda: self._loaded().acquire(
                keys=list(_KEYS),
                args=[
                    now_ms,
                    connection.connection_id,
                    connection.user_id,
                    slot_expiry_ms(now_ms, ttl_seconds),
                    self._global_limit,
                    self._per_user_limit,
                ],
            ),
        )
        if outcome is None:
            return False
        scope = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if scope != "ok":
            raise ConnectionLimitExceededError(scope)
        return True

    def touch(self, connection_id: str, ttl_seconds: int) -> None:
        """Move a held slot's expiry to ``now + ttl_seconds`` (``ZADD XX``: never adds one).

        Best effort: a Redis failure is logged, not raised (a heartbeat must not fail on it).
        """
        expires_ms = slot_expiry_ms(self._now_ms(), ttl_seconds)
        self._redis(
            "touch",
            lambda: self._loaded().client.zadd(EXPIRY_KEY, {connection_id: expires_ms}, xx=True),
        )

    def release(self, connection_id: str) -> None:
        """Free the slot of ``connection_id`` (idempotent). Best effort, like :meth:`touch`."""
        self._redis(
            "release", lambda: self._loaded().release(keys=list(_KEYS), args=[connection_id])
        )

    def _loaded(self) -> _Scripts:
        scripts = self._scripts
        if scripts is None:
            with self._scripts_lock:
                scripts = self._scripts
                if scripts is None:
                    source = self._client_source
                    client = source if isinstance(source, _CLIENT_TYPES) else source()
                    scripts = self._scripts = _Scripts(
                        client=client,
                        acquire=client.register_script(_ACQUIRE_SCRIPT),
                        release=client.register_script(_RELEASE_SCRIPT),
                    )
        return scripts

    def _now_ms(self) -> int:
        return epoch_ms(self._clock)

    def _redis(self, operation: str, call: Callable[[], _T]) -> _T | None:
        try:
            with self._guard():
                return call()
        except pybreaker.CircuitBreakerError:
            logger.warning(
                "connection limits not enforced: Redis circuit open",
                extra={"operation": operation},
            )
        except (RedisError, RedisClusterException, StoreUnavailableError) as exc:
            logger.warning(
                "connection limits not enforced: Redis failed",
                extra={"operation": operation, "reason": type(exc).__name__},
            )
        return None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._breaker is None:
            self._count_attempt()
            yield
            return
        with self._breaker.calling():
            self._count_attempt()
            yield

    def _count_attempt(self) -> None:
        with self._attempts_lock:
            self._attempts += 1
