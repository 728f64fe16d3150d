"""FailoverConnectionRepository on a real redis-server (append-only file on) and a moto DynamoDB.

Redis is killed (SIGKILL) and restarted on the same port and folder, or hung (SIGSTOP /
SIGCONT); assertions count Redis attempts, never wall time.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import redis

from adapters.connection_store.dynamodb import (
    TTL_ATTRIBUTE,
    DynamoDbConnectionRepository,
    create_dynamodb_client,
)
from adapters.connection_store.failover import (
    CIRCUIT_OPEN,
    PRIMARY_UNAVAILABLE,
    FailoverConnectionRepository,
    FailoverEvent,
    create_circuit_breaker,
)
from adapters.connection_store.record import record_key
from adapters.connection_store.redis import create_redis_client
from adapters.connection_store.redis_pending_deletes import RedisPendingDeletes
from adapters.in_memory import FixedClock, InMemoryMessageSender
from adapters.system_clock import SystemClock
from application.commands import HeartbeatCommand, HeartbeatOutcome
from application.ports import Clock
from application.use_cases import Heartbeat
from domain.errors import ConnectionNotFoundError, StoreUnavailableError
from entrypoints.local_gateway.dynamodb_table import ensure_connections_table
from tests.support.repository_contract import (
    ConnectionDirectoryContract,
    ConnectionRepositoryContract,
    ExpireRecord,
    RemainingTtl,
    a_connection,
    ids_of,
)
from tests.support.servers import RedisServer, free_port, running_redis_server
from tests.support.stores import redis_repository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server of our own (it gets killed), persisting every write to its AOF."""
    with running_redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                os.kill(server.process.pid, signal.SIGCONT)


@pytest.fixture
def dynamodb(moto_endpoint: str) -> DynamoDBClient:
    return create_dynamodb_client(endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def table_name(dynamodb: DynamoDBClient) -> Iterator[str]:
    name = f"failover-{uuid.uuid4().hex[:8]}"
    ensure_connections_table(dynamodb, name)
    yield name
    dynamodb.delete_table(TableName=name)


class Stores:
    """The composition under test plus raw views of both stores."""

    def __init__(
        self,
        redis_url: str,
        dynamodb: DynamoDBClient,
        table_name: str,
        *,
        clock: Clock | None = None,
        fail_max: int = 2,
        reset_timeout_seconds: float = 60.0,
    ) -> None:
        self.clock = clock or SystemClock()
        self.redis_up = True
        self.redis_client = create_redis_client(redis_url)
        self.raw_redis = redis.Redis.from_url(redis_url, socket_timeout=2, decode_responses=True)
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.primary = redis_repository(self.redis_client)
        self.secondary = DynamoDbConnectionRepository(
            table_name, clock=self.clock, client_factory=lambda: dynamodb
        )
        self.events: list[FailoverEvent] = []
        self.repository = FailoverConnectionRepository(
            primary=self.primary,
            secondary=self.secondary,
            pending_deletes=RedisPendingDeletes(self.redis_client, clock=self.clock),
            breaker=create_circuit_breaker(
                fail_max=fail_max, reset_timeout_seconds=reset_timeout_seconds
            ),
            on_failover=self.events.append,
        )

    def in_redis(self) -> set[str]:
        return {
            str(key).removeprefix("ws:connection:")
            for key in self.raw_redis.keys("ws:connection:*")
        }

    def in_dynamodb(self) -> set[str]:
        items = self.dynamodb.scan(TableName=self.table_name, ConsistentRead=True)["Items"]
        return {item["connectionId"]["S"] for item in items}

    def dynamodb_expiry(self, connection_id: str) -> int:
        item = self.dynamodb.get_item(
            TableName=self.table_name,
            Key={"connectionId": {"S": connection_id}},
            ConsistentRead=True,
        )["Item"]
        return int(item[TTL_ATTRIBUTE]["N"])

    def close(self) -> None:
        self.redis_client.close()
        self.raw_redis.close()


@pytest.fixture
def stores(aof_redis: RedisServer, dynamodb: DynamoDBClient, table_name: str) -> Iterator[Stores]:
    stores = Stores(aof_redis.url, dynamodb, table_name)
    yield stores
    stores.close()


def kill(server: RedisServer) -> None:
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=10)
    server.process = None


