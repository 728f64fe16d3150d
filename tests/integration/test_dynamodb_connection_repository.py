"""DynamoDbConnectionRepository against a moto server (real HTTP, real boto3 client)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from adapters.connection_store.dynamodb import DynamoDbConnectionRepository, create_dynamodb_client
from adapters.connection_store.record import TOMBSTONE_INDEX_NAME, TTL_ATTRIBUTE, USER_INDEX_NAME
from adapters.in_memory import FixedClock
from domain.errors import ConnectionNotFoundError, StoreUnavailableError
from entrypoints.local_gateway.dynamodb_table import ensure_connections_table
from tests.support.repository_contract import (
    CONNECTED_AT,
    ConnectionDirectoryContract,
    ConnectionRepositoryContract,
    ExpireRecord,
    RemainingTtl,
    a_connection,
)
from tests.support.servers import free_port

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

NOW = datetime(2026, 1, 3, 0, 5, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(moto_endpoint: str) -> DynamoDBClient:
    return create_dynamodb_client(endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def table_name(dynamodb: DynamoDBClient) -> Iterator[str]:
    name = f"connections-{uuid.uuid4().hex[:8]}"
    assert ensure_connections_table(dynamodb, name) is True
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def repository(
    dynamodb: DynamoDBClient, table_name: str, clock: FixedClock
) -> DynamoDbConnectionRepository:
    return DynamoDbConnectionRepository(table_name, clock=clock, client_factory=lambda: dynamodb)


@pytest.fixture
def remaining_ttl(dynamodb: DynamoDBClient, table_name: str, clock: FixedClock) -> RemainingTtl:
    def remaining(connection_id: str) -> float | None:
        item = dynamodb.get_item(
            TableName=table_name, Key={"connectionId": {"S": connection_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        left = float(item[TTL_ATTRIBUTE]["N"]) - clock.now().timestamp()
        return left if left > 0 else None

    return remaining


@pytest.fixture
def expire_record(dynamodb: DynamoDBClient, table_name: str, clock: FixedClock) -> ExpireRecord:
    def expire(connection_id: str) -> None:
        # Past its expiresAt and not yet deleted: DynamoDB deletes expired items lazily.
        dynamodb.update_item(
            TableName=table_name,
            Key={"connectionId": {"S": connection_id}},
            UpdateExpression="SET expiresAt = :now",
            ExpressionAttributeValues={":now": {"N": str(int(clock.now().timestamp()))}},
        )

    return expire


class TestDynamoDbConnectionRepositoryContract(
    ConnectionRepositoryContract, ConnectionDirectoryContract
):
    """The shared repository suite, on a moto DynamoDB table."""


def raw_item(
    dynamodb: DynamoDBClient, table_name: str, connection_id: str
) -> dict[str, object] | None:
    answer = dynamodb.get_item(
        TableName=table_name, Key={"connectionId": {"S": connection_id}}, ConsistentRead=True
    )
    return answer.get("Item")  # type: ignore[return-value]


def test_given_a_save_then_the_item_has_exactly_the_documented_attributes(
    repository: DynamoDbConnectionRepository, dynamodb: DynamoDBClient, table_name: str
) -> None:
    repository.save(a_connection(), 600)

    assert raw_item(dynamodb, table_name, "L0SM9cOFvHcCIhw=") == {
        "connectionId": {"S": "L0SM9cOFvHcCIhw="},
        "userId": {"S": "user-1"},
        "connectedAt": {"S": "2026-01-03T00:00:00Z"},
        "expiresAt": {"N": str(int(NOW.timestamp()) + 600)},
    }


def test_given_the_created_table_then_it_has_the_user_and_tombstone_indexes_and_ttl_on_expires_at(
    dynamodb: DynamoDBClient, table_name: str
) -> None:
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    assert [index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])] == [
        USER_INDEX_NAME,
        TOMBSTONE_INDEX_NAME,
    ]
    assert table["KeySchema"] == [{"AttributeName": "connectionId", "KeyType": "HASH"}]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl.get("AttributeName") == "expiresAt"
    assert ttl.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
    # Creating it again is a no-op that says so.
    assert ensure_connections_table(dynamodb, table_name) is False


def test_given_the_user_index_then_a_users_connections_can_be_listed(
    repository: DynamoDbConnectionRepository, dynamodb: DynamoDBClient, table_name: str
) -> None:
    repository.save(a_connection("a=", user_id="alice"), 600)
    repository.save(a_connection("b=", user_id="alice"), 600)
    repository.save(a_connection("c=", user_id="bob"), 600)

    answer = dynamodb.query(
        TableName=table_name,
        IndexName=USER_INDEX_NAME,
        KeyConditionExpression="userId = :user",
        ExpressionAttributeValues={":user": {"S": "alice"}},
    )
    assert sorted(item["connectionId"]["S"] for item in answer["Items"]) == ["a=", "b="]


def test_given_an_expired_item_that_dynamodb_has_not_deleted_then_it_is_not_found(
    repository: DynamoDbConnectionRepository,
    dynamodb: DynamoDBClient,
    table_name: str,
    clock: FixedClock,
) -> None:
    repository.save(a_connection(), 60)
    clock.advance(60)  # expiresAt == now: expired

    assert raw_item(dynamodb, table_name, "L0SM9cOFvHcCIhw=") is not None  # still in the table
    with pytest.raises(ConnectionNotFoundError):
        repository.get("L0SM9cOFvHcCIhw=")


def test_given_an_expired_item_when_a_ping_refreshes_it_then_it_is_not_revived(
    repository: DynamoDbConnectionRepository,
    dynamodb: DynamoDBClient,
    table_name: str,
    clock: FixedClock,
) -> None:
    repository.save(a_connection(), 60)
    expired_at = raw_item(dynamodb, table_name, "L0SM9cOFvHcCIhw=")["expiresAt"]  # type: ignore[index]
    clock.advance(61)

    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("L0SM9cOFvHcCIhw=", 600)

    assert raw_item(dynamodb, table_name, "L0SM9cOFvHcCIhw=")["expiresAt"] == expired_at  # type: ignore[index]
    with pytest.raises(ConnectionNotFoundError):
        repository.get("L0SM9cOFvHcCIhw=")


def test_given_a_live_item_when_refreshed_just_before_expiry_then_it_lives_on(
    repository: DynamoDbConnectionRepository, clock: FixedClock
) -> None:
    repository.save(a_connection(), 60)
    clock.advance(59)
    repository.refresh("L0SM9cOFvHcCIhw=", 600)
    clock.advance(500)
    assert repository.get("L0SM9cOFvHcCIhw=") == a_connection()


def test_given_a_malformed_item_then_it_is_treated_as_absent(
    repository: DynamoDbConnectionRepository, dynamodb: DynamoDBClient, table_name: str
) -> None:
    dynamodb.put_item(
        TableName=table_name,
        Item={
            "connectionId": {"S": "odd="},
            "userId": {"S": "u"},
            "connectedAt": {"S": "yesterday"},
            "expiresAt": {"N": str(int(NOW.timestamp()) + 600)},
        },
    )
    with pytest.raises(ConnectionNotFoundError):
        repository.get("odd=")


def test_given_an_unreachable_endpoint_then_every_operation_is_store_unavailable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    repository = DynamoDbConnectionRepository(
        "connections",
        clock=FixedClock(NOW),
        client_factory=lambda: create_dynamodb_client(
            endpoint_url=closed,
            region_name="us-east-1",
            connect_timeout_seconds=0.5,
            max_attempts=1,
        ),
    )
    operations = [
        lambda: repository.save(a_connection(), 600),
        lambda: repository.get("L0SM9cOFvHcCIhw="),
        lambda: repository.refresh("L0SM9cOFvHcCIhw=", 600),
        lambda: repository.delete("L0SM9cOFvHcCIhw="),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailableError) as raised:
            operation()
        assert "EndpointConnectionError" in raised.value.message
        assert "testing" not in raised.value.message


def test_given_a_missing_table_then_store_unavailable_names_the_error_code(
    dynamodb: DynamoDBClient,
) -> None:
    repository = DynamoDbConnectionRepository(
        "no-such-table", clock=FixedClock(NOW), client_factory=lambda: dynamodb
    )
    with pytest.raises(StoreUnavailableError, match="ResourceNotFoundException"):
        repository.save(a_connection(), 600)


def test_given_the_standard_endpoint_variable_then_the_default_client_uses_it(
    moto_endpoint: str, dynamodb: DynamoDBClient, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    repository = DynamoDbConnectionRepository(table_name, clock=FixedClock(NOW))

    repository.save(a_connection(), 600)

    assert repository.table_name == table_name
    assert raw_item(dynamodb, table_name, "L0SM9cOFvHcCIhw=") is not None


def test_given_the_client_factory_then_it_is_called_once_and_only_on_first_use(
    dynamodb: DynamoDBClient, table_name: str
) -> None:
    calls: list[int] = []

    def factory() -> DynamoDBClient:
        calls.append(1)
        return dynamodb

    repository = DynamoDbConnectionRepository(
        table_name, clock=FixedClock(NOW), client_factory=factory
    )
    assert calls == []
    repository.save(a_connection(), 600)
    repository.get("L0SM9cOFvHcCIhw=")
    assert calls == [1]
    assert repository.get("L0SM9cOFvHcCIhw=").connected_at == CONNECTED_AT


def test_importing_the_module_does_not_import_boto3() -> None:
    # The $connect cold start must not pay for boto3 unless it fails over (issue 6).
    probe = (
        "import sys\n"
        "import adapters.connection_store.dynamodb as m\n"
        "from adapters.in_memory import FixedClock\n"
        "m.DynamoDbConnectionRepository('t', clock=FixedClock())\n"
        "print(sorted(name for name in ('boto3', 'botocore') if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_tombstone_replaces_the_record_is_absent_to_reads_and_refreshes_and_is_listed_until_deleted(
    repository: DynamoDbConnectionRepository,
) -> None:
    repository.save(a_connection("a="), 600)
    repository.save(a_connection("b="), 600)

    repository.bury("a=", 600)

    with pytest.raises(ConnectionNotFoundError):
        repository.get("a=")
    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("a=", 600)  # a refresh never revives a tombstone into a record
    assert repository.tombstones(10) == ["a="]
    assert repository.renew("b=", 600) == a_connection("b="), "another record is untouched"
    repository.delete_many(["a="])
    repository.delete_many(["a=", "never="])  # idempotent
    assert repository.tombstones(10) == []
    assert repository.get("b=") == a_connection("b=")


def test_delete_many_removes_tombstones_and_records_in_batches_of_25_and_nothing_else(
    repository: DynamoDbConnectionRepository,
) -> None:
    closed = [f"closed-{index:03d}=" for index in range(60)]  # three BatchWriteItem calls
    for index, connection_id in enumerate(closed):
        if index % 2:
            repository.bury(connection_id, 600)
        else:
            repository.save(a_connection(connection_id), 600)
    repository.save(a_connection("open="), 600)

    repository.delete_many(closed)

    assert repository.tombstones(100) == []
    for connection_id in closed:
        with pytest.raises(ConnectionNotFoundError):
            repository.get(connection_id)
    assert repository.get("open=") == a_connection("open=")
    repository.delete_many([])  # nothing to do, no call


def test_the_failovers_listing_names_the_tombstones_among_redis_ids_and_lists_live_records_only(
    repository: DynamoDbConnectionRepository, clock: FixedClock
) -> None:
    repository.save(a_connection("live=", user_id="alice"), 600)
    repository.save(a_connection("short=", user_id="alice"), 60)
    repository.save(a_connection("buried=", user_id="alice"), 600)
    repository.bury("buried=", 600)
    repository.bury("redis-closed=", 600)  # a $disconnect Redis missed: a tombstone alone
    clock.advance(61)  # short= is past its expiresAt, not yet deleted by DynamoDB

    listed, buried = repository.listing_of("alice", ["redis-closed=", "redis-open="])

    assert listed == [a_connection("live=", user_id="alice")]
    assert buried == frozenset({"redis-closed="})
    assert repository.connections_of("alice") == listed
