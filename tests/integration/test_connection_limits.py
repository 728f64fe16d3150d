"""Connection limits on real Redis — a redis-server and a 3-master Redis Cluster.

The Connect and Disconnect use cases run on the real ``RedisConnectionRepository`` (records
and their slots); only the token verifier is a fake. On a standalone Redis each operation is
one script; in cluster mode the record command and the limits script are two calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.cluster

from adapters.connection_store import (
    FailoverConnectionRepository,
    RedisConnectionRepository,
    create_circuit_breaker,
    create_redis_client,
)
from adapters.connection_store.redis import CLOSED_KEY, EXPIRY_KEY, OWNER_KEY, PER_USER_KEY
from adapters.connection_store.redis_pending_deletes import RedisPendingDeletes
from adapters.in_memory import (
    FixedClock,
    InMemoryConnectionRepository,
    InMemoryMessageSender,
    InMemoryTokenVerifier,
)
from adapters.system_clock import SystemClock
from application.commands import ConnectCommand, DisconnectCommand, HeartbeatCommand
from application.ports import Clock, ConnectionRepository
from application.use_cases import Connect, Disconnect, Heartbeat
from domain.connection import Connection, VerifiedIdentity
from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)
from tests.support.cluster import RedisClusterNodes, running_redis_cluster_of_three
from tests.support.servers import free_port

START = datetime(2026, 1, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with running_redis_cluster_of_three() as nodes:
        yield nodes


@pytest.fixture(params=["redis-server", "redis-cluster"])
def redis_client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client built the way the container builds it, on an empty standalone or cluster Redis."""
    if request.param != "redis-cluster":
        client = create_redis_client(request.getfixturevalue("redis_url"))
    else:
        nodes: RedisClusterNodes = request.getfixturevalue("cluster")
        for server in nodes.servers:
            redis.Redis.from_url(server.url).flushall()
        client = create_redis_client(nodes.url, cluster=True)
    try:
        yield client
    finally:
        client.close()


class Users:
    """A verifier that knows tokens ``token-<user>`` for any user name."""

    def __init__(self) -> None:
        self.verifier = InMemoryTokenVerifier()

    def token(self, user_id: str) -> str:
        self.verifier.tokens[f"token-{user_id}"] = VerifiedIdentity(
            user_id=user_id, client_id="client", token_use="access", expires_at=START
        )
        return f"token-{user_id}"


class Service:
    def __init__(
        self,
        client: Any,
        *,
        clock: Clock,
        global_limit: int = 1000,
        per_user_limit: int = 10,
        ttl_seconds: int = 600,
    ) -> None:
        self.client = client
        self.users = Users()
        self.repository: ConnectionRepository = RedisConnectionRepository(
            client, clock=clock, global_limit=global_limit, per_user_limit=per_user_limit
        )
        self.connect_use_case = Connect(
            verifier=self.users.verifier,
            repository=self.repository,
            clock=clock,
            ttl_seconds=ttl_seconds,
        )
        self.disconnect_use_case = Disconnect(repository=self.repository)

    def connect(self, connection_id: str, user_id: str) -> None:
        token = self.users.token(user_id)
        self.connect_use_case.execute(ConnectCommand(connection_id=connection_id, token=token))

    def disconnect(self, connection_id: str) -> None:
        self.disconnect_use_case.execute(DisconnectCommand(connection_id=connection_id))

    def stored(self, connection_id: str) -> bool:
        return bool(self.client.exists(f"ws:connection:{connection_id}"))

    def counted(self) -> int:
        return int(self.client.zcard(EXPIRY_KEY))

    def counted_for(self, user_id: str) -> int:
        return int(self.client.hget(PER_USER_KEY, user_id) or 0)


def test_given_1000_connections_when_the_1001st_connects_then_429_global_and_nothing_stored(
    redis_client: Any,
) -> None:
    service = Service(redis_client, clock=FixedClock(START))
    for index in range(1000):
        service.connect(f"c{index}=", f"user-{index // 10}")

    with pytest.raises(ConnectionLimitExceededError) as raised:
        service.connect("one-too-many=", "newcomer")

    assert raised.value.scope == "global"
    assert not service.stored("one-too-many=")
    assert service.counted() == 1000
    assert service.stored("c999=")


def test_given_10_connections_of_one_user_when_the_11th_connects_then_429_user_and_others_still_connect(
    redis_client: Any,
) -> None:
    service = Service(redis_client, clock=FixedClock(START))
    for index in range(10):
        service.connect(f"alice-{index}=", "alice")

    with pytest.raises(ConnectionLimitExceededError) as raised:
        service.connect("alice-10=", "alice")

    assert raised.value.scope == "user"
    assert not service.stored("alice-10=")
    service.connect("bob-0=", "bob")
    assert service.counted_for("alice") == 10 and service.counted_for("bob") == 1


