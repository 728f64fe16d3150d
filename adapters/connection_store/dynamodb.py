"""Connection records in a DynamoDB table (boto3), the fallback store when Redis fails.

Item shape (one item per connection, ``record.encode_item``)::

    {"connectionId": S (partition key), "userId": S, "connectedAt": S, "expiresAt": N}

``connectedAt`` is the same ISO-8601 UTC text Redis stores (``2026-01-03T00:00:00Z``);
``expiresAt`` is epoch seconds and the table's TTL attribute. DynamoDB deletes expired items
lazily, often hours later (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html),
so every read and refresh here treats ``expiresAt <= now`` as absent. The directory
(``connections_of``) is a ``Query`` of the global secondary index on ``userId``
(``record.USER_INDEX_NAME``, defined in ``connections_table.json``) naming the candidates,
then a strongly consistent ``BatchGetItem`` of them, since a GSI is eventually consistent:
cost proportional to the user's items, never a ``Scan``; expired items and tombstones are
never returned.

boto3 is imported and the client built on first use only: a ``$connect`` that never fails
over never pays for them on a cold start.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from adapters.connection_store.record import (
    TOMBSTONE_ATTRIBUTE,
    TOMBSTONE_INDEX_NAME,
    TTL_ATTRIBUTE,
    USER_INDEX_NAME,
    CorruptRecordError,
    decode_item,
    encode_item,
    encode_tombstone,
    is_tombstone,
)
from adapters.lazy import Lazy
from application.ports import Clock, ConnectionDirectory, ConnectionRepository
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError, StoreUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

BATCH_WRITE_MAX_ITEMS: Final = 25
"""Requests one ``BatchWriteItem`` call takes at most (DynamoDB API reference, BatchWriteItem)."""

BATCH_GET_MAX_KEYS: Final = 100
"""Keys one ``BatchGetItem`` call takes at most (DynamoDB API reference, BatchGetItem)."""

DynamoDbClientFactory = Callable[[], "DynamoDBClient"]


def create_dynamodb_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    connect_timeout_seconds: float = 1.0,
    read_timeout_seconds: float = 1.0,
    max_attempts: int = 2,
    max_pool_connections: int = 10,
    credentials: tuple[str, str] | None = None,
) -> DynamoDBClient:
    """Build a boto3 DynamoDB client with short timeouts and a bounded retry policy.

    Args:
        endpoint_url: a local endpoint such as ``http://127.0.0.1:8000`` (moto, DynamoDB
            Local). ``None`` lets boto3 choose: the regional endpoint, or
            ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` when set
            (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).
        region_name: the AWS region; ``None`` reads ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        connect_timeout_seconds, read_timeout_seconds: per HTTP attempt, seconds.
        max_attempts: total attempts including the first, botocore's ``standard`` retry mode
            (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
        max_pool_connections: HTTP connections the client keeps (botocore's default, 10,
            fits a Lambda, which runs one invocation at a time; the local gateway passes its
            handler threads so that they do not churn connections).
        credentials: an access key id and secret to sign with instead of boto3's own
            credential chain (the local gateway's stand-ins); ``None`` in Lambda.

    Imports boto3 when called, not when this module is imported.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout_seconds,
        read_timeout=read_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )
    session = boto3.session.Session(*(credentials or ()))
    return session.client(
        "dynamodb", endpoint_url=endpoint_url, region_name=region_name, config=config
    )


class DynamoDbConnectionRepository(ConnectionRepository, ConnectionDirectory):
    """Connection records as DynamoDB items keyed by ``connectionId``, expiring at ``expiresAt``.

    - ``save``: ``PutItem`` (overwrites) with ``expiresAt = now + ttl_seconds`` (epoch s).
    - ``get``: strongly consistent ``GetItem``; an item with ``expiresAt <= now`` is absent.
    - ``refresh``: ``UpdateItem SET expiresAt`` under the condition
      ``attribute_exists(connectionId) AND expiresAt > :now``, so a refresh never creates an
      item and never revives an expired one (``ConditionalCheckFailedException`` is
      ``ConnectionNotFoundError``).
    - ``delete``: ``DeleteItem`` (idempotent).
    - Tombstones, for the failover repository: ``bury`` replaces a connection's item by a
      tombstone (its Redis delete is still due), ``tombstones`` lists them (a query of the
      sparse tombstone index), ``delete_many`` removes them once Redis took the deletes
      (and the records of closed connections whose delete DynamoDB missed). Reads
      and refreshes treat a tombstone as absent.
    - ``connections_of``: a ``Query`` of the ``userId`` GSI, confirmed by a strongly
      consistent ``BatchGetItem``; live records only.

    "now" comes from ``clock`` (aware UTC). Every boto3 error (unreachable endpoint, timeout,
    throttling, missing table, …) becomes :class:`StoreUnavailableError` naming the
    operation and the error code, never a credential. The client comes from
    ``client_factory`` (default :func:`create_dynamodb_client`), called on first use,
    thread-safely, so a cold start that never fails over never imports boto3.
    """

    def __init__(
        self,
        table_name: str,
        *,
        clock: Clock,
        client_factory: DynamoDbClientFactory | None = None,
    ) -> None:
        self._table_name = table_name
        self._clock = clock
        self._client: Lazy[DynamoDBClient] = Lazy(client_factory or create_dynamodb_client)

    @property
    def table_name(self) -> str:
        """The table this repository reads and writes."""
        return self._table_name

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """``PutItem`` the record, expiring ``ttl_seconds`` from now.

        Raises:
            StoreUnavailableError: DynamoDB could not be reached or refused the write.
        """
        item = encode_item(connection, self._now_seconds() + ttl_seconds)
        with self._calling("PutItem") as client:
            client.put_item(TableName=self._table_name, Item=item)

    def get(self, connection_id: str) -> Connection:
        """Strongly consistent ``GetItem``; expired items count as absent.

        Raises:
            ConnectionNotFoundError: no item, an expired item, or a malformed item (logged).
            StoreUnavailableError: DynamoDB could not be reached or refused the read.
        """
        with self._calling("GetItem") as client:
            answer = client.get_item(
                TableName=self._table_name,
                Key={"connectionId": {"S": connection_id}},
                ConsistentRead=True,
            )
        item = answer.get("Item")
        if item is None or is_tombstone(item):
            raise ConnectionNotFoundError()
        try:
            connection, expires_at = decode_item(item)
        except CorruptRecordError as exc:
            logger.warning(
                "malformed DynamoDB connection item treated as absent",
                extra={"connection_id": connection_id, "reason": str(exc)},
            )
            raise ConnectionNotFoundError() from exc
        if expires_at <= self._clock.now().timestamp():
            raise ConnectionNotFoundError()
        return connection

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Conditional ``UpdateItem`` of ``expiresAt``; never creates nor revives an item.

        Raises:
            ConnectionNotFoundError: no record (none, a tombstone), or its ``expiresAt`` passed.
            StoreUnavailableError: DynamoDB could not be reached or refused the write.
        """
        self.renew(connection_id, ttl_seconds)

    def renew(self, connection_id: str, ttl_seconds: int) -> Connection:
        """:meth:`refresh`, returning the record (``ReturnValues=ALL_NEW``).

        Raises:
            ConnectionNotFoundError: no record (none, a tombstone, a malformed item), or its
                ``expiresAt`` passed.
            StoreUnavailableError: DynamoDB could not be reached or refused the write.
        """
        now = self._clock.now().timestamp()
        with self._calling(
            "UpdateItem", not_found_code="ConditionalCheckFailedException"
        ) as client:
            answer = client.update_item(
                TableName=self._table_name,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="SET #expires = :expires",
                # userId: a record, not a tombstone.
                ConditionExpression="attribute_exists(userId) AND #expires > :now",
                ExpressionAttributeNames={"#expires": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":expires": {"N": str(math.floor(now) + ttl_seconds)},
                    ":now": {"N": _number_text(now)},
                },
                ReturnValues="ALL_NEW",
            )
        try:
            return decode_item(answer.get("Attributes", {}))[0]
        except CorruptRecordError as exc:
            raise ConnectionNotFoundError() from exc

    def delete(self, connection_id: str) -> None:
        """``DeleteItem``; a missing item is fine.

        Raises:
            StoreUnavailableError: DynamoDB could not be reached or refused the delete.
        """
        with self._calling("DeleteItem") as client:
            client.delete_item(
                TableName=self._table_name, Key={"connectionId": {"S": connection_id}}
            )

    def connections_of(self, user_id: str) -> list[Connection]:
        """The user's live records: a ``Query`` of the ``userId`` GSI (every page) names the
        candidates, a strongly consistent ``BatchGetItem`` of the table confirms them.

        The index is eventually consistent (DynamoDB developer guide, "Global secondary
        indexes": reads of a GSI are eventually consistent), so a record deleted or buried
        (tombstoned) a moment ago may still be in it; the table read is the truth. Items
        whose ``expiresAt`` has passed (DynamoDB deletes them lazily), tombstones (no
        ``userId``), another user's and malformed items (logged) are never returned.

        Raises:
            StoreUnavailableError: DynamoDB could not be reached, refused a call, or left
                keys unprocessed.
        """
        return self.listing_of(user_id, ())[0]

    def listing_of(
        self, user_id: str, primary_ids: Sequence[str]
    ) -> tuple[list[Connection], frozenset[str]]:
        """:meth:`connections_of`, and which of ``primary_ids`` are tombstones here (the
        failover's view: the records Redis lists whose delete it still owes); one ``Query``
        and one consistent read of the candidates of both.

        Raises:
            StoreUnavailableError: as :meth:`connections_of`.
        """
        # No record has an empty userId, and DynamoDB refuses an empty key value
        # (ValidationException), which must not count against the store's breaker.
        indexed = self._indexed(user_id) if user_id else []
        candidates = list(dict.fromkeys([*indexed, *primary_ids]))
        if not candidates:
            return [], frozenset()
        now = self._clock.now().timestamp()
        found: list[Connection] = []
        buried: set[str] = set()
        for item in self._get_many(candidates):
            if is_tombstone(item):
                buried.add(item["connectionId"]["S"])
                continue
            connection = self._live_record(item, now)
            if connection is not None and connection.user_id == user_id:
                found.append(connection)
        return found, frozenset(buried & set(primary_ids))

    def _indexed(self, user_id: str) -> list[str]:
        """The connectionIds the ``userId`` GSI holds for ``user_id`` (every page)."""
        ids: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            query: dict[str, Any] = {
                "TableName": self._table_name,
                "IndexName": USER_INDEX_NAME,
                "KeyConditionExpression": "userId = :user",
                "ExpressionAttributeValues": {":user": {"S": user_id}},
                "ProjectionExpression": "connectionId",
            }
            if start:
                query["ExclusiveStartKey"] = start
            with self._calling("Query") as client:
                answer = client.query(**query)
            ids.extend(item["connectionId"]["S"] for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return ids

    def _get_many(self, connection_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Strongly consistent ``BatchGetItem`` of these items, 100 keys a call; unprocessed
        keys are asked again, twice at most."""
        items: list[dict[str, Any]] = []
        for first in range(0, len(connection_ids), BATCH_GET_MAX_KEYS):
            keys: list[Any] = [
                {"connectionId": {"S": connection_id}}
                for connection_id in connection_ids[first : first + BATCH_GET_MAX_KEYS]
            ]
            for _attempt in range(3):
                with self._calling("BatchGetItem") as client:
                    answer = client.batch_get_item(
                        RequestItems={self._table_name: {"Keys": keys, "ConsistentRead": True}}
                    )
                items.extend(answer.get("Responses", {}).get(self._table_name, []))
                unprocessed: Any = answer.get("UnprocessedKeys", {}).get(self._table_name, {})
                keys = list(unprocessed.get("Keys", []))
                if not keys:
                    break
            else:
                raise StoreUnavailableError(
                    f"DynamoDB BatchGetItem left {len(keys)} key(s) unprocessed"
                )
        return items

    def _live_record(self, item: dict[str, Any], now: float) -> Connection | None:
        if is_tombstone(item):
            return None
        try:
            connection, expires_at = decode_item(item)
        except CorruptRecordError as exc:
            logger.warning(
                "malformed DynamoDB connection item treated as absent",
                extra={"connection_id": str(item.get("connectionId")), "reason": str(exc)},
            )
            return None
        return connection if expires_at > now else None

    def bury(self, connection_id: str, ttl_seconds: int) -> None:
        """Replace the connection's item (record or none) by a tombstone living ``ttl_seconds``.

        Raises:
            StoreUnavailableError: DynamoDB could not be reached or refused the write.
        """
        item = encode_tombstone(connection_id, self._now_seconds() + ttl_seconds)
        with self._calling("PutItem") as client:
            client.put_item(TableName=self._table_name, Item=item)

    def tombstones(self, limit: int) -> list[str]:
        """Up to ``limit`` connectionIds that have a tombstone (eventually consistent index).

        Raises:
            StoreUnavailableError: DynamoDB could not be reached or refused the query.
        """
        with self._calling("Query") as client:
            answer = client.query(
                TableName=self._table_name,
                IndexName=TOMBSTONE_INDEX_NAME,
                KeyConditionExpression="#tombstone = :one",
                ExpressionAttributeNames={"#tombstone": TOMBSTONE_ATTRIBUTE},
                ExpressionAttributeValues={":one": {"S": "1"}},
                Limit=limit,
            )
        return [item["connectionId"]["S"] for item in answer.get("Items", [])]

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        """Delete the items (tombstones or records) of these closed connections:
        ``BatchWriteItem`` with up to 25 ``DeleteRequest``s a call; idempotent.

        Unconditional, and safe so: API Gateway never reuses a connectionId, so whatever
        item a closed connection's key holds belongs to that connection and must go.
        Unprocessed items are sent again, twice at most.

        Raises:
            StoreUnavailableError: DynamoDB could not be reached, refused a call, or left
                items unprocessed (the deletes before them may have been done).
        """
        for first in range(0, len(connection_ids), BATCH_WRITE_MAX_ITEMS):
            requests: list[Any] = [
                {"DeleteRequest": {"Key": {"connectionId": {"S": connection_id}}}}
                for connection_id in connection_ids[first : first + BATCH_WRITE_MAX_ITEMS]
            ]
            for _attempt in range(3):
                with self._calling("BatchWriteItem") as client:
                    answer = client.batch_write_item(RequestItems={self._table_name: requests})
                requests = list(answer.get("UnprocessedItems", {}).get(self._table_name, []))
                if not requests:
                    break
            else:
                raise StoreUnavailableError(
                    f"DynamoDB BatchWriteItem left {len(requests)} item(s) unprocessed"
                )

    def _now_seconds(self) -> int:
        return math.floor(self._clock.now().timestamp())

    @contextmanager
    def _calling(
        self, operation: str, *, not_found_code: str | None = None
    ) -> Iterator[DynamoDBClient]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield self._client.get()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            if code == not_found_code:
                raise ConnectionNotFoundError() from exc
            raise StoreUnavailableError(f"DynamoDB {operation} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"DynamoDB {operation} failed: {type(exc).__name__}"
            ) from exc


def _number_text(value: float) -> str:
    # DynamoDB numbers are decimal text; repr keeps every digit of the float, no exponent here.
    return repr(round(value, 6))