def poll(condition: Callable[[], bool], *, seconds: float = 10.0) -> bool:
    """Bounded wait on ``condition``; returns its last value."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling interval of a bounded loop
    return True


# --- the contract, healthy -------------------------------------------------------------------


def expire_in_either_store(stores: Stores) -> ExpireRecord:
    """End a record's TTL now wherever it lives (Redis: the key goes; DynamoDB: expiresAt)."""

    def expire(connection_id: str) -> None:
        if stores.redis_up and stores.raw_redis.expire(record_key(connection_id), 0):
            return
        stores.dynamodb.update_item(
            TableName=stores.table_name,
            Key={"connectionId": {"S": connection_id}},
            UpdateExpression="SET expiresAt = :now",
            ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
        )

    return expire


class TestFailoverConnectionRepositoryContract(
    ConnectionRepositoryContract, ConnectionDirectoryContract
):
    """The shared suites on the composition while both stores are healthy."""

    @pytest.fixture
    def expire_record(self, stores: Stores) -> ExpireRecord:
        return expire_in_either_store(stores)

    @pytest.fixture
    def repository(self, stores: Stores) -> FailoverConnectionRepository:
        return stores.repository

    @pytest.fixture
    def remaining_ttl(self, stores: Stores) -> RemainingTtl:
        def remaining(connection_id: str) -> float | None:
            ttl = int(stores.raw_redis.ttl(record_key(connection_id)))
            return float(ttl) if ttl > 0 else None

        return remaining


class TestFailoverDirectoryContractWhileRedisIsDown(ConnectionDirectoryContract):
    """The directory suite while Redis is killed: every record lives in DynamoDB, a delete
    is a tombstone there, and the directory answers from DynamoDB alone."""

    @pytest.fixture
    def repository(self, aof_redis: RedisServer, stores: Stores) -> FailoverConnectionRepository:
        kill(aof_redis)
        stores.redis_up = False
        return stores.repository

    @pytest.fixture
    def expire_record(self, stores: Stores) -> ExpireRecord:
        return expire_in_either_store(stores)


@pytest.fixture
def redis_came_back(
    aof_redis: RedisServer, dynamodb: DynamoDBClient, table_name: str
) -> Iterator[Stores]:
    """Redis killed until its breaker opened, then restarted (AOF): it answers again, its
    breaker half-opens 0.3 s later."""
    stores = Stores(aof_redis.url, dynamodb, table_name, reset_timeout_seconds=0.3)
    kill(aof_redis)
    for _ in range(2):  # fail_max failures: the breaker opens
        with pytest.raises(StoreUnavailableError):
            stores.repository.get("probe=")
    assert stores.repository.breaker.current_state == "open"
    aof_redis.start()
    yield stores
    stores.close()


class TestFailoverDirectoryContractAfterRedisCameBack(ConnectionDirectoryContract):
    """The directory suite right after an outage: records land in DynamoDB while Redis's
    breaker is open and in Redis once its trial call succeeds, so a test's records may sit
    in either store, or both; the listing must not care."""

    @pytest.fixture
    def repository(self, redis_came_back: Stores) -> FailoverConnectionRepository:
        return redis_came_back.repository

    @pytest.fixture
    def expire_record(self, redis_came_back: Stores) -> ExpireRecord:
        return expire_in_either_store(redis_came_back)


# --- the directory across an outage ------------------------------------------------------------


