"""Domain objects, errors and the client protocol."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.connection import Connection, format_timestamp, parse_timestamp
from domain.errors import ConnectionLimitExceededError, InvalidTokenError, StoreUnavailableError
from domain.protocol import (
    BadMessageError,
    ClientMessage,
    error_message,
    parse_message,
    pong_message,
)

MOMENT = datetime(2026, 1, 3, 4, 5, 6, 789000, tzinfo=UTC)


def test_connection_is_frozen_and_requires_aware_utc_and_ids() -> None:
    connection = Connection(connection_id="c", user_id="u", connected_at=MOMENT)
    with pytest.raises(AttributeError):
        connection.user_id = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="aware UTC"):
        Connection(connection_id="c", user_id="u", connected_at=datetime(2026, 1, 3))
    with pytest.raises(ValueError, match="aware UTC"):
        Connection(
            connection_id="c",
            user_id="u",
            connected_at=MOMENT.astimezone(timezone(timedelta(hours=2))),
        )
    with pytest.raises(ValueError, match="connection_id"):
        Connection(connection_id="", user_id="u", connected_at=MOMENT)


def test_timestamps_are_iso_utc_with_z_and_whole_seconds() -> None:
    assert format_timestamp(MOMENT) == "2026-01-03T04:05:06Z"
    assert (
        format_timestamp(MOMENT.astimezone(timezone(timedelta(hours=-5)))) == "2026-01-03T04:05:06Z"
    )
    assert parse_timestamp("2026-01-03T04:05:06Z") == MOMENT.replace(microsecond=0)
    assert parse_timestamp("2026-01-03T04:05:06+00:00").tzinfo is not None
    with pytest.raises(ValueError):
        parse_timestamp("2026-01-03T04:05:06")
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 1, 3))


def test_errors_share_one_base_with_default_messages_and_codes() -> None:
    assert str(StoreUnavailableError()) == "the connection store is unavailable"
    error = InvalidTokenError("expired")
    assert (error.code, error.reason, str(error)) == (
        "invalid_token",
        "expired",
        "invalid token: expired",
    )
    with pytest.raises(ValueError):
        InvalidTokenError("made_up")
    assert ConnectionLimitExceededError("user").scope == "user"


@pytest.mark.parametrize(
    ("body", "is_base64", "expected"),
    [
        ('{"action":"ping"}', False, ClientMessage(action="ping")),
        ('{"action":"ping","id":"abc"}', False, ClientMessage(action="ping", fields={"id": "abc"})),
        ("ping", False, ClientMessage(action="ping")),
        (" ping\n", False, ClientMessage(action="ping")),
        (
            base64.b64encode(b'{"action":"ping","id":"9"}').decode(),
            True,
            ClientMessage(action="ping", fields={"id": "9"}),
        ),
        (base64.b64encode(b"ping").decode(), True, ClientMessage(action="ping")),
        # Any action reads: which exist, and what their fields must be, is the action table's.
        (
            '{"action":"sendmessage","to":[1]}',
            False,
            ClientMessage(action="sendmessage", fields={"to": [1]}),
        ),
        ('{"id":5,"action":"ping"}', False, ClientMessage(action="ping", fields={"id": 5})),
    ],
)
def test_messages_in_every_accepted_form(
    body: str, is_base64: bool, expected: ClientMessage
) -> None:
    assert parse_message(body, is_base64_encoded=is_base64) == expected


@pytest.mark.parametrize(
    ("body", "is_base64", "code"),
    [
        (None, False, "bad_request"),
        ("", False, "bad_request"),
        ("hello", False, "bad_request"),
        ("[1, 2]", False, "bad_request"),
        ('{"action":"ping","x":NaN}', False, "bad_request"),  # not JSON (RFC 8259)
        ('{"action":"ping","x":-Infinity}', False, "bad_request"),
        ('{"id":"1"}', False, "bad_request"),
        ('{"action": 3}', False, "bad_request"),
        ('{"action":""}', False, "bad_request"),
        ("not base64!", True, "bad_request"),
        (base64.b64encode(b"\xff\xfe\x00").decode(), True, "bad_request"),
        (base64.b64encode(b"\x00\x01binary").decode(), True, "bad_request"),
        ('{"action":"ping","x":' + "[" * 50_000 + "]" * 50_000 + "}", False, "bad_request"),
        ("[" * 60_000, False, "bad_request"),
        ("x" * (128 * 1024 + 1), False, "payload_too_large"),
        ("é" * (64 * 1024 + 1), False, "payload_too_large"),
        (base64.b64encode(b"x" * (128 * 1024 + 1)).decode(), True, "payload_too_large"),
        ("A" * (200 * 1024), True, "payload_too_large"),
    ],
)
def test_frames_that_cannot_be_read_get_the_right_error_code(
    body: str | None, is_base64: bool, code: str
) -> None:
    with pytest.raises(BadMessageError) as raised:
        parse_message(body, is_base64_encoded=is_base64)
    assert raised.value.error_code == code


def test_a_non_text_body_is_a_bad_request() -> None:
    with pytest.raises(BadMessageError):
        parse_message(123)  # type: ignore[arg-type]


def test_pong_and_error_frames_are_compact_json() -> None:
    pong = pong_message(connection_id="c=", server_time=MOMENT, ping_id=None)
    assert pong == '{"action":"pong","connectionId":"c=","serverTime":"2026-01-03T04:05:06Z"}'
    assert json.loads(error_message(code="bad_request", message="m", ping_id="1"))["id"] == "1"
    with pytest.raises(ValueError):
        error_message(code="teapot", message="m")
