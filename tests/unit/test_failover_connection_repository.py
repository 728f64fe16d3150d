"""FailoverConnectionRepository on in-memory stores: the failover rules and the circuit breaker."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.connection_store.failover import (
    CIRCUIT_OPEN,
    PRIMARY_UNAVAILABLE,
    FailoverConnectionRepository,
    FailoverEvent,
    create_circuit_breaker,
)
from adapters.in_memory import FixedClock, InMemoryConnectionRepository, InMemoryMessageSender
from application.commands import HeartbeatCommand, HeartbeatOutcome
from application.ports import ConnectionRepository
from application.use_cases import Heartbeat
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError, StoreUnavailableError

NOW = datetime(2026, 1, 3, tzinfo=UTC)


def a_connection(connection_id: str = "L0SM9cOFvHcCIhw=", user_id: str = "user-1") -> Connection:
    return Connection(connection_id=connection_id, user_id=user_id, connected_at=NOW)


class CountingRepository(ConnectionRepository):
    """Delegates to an in-memory store and counts calls per operation."""

    def __init__(self, inner: InMemoryConnectionRepository) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.before_call: Callable[[], None] | None = None

    def _enter(self, operation: str) -> None:
        self.calls[operation] += 1
        if self.before_call is not None:
            self.before_call()

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        self._enter("save")
        self.inner.save(connection, ttl_seconds)

    def get(self, connection_id: str) -> Connection:
        self._enter("get")
        return self.inner.get(connection_id)

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        self._enter("refresh")
        self.inner.refresh(connection_id, ttl_seconds)

    def delete(self, connection_id: str) -> None:
        self._enter("delete")
        self.inner.delete(connection_id)

    def renew(self, connection_id: str, ttl_seconds: int) -> Connection:
        self._enter("refresh")
        return self.inner.renew(connection_id, ttl_seconds)

    def bury(self, connection_id: str, ttl_seconds: int) -> None:
        self._enter("bury")
        self.inner.bury(connection_id, ttl_seconds)

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        self._enter("delete_many")
        self.inner.delete_many(connection_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # the rest of what a primary / secondary offers


class Stores:
    def __init__(self, *, fail_max: int = 3, reset_timeout_seconds: float = 60.0) -> None:
        self.clock = FixedClock(NOW)
        self.redis = InMemoryConnectionRepository(self.clock)
        self.dynamodb = InMemoryConnectionRepository(self.clock)
        self.primary = CountingRepository(self.redis)
        self.secondary = CountingRepository(self.dynamodb)
        self.events: list[FailoverEvent] = []
        self.secondary_breaker = create_circuit_breaker(
            fail_max=fail_max, reset_timeout_seconds=reset_timeout_seconds, name="dynamodb"
        )
        self.repository = FailoverConnectionRepository(
            primary=self.primary,
            secondary=self.secondary,
            pending_deletes=self.redis,
            breaker=create_circuit_breaker(
                fail_max=fail_max, reset_timeout_seconds=reset_timeout_seconds
            ),
            secondary_breaker=self.secondary_breaker,
            on_failover=self.events.append,
        )


@pytest.fixture
def stores() -> Stores:
    return Stores()


# --- save ------------------------------------------------------------------------------------


def test_given_redis_up_when_saving_then_only_redis_holds_the_record(stores: Stores) -> None:
    stores.repository.save(a_connection(), 600)

    assert stores.redis.get("L0SM9cOFvHcCIhw=") == a_connection()
    assert len(stores.dynamodb) == 0
    assert stores.secondary.calls["save"] == 0
    assert stores.events == []


def test_given_redis_down_when_saving_then_dynamodb_holds_it_and_the_failover_is_reported(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    stores.redis.available = False

    with caplog.at_level(logging.WARNING, logger="adapters.connection_store.failover"):
        stores.repository.save(a_connection(), 600)

    failover_lines = [
        r for r in caplog.records if r.getMessage().startswith("connection store failover")
    ]
    assert [(r.operation, r.reason, r.connection_id) for r in failover_lines] == [  # type: ignore[attr-defined]
        ("save", PRIMARY_UNAVAILABLE, "L0SM9cOFvHcCIhw=")
    ]

    assert stores.dynamodb.get("L0SM9cOFvHcCIhw=") == a_connection()
    assert stores.events == [
        FailoverEvent(
            operation="save", reason=PRIMARY_UNAVAILABLE, connection_id="L0SM9cOFvHcCIhw="
        )
    ]


def test_given_both_stores_down_when_saving_then_store_unavailable(stores: Stores) -> None:
    stores.redis.available = False
    stores.dynamodb.available = False

    with pytest.raises(StoreUnavailableError, match="neither"):
        stores.repository.save(a_connection(), 600)


@pytest.mark.parametrize("landed_in", ["redis", "dynamodb"])
def test_given_a_save_that_landed_but_failed_when_no_store_took_it_then_its_record_is_deleted_by_the_replay(
    stores: Stores, landed_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both saves fail; one of them reached its store before its reply was lost (a timeout,
    # a kill). $connect is refused with 503, so that record (and its slot) must not stay.
    def failed(landed: InMemoryConnectionRepository | None) -> Callable[[Connection, int], None]:
        def save(connection: Connection, ttl_seconds: int) -> None:
            if landed is not None:
                landed.save(connection, ttl_seconds)
            raise StoreUnavailableError("save failed: TimeoutError")

        return save

    landed = stores.redis if landed_in == "redis" else stores.dynamodb
    monkeypatch.setattr(stores.primary, "save", failed(landed if landed_in == "redis" else None))
    monkeypatch.setattr(
        stores.secondary, "save", failed(landed if landed_in == "dynamodb" else None)
    )

    with pytest.raises(StoreUnavailableError, match="neither"):
        stores.repository.save(a_connection("refused="), 600)
    assert landed.get("refused=") == a_connection("refused=")

    report = stores.repository.reconcile()
    assert (report.primary_deletes, report.secondary_deletes, report.left_in_process) == (1, 1, 0)
    assert len(stores.redis) == 0 and len(stores.dynamodb) == 0


# --- get and refresh -------------------------------------------------------------------------


def test_given_the_record_in_redis_then_dynamodb_is_not_asked(stores: Stores) -> None:
    stores.redis.save(a_connection(), 600)

    assert stores.repository.get("L0SM9cOFvHcCIhw=") == a_connection()
    stores.repository.refresh("L0SM9cOFvHcCIhw=", 600)

    assert stores.secondary.calls == Counter()


def test_given_a_record_written_during_an_outage_when_redis_is_back_then_it_is_found_and_refreshed(
    stores: Stores,
) -> None:
    stores.redis.available = False
    stores.repository.save(a_connection(), 30)
    stores.redis.available = True

    assert stores.repository.get("L0SM9cOFvHcCIhw=") == a_connection()
    stores.repository.refresh("L0SM9cOFvHcCIhw=", 600)

    assert stores.dynamodb.ttl("L0SM9cOFvHcCIhw=") == 600
    assert stores.redis.ttl("L0SM9cOFvHcCIhw=") is None  # refresh never creates a record


def test_given_both_stores_answer_without_the_record_then_not_found_is_definite(
    stores: Stores,
) -> None:
    with pytest.raises(ConnectionNotFoundError):
        stores.repository.get("gone=")
    with pytest.raises(ConnectionNotFoundError):
        stores.repository.refresh("gone=", 600)
    assert len(stores.redis) == 0 and len(stores.dynamodb) == 0


def test_given_redis_down_and_the_record_not_in_dynamodb_then_not_found_is_not_definite(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection(), 600)  # written before the outage
    stores.redis.available = False

    with pytest.raises(StoreUnavailableError):
        stores.repository.get("L0SM9cOFvHcCIhw=")
    with pytest.raises(StoreUnavailableError):
        stores.repository.refresh("L0SM9cOFvHcCIhw=", 600)
    assert [event.operation for event in stores.events] == ["get", "refresh"]


def test_given_dynamodb_down_and_the_record_not_in_redis_then_not_found_is_not_definite(
    stores: Stores,
) -> None:
    stores.dynamodb.available = False

    with pytest.raises(StoreUnavailableError):
        stores.repository.get("L0SM9cOFvHcCIhw=")
    with pytest.raises(StoreUnavailableError):
        stores.repository.refresh("L0SM9cOFvHcCIhw=", 600)
    assert stores.events == []  # Redis answered: nothing failed over


def test_given_redis_down_then_records_in_dynamodb_are_found_and_refreshed(stores: Stores) -> None:
    stores.dynamodb.save(a_connection(), 30)
    stores.redis.available = False

    assert stores.repository.get("L0SM9cOFvHcCIhw=") == a_connection()
    stores.repository.refresh("L0SM9cOFvHcCIhw=", 600)

    assert stores.dynamodb.ttl("L0SM9cOFvHcCIhw=") == 600


# --- delete ----------------------------------------------------------------------------------


def test_when_deleting_then_both_stores_lose_the_record_and_it_is_idempotent(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("a="), 600)
    stores.dynamodb.save(a_connection("b="), 600)

    for connection_id in ("a=", "b=", "a=", "never="):
        stores.repository.delete(connection_id)

    assert len(stores.redis) == 0 and len(stores.dynamodb) == 0


# --- deletes are never forgotten ---------------------------------------------------------------


def test_given_redis_down_when_deleting_then_a_tombstone_replaces_the_dynamodb_copy_and_is_replayed(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("a="), 600)
    stores.dynamodb.save(a_connection("a="), 600)
    stores.redis.available = False

    stores.repository.delete("a=")  # no error: the delete is remembered durably

    assert stores.dynamodb.buried == ["a="] and len(stores.dynamodb) == 0
    stores.redis.available = True
    assert len(stores.redis) == 1, "Redis still holds it until the replay"
    report = stores.repository.reconcile()
    assert (report.primary_deletes, len(stores.redis), stores.dynamodb.buried) == (1, 0, [])
    assert stores.repository.reconcile().primary_deletes == 0, "a replay is done once"


def test_given_dynamodb_down_when_deleting_then_redis_remembers_the_dynamodb_delete(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("a="), 600)
    stores.dynamodb.save(a_connection("a="), 600)
    stores.dynamodb.available = False

    stores.repository.delete("a=")

    assert len(stores.redis) == 0 and stores.redis.pending == ["a="]
    stores.dynamodb.available = True
    assert stores.repository.reconcile().secondary_deletes == 1
    assert len(stores.dynamodb) == 0 and stores.redis.pending == []


def test_given_redis_loses_its_data_after_remembering_a_dynamodb_delete_then_this_process_still_replays_it(
    stores: Stores,
) -> None:
    # Soak run G, seed 20000: dynamodb_down, then redis_wipe before the next reconcile.
    stores.dynamodb.save(a_connection("a="), 600)
    stores.dynamodb.available = False
    stores.repository.delete("a=")
    assert stores.redis.pending == ["a="]

    stores.redis.pending = []  # Redis restarted without its data
    stores.dynamodb.available = True
    report = stores.repository.reconcile()

    assert (report.secondary_deletes, report.left_in_process) == (1, 0)
    assert len(stores.dynamodb) == 0


def test_a_dynamodb_delete_redis_remembers_is_replayed_once_and_not_right_after_it_failed(
    stores: Stores,
) -> None:
    stores.dynamodb.save(a_connection("a="), 600)
    stores.dynamodb.available = False
    stores.repository.delete("a=")
    stores.repository.save(a_connection("b="), 600)  # Redis answers: nothing is due yet

    assert stores.secondary.calls["delete_many"] == 0
    assert stores.secondary_breaker.current_state == "closed"
    stores.dynamodb.available = True
    assert stores.repository.reconcile().secondary_deletes == 1  # not twice (list and copy)
    assert stores.repository.reconcile().secondary_deletes == 0


def tombstoned(count: int) -> Stores:
    """Stores where ``count`` connections were deleted while Redis was down (tombstones)."""
    stores = Stores()
    for index in range(count):
        stores.redis.save(a_connection(f"c{index}="), 600)
    stores.redis.available = False
    for index in range(count):
        stores.repository.delete(f"c{index}=")
    stores.redis.available = True
    return stores


def test_a_backlog_larger_than_a_batch_is_replayed_in_one_scheduled_run() -> None:
    stores = tombstoned(5)

    report = stores.repository.reconcile(limit=2)

    assert report.primary_deletes == 5 and len(stores.redis) == 0
    assert stores.dynamodb.buried == []
    assert stores.primary.calls["delete_many"] == 3  # batches of 2, 2 and 1


def test_a_run_bounded_to_one_batch_leaves_the_rest_for_the_next_run() -> None:
    stores = tombstoned(3)

    report = stores.repository.reconcile(limit=2, max_batches=1)

    assert report.primary_deletes == 2 and stores.dynamodb.buried == ["c2="]
    assert stores.repository.reconcile(limit=2, max_batches=1).primary_deletes == 1
    assert len(stores.redis) == 0 and stores.dynamodb.buried == []


def test_given_both_stores_down_when_deleting_then_this_process_remembers_and_retries(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("a="), 600)
    stores.dynamodb.save(a_connection("a="), 600)
    stores.redis.available = stores.dynamodb.available = False

    with pytest.raises(StoreUnavailableError, match="this process will retry it"):
        stores.repository.delete("a=")

    assert stores.repository.reconcile().left_in_process == 1, "still down: kept"
    stores.redis.available = stores.dynamodb.available = True
    report = stores.repository.reconcile()
    assert (report.primary_deletes, report.secondary_deletes, report.left_in_process) == (1, 1, 0)
    assert len(stores.redis) == 0 and len(stores.dynamodb) == 0


def test_given_the_breaker_open_when_deleting_then_redis_is_skipped_and_the_tombstone_replayed(
    stores: Stores,
) -> None:
    # Soak finding 14: asking a hung Redis cost each $disconnect its timeout and retry.
    stores.redis.save(a_connection("a="), 600)
    stores.redis.available = False
    for index in range(3):  # opens the breaker (fail_max 3)
        stores.repository.save(a_connection(f"x{index}="), 600)
    assert stores.repository.breaker.current_state == "open"
    stores.redis.available = True  # back, and the breaker has not noticed yet

    stores.repository.delete("a=")

    assert stores.primary.calls["delete"] == 0, "an open breaker skips Redis"
    assert stores.dynamodb.buried == ["a="]
    assert [(event.operation, event.reason) for event in stores.events[-1:]] == [
        ("delete", CIRCUIT_OPEN)
    ]
    assert stores.repository.reconcile().primary_deletes == 1  # the schedule ignores the breaker
    assert (len(stores.redis), stores.dynamodb.buried) == (0, [])


def test_a_tombstone_deletes_its_own_connection_only() -> None:
    clock = FixedClock(NOW)
    redis, dynamodb = InMemoryConnectionRepository(clock), InMemoryConnectionRepository(clock)
    repository = FailoverConnectionRepository(
        primary=redis, secondary=dynamodb, pending_deletes=redis, breaker=create_circuit_breaker()
    )
    redis.save(a_connection("closed=", user_id="alice"), 600)
    redis.save(a_connection("open=", user_id="alice"), 600)  # same user, another connection
    redis.available = False
    repository.delete("closed=")
    redis.available = True

    repository.reconcile()

    assert redis.get("open=") == a_connection("open=", user_id="alice")
    with pytest.raises(ConnectionNotFoundError):
        redis.get("closed=")


def test_given_a_record_in_dynamodb_when_redis_answers_a_ping_then_its_slot_is_counted(
    stores: Stores,
) -> None:
    stores.dynamodb.save(a_connection("during="), 600)  # saved while Redis was down

    stores.repository.refresh("during=", 600)

    assert stores.redis.counted == {"during=": "user-1"}
    stores.repository.delete("during=")
    # A ping that raced the $disconnect cannot count it again.
    stores.redis.count_slot(a_connection("during="), 600)
    assert stores.redis.counted == {}


def test_when_the_breaker_closes_after_an_outage_then_the_next_operation_replays_the_tombstones() -> (
    None
):
    stores = Stores(fail_max=1, reset_timeout_seconds=0.05)
    stores.redis.save(a_connection("a="), 600)
    stores.redis.available = False
    stores.repository.save(a_connection("opens="), 600)  # the breaker opens
    stores.repository.delete("a=")  # tombstoned
    stores.redis.available = True

    # Bounded poll: the breaker's reset timer is wall time; saves go to Redis once it closes.
    deadline = time.monotonic() + 5.0
    index = 0
    while stores.dynamodb.buried and time.monotonic() < deadline:
        index += 1
        stores.repository.save(a_connection(f"after{index}="), 600)
    assert stores.dynamodb.buried == []
    with pytest.raises(ConnectionNotFoundError):
        stores.redis.get("a=")


# --- the circuit breaker ---------------------------------------------------------------------


def test_given_redis_keeps_failing_when_the_breaker_opens_then_redis_is_no_longer_called(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    stores.redis.available = False

    with caplog.at_level(logging.INFO, logger="adapters.connection_store.failover"):
        for index in range(10):
            stores.repository.save(a_connection(f"c{index}="), 600)

    changes = [r for r in caplog.records if r.getMessage().startswith("circuit breaker redis:")]
    assert [(r.levelno, r.to_state) for r in changes] == [(logging.ERROR, "open")]  # type: ignore[attr-defined]

    assert stores.primary.calls["save"] == 3  # fail_max, then the circuit is open
    assert [event.reason for event in stores.events] == [PRIMARY_UNAVAILABLE] * 3 + [
        CIRCUIT_OPEN
    ] * 7
    assert len(stores.dynamodb) == 10
    assert stores.repository.breaker.current_state == "open"


def open_both_breakers(stores: Stores) -> None:
    """Both stores fail until both breakers are open (fail_max 3), then both come back."""
    stores.redis.available = False
    stores.dynamodb.available = False
    for index in range(3):
        with pytest.raises(StoreUnavailableError):
            stores.repository.save(a_connection(f"down{index}="), 600)
    assert stores.repository.breaker.current_state == "open"
    assert stores.secondary_breaker.current_state == "open"


def test_given_both_breakers_open_and_the_stores_back_when_saving_then_dynamodb_is_asked_anyway(
    stores: Stores,
) -> None:
    open_both_breakers(stores)
    stores.redis.available = True
    stores.dynamodb.available = True
    calls_to_redis = stores.primary.calls["save"]

    stores.repository.save(a_connection("after="), 600)  # no 503 while a store answers

    assert stores.dynamodb.get("after=") == a_connection("after=")
    assert stores.primary.calls["save"] == calls_to_redis  # Redis's breaker still skips it
    assert stores.secondary_breaker.current_state == "closed"  # the answer closed it
    assert stores.repository.breaker.current_state == "open"


def test_given_both_breakers_open_and_both_stores_down_then_dynamodb_is_asked_and_stays_open(
    stores: Stores,
) -> None:
    open_both_breakers(stores)
    calls_to_dynamodb = stores.secondary.calls["save"]

    with pytest.raises(StoreUnavailableError):
        stores.repository.save(a_connection("still-down="), 600)

    assert stores.secondary.calls["save"] == calls_to_dynamodb + 1
    assert stores.secondary_breaker.current_state == "open"


def test_given_both_breakers_open_when_pinging_a_record_in_dynamodb_then_it_is_found_and_renewed(
    stores: Stores,
) -> None:
    stores.dynamodb.save(a_connection("outage="), 600)
    open_both_breakers(stores)
    stores.dynamodb.available = True

    stores.repository.refresh("outage=", 600)

    assert stores.repository.get("outage=") == a_connection("outage=")
    assert stores.secondary_breaker.current_state == "closed"


def test_given_redis_answers_and_dynamodbs_breaker_open_then_dynamodb_is_not_the_last_resort(
    stores: Stores,
) -> None:
    stores.dynamodb.available = False
    for _ in range(3):
        with pytest.raises(StoreUnavailableError):
            stores.repository.get("nowhere=")
    assert stores.secondary_breaker.current_state == "open"
    calls_to_dynamodb = stores.secondary.calls["get"]

    with pytest.raises(StoreUnavailableError):
        stores.repository.get("nowhere=")

    assert stores.secondary.calls["get"] == calls_to_dynamodb  # skipped: Redis was asked


def test_given_missing_records_then_the_breaker_does_not_count_them_as_failures(
    stores: Stores,
) -> None:
    for _ in range(10):
        with pytest.raises(ConnectionNotFoundError):
            stores.repository.refresh("gone=", 600)

    assert stores.repository.breaker.current_state == "closed"
    assert stores.primary.calls["refresh"] == 10


def test_given_an_open_breaker_when_redis_recovers_then_it_half_opens_and_returns_to_redis() -> (
    None
):
    stores = Stores(fail_max=1, reset_timeout_seconds=0.05)
    stores.redis.available = False
    stores.repository.save(a_connection("during="), 600)
    assert stores.repository.breaker.current_state == "open"
    stores.redis.available = True

    # Bounded poll on the condition "a save landed in Redis" (the breaker's timer is wall time).
    deadline = time.monotonic() + 5.0
    index = 0
    while stores.redis.ttl(f"after{index}=") is None and time.monotonic() < deadline:
        index += 1
        stores.repository.save(a_connection(f"after{index}="), 600)
    assert stores.redis.ttl(f"after{index}=") == 600
    assert stores.repository.breaker.current_state == "closed"
    assert stores.dynamodb.get("during=") == a_connection("during=")


def test_given_a_failing_listener_then_the_operation_still_succeeds() -> None:
    def explode(event: FailoverEvent) -> None:
        raise RuntimeError("metrics backend down")

    clock = FixedClock(NOW)
    redis = InMemoryConnectionRepository(clock)
    redis.available = False
    dynamodb = InMemoryConnectionRepository(clock)
    repository = FailoverConnectionRepository(
        primary=redis,
        secondary=dynamodb,
        pending_deletes=redis,
        breaker=create_circuit_breaker(),
        on_failover=explode,
    )

    repository.save(a_connection(), 600)

    assert dynamodb.get("L0SM9cOFvHcCIhw=") == a_connection()


def test_given_one_slow_redis_call_then_other_threads_are_not_queued_behind_it(
    stores: Stores,
) -> None:
    # pybreaker's call() would hold the breaker's lock across the slow call; calling() does not.
    release = threading.Event()
    entered = threading.Event()
    stores.redis.save(a_connection("fast="), 600)

    def block_first_call() -> None:
        if not entered.is_set():
            entered.set()
            release.wait(timeout=10)

    stores.primary.before_call = block_first_call
    slow = threading.Thread(target=stores.repository.get, args=("fast=",))
    slow.start()
    try:
        assert entered.wait(timeout=5)
        answers: list[Connection] = []
        fast = threading.Thread(target=lambda: answers.append(stores.repository.get("fast=")))
        fast.start()
        fast.join(timeout=5)
        assert answers == [a_connection("fast=")]
    finally:
        release.set()
        slow.join(timeout=5)


@pytest.mark.parametrize("concurrent", ["save", "refresh"])
def test_given_an_open_breaker_past_its_reset_then_one_trial_reaches_redis_and_the_others_fail_over(
    concurrent: str,
) -> None:
    # reset 0 s: the first call after the breaker opened is its trial (no wall-clock wait).
    stores = Stores(fail_max=1, reset_timeout_seconds=0.0)
    stores.dynamodb.save(a_connection("pinging="), 600)  # for the refreshes
    stores.redis.available = False
    stores.repository.save(a_connection("opens="), 600)
    assert stores.repository.breaker.current_state == "open"
    stores.redis.available = True
    release = threading.Event()
    entered = threading.Event()

    def hold_the_trial() -> None:
        entered.set()
        release.wait(timeout=10)

    stores.primary.before_call = hold_the_trial
    calls_before = sum(stores.primary.calls.values())
    trial = threading.Thread(target=stores.repository.save, args=(a_connection("trial="), 600))
    trial.start()
    try:
        assert entered.wait(timeout=5)  # the trial is inside Redis
        stores.primary.before_call = None
        for index in range(5):  # meanwhile, nothing else reaches Redis
            if concurrent == "save":
                stores.repository.save(a_connection(f"other{index}="), 600)
                assert stores.dynamodb.get(f"other{index}=") == a_connection(f"other{index}=")
            else:
                stores.repository.refresh("pinging=", 600)
        assert sum(stores.primary.calls.values()) == calls_before + 1
    finally:
        release.set()
        trial.join(timeout=5)
    assert stores.redis.get("trial=") == a_connection("trial=")
    assert stores.repository.breaker.current_state == "closed"


# --- through the Heartbeat use case ----------------------------------------------------------


def heartbeat(stores: Stores, sender: InMemoryMessageSender) -> Heartbeat:
    return Heartbeat(repository=stores.repository, sender=sender, clock=stores.clock)


def test_given_redis_down_and_a_record_only_in_redis_when_pinged_then_pong_and_the_socket_stays_open(
    stores: Stores,
) -> None:
    sender = InMemoryMessageSender()
    stores.redis.save(a_connection(), 600)
    stores.redis.available = False

    result = heartbeat(stores, sender).execute(HeartbeatCommand(connection_id="L0SM9cOFvHcCIhw="))

    assert result.outcome is HeartbeatOutcome.PONG_UNRECORDED
    assert sender.closed == []
    assert result.server_time is not None, "a pong all the same"


def test_given_both_stores_answer_without_the_record_when_pinged_then_the_connection_is_closed(
    stores: Stores,
) -> None:
    sender = InMemoryMessageSender()

    result = heartbeat(stores, sender).execute(HeartbeatCommand(connection_id="L0SM9cOFvHcCIhw="))

    assert result.outcome is HeartbeatOutcome.EXPIRED
    assert sender.closed == ["L0SM9cOFvHcCIhw="]


def test_given_a_limit_refusal_from_the_primary_then_it_is_an_answer_not_a_failover(
    stores: Stores,
) -> None:
    from domain.errors import ConnectionLimitExceededError

    def refuse() -> None:
        raise ConnectionLimitExceededError("user")

    stores.primary.before_call = refuse
    for _ in range(5):
        with pytest.raises(ConnectionLimitExceededError):
            stores.repository.save(a_connection(), 600)

    assert len(stores.dynamodb) == 0, "a refused connection is stored nowhere"
    assert stores.events == []
    assert stores.repository.breaker.current_state == "closed"


# --- the directory ---------------------------------------------------------------------------


def listed(stores: Stores, user_id: str = "user-1") -> list[str]:
    return sorted(c.connection_id for c in stores.repository.connections_of(user_id))


def test_given_records_in_both_stores_then_the_directory_lists_their_union_once(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("in-redis="), 600)
    stores.dynamodb.save(a_connection("in-dynamodb="), 600)
    stores.redis.save(a_connection("in-both="), 600)  # a retried $connect after a lost reply
    stores.dynamodb.save(a_connection("in-both="), 600)
    stores.redis.save(a_connection("other=", user_id="user-2"), 600)

    assert listed(stores) == ["in-both=", "in-dynamodb=", "in-redis="]
    assert stores.events == []


def test_given_an_id_redis_holds_for_another_user_then_dynamodbs_older_copy_is_not_listed(
    stores: Stores,
) -> None:
    stores.dynamodb.save(a_connection("moved=", user_id="user-1"), 600)  # during an outage
    stores.redis.save(a_connection("moved=", user_id="user-2"), 600)  # saved again after

    assert stores.repository.get("moved=").user_id == "user-2"
    assert listed(stores, "user-1") == []
    assert listed(stores, "user-2") == ["moved="]


@pytest.mark.parametrize(
    "missed_by",
    ["redis", "dynamodb"],
    ids=["tombstone-in-dynamodb", "redis-remembers-it-closed"],
)
def test_given_a_delete_one_store_missed_then_the_record_it_still_holds_is_not_listed(
    stores: Stores, missed_by: str
) -> None:
    # Given the record in the store that then misses the $disconnect's delete
    holder = stores.redis if missed_by == "redis" else stores.dynamodb
    holder.save(a_connection("closed="), 600)
    holder.save(a_connection("open="), 600)
    holder.available = False
    stores.repository.delete("closed=")  # remembered in the other store
    holder.available = True
    assert holder.get("closed=") == a_connection("closed=")

    assert listed(stores) == ["open="]
    assert holder.get("closed=") == a_connection("closed="), "a listing writes nothing"


def test_given_a_delete_neither_store_took_then_it_is_not_listed_from_either(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("closed-r="), 600)
    stores.dynamodb.save(a_connection("closed-d="), 600)
    stores.redis.available = stores.dynamodb.available = False
    for connection_id in ("closed-r=", "closed-d="):
        with pytest.raises(StoreUnavailableError):
            stores.repository.delete(connection_id)  # this process remembers them
    stores.redis.available = stores.dynamodb.available = True

    assert listed(stores) == []


def test_given_redis_down_then_the_directory_answers_from_dynamodb_and_reports_the_failover(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("in-redis="), 600)
    stores.dynamodb.save(a_connection("in-dynamodb="), 600)
    stores.redis.available = False

    assert listed(stores) == ["in-dynamodb="]
    assert stores.events == [
        FailoverEvent(operation="connections_of", reason=PRIMARY_UNAVAILABLE, connection_id="")
    ]


def test_given_dynamodb_down_then_the_directory_answers_from_redis(stores: Stores) -> None:
    stores.redis.save(a_connection("in-redis="), 600)
    stores.dynamodb.save(a_connection("in-dynamodb="), 600)
    stores.dynamodb.available = False

    assert listed(stores) == ["in-redis="]


def test_given_both_stores_down_then_the_directory_is_store_unavailable(stores: Stores) -> None:
    stores.redis.available = stores.dynamodb.available = False

    with pytest.raises(StoreUnavailableError):
        stores.repository.connections_of("user-1")


def test_given_expired_records_in_either_store_then_none_is_listed_and_none_revived(
    stores: Stores,
) -> None:
    stores.redis.save(a_connection("short-r="), 10)
    stores.dynamodb.save(a_connection("short-d="), 10)
    stores.redis.save(a_connection("long="), 600)
    stores.clock.advance(11)

    assert listed(stores) == ["long="]
    with pytest.raises(ConnectionNotFoundError):
        stores.repository.get("short-d=")