def test_given_records_in_both_stores_and_deletes_during_the_outage_then_the_directory_lists_the_union_minus_the_deleted(
    aof_redis: RedisServer, dynamodb: DynamoDBClient, table_name: str
) -> None:
    stores = Stores(aof_redis.url, dynamodb, table_name, reset_timeout_seconds=0.3)
    before = [f"before-{index}=" for index in range(4)]
    during = [f"during-{index}=" for index in range(4)]
    for connection_id in before:
        stores.repository.save(a_connection(connection_id, user_id="alice"), 600)
    stores.repository.save(a_connection("bob-1=", user_id="bob"), 600)

    # Given Redis down: what it holds cannot be listed, DynamoDB's records are
    kill(aof_redis)
    for connection_id in during:
        stores.repository.save(a_connection(connection_id, user_id="alice"), 600)
    assert ids_of(stores.repository.connections_of("alice")) == sorted(during)
    # And $disconnects during the outage: one Redis holds (a tombstone in DynamoDB), one
    # DynamoDB holds
    stores.repository.delete(before[0])
    stores.repository.delete(during[0])
    assert ids_of(stores.repository.connections_of("alice")) == sorted(during[1:])

    # When Redis is back (its AOF brings the records back, before[0]'s included)
    aof_redis.start()
    assert before[0] in stores.in_redis()
    assert poll(lambda: before[1] in ids_of(stores.repository.connections_of("alice")))

    # Then the directory lists both stores' records, never the two deleted ones
    expected = sorted([*before[1:], *during[1:]])
    assert ids_of(stores.repository.connections_of("alice")) == expected
    assert ids_of(stores.repository.connections_of("bob")) == ["bob-1="]
    # And a replay of the tombstone changes nothing the directory says, and revives nothing
    stores.repository.reconcile()
    assert before[0] not in stores.in_redis()
    assert ids_of(stores.repository.connections_of("alice")) == expected
    with pytest.raises(ConnectionNotFoundError):
        stores.repository.get(before[0])
    stores.close()


def test_given_a_connection_id_in_dynamodb_for_one_user_and_in_redis_for_another_then_only_redis_user_lists_it(
    stores: Stores,
) -> None:
    # Given the record saved in DynamoDB during an outage, then saved again in Redis for
    # another user once it was back (the order a half-open breaker's trial call allows)
    stores.secondary.save(a_connection("moved=", user_id="alice"), 600)
    stores.primary.save(a_connection("moved=", user_id="bob"), 600)

    # Then the directory agrees with get: Redis's record is the connection's
    assert stores.repository.get("moved=").user_id == "bob"
    assert stores.repository.connections_of("alice") == []
    assert ids_of(stores.repository.connections_of("bob")) == ["moved="]
    # And a record DynamoDB alone holds is still listed
    stores.secondary.save(a_connection("only-dynamodb=", user_id="alice"), 600)
    assert ids_of(stores.repository.connections_of("alice")) == ["only-dynamodb="]


# --- Redis killed and restarted ----------------------------------------------------------------


def test_given_redis_killed_then_saves_land_in_dynamodb_and_everything_is_found_after_restart(
    aof_redis: RedisServer, dynamodb: DynamoDBClient, table_name: str
) -> None:
    stores = Stores(aof_redis.url, dynamodb, table_name, reset_timeout_seconds=0.3)
    before = [f"before-{index}=" for index in range(5)]
    during = [f"during-{index}=" for index in range(5)]
    for connection_id in before:
        stores.repository.save(a_connection(connection_id), 600)

    kill(aof_redis)
    for connection_id in during:
        stores.repository.save(a_connection(connection_id), 600)
    assert stores.in_dynamodb() == set(during)
    for connection_id in during:  # found and refreshed while Redis is down
        stores.repository.refresh(connection_id, 600)
    for connection_id in before:  # may be in Redis: not a definite "not found"
        with pytest.raises(StoreUnavailableError):
            stores.repository.refresh(connection_id, 600)

    aof_redis.start()  # same port, same folder: the AOF brings the records back
    assert stores.in_redis() == set(before)
    # The breaker half-opens after its reset timeout; then Redis answers again.
    assert poll(lambda: _found(stores, before[0]))
    assert stores.repository.breaker.current_state == "closed"

    for connection_id in before + during:
        stores.repository.refresh(connection_id, 600)
        assert stores.repository.get(connection_id) == a_connection(connection_id)
    for connection_id in before + during:
        stores.repository.delete(connection_id)
    assert stores.in_redis() == set() and stores.in_dynamodb() == set()
    assert {event.operation for event in stores.events} >= {"save", "refresh"}
    stores.close()


