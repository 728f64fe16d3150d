"""The Push use case on in-memory adapters: fan-out, gone cleanup, throttling, bounds, isolation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.in_memory import (
    FixedClock,
    InMemoryConnectionRepository,
    InMemoryMessageSender,
    RecordingSleeper,
    SequentialFanOut,
)
from adapters.thread_pool_fan_out import ThreadPoolFanOut
from application.commands import PushCommand
from application.ports import FanOut
from application.use_cases import (
    MAX_PUSH_USERS,
    THROTTLE_ATTEMPTS,
    THROTTLE_MAX_DELAY_SECONDS,
    Push,
)
from domain.connection import Connection
from domain.errors import InvalidPushError, StoreUnavailableError
from domain.protocol import MAX_MESSAGE_BYTES

START = datetime(2026, 1, 3, tzinfo=UTC)
TTL = 600


class World:
    """The use case over in-memory ports, and those ports."""

    def __init__(self, fan_out: FanOut | None = None) -> None:
        self.clock = FixedClock(START)
        self.repository = InMemoryConnectionRepository(self.clock)
        self.sender = InMemoryMessageSender()
        self.sleeper = RecordingSleeper()
        self.fan_out = fan_out or SequentialFanOut()
        self.push = Push(
            directory=self.repository,
            repository=self.repository,
            sender=self.sender,
            fan_out=self.fan_out,
            sleeper=self.sleeper,
            jitter=lambda: 1.0,
        )

    def connect(self, user_id: str, *connection_ids: str) -> None:
        for connection_id in connection_ids:
            self.repository.save(
                Connection(connection_id=connection_id, user_id=user_id, connected_at=START), TTL
            )


@pytest.fixture
def world() -> World:
    return World()


def test_given_two_users_with_connections_when_pushed_then_every_connection_gets_the_message(
    world: World,
) -> None:
    world.connect("alice", "a1", "a2")
    world.connect("bob", "b1")
    world.connect("carol", "c1")

    result = world.push.execute(PushCommand(user_ids=("alice", "bob"), message='{"n":1}'))

    assert world.sender.sent == {"a1": ['{"n":1}'], "a2": ['{"n":1}'], "b1": ['{"n":1}']}
    assert (result.delivered, result.gone, result.failed, result.unavailable) == (3, 0, 0, 0)
    assert [(u.user_id, u.delivered) for u in result.users] == [("alice", 2), ("bob", 1)]


def test_given_a_user_named_twice_when_pushed_then_each_connection_gets_it_once(
    world: World,
) -> None:
    world.connect("alice", "a1")

    result = world.push.execute(PushCommand(user_ids=("alice", "alice"), message="hi"))

    assert world.sender.sent == {"a1": ["hi"]}
    assert len(result.users) == 1


def test_given_a_user_without_connections_when_pushed_then_nothing_is_sent_and_counts_are_zero(
    world: World,
) -> None:
    result = world.push.execute(PushCommand(user_ids=("nobody",), message="hi"))

    assert world.sender.sent == {}
    assert result.users[0].delivered == result.users[0].gone == result.users[0].failed == 0


def test_given_a_gone_connection_when_pushed_then_its_record_is_removed_as_by_disconnect(
    world: World,
) -> None:
    # Given a connection whose $disconnect was lost: API Gateway answers 410 to it
    world.connect("alice", "a1", "a2")
    world.repository.count_slot(
        Connection(connection_id="a1", user_id="alice", connected_at=START), TTL
    )
    world.sender.gone.add("a1")

    result = world.push.execute(PushCommand(user_ids=("alice",), message="hi"))

    assert (result.delivered, result.gone) == (1, 1)
    assert [c.connection_id for c in world.repository.connections_of("alice")] == ["a2"]
    assert "a1" not in world.repository.counted  # its limit slot too
    assert "a1" in world.repository.closed


def test_given_a_gone_connection_and_the_store_down_for_deletes_then_it_still_counts_as_gone() -> (
    None
):
    world = World()
    world.connect("alice", "a1")
    world.sender.gone.add("a1")

    class DownOnDelete(InMemoryConnectionRepository):
        def delete(self, connection_id: str) -> None:
            raise StoreUnavailableError()

    down = DownOnDelete(world.clock)
    push = Push(
        directory=world.repository,
        repository=down,
        sender=world.sender,
        fan_out=SequentialFanOut(),
        sleeper=world.sleeper,
    )

    result = push.execute(PushCommand(user_ids=("alice",), message="hi"))

    assert result.gone == 1


def test_given_a_throttled_post_when_it_succeeds_on_retry_then_it_is_delivered_after_backoff(
    world: World,
) -> None:
    world.connect("alice", "a1")
    world.sender.throttled["a1"] = THROTTLE_ATTEMPTS - 1

    result = world.push.execute(PushCommand(user_ids=("alice",), message="hi"))

    assert result.delivered == 1
    assert world.sender.attempts["a1"] == THROTTLE_ATTEMPTS
    # full jitter (the fake's jitter is 1.0): the ceiling doubles, capped
    assert world.sleeper.slept == [0.1, 0.2]
    assert all(0 <= s <= THROTTLE_MAX_DELAY_SECONDS for s in world.sleeper.slept)


def test_given_a_post_throttled_past_the_bound_then_it_fails_after_the_bounded_attempts(
    world: World,
) -> None:
    world.connect("alice", "a1", "a2")
    world.sender.throttled["a1"] = 100

    result = world.push.execute(PushCommand(user_ids=("alice",), message="hi"))

    assert (result.delivered, result.failed) == (1, 1)
    assert result.users[0].failed == 1
    assert world.sender.attempts["a1"] == THROTTLE_ATTEMPTS
    assert len(world.sleeper.slept) == THROTTLE_ATTEMPTS - 1  # no wait after the last attempt
    assert [c.connection_id for c in world.repository.connections_of("alice")] == ["a1", "a2"]


@pytest.mark.parametrize(
    ("user_ids", "message", "reason"),
    [
        ((), "hi", "no_users"),
        (tuple(f"u{i}" for i in range(MAX_PUSH_USERS + 1)), "hi", "too_many_users"),
        (("alice",), "é" * (MAX_MESSAGE_BYTES // 2 + 1), "payload_too_large"),
    ],
)
def test_given_a_push_over_a_bound_then_it_is_refused_before_any_post(
    world: World, user_ids: tuple[str, ...], message: str, reason: str
) -> None:
    world.connect("alice", "a1")

    with pytest.raises(InvalidPushError) as refused:
        world.push.execute(PushCommand(user_ids=user_ids, message=message))

    assert refused.value.reason == reason
    assert world.sender.attempts == {}


def test_given_a_message_of_exactly_128_kb_and_the_most_users_then_it_is_pushed(
    world: World,
) -> None:
    world.connect("u0", "c0")
    users = tuple(f"u{i}" for i in range(MAX_PUSH_USERS))

    result = world.push.execute(PushCommand(user_ids=users, message="x" * MAX_MESSAGE_BYTES))

    assert result.delivered == 1


def test_given_a_directory_entry_naming_another_user_then_nothing_reaches_that_connection() -> None:
    # Given a directory that (wrongly) lists bob's connection under alice
    world = World()
    world.connect("bob", "b1")

    class LeakyDirectory:
        def connections_of(self, user_id: str) -> list[Connection]:
            return world.repository.connections_of("bob")

    push = Push(
        directory=LeakyDirectory(),
        repository=world.repository,
        sender=world.sender,
        fan_out=SequentialFanOut(),
        sleeper=world.sleeper,
    )

    result = push.execute(PushCommand(user_ids=("alice",), message="for alice"))

    assert world.sender.sent == {}
    assert result.delivered == 0


def test_given_the_directory_down_then_every_user_is_unavailable_and_nothing_is_posted(
    world: World,
) -> None:
    world.connect("alice", "a1")
    world.repository.available = False

    result = world.push.execute(PushCommand(user_ids=("alice", "bob"), message="hi"))

    assert result.unavailable == 2
    assert world.sender.attempts == {}


def test_given_a_thread_pool_fan_out_then_1000_connections_each_get_the_message_once() -> None:
    world = World(fan_out=ThreadPoolFanOut(10))
    for user in range(100):
        world.connect(f"u{user}", *(f"u{user}-c{n}" for n in range(10)))

    result = world.push.execute(
        PushCommand(user_ids=tuple(f"u{user}" for user in range(100)), message="hi")
    )

    assert result.delivered == 1000
    assert all(frames == ["hi"] for frames in world.sender.sent.values())
    assert len(world.sender.sent) == 1000


def test_given_lookups_and_posts_then_both_go_through_the_fan_out(world: World) -> None:
    world.connect("alice", "a1", "a2")
    world.connect("bob", "b1")

    world.push.execute(PushCommand(user_ids=("alice", "bob"), message="hi"))

    assert isinstance(world.fan_out, SequentialFanOut)
    assert world.fan_out.batches == [2, 3]
