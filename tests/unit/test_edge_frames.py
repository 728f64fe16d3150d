"""The frames the edge builds from use case results and errors (``entrypoints/edge/responses.py``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from application.commands import HeartbeatOutcome, HeartbeatResult
from domain.protocol import BadMessageError
from entrypoints.edge.responses import pong_frame, rejection_frame

CONNECTION_ID = "L0SM9cOFvHcCIhw="


def test_given_a_heartbeat_result_then_the_pong_echoes_the_ping_id_and_the_server_time() -> None:
    result = HeartbeatResult(
        connection_id=CONNECTION_ID,
        outcome=HeartbeatOutcome.PONG,
        ping_id="42",
        server_time=datetime(2026, 1, 3, 0, 5, tzinfo=UTC),
    )
    frame = pong_frame(result)
    assert frame is not None
    assert json.loads(frame) == {
        "action": "pong",
        "connectionId": CONNECTION_ID,
        "serverTime": "2026-01-03T00:05:00Z",
        "id": "42",
    }


def test_given_a_ping_without_id_then_the_pong_has_no_id() -> None:
    result = HeartbeatResult(
        connection_id=CONNECTION_ID,
        outcome=HeartbeatOutcome.PONG_UNRECORDED,
        server_time=datetime(2026, 1, 3, tzinfo=UTC),
    )
    frame = pong_frame(result)
    assert frame is not None
    assert "id" not in json.loads(frame)


def test_given_an_expired_heartbeat_then_there_is_no_frame() -> None:
    result = HeartbeatResult(connection_id=CONNECTION_ID, outcome=HeartbeatOutcome.EXPIRED)
    assert pong_frame(result) is None


def test_given_a_bad_message_then_the_error_frame_carries_its_code_and_message() -> None:
    frame = rejection_frame(BadMessageError("bad_request", "expected JSON"))
    assert json.loads(frame) == {
        "action": "error",
        "code": "bad_request",
        "message": "expected JSON",
    }
    with pytest.raises(ValueError, match="unknown error code"):
        rejection_frame(BadMessageError("nonsense", "?"))
