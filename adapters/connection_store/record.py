"""The stored form of a connection, shared by every store: one key, one JSON text, one item.

Redis: key ``ws:connection:{connectionId}`` (the raw id, never URL-encoded), value
``{"connectionId": "...", "userId": "...", "connectedAt": "2026-01-03T00:00:00Z"}`` in this
key order, UTC with a ``Z`` suffix. DynamoDB: one item per connection with the same fields
as attributes (``connectedAt`` the same ISO text) plus ``expiresAt`` (epoch seconds, the
table's TTL attribute).
"""

from __future__ import annotations

import json
from typing import Any, Final

from domain.connection import Connection, format_timestamp, parse_timestamp

KEY_PREFIX: Final = "ws:connection:"

TTL_ATTRIBUTE: Final = "expiresAt"
"""The DynamoDB item's expiry, epoch seconds: the table's TTL attribute."""

USER_INDEX_NAME: Final = "userId-index"
"""The DynamoDB GSI on ``userId`` (projection ALL): every connection of one user."""

TOMBSTONE_ATTRIBUTE: Final = "pendingRedisDelete"
"""Set (to ``"1"``) on a tombstone: an item that stands for a deleted connection whose Redis
record and slot still wait to be deleted. A tombstone has no ``userId``: it is no record."""

TOMBSTONE_INDEX_NAME: Final = "pendingRedisDelete-index"
"""The sparse DynamoDB GSI on :data:`TOMBSTONE_ATTRIBUTE` (keys only): every tombstone."""


def encode_tombstone(connection_id: str, expires_at: int) -> dict[str, dict[str, str]]:
    """The tombstone item of ``connection_id``, expiring (DynamoDB TTL) at ``expires_at`` (epoch s)."""
    return {
        "connectionId": {"S": connection_id},
        TOMBSTONE_ATTRIBUTE: {"S": "1"},
        TTL_ATTRIBUTE: {"N": str(expires_at)},
    }


def is_tombstone(item: dict[str, Any]) -> bool:
    """Whether a DynamoDB item is a tombstone rather than a record."""
    return TOMBSTONE_ATTRIBUTE in item


class CorruptRecordError(ValueError):
    """A stored value that is not a valid connection record.

    Stores treat such a record as absent (``ConnectionNotFoundError``) and log it: a bad
    record must never crash a handler. The message names what is wrong, never the value.
    """


def record_key(connection_id: str) -> str:
    """The Redis key of a connection: ``ws:connection:`` + the raw connectionId.

    Example: ``record_key("L0SM9cOFvHcCIhw=") == "ws:connection:L0SM9cOFvHcCIhw="``.

    Raises:
        ValueError: on an empty id.
    """
    if not connection_id:
        raise ValueError("connection_id must not be empty")
    return KEY_PREFIX + connection_id


def encode_record(connection: Connection) -> str:
    """The record as JSON text: ``{"connectionId": ..., "userId": ..., "connectedAt": ...}``.

    ``connectedAt`` is ISO-8601 UTC with whole seconds and a ``Z`` suffix
    (:func:`domain.connection.format_timestamp`). Separators are json's defaults (``", "``
    and ``": "``), the form the wire contract shows.
    """
    return json.dumps(
        {
            "connectionId": connection.connection_id,
            "userId": connection.user_id,
            "connectedAt": format_timestamp(connection.connected_at),
        }
    )


def decode_record(text: str | bytes) -> Connection:
    """Parse a record written by :func:`encode_record` (UTF-8 bytes as Redis returns them, or text).

    Raises:
        CorruptRecordError: not UTF-8, not JSON, not an object, a field missing, empty or not
            a string, or ``connectedAt`` not an ISO-8601 UTC timestamp.
    """
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors; the message of
        # neither is kept, as it may quote the stored text.
        raise CorruptRecordError("the record is not UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise CorruptRecordError("the record is not a JSON object")
    return _connection(document.get)


def encode_item(connection: Connection, expires_at: int) -> dict[str, dict[str, str]]:
    """The DynamoDB item (attribute-value form) of ``connection``, expiring at ``expires_at`` (epoch s)."""
    return {
        "connectionId": {"S": connection.connection_id},
        "userId": {"S": connection.user_id},
        "connectedAt": {"S": format_timestamp(connection.connected_at)},
        TTL_ATTRIBUTE: {"N": str(expires_at)},
    }


def decode_item(item: dict[str, Any]) -> tuple[Connection, float]:
    """The connection of a DynamoDB item and its ``expiresAt`` (epoch seconds).

    Raises:
        CorruptRecordError: an attribute is missing, of the wrong type, or unreadable.
    """

    def string(name: str) -> object:
        value = item.get(name)
        return value.get("S") if isinstance(value, dict) else None

    try:
        expires_at = float(item[TTL_ATTRIBUTE]["N"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecordError(f"the item's {TTL_ATTRIBUTE} is missing or not a number") from exc
    return _connection(string), expires_at


def _connection(field: Any) -> Connection:
    values: dict[str, str] = {}
    for name in ("connectionId", "userId", "connectedAt"):
        value = field(name)
        if not isinstance(value, str) or not value:
            raise CorruptRecordError(f"the record's {name} is missing or not a non-empty string")
        values[name] = value
    try:
        return Connection(
            connection_id=values["connectionId"],
            user_id=values["userId"],
            connected_at=parse_timestamp(values["connectedAt"]),
        )
    except ValueError as exc:
        raise CorruptRecordError("the record's connectedAt is not ISO-8601 UTC") from exc
