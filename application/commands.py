"""Commands and results of the use cases: frozen, slotted, keyword-only attrs classes of primitives.

A command that a client message builds (see the edge's action table) validates the
message's fields itself: its validators raise :class:`FieldError`, and the edge answers
``bad_request`` naming the message's member.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import attrs

from domain.protocol import MAX_PING_ID_LENGTH


class FieldError(ValueError):
    """A command field's value breaks its rule; ``field`` names it, ``problem`` says the rule."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def optional_text(max_length: int) -> Any:
    """An attrs validator: ``None``, or a string of at most ``max_length`` characters.

    Raises (when validating):
        FieldError: "must be a string of at most N characters".
    """

    def validate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (not isinstance(value, str) or len(value) > max_length):
            raise FieldError(attribute.name, f"must be a string of at most {max_length} characters")

    return validate


@attrs.frozen(slots=True, kw_only=True)
class ConnectCommand:
    """``$connect``: the connectionId API Gateway assigned and the token from the query string (``None`` when absent)."""

    connection_id: str
    token: str | None


@attrs.frozen(slots=True, kw_only=True)
class ConnectResult:
    """An accepted connection: its id and the verified user id (``sub``)."""

    connection_id: str
    user_id: str


@attrs.frozen(slots=True, kw_only=True)
class DisconnectCommand:
    """``$disconnect`` of one connection."""

    connection_id: str


@attrs.frozen(slots=True, kw_only=True)
class DisconnectResult:
    """The record of ``connection_id`` no longer exists in any store."""

    connection_id: str


@attrs.frozen(slots=True, kw_only=True)
class HeartbeatCommand:
    """A ping; ``ping_id`` (the message's ``id``, at most 64 characters) is echoed in the pong."""

    connection_id: str
    ping_id: str | None = attrs.field(default=None, validator=optional_text(MAX_PING_ID_LENGTH))


class HeartbeatOutcome(StrEnum):
    """What a heartbeat did.

    ``PONG``: record refreshed; the reply is the pong. ``PONG_UNRECORDED``: the store could
    not be reached; the reply is a pong anyway (the socket is alive). ``EXPIRED``: no record
    exists; a ``connection_expired`` error was sent and the connection closed so the client
    re-authenticates; there is no reply.
    """

    PONG = "pong"
    PONG_UNRECORDED = "pong_unrecorded"
    EXPIRED = "expired"


@attrs.frozen(slots=True, kw_only=True)
class HeartbeatResult:
    """The outcome of one heartbeat for ``connection_id``.

    ``server_time`` (aware, UTC) is when the ping was answered and ``ping_id`` the ping's
    ``id``, for the pong the edge sends back; ``server_time`` is ``None`` when the outcome is
    ``EXPIRED`` (the connection was closed: there is nothing to answer).
    """

    connection_id: str
    outcome: HeartbeatOutcome
    ping_id: str | None = None
    server_time: datetime | None = None


@attrs.frozen(slots=True, kw_only=True)
class ReconcileCommand:
    """Replay the deletes the connection stores could not take (the schedule's tick)."""


@attrs.frozen(slots=True, kw_only=True)
class ReconcileResult:
    """The deletes replayed in the primary and the secondary store, and those left to this
    process (see ``domain.connection.ReconcileReport``)."""

    primary_deletes: int
    secondary_deletes: int
    left_in_process: int


@attrs.frozen(slots=True, kw_only=True)
class PushCommand:
    """Post ``message`` (the frame's text, sent as is) to every live connection of each of
    ``user_ids``. The use case judges the bounds (``Push``'s rules)."""

    user_ids: tuple[str, ...]
    message: str


class DeliveryOutcome(StrEnum):
    """What became of one post: ``DELIVERED``; ``GONE`` (410: the connection no longer exists,
    its record was removed); ``FAILED`` (throttled past the retries, or refused)."""

    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"


@attrs.frozen(slots=True, kw_only=True)
class UserDeliveries:
    """One user's posts: counts of connections per outcome; ``unavailable`` when the
    directory could not answer for the user (nothing was posted to them)."""

    user_id: str
    delivered: int = 0
    gone: int = 0
    failed: int = 0
    unavailable: bool = False


@attrs.frozen(slots=True, kw_only=True)
class PushResult:
    """The totals over ``users`` (one entry per distinct user id, in the command's order)."""

    delivered: int
    gone: int
    failed: int
    unavailable: int
    users: tuple[UserDeliveries, ...]