def test_given_a_user_at_the_limit_when_one_disconnects_then_a_new_connection_is_accepted(
    redis_client: Any,
) -> None:
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=2)
    service.connect("a=", "alice")
    service.connect("b=", "alice")
    service.disconnect("a=")
    service.disconnect("a=")  # a second $disconnect frees nothing more

    service.connect("c=", "alice")

    assert service.counted_for("alice") == 2
    with pytest.raises(ConnectionLimitExceededError):
        service.connect("d=", "alice")


def test_given_a_record_that_expires_without_disconnect_then_its_slot_frees(
    redis_client: Any,
) -> None:
    # Real time on both sides: the record's Redis TTL and the limiter's clock.
    service = Service(
        redis_client,
        clock=SystemClock(),
        per_user_limit=1,
        ttl_seconds=1,
    )
    service.connect("first=", "alice")
    with pytest.raises(ConnectionLimitExceededError):
        service.connect("second=", "alice")

    deadline = time.monotonic() + 10.0
    admitted = False
    while not admitted and time.monotonic() < deadline:
        try:
            service.connect("second=", "alice")
            admitted = True
        except ConnectionLimitExceededError:
            time.sleep(0.05)  # polling interval of a bounded loop on "the slot is free"

    assert admitted
    assert not service.stored("first=")  # no $disconnect ever arrived: the TTL removed it
    assert service.counted_for("alice") == 1
    assert redis_client.zscore(EXPIRY_KEY, "first=") is None


def test_given_pings_then_the_slot_lives_as_long_as_the_record(
    redis_client: Any,
) -> None:
    clock = FixedClock(START)
    service = Service(redis_client, clock=clock, per_user_limit=1, ttl_seconds=60)
    service.connect("pinging=", "alice")
    heartbeat = Heartbeat(
        repository=service.repository, sender=InMemoryMessageSender(), clock=clock, ttl_seconds=60
    )

    for _ in range(3):  # 150 s of pings every 50 s: past the first 60 s expiry
        clock.advance(50)
        heartbeat.execute(HeartbeatCommand(connection_id="pinging="))

    with pytest.raises(ConnectionLimitExceededError):
        service.connect("another=", "alice")
    clock.advance(61)  # pings stop: the slot expires with the record
    service.connect("another=", "alice")


def test_given_redis_lost_its_limit_keys_when_a_connection_pings_then_its_slot_is_counted_again(
    redis_client: Any,
) -> None:
    # An ElastiCache node replacement keeps no key; here only the limit keys go, so the
    # record survives and its next ping finds it uncounted (issue 14: uncounted_slot).
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=2)
    service.connect("a=", "alice")
    service.connect("b=", "alice")
    for key in (EXPIRY_KEY, OWNER_KEY, PER_USER_KEY):
        redis_client.delete(key)
    assert service.counted() == 0

    service.repository.refresh("a=", 600)
    service.repository.refresh("a=", 600)  # counted once, however many pings

    assert service.counted() == 1 and service.counted_for("alice") == 1
    service.connect("c=", "alice")  # b= is still uncounted until its own ping
    with pytest.raises(ConnectionLimitExceededError):
        service.connect("d=", "alice")


def test_given_a_deleted_connection_then_neither_a_late_ping_nor_a_late_count_brings_its_slot_back(
    redis_client: Any,
) -> None:
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=1)
    repository = service.repository
    assert isinstance(repository, RedisConnectionRepository)
    service.connect("a=", "alice")
    service.disconnect("a=")

    # A ping that raced the $disconnect, then a count from the failover's refresh path.
    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("a=", 600)
    repository.count_slot(Connection(connection_id="a=", user_id="alice", connected_at=START), 600)

    assert service.counted() == 0 and service.counted_for("alice") == 0
    assert redis_client.zscore(CLOSED_KEY, "a=") is not None
    service.connect("b=", "alice")  # the user's one slot is free


def test_delete_many_frees_each_record_and_slot_and_remembers_each_closed_and_nothing_else(
    redis_client: Any,
) -> None:
    # The reconciler's replay of tombstones: one round trip on a standalone Redis.
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=10)
    repository = service.repository
    assert isinstance(repository, RedisConnectionRepository)
    for connection_id in ("a=", "b=", "c="):
        service.connect(connection_id, "alice")

    repository.delete_many(["a=", "b=", "never="])
    repository.delete_many(["a="])  # idempotent
    repository.delete_many([])

    assert [service.stored(c) for c in ("a=", "b=", "c=")] == [False, False, True]
    assert service.counted() == 1 and service.counted_for("alice") == 1
    assert all(redis_client.zscore(CLOSED_KEY, c) is not None for c in ("a=", "b=", "never="))
    assert redis_client.zscore(CLOSED_KEY, "c=") is None


