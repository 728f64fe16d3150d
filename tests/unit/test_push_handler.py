"""The ``push`` Lambda handler on in-memory adapters: the event, the result, the bad events, its
line and EMF document (through the one invocation wrapper)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import providers

from adapters.in_memory import (
    FixedClock,
    InMemoryConnectionRepository,
    InMemoryMessageSender,
    SequentialFanOut,
)
from application.use_cases import MAX_PUSH_USERS
from domain.connection import Connection
from domain.protocol import MAX_MESSAGE_BYTES
from entrypoints.observability import PUSH_FAILED
from tests.support.app import make_container, make_settings
from tests.support.lambda_context import FakeLambdaContext

START = datetime(2026, 1, 3, tzinfo=UTC)
ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


class World:
    def __init__(self) -> None:
        self.clock = FixedClock(START)
        self.repository = InMemoryConnectionRepository(self.clock)
        self.sender = InMemoryMessageSender()
        self.endpoints: list[str] = []
        container = make_container(
            make_settings(MANAGEMENT_API_ENDPOINT=ENDPOINT),
            clock=self.clock,
            connection_repository=self.repository,
            connection_directory=self.repository,
            fan_out=SequentialFanOut(),
            push_management_api_clients=providers.Object(self),
        )
        self.handler = container.push_handler()

    def sender_for(self, endpoint_url: str) -> InMemoryMessageSender:
        self.endpoints.append(endpoint_url)
        return self.sender

    def connect(self, user_id: str, *connection_ids: str) -> None:
        for connection_id in connection_ids:
            connection = Connection(
                connection_id=connection_id, user_id=user_id, connected_at=START
            )
            self.repository.save(connection, 600)

    def invoke(self, event: Any) -> Any:
        return self.handler(event, FakeLambdaContext())


@pytest.fixture
def world() -> World:
    return World()


def test_given_users_when_push_is_invoked_then_the_counts_per_user_and_the_frames(
    world: World, lines: Any
) -> None:
    world.connect("alice", "a1", "a2")
    world.connect("bob", "b1")
    world.sender.gone.add("a2")

    result = world.invoke({"userIds": ["alice", "bob", "carol"], "message": {"post": 7, "t": "é"}})

    assert result == {
        "delivered": 2,
        "gone": 1,
        "failed": 0,
        "unavailable": 0,
        "users": {
            "alice": {"delivered": 1, "gone": 1, "failed": 0, "unavailable": False},
            "bob": {"delivered": 1, "gone": 0, "failed": 0, "unavailable": False},
            "carol": {"delivered": 0, "gone": 0, "failed": 0, "unavailable": False},
        },
    }
    assert world.sender.sent == {"a1": ['{"post":7,"t":"é"}'], "b1": ['{"post":7,"t":"é"}']}
    assert world.endpoints == [ENDPOINT]
    [line] = [line for line in lines() if line.get("message") == "pushed"]
    assert (line["level"], line["delivered"], line["gone"], line["failed"]) == ("INFO", 2, 1, 0)
    metrics = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert PUSH_FAILED in {metric["Name"] for metric in metrics}
    assert line[PUSH_FAILED] == [0.0]


def test_given_a_string_message_then_it_is_the_frame_as_is(world: World) -> None:
    world.connect("alice", "a1")

    world.invoke({"userIds": ["alice"], "message": '{"already": "json"}'})

    assert world.sender.sent == {"a1": ['{"already": "json"}']}


def test_given_a_throttled_connection_past_the_retries_then_failed_is_counted(
    world: World, lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.system_clock.time.sleep", lambda seconds: None)
    world.connect("alice", "a1")
    world.sender.throttled["a1"] = 99

    result = world.invoke({"userIds": ["alice"], "message": "hi"})

    assert result["failed"] == 1
    [line] = [line for line in lines() if line.get("message") == "pushed"]
    assert line[PUSH_FAILED] == [1.0]


@pytest.mark.parametrize(
    ("event", "error", "says"),
    [
        ({"message": "hi"}, "bad_request", '"userIds" is missing'),
        ({"userIds": "alice", "message": "hi"}, "bad_request", '"userIds" must be a list'),
        ({"userIds": ["alice", 7], "message": "hi"}, "bad_request", '"userIds"[1]'),
        ({"userIds": ["alice"]}, "bad_request", '"message" is missing'),
        ([1, 2], "bad_request", "JSON object"),
        ({"userIds": [], "message": "hi"}, "no_users", "at least one"),
        (
            {"userIds": [f"u{i}" for i in range(MAX_PUSH_USERS + 1)], "message": "hi"},
            "too_many_users",
            f"at most {MAX_PUSH_USERS}",
        ),
        (
            {"userIds": ["alice"], "message": "x" * (MAX_MESSAGE_BYTES + 1)},
            "payload_too_large",
            f"at most {MAX_MESSAGE_BYTES}",
        ),
    ],
)
def test_given_a_bad_event_then_a_clear_error_result_and_nothing_posted(
    world: World, lines: Any, event: Any, error: str, says: str
) -> None:
    world.connect("alice", "a1")

    result = world.invoke(event)

    assert result["error"] == error
    assert says in result["message"]
    assert world.sender.attempts == {}
    [line] = lines()
    assert line["level"] == "WARNING"
    assert line["reason"] == error
