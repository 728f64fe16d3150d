"""A WebSocket connection as timeline-ws records it."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs


def _require_aware_utc(
    instance: object, attribute: attrs.Attribute[datetime], value: datetime
) -> None:
    if value.tzinfo is None or value.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"{attribute.name} must be an aware UTC datetime, got {value!r}")


def _require_non_empty(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen(slots=True, kw_only=True)
class Connection:
    """One open WebSocket connection of one authenticated user.

    Attributes:
        connection_id: API Gateway's connectionId, e.g. ``"L0SM9cOFvHcCIhw="`` (opaque; the
            raw id, never URL-encoded).
        user_id: the Cognito user's ``sub`` claim.
        connected_at: when ``$connect`` accepted the connection; an aware UTC datetime.

    Raises:
        ValueError: on an empty id or a naive / non-UTC ``connected_at``.
    """

    connection_id: str = attrs.field(
        validator=[attrs.validators.instance_of(str), _require_non_empty]
    )
    user_id: str = attrs.field(validator=[attrs.validators.instance_of(str), _require_non_empty])
    connected_at: datetime = attrs.field(
        validator=[attrs.validators.instance_of(datetime), _require_aware_utc]
    )


@attrs.frozen(slots=True, kw_only=True)
class VerifiedIdentity:
    """What a verified token says about its bearer.

    Attributes:
        user_id: the token's ``sub`` claim (Cognito's immutable user id).
        client_id: the app client the token was issued to (``client_id`` of an access token,
            ``aud`` of an ID token).
        token_use: ``"access"`` or ``"id"``.
        expires_at: the token's ``exp`` as an aware UTC datetime.
    """

    user_id: str
    client_id: str
    token_use: str
    expires_at: datetime


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime as ISO-8601 UTC with whole seconds and a ``Z`` suffix.

    ``2026-01-03T00:00:00Z`` is the form the connection record stores (``connectedAt``) and
    the pong carries (``serverTime``). Fractions of a second are dropped, not rounded.

    Raises:
        ValueError: on a naive datetime.
    """
    if moment.tzinfo is None:
        raise ValueError("timestamps must be aware datetimes")
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_timestamp(text: str) -> datetime:
    """Parse the ISO-8601 UTC form written by :func:`format_timestamp` (``Z`` or ``+00:00``).

    Returns an aware UTC datetime.

    Raises:
        ValueError: when the text is not ISO-8601 or carries no UTC offset.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {text!r}")
    return moment.astimezone(UTC)


@attrs.frozen(slots=True, kw_only=True)
class ReconcileReport:
    """What one reconciliation of the connection stores replayed, in deletes.

    Attributes:
        primary_deletes: deletes replayed in the primary store (Redis).
        secondary_deletes: deletes replayed in the secondary store (DynamoDB).
        left_in_process: deletes only this process remembers, still to replay.
    """

    primary_deletes: int = 0
    secondary_deletes: int = 0
    left_in_process: int = 0