def _found(stores: Stores, connection_id: str) -> bool:
    try:
        stores.repository.get(connection_id)
    except StoreUnavailableError:
        return False
    return True


# --- Redis hung ------------------------------------------------------------------------------


def test_given_a_hung_redis_then_connects_go_to_dynamodb_and_stop_paying_the_redis_timeout(
    aof_redis: RedisServer, dynamodb: DynamoDBClient, table_name: str
) -> None:
    stores = Stores(aof_redis.url, dynamodb, table_name, fail_max=2, reset_timeout_seconds=0.5)
    assert aof_redis.process is not None
    os.kill(aof_redis.process.pid, signal.SIGSTOP)
    try:
        for index in range(10):
            stores.repository.save(a_connection(f"hung-{index}="), 600)

        # fail_max attempts reached Redis; then the circuit is open and Redis is not asked.
        assert [event.reason for event in stores.events] == [PRIMARY_UNAVAILABLE] * 2 + [
            CIRCUIT_OPEN
        ] * 8
        assert stores.in_dynamodb() == {f"hung-{index}=" for index in range(10)}
    finally:
        os.kill(aof_redis.process.pid, signal.SIGCONT)

    # The breaker half-opens after its reset timeout and returns to Redis on success.
    saved: list[str] = []

    def next_save_lands_in_redis() -> bool:
        connection_id = f"after-{len(saved)}="
        saved.append(connection_id)
        stores.repository.save(a_connection(connection_id), 600)
        return connection_id in stores.in_redis()

    assert poll(next_save_lands_in_redis)
    assert stores.repository.breaker.current_state == "closed"
    for index in range(10):  # the outage's records are still refreshed where they live
        stores.repository.refresh(f"hung-{index}=", 600)
    stores.close()


# --- both stores down ------------------------------------------------------------------------


def test_given_both_stores_down_then_every_operation_is_store_unavailable(
    aof_redis: RedisServer,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    dead_dynamodb = create_dynamodb_client(
        endpoint_url=closed, region_name="us-east-1", connect_timeout_seconds=0.5, max_attempts=1
    )
    stores = Stores(aof_redis.url, dead_dynamodb, "connections")
    kill(aof_redis)

    with pytest.raises(StoreUnavailableError):
        stores.repository.save(a_connection(), 600)
    with pytest.raises(StoreUnavailableError):
        stores.repository.refresh("L0SM9cOFvHcCIhw=", 600)
    with pytest.raises(StoreUnavailableError):
        stores.repository.get("L0SM9cOFvHcCIhw=")
    with pytest.raises(StoreUnavailableError):
        stores.repository.delete("L0SM9cOFvHcCIhw=")
    with pytest.raises(StoreUnavailableError):
        stores.repository.connections_of("user-1")
    stores.close()


# --- expiry in DynamoDB ----------------------------------------------------------------------


def test_given_an_expired_dynamodb_item_when_pinged_then_not_found_not_revived_and_closed(
    aof_redis: RedisServer, dynamodb: DynamoDBClient, table_name: str
) -> None:
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    stores = Stores(aof_redis.url, dynamodb, table_name, clock=clock)
    stores.secondary.save(a_connection("old="), 60)  # written during an outage long ago
    expiry = stores.dynamodb_expiry("old=")
    clock.advance(120)
    sender = InMemoryMessageSender()

    result = Heartbeat(repository=stores.repository, sender=sender, clock=clock).execute(
        HeartbeatCommand(connection_id="old=")
    )

    assert result.outcome is HeartbeatOutcome.EXPIRED
    assert sender.closed == ["old="]
    assert stores.dynamodb_expiry("old=") == expiry  # not revived
    with pytest.raises(ConnectionNotFoundError):
        stores.repository.get("old=")
    assert "old=" not in stores.in_redis()
    stores.close()
