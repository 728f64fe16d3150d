"""The local failover table: created by ``timeline-ws serve`` at a local DynamoDB endpoint.

On AWS the table is Terraform's (``infra/dynamodb.tf``); both build it from one definition,
``adapters/connection_store/connections_table.json`` (DynamoDB's CreateTable shape, plus
``TimeToLiveAttribute``), so the local table is the deployed one.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def connections_table_schema() -> dict[str, Any]:
    """The table's definition: CreateTable's arguments but ``TableName``, and
    ``TimeToLiveAttribute`` (the attribute DynamoDB's TTL reads, epoch seconds)."""
    text = resources.files("adapters.connection_store").joinpath("connections_table.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


def ensure_connections_table(client: DynamoDBClient, table_name: str) -> bool:
    """Create the connections table when it is missing (local mode only; Terraform owns AWS's).

    Creates it from :func:`connections_table_schema`, waits (boto3 waiter, bounded) until it
    is ``ACTIVE`` and turns TTL on. Returns ``True`` when it created the table, ``False``
    when it existed already.

    Raises:
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError: DynamoDB refused
            or could not be reached.
    """
    from botocore.exceptions import ClientError

    schema = connections_table_schema()
    ttl_attribute = schema.pop("TimeToLiveAttribute")
    try:
        client.create_table(TableName=table_name, **schema)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        return False
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
    )
    return True