def test_given_records_held_elsewhere_then_count_slot_counts_them_once_and_never_refuses(
    redis_client: Any,
) -> None:
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=1)
    repository = service.repository
    assert isinstance(repository, RedisConnectionRepository)
    for connection_id in ("x=", "y=", "x="):  # y= is over the limit: open already, counted
        repository.count_slot(
            Connection(connection_id=connection_id, user_id="alice", connected_at=START), 600
        )

    assert service.counted() == 2 and service.counted_for("alice") == 2
    assert not service.stored("x=")  # only the slot: the record lives in the other store
    with pytest.raises(ConnectionLimitExceededError):
        service.connect("z=", "alice")


def test_given_a_retried_connect_with_the_same_id_then_it_is_counted_once(
    redis_client: Any,
) -> None:
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=2)
    for _ in range(3):
        service.connect("same=", "alice")

    assert service.counted_for("alice") == 1 and service.counted() == 1


def test_given_concurrent_connects_of_one_user_then_exactly_the_limit_is_admitted(
    redis_client: Any,
) -> None:
    service = Service(
        redis_client,
        clock=FixedClock(START),
        per_user_limit=10,
        global_limit=25,
    )
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def connect(index: int, user_id: str) -> None:
        barrier.wait(timeout=10)
        try:
            service.connect(f"{user_id}-{index}=", user_id)
            result = "ok"
        except ConnectionLimitExceededError as exc:
            result = exc.scope
        with lock:
            outcomes.append(f"{user_id}:{result}")

    threads = [
        threading.Thread(target=connect, args=(index, user))
        for user in ("alice", "bob")
        for index in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    more = [threading.Thread(target=connect, args=(index, "carol")) for index in range(20)]
    barrier = threading.Barrier(20)
    for thread in more:
        thread.start()
    for thread in more:
        thread.join(timeout=30)

    assert outcomes.count("alice:ok") == 10 and outcomes.count("bob:ok") == 10
    assert outcomes.count("carol:ok") == 5  # global limit 25
    assert outcomes.count("carol:global") == 15
    assert service.counted() == 25


def test_given_cluster_mode_when_the_record_write_fails_after_the_slot_is_taken_then_the_slot_is_released(
    cluster: RedisClusterNodes,
) -> None:
    for server in cluster.servers:
        redis.Redis.from_url(server.url).flushall()
    client = create_redis_client(cluster.url, cluster=True)
    service = Service(client, clock=FixedClock(START), per_user_limit=1)
    real_set = client.set

    def failing_set(*args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("the record's node went away")

    client.set = failing_set  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailableError):
        service.connect("a=", "alice")
    client.set = real_set  # type: ignore[method-assign]

    assert service.counted() == 0 and service.counted_for("alice") == 0
    assert client.hlen(OWNER_KEY) == 0
    client.close()


def test_given_cluster_mode_and_the_limits_call_failing_then_connect_is_admitted_and_the_next_ping_counts_it(
    cluster: RedisClusterNodes, caplog: pytest.LogCaptureFixture
) -> None:
    for server in cluster.servers:
        redis.Redis.from_url(server.url).flushall()
    client = create_redis_client(cluster.url, cluster=True)
    service = Service(client, clock=FixedClock(START))
    client.set(EXPIRY_KEY, "not a sorted set")  # every limits script now fails (WRONGTYPE)

    # When the limits call fails, the record call decides: admitted, uncounted, logged.
    with caplog.at_level(logging.WARNING, logger="adapters.connection_store.redis"):
        service.connect("a=", "alice")
        service.repository.refresh("a=", 600)  # the touch fails too: the refresh stands
    assert service.stored("a=")
    warnings = [r for r in caplog.records if r.getMessage().startswith("connection limits")]
    assert [(r.operation, r.connection_id) for r in warnings] == [  # type: ignore[attr-defined]
        ("save", "a="),
        ("refresh", "a="),
    ]

    # Once the limit keys work again, the next ping counts the connection it finds uncounted.
    client.delete(EXPIRY_KEY)
    service.repository.refresh("a=", 600)
    assert service.counted() == 1 and service.counted_for("alice") == 1
    assert client.hget(OWNER_KEY, "a=") in (b"alice", "alice")
    client.close()


def test_given_redis_down_with_failover_then_connections_are_admitted_uncounted_elsewhere() -> None:
    # The limits live in Redis: while it is down the records go to the secondary store and
    # nobody is locked out (fail open); once the breaker opens Redis is not even asked.
    dead = create_redis_client(f"redis://127.0.0.1:{free_port()}/0")
    breaker = create_circuit_breaker(fail_max=2, reset_timeout_seconds=60)
    clock = FixedClock(START)
    secondary = InMemoryConnectionRepository(clock)
    store = FailoverConnectionRepository(
        primary=RedisConnectionRepository(dead, clock=clock, global_limit=1, per_user_limit=1),
        secondary=secondary,
        pending_deletes=RedisPendingDeletes(dead, clock=clock),
        breaker=breaker,
    )
    for index in range(3):
        store.save(Connection(connection_id=f"a{index}=", user_id="alice", connected_at=START), 600)

    assert len(secondary) == 3, "over both limits, yet admitted: Redis, which counts, is down"
    assert breaker.current_state == "open"


def test_given_a_client_that_cannot_be_built_yet_then_operations_are_store_unavailable_then_counted(
    redis_url: str,
) -> None:
    attempts: list[int] = []

    def build() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreUnavailableError("Redis Cluster slot map unavailable")
        return create_redis_client(redis_url)

    repository = RedisConnectionRepository(
        build, clock=FixedClock(START), global_limit=10, per_user_limit=1
    )
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)

    with pytest.raises(StoreUnavailableError):
        repository.save(connection, 600)
    repository.save(connection, 600)
    with pytest.raises(ConnectionLimitExceededError):
        repository.save(Connection(connection_id="b=", user_id="alice", connected_at=START), 600)
    assert len(attempts) == 2, "built once it could be, then kept"


