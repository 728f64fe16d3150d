"""Connection limits on real Redis — a redis-server and a 3-master Redis Cluster.

The Connect and Disconnect use cases run on the real Redis repository wrapped by
LimitedConnectionRepository + RedisConnectionLimiter; only the token verifier is a fake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pybreaker
import pytest
import redis
import redis.cluster

from adapters.failover_connection_repository import create_circuit_breaker
from adapters.in_memory import FixedClock, InMemoryConnectionRepository, InMemoryTokenVerifier
from adapters.limited_connection_repository import LimitedConnectionRepository
from adapters.redis_connection_limiter import (
    EXPIRY_KEY,
    OWNER_KEY,
    PER_USER_KEY,
    RedisConnectionLimiter,
)
from adapters.redis_connection_repository import RedisConnectionRepository, create_redis_client
from adapters.redis_limited_connection_repository import RedisLimitedConnectionRepository
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


ONE_ROUND_TRIP = "redis-server, one round trip"


@pytest.fixture(params=["redis-server", ONE_ROUND_TRIP, "redis-cluster"])
def redis_client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client built the way the container builds it, on an empty standalone or cluster Redis.

    On standalone Redis the tests run twice: on the limiter over the Redis repository, and on
    RedisLimitedConnectionRepository (records and limits in one script per call, what the
    container uses there); see the ``one_round_trip`` fixture.
    """
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


@pytest.fixture
def one_round_trip(request: pytest.FixtureRequest) -> bool:
    """Whether this run of a test uses RedisLimitedConnectionRepository."""
    return bool(request.node.callspec.params.get("redis_client") == ONE_ROUND_TRIP)


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
        store: ConnectionRepository | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        one_round_trip: bool = False,
    ) -> None:
        self.client = client
        self.users = Users()
        self.repository: ConnectionRepository
        if one_round_trip:
            assert store is None and breaker is None
            self.repository = RedisLimitedConnectionRepository(
                client, clock=clock, global_limit=global_limit, per_user_limit=per_user_limit
            )
        else:
            limiter = RedisConnectionLimiter(
                client,
                clock=clock,
                global_limit=global_limit,
                per_user_limit=per_user_limit,
                breaker=breaker,
            )
            self.store = store if store is not None else RedisConnectionRepository(client)
            self.repository = LimitedConnectionRepository(self.store, limiter)
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
    one_round_trip: bool,
) -> None:
    service = Service(redis_client, clock=FixedClock(START), one_round_trip=one_round_trip)
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
    one_round_trip: bool,
) -> None:
    service = Service(redis_client, clock=FixedClock(START), one_round_trip=one_round_trip)
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
    one_round_trip: bool,
) -> None:
    service = Service(
        redis_client, clock=FixedClock(START), per_user_limit=2, one_round_trip=one_round_trip
    )
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
    one_round_trip: bool,
) -> None:
    # Real time on both sides: the record's Redis TTL and the limiter's clock.
    service = Service(
        redis_client,
        clock=SystemClock(),
        per_user_limit=1,
        ttl_seconds=1,
        one_round_trip=one_round_trip,
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
    redis_client: Any, one_round_trip: bool
) -> None:
    clock = FixedClock(START)
    service = Service(
        redis_client, clock=clock, per_user_limit=1, ttl_seconds=60, one_round_trip=one_round_trip
    )
    service.connect("pinging=", "alice")
    heartbeat = Heartbeat(
        repository=service.repository, sender=_NullSender(), clock=clock, ttl_seconds=60
    )

    for _ in range(3):  # 150 s of pings every 50 s: past the first 60 s expiry
        clock.advance(50)
        heartbeat.execute(HeartbeatCommand(connection_id="pinging="))

    with pytest.raises(ConnectionLimitExceededError):
        service.connect("another=", "alice")
    clock.advance(61)  # pings stop: the slot expires with the record
    service.connect("another=", "alice")


def test_given_a_retried_connect_with_the_same_id_then_it_is_counted_once(
    redis_client: Any,
    one_round_trip: bool,
) -> None:
    service = Service(
        redis_client, clock=FixedClock(START), per_user_limit=2, one_round_trip=one_round_trip
    )
    for _ in range(3):
        service.connect("same=", "alice")

    assert service.counted_for("alice") == 1 and service.counted() == 1


