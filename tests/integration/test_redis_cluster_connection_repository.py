"""RedisConnectionRepository in cluster mode against a real 3-master Redis Cluster on loopback.

The shared repository contract runs on ``RedisCluster`` (``REDIS_CLUSTER=true``), with ids
whose keys hash to slots on every one of the three masters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from adapters.connection_store.record import record_key
from adapters.connection_store.redis import RedisConnectionRepository, create_redis_client
from domain.errors import ConnectionNotFoundError
from tests.support.cluster import RedisClusterNodes, node_port_of, running_redis_cluster_of_three
from tests.support.repository_contract import (
    AWKWARD_IDS,
    ConnectionDirectoryContract,
    ConnectionRepositoryContract,
    ExpireRecord,
    RemainingTtl,
    a_connection,
)
from tests.support.stores import redis_repository


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with running_redis_cluster_of_three() as nodes:
        yield nodes


@pytest.fixture
def cluster_client(cluster: RedisClusterNodes) -> Iterator[Any]:
    for server in cluster.servers:
        node = redis.Redis.from_url(server.url)
        node.flushall()
        node.close()
    client = create_redis_client(cluster.url, cluster=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def repository(cluster_client: Any) -> RedisConnectionRepository:
    return redis_repository(cluster_client)


@pytest.fixture
def remaining_ttl(cluster_client: Any) -> RemainingTtl:
    def remaining(connection_id: str) -> float | None:
        ttl = int(cluster_client.ttl(record_key(connection_id)))
        return float(ttl) if ttl > 0 else None

    return remaining


@pytest.fixture
def expire_record(cluster_client: Any) -> ExpireRecord:
    def expire(connection_id: str) -> None:
        cluster_client.expire(record_key(connection_id), 0)  # a TTL that ends now

    return expire


class TestRedisClusterConnectionRepositoryContract(
    ConnectionRepositoryContract, ConnectionDirectoryContract
):
    """The shared repository suite on three masters."""


def test_the_client_is_a_cluster_client_that_sees_three_masters(cluster_client: Any) -> None:
    assert isinstance(cluster_client, redis.cluster.RedisCluster)
    assert len(cluster_client.get_primaries()) == 3


def test_given_ids_on_every_master_then_each_key_is_stored_exactly_on_its_owner(
    cluster: RedisClusterNodes, cluster_client: Any, repository: RedisConnectionRepository
) -> None:
    ids = [*AWKWARD_IDS, *(f"conn-{index}=" for index in range(30))]
    owners = {
        connection_id: node_port_of(cluster_client, record_key(connection_id))
        for connection_id in ids
    }
    assert set(owners.values()) == set(cluster.ports)  # the ids cover all three masters

    for connection_id in ids:
        repository.save(a_connection(connection_id), 600)
        repository.refresh(connection_id, 300)
        assert repository.get(connection_id) == a_connection(connection_id)

    for server in cluster.servers:
        node = redis.Redis.from_url(server.url)
        try:
            expected = sorted(
                record_key(i).encode() for i, port in owners.items() if port == server.port
            )
            assert sorted(node.keys("ws:connection:*")) == expected
            for key in expected:
                assert 290 <= node.ttl(key) <= 300
        finally:
            node.close()

    for connection_id in ids:
        repository.delete(connection_id)
        with pytest.raises(ConnectionNotFoundError):
            repository.get(connection_id)


def test_the_key_is_exactly_ws_connection_and_the_raw_id(
    cluster_client: Any, repository: RedisConnectionRepository
) -> None:
    repository.save(a_connection("L0SM9cOFvHcCIhw="), 600)

    assert cluster_client.get("ws:connection:L0SM9cOFvHcCIhw=") == (
        b'{"connectionId": "L0SM9cOFvHcCIhw=", "userId": "user-1", '
        b'"connectedAt": "2026-01-03T00:00:00Z"}'
    )


def test_given_a_users_records_on_every_master_then_the_directory_lists_them_without_crossslot(
    cluster: RedisClusterNodes, cluster_client: Any, repository: RedisConnectionRepository
) -> None:
    ids = [f"spread-{index}=" for index in range(12)]
    owners = {node_port_of(cluster_client, record_key(i)) for i in ids}
    assert owners == set(cluster.ports)  # the user's records sit on all three masters
    for connection_id in ids:
        repository.save(a_connection(connection_id, user_id="alice"), 600)

    listed = repository.connections_of("alice")

    assert sorted(c.connection_id for c in listed) == sorted(ids)
    # A $disconnect frees the entry with the slot; an expired record is skipped.
    repository.delete(ids[0])
    cluster_client.expire(record_key(ids[1]), 0)
    assert sorted(c.connection_id for c in repository.connections_of("alice")) == sorted(ids[2:])