# Standalone Redis: each operation is one script, the record and its slot together.


def _repository(client: Any, **limits: int) -> RedisConnectionRepository:
    return RedisConnectionRepository(
        client,
        clock=FixedClock(START),
        global_limit=limits.get("global_limit", 1000),
        per_user_limit=limits.get("per_user_limit", 10),
    )


def test_given_standalone_redis_then_each_operation_is_one_script_call(redis_url: str) -> None:
    client = create_redis_client(redis_url)
    repository = _repository(client)
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)
    # Warm, as in Lambda: the first call of each script loads it (SCRIPT LOAD).
    repository.save(connection, 600)
    repository.refresh("a=", 600)
    repository.delete("a=")
    sent: list[str] = []
    send = client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return send(*args, **options)

    client.execute_command = counting

    repository.save(connection, 600)
    repository.refresh("a=", 600)
    repository.delete("a=")

    assert sent == ["EVALSHA", "EVALSHA", "EVALSHA"]
    assert not client.exists("ws:connection:a=") and client.zcard(EXPIRY_KEY) == 0


def test_given_a_ping_that_finds_no_record_then_not_found_and_the_slot_is_not_extended(
    redis_client: Any,
) -> None:
    repository = _repository(redis_client)
    repository.save(Connection(connection_id="a=", user_id="alice", connected_at=START), 600)
    expiry = redis_client.zscore(EXPIRY_KEY, "a=")
    redis_client.delete("ws:connection:a=")  # the record expired; no $disconnect yet

    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("a=", 900)

    assert redis_client.zscore(EXPIRY_KEY, "a=") == expiry
    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("never=", 600)
    assert redis_client.zscore(EXPIRY_KEY, "never=") is None
    assert not redis_client.exists("ws:connection:never=")


def test_get_reads_the_record_and_delete_frees_everything_idempotently(
    redis_client: Any,
) -> None:
    repository = _repository(redis_client)
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)
    repository.save(connection, 600)

    assert repository.get("a=") == connection
    assert 590 < redis_client.ttl("ws:connection:a=") <= 600
    repository.delete("a=")
    repository.delete("a=")
    with pytest.raises(ConnectionNotFoundError):
        repository.get("a=")
    assert redis_client.hlen(OWNER_KEY) == 0 and redis_client.hlen(PER_USER_KEY) == 0


def test_given_redis_down_then_every_operation_is_store_unavailable_without_the_url() -> None:
    repository = _repository(create_redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)

    for operation in (
        lambda: repository.save(connection, 600),
        lambda: repository.refresh("a=", 600),
        lambda: repository.delete("a="),
        lambda: repository.get("a="),
    ):
        with pytest.raises(StoreUnavailableError) as raised:
            operation()
        assert "127.0.0.1" not in raised.value.message