def test_given_concurrent_connects_of_one_user_then_exactly_the_limit_is_admitted(
    redis_client: Any,
    one_round_trip: bool,
) -> None:
    service = Service(
        redis_client,
        clock=FixedClock(START),
        per_user_limit=10,
        global_limit=25,
        one_round_trip=one_round_trip,
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


def test_given_the_store_fails_after_the_slot_is_taken_then_the_slot_is_released(
    redis_client: Any,
    one_round_trip: bool,
) -> None:
    if one_round_trip:
        pytest.skip("one script writes the slot and the record together: nothing to undo")
    failing = InMemoryConnectionRepository(FixedClock(START))
    failing.available = False
    service = Service(redis_client, clock=FixedClock(START), per_user_limit=1, store=failing)

    with pytest.raises(StoreUnavailableError):
        service.connect("a=", "alice")

    assert service.counted() == 0 and service.counted_for("alice") == 0
    assert redis_client.hlen(OWNER_KEY) == 0


def test_given_redis_down_then_the_limiter_fails_open_and_skips_redis_once_the_breaker_opens() -> (
    None
):
    dead = create_redis_client(f"redis://127.0.0.1:{free_port()}/0")
    breaker = create_circuit_breaker(fail_max=2, reset_timeout_seconds=60)
    limiter = RedisConnectionLimiter(
        dead, clock=FixedClock(START), breaker=breaker, per_user_limit=1
    )
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)

    assert [limiter.acquire(connection, 600) for _ in range(3)] == [False, False, False]
    limiter.touch("a=", 600)
    limiter.release("a=")
    assert breaker.current_state == "open"
    assert limiter.redis_attempts == 2  # fail_max; the later calls never reached Redis


def test_given_bad_limits_then_value_error(redis_url: str) -> None:
    client = create_redis_client(redis_url)
    with pytest.raises(ValueError):
        RedisConnectionLimiter(client, clock=FixedClock(START), global_limit=0)
    with pytest.raises(ValueError):
        RedisConnectionLimiter(client, clock=FixedClock(START), per_user_limit=0)


class _NullSender:
    def send(self, connection_id: str, data: str | bytes) -> None:
        pass

    def close(self, connection_id: str) -> None:
        pass


def test_given_a_client_that_cannot_be_built_yet_then_the_limiter_fails_open_then_counts(
    redis_url: str,
) -> None:
    attempts: list[int] = []

    def build() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreUnavailableError("Redis Cluster slot map unavailable")
        return create_redis_client(redis_url)

    limiter = RedisConnectionLimiter(build, clock=FixedClock(START), per_user_limit=1)
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)

    assert limiter.acquire(connection, 600) is False
    assert limiter.acquire(connection, 600) is True
    with pytest.raises(ConnectionLimitExceededError):
        limiter.acquire(Connection(connection_id="b=", user_id="alice", connected_at=START), 600)
    assert len(attempts) == 2


# RedisLimitedConnectionRepository's own rules (standalone Redis only).


def _one_round_trip(client: Any, **limits: int) -> RedisLimitedConnectionRepository:
    return RedisLimitedConnectionRepository(client, clock=FixedClock(START), **limits)


def test_given_one_round_trip_then_each_operation_is_one_script_call(redis_url: str) -> None:
    client = create_redis_client(redis_url)
    repository = _one_round_trip(client)
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


def test_given_one_round_trip_when_a_ping_finds_no_record_then_not_found_and_the_slot_is_not_extended(
    redis_url: str,
) -> None:
    client = create_redis_client(redis_url)
    repository = _one_round_trip(client)
    repository.save(Connection(connection_id="a=", user_id="alice", connected_at=START), 600)
    expiry = client.zscore(EXPIRY_KEY, "a=")
    client.delete("ws:connection:a=")  # the record expired; no $disconnect yet

    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("a=", 900)

    assert client.zscore(EXPIRY_KEY, "a=") == expiry
    with pytest.raises(ConnectionNotFoundError):
        repository.refresh("never=", 600)
    assert client.zscore(EXPIRY_KEY, "never=") is None
    assert not client.exists("ws:connection:never=")


def test_given_one_round_trip_then_get_reads_the_record_and_delete_is_idempotent(
    redis_url: str,
) -> None:
    client = create_redis_client(redis_url)
    repository = _one_round_trip(client)
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)
    repository.save(connection, 600)

    assert repository.get("a=") == connection
    assert 590 < client.ttl("ws:connection:a=") <= 600
    repository.delete("a=")
    repository.delete("a=")
    with pytest.raises(ConnectionNotFoundError):
        repository.get("a=")
    assert client.hlen(OWNER_KEY) == 0 and client.hlen(PER_USER_KEY) == 0


def test_given_one_round_trip_and_redis_down_then_every_operation_is_store_unavailable() -> None:
    repository = _one_round_trip(create_redis_client(f"redis://127.0.0.1:{free_port()}/0"))
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


def test_given_one_round_trip_with_bad_arguments_then_value_error(redis_url: str) -> None:
    client = create_redis_client(redis_url)
    with pytest.raises(ValueError):
        _one_round_trip(client, global_limit=0)
    with pytest.raises(ValueError):
        _one_round_trip(client, per_user_limit=0)
    with pytest.raises(ValueError, match="standalone"):
        RedisLimitedConnectionRepository(object(), clock=FixedClock(START))  # type: ignore[arg-type]
    repository = _one_round_trip(client)
    connection = Connection(connection_id="a=", user_id="alice", connected_at=START)
    for ttl in (0, True, 1.5):
        with pytest.raises(ValueError):
            repository.save(connection, ttl)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            repository.refresh("a=", ttl)  # type: ignore[arg-type]
    assert not client.exists("ws:connection:a=") and client.zcard(EXPIRY_KEY) == 0
