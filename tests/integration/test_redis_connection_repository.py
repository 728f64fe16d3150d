"""RedisConnectionRepository against a real redis-server, a one-node Redis Cluster and fakeredis.

The same contract runs on all three; outage tests run on real servers only.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
import redis
import redis.cluster

from adapters.connection_store.record import record_key
from adapters.connection_store.redis import (
    DIRECTORY_KEY,
    EXPIRY_KEY,
    OWNER_KEY,
    PENDING_SECONDARY_DELETES_KEY,
    RedisConnectionRepository,
    create_redis_client,
)
from adapters.connection_store.redis_pending_deletes import RedisPendingDeletes
from adapters.in_memory import FixedClock
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError, StoreUnavailableError
from tests.support.redis_cluster import running_redis_cluster
from tests.support.repository_contract import (
    ConnectionDirectoryContract,
    ConnectionRepositoryContract,
    ExpireRecord,
    RemainingTtl,
    a_connection,
)
from tests.support.servers import RedisServer, free_port, running_redis_server
from tests.support.stores import redis_repository

TTL = 600
CONNECTION = Connection(
    connection_id="L0SM9cOFvHcCIhw=",
    user_id="7d8ca528-4931-4254-9273-ea5ee853f271",
    connected_at=datetime(2026, 1, 3, tzinfo=UTC),
)
KEY = "ws:connection:L0SM9cOFvHcCIhw="
VALUE = (
    '{"connectionId": "L0SM9cOFvHcCIhw=", '
    '"userId": "7d8ca528-4931-4254-9273-ea5ee853f271", '
    '"connectedAt": "2026-01-03T00:00:00Z"}'
)


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisServer]:
    """One single-node Redis Cluster for this module."""
    with running_redis_cluster() as server:
        yield server


@pytest.fixture(params=["redis-server", "redis-cluster", "fakeredis"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[RedisConnectionRepository, Any]]:
    """(repository under test, a raw client on the same data to look behind its back)."""
    if request.param == "redis-server":
        url = request.getfixturevalue("redis_url")
        client = create_redis_client(url)
        raw = redis.Redis.from_url(url)
    elif request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster").url
        client = create_redis_client(url, cluster=True)
        raw = redis.Redis.from_url(url)
        raw.flushall()
    else:
        server = fakeredis.FakeServer()
        client = fakeredis.FakeRedis(server=server)
        raw = fakeredis.FakeRedis(server=server)
    try:
        yield redis_repository(client), raw
    finally:
        raw.flushall()
        raw.close()
        client.close()


# --- the shared contracts, on a real standalone redis-server -------------------------------


class TestStandaloneRedisContract(ConnectionRepositoryContract, ConnectionDirectoryContract):
    """The shared repository and directory suites on a standalone redis-server."""

    @pytest.fixture
    def raw(self, redis_url: str) -> Iterator[redis.Redis]:
        client = redis.Redis.from_url(redis_url)
        yield client
        client.close()

    @pytest.fixture
    def repository(self, redis_url: str) -> Iterator[RedisConnectionRepository]:
        client = create_redis_client(redis_url)
        yield redis_repository(client)
        client.close()

    @pytest.fixture
    def remaining_ttl(self, raw: redis.Redis) -> RemainingTtl:
        def remaining(connection_id: str) -> float | None:
            ttl = int(raw.ttl(record_key(connection_id)))
            return float(ttl) if ttl > 0 else None

        return remaining

    @pytest.fixture
    def expire_record(self, raw: redis.Redis) -> ExpireRecord:
        def expire(connection_id: str) -> None:
            raw.expire(record_key(connection_id), 0)  # a TTL that ends now

        return expire


# --- the wire format, on every backend ----------------------------------------------------


def test_save_writes_the_exact_key_json_and_ttl(store) -> None:
    repository, raw = store
    repository.save(CONNECTION, TTL)
    assert raw.keys("ws:connection:*") == [KEY.encode()]
    assert raw.get(KEY).decode("utf-8") == VALUE
    assert 590 < raw.ttl(KEY) <= 600


def test_save_overwrites_an_existing_record_and_its_ttl(store) -> None:
    repository, raw = store
    raw.set(KEY, "old", ex=5)
    repository.save(CONNECTION, TTL)
    assert raw.get(KEY).decode("utf-8") == VALUE
    assert raw.ttl(KEY) > 590


def test_get_round_trips_the_record(store) -> None:
    repository, _ = store
    repository.save(CONNECTION, TTL)
    assert repository.get(CONNECTION.connection_id) == CONNECTION


def test_get_of_a_missing_record_raises_not_found(store) -> None:
    repository, _ = store
    with pytest.raises(ConnectionNotFoundError):
        repository.get("never-stored=")


def test_get_of_a_corrupt_record_is_not_found_and_logged(store, caplog) -> None:
    repository, raw = store
    raw.set(KEY, '{"connectionId": "L0SM9cOFvHcCIhw=", "secret-ish": true}', ex=TTL)
    with (
        caplog.at_level(logging.WARNING, logger="adapters.connection_store.redis"),
        pytest.raises(ConnectionNotFoundError),
    ):
        repository.get(CONNECTION.connection_id)
    [record] = caplog.records
    assert record.connection_id == CONNECTION.connection_id
    assert "secret-ish" not in caplog.text


def test_refresh_resets_the_ttl_without_touching_the_value(store) -> None:
    repository, raw = store
    repository.save(CONNECTION, TTL)
    # Given a record about to expire
    raw.expire(KEY, 30)
    assert raw.ttl(KEY) <= 30
    # When it is refreshed
    repository.refresh(CONNECTION.connection_id, TTL)
    # Then its TTL is back to 600 s and connectedAt is unchanged
    assert 590 < raw.ttl(KEY) <= 600
    assert raw.get(KEY).decode("utf-8") == VALUE


def test_refresh_of_a_missing_record_raises_and_creates_nothing(store) -> None:
    repository, raw = store
    with pytest.raises(ConnectionNotFoundError):
        repository.refresh(CONNECTION.connection_id, TTL)
    assert raw.exists(KEY) == 0
    assert raw.keys("*") == []


def test_delete_removes_the_record_and_is_idempotent(store) -> None:
    repository, raw = store
    repository.save(CONNECTION, TTL)
    repository.delete(CONNECTION.connection_id)
    assert raw.exists(KEY) == 0
    repository.delete(CONNECTION.connection_id)  # again: still fine
    with pytest.raises(ConnectionNotFoundError):
        repository.get(CONNECTION.connection_id)


def test_records_of_different_connections_are_independent(store) -> None:
    repository, raw = store
    other = Connection(
        connection_id="Xy9zAbCdEfGhIjk=", user_id="other-user", connected_at=CONNECTION.connected_at
    )
    repository.save(CONNECTION, TTL)
    repository.save(other, TTL)
    repository.delete(CONNECTION.connection_id)
    assert repository.get(other.connection_id) == other
    assert raw.exists(record_key(other.connection_id)) == 1


# --- clients and outages (real servers only) ----------------------------------------------


def test_superseded_among_names_the_deleted_and_the_held_never_the_unknown(store) -> None:
    repository, _ = store
    repository.save(a_connection("held=", user_id="bob"), TTL)
    repository.save(a_connection("deleted=", user_id="bob"), TTL)
    repository.delete("deleted=")

    superseded = repository.superseded_among(["held=", "deleted=", "unknown="])

    assert superseded == frozenset({"held=", "deleted="})
    assert repository.superseded_among([]) == frozenset()


def test_pending_secondary_deletes_are_remembered_listed_forgotten_and_dropped_after_a_day(
    store,
) -> None:
    # The failover's memory of DynamoDB's owed deletes, beside the records (its own adapter).
    _repository, raw = store
    pending = RedisPendingDeletes(raw, clock=FixedClock(datetime.now(UTC)))
    pending.remember_secondary_delete("a=")
    pending.remember_secondary_delete("b=")
    pending.remember_secondary_delete("a=")  # idempotent

    assert sorted(pending.pending_secondary_deletes(10)) == ["a=", "b="]
    assert len(pending.pending_secondary_deletes(1)) == 1  # bounded by the limit
    pending.forget_secondary_deletes(["a="])
    assert pending.pending_secondary_deletes(10) == ["b="]
    pending.remember_secondary_delete("c=")
    pending.forget_secondary_deletes(["b=", "c=", "never="])
    pending.forget_secondary_deletes([])
    assert pending.pending_secondary_deletes(10) == []

    # A day later nobody can still hold the record: the memory is dropped, not replayed.
    pending.remember_secondary_delete("d=")
    a_day_later = FixedClock(datetime.now(UTC) + timedelta(days=1, minutes=1))
    assert RedisPendingDeletes(raw, clock=a_day_later).pending_secondary_deletes(10) == []
    assert raw.zcard(PENDING_SECONDARY_DELETES_KEY) == 0


def test_create_redis_client_builds_a_plain_or_a_cluster_client(redis_url, redis_cluster) -> None:
    plain = create_redis_client(redis_url)
    clustered = create_redis_client(redis_cluster.url, cluster=True)
    try:
        assert type(plain) is redis.Redis
        assert isinstance(clustered, redis.cluster.RedisCluster)
        kwargs = plain.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.25
        assert kwargs["socket_connect_timeout"] == 0.25
        assert plain.get_retry().get_retries() == 1
    finally:
        plain.close()
        clustered.close()


def _outage_messages_are_clean(error: StoreUnavailableError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error)
    assert isinstance(error.__cause__, redis.exceptions.RedisError)


@pytest.mark.parametrize(
    "operation",
    [
        "save",
        "get",
        "refresh",
        "delete",
        "count_slot",
        "remember_secondary_delete",
        "pending_secondary_deletes",
        "forget_secondary_deletes",
        "delete_many",
    ],
)
def test_an_unreachable_redis_is_store_unavailable(operation) -> None:
    # Given a Redis URL on a loopback port nobody listens on
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    client = create_redis_client(url)
    repository = redis_repository(client)
    # When any operation runs, then it fails as StoreUnavailableError without the URL in it
    with pytest.raises(StoreUnavailableError) as caught:
        _run(repository, operation, RedisPendingDeletes(client, clock=FixedClock()))
    _outage_messages_are_clean(caught.value, "hunter2", url)


def test_a_hung_redis_is_store_unavailable() -> None:
    with running_redis_server() as server:
        assert server.process is not None
        client = create_redis_client(server.url)
        repository = redis_repository(client)
        repository.save(CONNECTION, TTL)  # the pooled connection is open before the freeze
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            for operation in ("get", "save", "refresh", "delete"):
                with pytest.raises(StoreUnavailableError) as caught:
                    _run(repository, operation, RedisPendingDeletes(client, clock=FixedClock()))
                assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        # And once Redis answers again the same client recovers
        assert repository.get(CONNECTION.connection_id) == CONNECTION
        client.close()


def test_a_password_in_the_url_authenticates() -> None:
    with running_redis_server() as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "s3cr3t/pa:ss")
        admin.close()
        # Given the password percent-encoded in the URL
        good = redis_repository(
            create_redis_client(f"redis://:s3cr3t%2Fpa%3Ass@127.0.0.1:{server.port}/0")
        )
        good.save(CONNECTION, TTL)
        assert good.get(CONNECTION.connection_id) == CONNECTION
        # And a wrong password is an outage, not a crash, and never echoed
        bad = redis_repository(
            create_redis_client(f"redis://:wrong-password@127.0.0.1:{server.port}/0")
        )
        with pytest.raises(StoreUnavailableError) as caught:
            bad.get(CONNECTION.connection_id)
        assert isinstance(caught.value.__cause__, redis.exceptions.AuthenticationError)
        _outage_messages_are_clean(caught.value, "wrong-password", "s3cr3t")


def test_a_cluster_client_that_cannot_reach_any_node_is_store_unavailable_at_once() -> None:
    # RedisCluster reads the slot map while it is built, so construction is where it fails.
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailableError) as caught:
        create_redis_client(url, cluster=True)
    assert "hunter2" not in str(caught.value)
    assert url not in str(caught.value)


def _run(
    repository: RedisConnectionRepository, operation: str, pending: RedisPendingDeletes
) -> None:
    calls = {
        "save": lambda: repository.save(CONNECTION, TTL),
        "get": lambda: repository.get(CONNECTION.connection_id),
        "refresh": lambda: repository.refresh(CONNECTION.connection_id, TTL),
        "delete": lambda: repository.delete(CONNECTION.connection_id),
        "count_slot": lambda: repository.count_slot(CONNECTION, TTL),
        "remember_secondary_delete": lambda: pending.remember_secondary_delete("a="),
        "pending_secondary_deletes": lambda: pending.pending_secondary_deletes(10),
        "forget_secondary_deletes": lambda: pending.forget_secondary_deletes(["a="]),
        "delete_many": lambda: repository.delete_many(["a=", "b="]),
    }
    calls[operation]()


def test_stored_value_is_json_readable_by_other_services(store) -> None:
    repository, raw = store
    repository.save(CONNECTION, TTL)
    assert json.loads(raw.get(KEY)) == {
        "connectionId": "L0SM9cOFvHcCIhw=",
        "userId": "7d8ca528-4931-4254-9273-ea5ee853f271",
        "connectedAt": "2026-01-03T00:00:00Z",
    }


# --- the directory's keys (standalone redis-server) -----------------------------------------


def _entries(raw: redis.Redis) -> list[bytes]:
    return list(raw.zrange(DIRECTORY_KEY, 0, -1))


def test_the_directory_entry_is_added_with_the_slot_and_removed_with_the_record_and_slot(
    redis_url: str,
) -> None:
    raw = redis.Redis.from_url(redis_url)
    repository = redis_repository(create_redis_client(redis_url))
    # Given a $connect: one entry, beside the slot's owner field
    repository.save(CONNECTION, TTL)
    user = CONNECTION.user_id
    assert _entries(raw) == [f"{len(user)}:{user}:{CONNECTION.connection_id}".encode()]
    assert raw.hget(OWNER_KEY, CONNECTION.connection_id) == user.encode()
    # When its $disconnect deletes it, then record, slot and entry go together
    repository.delete(CONNECTION.connection_id)
    assert raw.exists(KEY) == 0
    assert raw.hlen(OWNER_KEY) == 0 and raw.zcard(EXPIRY_KEY) == 0
    assert _entries(raw) == []
    raw.close()


def test_a_ghost_entry_is_skipped_by_reads_and_goes_with_its_slot_at_the_next_connect(
    redis_url: str,
) -> None:
    raw = redis.Redis.from_url(redis_url)
    clock = FixedClock(datetime.now(UTC))
    repository = redis_repository(create_redis_client(redis_url), clock=clock)
    repository.save(CONNECTION, TTL)
    # Given the record's TTL ran out without a $disconnect (its key is gone, its slot not)
    raw.delete(KEY)
    # Then reads skip the entry and leave it (it is a limit slot)
    assert repository.connections_of(CONNECTION.user_id) == []
    assert len(_entries(raw)) == 1
    # And the next $connect after the slot's expiry frees the slot and the entry with it
    clock.advance(TTL + 2)
    other = Connection(connection_id="next=", user_id="bob", connected_at=CONNECTION.connected_at)
    repository.save(other, TTL)
    assert _entries(raw) == [b"3:bob:next="]
    raw.close()


def test_a_ping_reasserts_a_missing_entry_of_a_held_slot(redis_url: str) -> None:
    # A store written before the directory existed: a slot and its owner, no entry.
    raw = redis.Redis.from_url(redis_url)
    repository = redis_repository(create_redis_client(redis_url))
    repository.save(CONNECTION, TTL)
    raw.delete(DIRECTORY_KEY)
    assert repository.connections_of(CONNECTION.user_id) == []

    repository.refresh(CONNECTION.connection_id, TTL)

    assert repository.connections_of(CONNECTION.user_id) == [CONNECTION]
    raw.close()


def test_a_lookup_is_one_zrangebylex_and_one_mget_never_a_scan(redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    repository = redis_repository(create_redis_client(redis_url))
    for index in range(10):
        repository.save(
            Connection(
                connection_id=f"c{index}=", user_id="alice", connected_at=CONNECTION.connected_at
            ),
            TTL,
        )
    for index in range(50):
        repository.save(
            Connection(
                connection_id=f"o{index}=",
                user_id=f"u{index}",
                connected_at=CONNECTION.connected_at,
            ),
            TTL,
        )
    raw.config_resetstat()

    assert len(repository.connections_of("alice")) == 10

    stats = raw.info("commandstats")
    calls = {name: stat["calls"] for name, stat in stats.items()}
    calls.pop("cmdstat_config|resetstat", None)
    assert calls == {
        "cmdstat_zrangebylex": 1,
        "cmdstat_mget": 1,
    }
    raw.close()
