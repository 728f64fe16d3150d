"""Redis's durable memory of the deletes the failover's secondary store (DynamoDB) still
owes: a sorted set of connectionIds, each scored with when to give up (epoch ms, a day on).

The failover (``failover.py``) remembers a delete here when DynamoDB could not take it; the
reconciler (``reconciler.py``) lists and forgets them once DynamoDB has. Redis keeps them
across Lambda environments; this process keeps a copy (``journal.py``) in case Redis loses
its data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import redis
import redis.cluster
from redis.exceptions import RedisClusterException, RedisError

from adapters.connection_store.failover_roles import PendingSecondaryDeletes
from adapters.connection_store.redis_scripts import (
    CLOSED_MEMORY_MS,
    PENDING_SECONDARY_DELETES_KEY,
    RedisClient,
)
from adapters.lazy import Lazy
from application.ports import Clock
from domain.errors import StoreUnavailableError


class RedisPendingDeletes(PendingSecondaryDeletes):
    """The pending secondary deletes in Redis (key ``PENDING_SECONDARY_DELETES_KEY``).

    Args:
        client: the process's Redis client, or a callable returning it on first use (as
            ``RedisConnectionRepository`` takes it).
        clock: "now", for when a remembered delete is given up (a day later).

    Every Redis error is ``StoreUnavailableError`` naming the command, never the URL.
    """

    def __init__(self, client: RedisClient | Callable[[], RedisClient], *, clock: Clock) -> None:
        if isinstance(client, redis.Redis | redis.cluster.RedisCluster):
            ready = client
            self._client: Lazy[RedisClient] = Lazy(lambda: ready)
        else:
            self._client = Lazy(client)
        self._clock = clock

    def remember_secondary_delete(self, connection_id: str) -> None:
        """Remember that another store still holds ``connection_id`` (its delete failed there).

        Raises:
            StoreUnavailableError: Redis did not answer.
        """
        try:
            self._client.get().zadd(
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
            client = self._client.get()
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
            self._client.get().zrem(PENDING_SECONDARY_DELETES_KEY, *connection_ids)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis zrem failed: {type(exc).__name__}") from exc

    def _now_ms(self) -> int:
        return math.floor(self._clock.now().timestamp() * 1000)

    def _memory_ms(self) -> int:
        return self._now_ms() + CLOSED_MEMORY_MS
