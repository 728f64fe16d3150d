"""Connection records and their connection-limit slots in Redis (redis-py), standalone or cluster.

Records: key ``ws:connection:{connectionId}`` holding the record's JSON (``record.py``),
with a TTL. Connection limits and the directory: keys sharing the hash tag
``{connections}``, so they live in one cluster slot and one Lua script can check and update
all of them atomically:

- ``ws:limits:{connections}:expiry`` — sorted set, member connectionId, score the epoch
  milliseconds at which the slot expires (the record's TTL end plus :data:`SLOT_GRACE_MS`);
- ``ws:limits:{connections}:owner`` — hash, connectionId -> userId;
- ``ws:limits:{connections}:per-user`` — hash, userId -> number of counted connections;
- ``ws:limits:{connections}:closed`` — sorted set of deleted connectionIds (a day);
- ``ws:limits:{connections}:by-user`` — the directory: sorted set, every score 0, member
  ``<n>:<userId>:<connectionId>`` (``n``: the userId's UTF-8 length), one per slot.

The directory (``connections_of``) is **kept in the same atomic step as the limit slot**,
not repaired on read: a user's slots already were the per-user index, short of the reverse
lookup, so the scripts that take, move and free a slot add and remove the directory entry
beside the owner hash's field, and the two can never disagree. On a standalone Redis the
record changes in that same script too (``$connect``, ``$disconnect``, the ping). Reading
is ``ZRANGEBYLEX`` of the user's range (O(log N + the user's connections)), then the
records (``MGET``; in cluster mode ``MGET`` per hash slot, pipelined per node): two round
trips, never ``KEYS``/``SCAN``. **The record's TTL is the truth**: an entry whose record key
is gone is skipped, so a deleted or expired connection is never returned. Such an entry is
never removed by a read (it may be the slot of a record DynamoDB holds after a failover,
which the failover repository lists from there); it goes with its slot, at the next
``$connect`` after the slot's expiry, so entries are bounded by the slots. A record
admitted without a slot (cluster mode, the limits call failed) is listed from its first
ping, which counts the slot; a ping also re-asserts its entry, so a store written before
the directory existed converges within one ping interval.

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

This module builds the client and maps the store's operations to the topology's commands
(``redis_scripts.py``: the keys, the Lua, and one command set per topology, chosen once);
every Redis error becomes ``StoreUnavailableError`` here.
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
from adapters.connection_store.redis_scripts import (
    ADMITTED,
    CLOSED_KEY,
    CLOSED_MEMORY_MS,
    DIRECTORY_KEY,
    EXPIRY_KEY,
    LIMIT_KEYS,
    OWNER_KEY,
    PENDING_SECONDARY_DELETES_KEY,
    PER_USER_KEY,
    SLOT_GRACE_MS,
    RedisClient,
    RedisCommands,
    commands_for,
)
from adapters.lazy import Lazy
from application.ports import Clock, ConnectionDirectory, ConnectionRepository
from domain.connection import Connection
from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)


__all__ = [
    "CLOSED_KEY",
    "CLOSED_MEMORY_MS",
    "DIRECTORY_KEY",
    "EXPIRY_KEY",
    "LIMIT_KEYS",
    "OWNER_KEY",
    "PENDING_SECONDARY_DELETES_KEY",
    "PER_USER_KEY",
    "SLOT_GRACE_MS",
    "RedisClient",
    "RedisConnectionRepository",
    "create_redis_client",
]

# One retry after a connection error or timeout: a Lambda thawed after minutes idle often
# holds a socket the server (or a NAT) has dropped, and one reconnect fixes that. Every
# command and script here is idempotent, so a retry after a lost reply is safe.
_RETRIES: Final = 1
_BACKOFF_BASE_SECONDS: Final = 0.01
_BACKOFF_CAP_SECONDS: Final = 0.05


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


class RedisConnectionRepository(ConnectionRepository, ConnectionDirectory):
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
      a connection remembered closed is not counted again);
    - ``connections_of``: the directory (module rules): the user's entries, then their
      records; only records that exist and name the user are returned.

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
        # The topology's commands are chosen once, when the client is first had.
        if isinstance(client, redis.Redis | redis.cluster.RedisCluster):
            ready = client
            self._commands: Lazy[RedisCommands] = Lazy(lambda: commands_for(ready))
        else:
            build = client
            self._commands = Lazy(lambda: commands_for(build()))
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
            answer = self._commands.get().save(
                connection_id, limits, encode_record(connection), ttl_seconds
            )
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis save failed: {type(exc).__name__}") from exc
        if answer not in ADMITTED:
            raise ConnectionLimitExceededError(answer)

    def get(self, connection_id: str) -> Connection:
        """Read the record with ``GET``.

        Raises:
            ConnectionNotFoundError: no such key (expired or never stored), or a corrupt value.
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        try:
            raw = self._commands.get().client.get(record_key(connection_id))
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
        expires_ms = self._now_ms() + ttl_seconds * 1000 + SLOT_GRACE_MS
        try:
            found = self._commands.get().refresh(connection_id, ttl_seconds, expires_ms)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis refresh failed: {type(exc).__name__}") from exc
        if not found:
            raise ConnectionNotFoundError()

    def delete(self, connection_id: str) -> None:
        """Remove the record, free its slot, remember the connection closed; idempotent.

        Raises:
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        try:
            self._commands.get().delete(connection_id, self._memory_ms())
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
            self._commands.get().delete_many(connection_ids, self._memory_ms())
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis delete failed: {type(exc).__name__}") from exc

    def connections_of(self, user_id: str) -> list[Connection]:
        """The user's connections whose records Redis holds now: the directory's entries
        (``ZRANGEBYLEX``) whose record key exists and names this user (``MGET``).

        An entry whose record is gone (expired, deleted, or held by DynamoDB after a
        failover) is skipped, never removed here: it is a limit slot, and goes with it.

        Raises:
            StoreUnavailableError: Redis did not answer or refused a command.
        """
        try:
            listed = self._commands.get().listed(user_id)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(
                f"Redis connections_of failed: {type(exc).__name__}"
            ) from exc
        found: list[Connection] = []
        for connection_id, raw in listed:
            if raw is None:
                continue
            try:
                connection = decode_record(raw)
            except CorruptRecordError as exc:
                logger.warning(
                    "corrupt connection record treated as absent",
                    extra={"connection_id": connection_id, "reason": str(exc)},
                )
                continue
            if connection.user_id == user_id and connection.connection_id == connection_id:
                found.append(connection)
        return found

    def superseded_among(self, connection_ids: Sequence[str]) -> frozenset[str]:
        """Which of ``connection_ids`` Redis answers for itself: deleted here (``ZMSCORE``
        of the closed set, remembered a day) or holding a live record here (``EXISTS``,
        the record :meth:`get` would return, whoever's it is). The failover drops them from
        the other store's listing, so the directory agrees with ``get``.

        Raises:
            StoreUnavailableError: Redis did not answer or refused a command.
        """
        if not connection_ids:
            return frozenset()
        ids = list(connection_ids)
        try:
            closed, held = self._commands.get().superseded(ids)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(
                f"Redis superseded_among failed: {type(exc).__name__}"
            ) from exc
        return frozenset(
            connection_id
            for connection_id, score, exists in zip(ids, closed, held, strict=True)
            if score is not None or exists
        )

    def count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        """Count ``connection``, whose record another store holds, for ``ttl_seconds``.

        Never refuses (the connection is open); does nothing for a connection remembered
        closed (a ping that raced its ``$disconnect``).

        Raises:
            StoreUnavailableError: Redis did not answer or refused the script.
        """
        expires_ms = self._now_ms() + ttl_seconds * 1000 + SLOT_GRACE_MS
        try:
            self._commands.get().count(connection.connection_id, connection.user_id, expires_ms)
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis count failed: {type(exc).__name__}") from exc

    def _now_ms(self) -> int:
        return math.floor(self._clock.now().timestamp() * 1000)

    def _memory_ms(self) -> int:
        """Until when a closed connection (or a pending delete) is remembered: a day, far
        longer than any record or slot, or a message in flight, may live."""
        return self._now_ms() + CLOSED_MEMORY_MS
