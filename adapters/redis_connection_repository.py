"""Connection records in Redis (redis-py), one key per connection with a TTL.

Every command touches a single key, so the repository works unchanged on Redis Cluster and
ElastiCache cluster mode (no CROSSSLOT errors, no MULTI).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis
import redis.cluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from adapters.connection_record import CorruptRecordError, decode_record, encode_record, record_key
from application.ports import ConnectionRepository
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError, StoreUnavailableError

logger = logging.getLogger(__name__)

RedisClient = redis.Redis | redis.cluster.RedisCluster

_T = TypeVar("_T")

# One retry after a connection error or timeout: a Lambda thawed after minutes idle often
# holds a socket the server (or a NAT) has dropped, and one reconnect fixes that. More
# retries would only stretch the wait on a Redis that is really down. Every command we send
# (SET EX, GET, EXPIRE, DEL) is idempotent, so a retry after a lost reply is safe.
_RETRIES = 1
_BACKOFF_BASE_SECONDS = 0.01
_BACKOFF_CAP_SECONDS = 0.05


def create_redis_client(
    url: str,
    *,
    connect_timeout_seconds: float = 0.25,
    read_timeout_seconds: float = 0.25,
    cluster: bool = False,
    password: str | None = None,
) -> RedisClient:
    """Build the process's one Redis client from a URL; the container holds it as a singleton.

    Args:
        url: ``redis://[[user]:password@]host:port/db`` or ``rediss://`` for TLS (ElastiCache
            with in-transit encryption). Percent-encode special characters in the password.
            With ``rediss://`` the server certificate and host name are verified against the
            system CAs; for a private CA append ``?ssl_ca_certs=/path/ca.pem`` (redis-py reads
            ``ssl_*`` query parameters; ``tests/security/test_redis_tls.py``). Never
            ``ssl_cert_reqs=none``.
        connect_timeout_seconds: TCP connect timeout, seconds.
        read_timeout_seconds: wait for each reply, seconds. Short on purpose: a hung Redis
            must fail the call (``StoreUnavailableError``) well inside the Lambda timeout.
        cluster: build a :class:`redis.cluster.RedisCluster` (cluster mode enabled). It
            reads the slot map from the server while being built, so construction itself
            fails when no node answers (``StoreUnavailableError``; a singleton provider then
            tries again on the next call).
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
            # Raised as the domain's outage so $connect answers 503, not a crash.
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


class RedisConnectionRepository(ConnectionRepository):
    """Connection records as ``ws:connection:{connectionId}`` keys holding JSON, with a TTL.

    - ``save``: one atomic ``SET key value EX ttl`` (overwrites; no MULTI).
    - ``get``: ``GET`` and decode; a missing key, or a corrupt value (logged), is
      ``ConnectionNotFoundError``.
    - ``refresh``: ``EXPIRE key ttl``; Redis answers 0 for a missing key, which is
      ``ConnectionNotFoundError``. The value is untouched and a missing key is never created.
    - ``delete``: ``DEL`` (idempotent).

    Every ``RedisError`` (connection refused, timeout, auth, cluster down, ...) becomes
    :class:`StoreUnavailableError`, chained to the original; messages name the command and
    the error class only, never the URL or a password. TTLs are whole seconds.
    """

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Write the record with ``SET key value EX ttl_seconds``.

        Raises:
            ValueError: when ``ttl_seconds`` is not a positive whole number.
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        _require_positive_ttl(ttl_seconds)
        key = record_key(connection.connection_id)
        value = encode_record(connection)
        self._call("SET", lambda: self._client.set(key, value, ex=ttl_seconds))

    def get(self, connection_id: str) -> Connection:
        """Read the record with ``GET``.

        Raises:
            ConnectionNotFoundError: no such key (expired or never stored), or a corrupt value.
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        raw = self._call("GET", lambda: self._client.get(record_key(connection_id)))
        if raw is None:
            raise ConnectionNotFoundError()
        try:
            return decode_record(raw)
        except CorruptRecordError as exc:
            # Treated as absent so the client reconnects and a fresh record replaces it; the
            # stored text is not logged (it is not ours to echo), only why it was rejected.
            logger.warning(
                "corrupt connection record treated as absent",
                extra={"connectionId": connection_id, "reason": str(exc)},
            )
            raise ConnectionNotFoundError() from exc

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Reset the TTL with ``EXPIRE key ttl_seconds``; never creates a record.

        Raises:
            ValueError: when ``ttl_seconds`` is not a positive whole number.
            ConnectionNotFoundError: no such key (Redis answered 0).
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        _require_positive_ttl(ttl_seconds)
        key = record_key(connection_id)
        if not self._call("EXPIRE", lambda: self._client.expire(key, ttl_seconds)):
            raise ConnectionNotFoundError()

    def delete(self, connection_id: str) -> None:
        """Remove the record with ``DEL``; a missing key is fine.

        Raises:
            StoreUnavailableError: Redis did not answer or refused the command.
        """
        key = record_key(connection_id)
        self._call("DEL", lambda: self._client.delete(key))

    @staticmethod
    def _call(command: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (RedisError, RedisClusterException) as exc:
            raise StoreUnavailableError(f"Redis {command} failed: {type(exc).__name__}") from exc


def _require_positive_ttl(ttl_seconds: int) -> None:
    # bool is an int; True seconds is a bug, not a TTL.
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be a positive whole number, got {ttl_seconds!r}")
