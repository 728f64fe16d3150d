"""Use cases on in-memory adapters: the specification's AC-1..AC-5 and the Heartbeat rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.in_memory import (
    FixedClock,
    InMemoryConnectionRepository,
    InMemoryMessageSender,
    InMemoryTokenVerifier,
)
from application.commands import (
    ConnectCommand,
    DisconnectCommand,
    HeartbeatCommand,
    HeartbeatOutcome,
    ReconcileCommand,
)
from application.ports import StoreReconciler
from application.use_cases import Connect, Disconnect, Heartbeat, Reconcile
from domain.connection import Connection, ReconcileReport, VerifiedIdentity
from domain.errors import (
    ConnectionNotFoundError,
    InvalidTokenError,
    StoreUnavailableError,
    VerifierUnavailableError,
)

CONNECTION_ID = "L0SM9cOFvHcCIhw="
USER_ID = "7d0c5f4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
START = datetime(2026, 1, 3, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def repository(clock: FixedClock) -> InMemoryConnectionRepository:
    return InMemoryConnectionRepository(clock)


@pytest.fixture
def sender() -> InMemoryMessageSender:
    return InMemoryMessageSender()


@pytest.fixture
def verifier() -> InMemoryTokenVerifier:
    identity = VerifiedIdentity(
        user_id=USER_ID, client_id="client", token_use="access", expires_at=START
    )
    return InMemoryTokenVerifier(
        {
            "good-token": identity,
            "expired-token": InvalidTokenError("expired"),
            "other-client-token": InvalidTokenError("wrong_client"),
            "id-token": InvalidTokenError("wrong_token_use"),
            "jwks-down-token": VerifierUnavailableError(),
        }
    )


@pytest.fixture
def connect(
    verifier: InMemoryTokenVerifier, repository: InMemoryConnectionRepository, clock: FixedClock
) -> Connect:
    return Connect(verifier=verifier, repository=repository, clock=clock)


@pytest.fixture
def heartbeat(
    repository: InMemoryConnectionRepository, sender: InMemoryMessageSender, clock: FixedClock
) -> Heartbeat:
    return Heartbeat(repository=repository, sender=sender, clock=clock)


def connected(connect: Connect) -> None:
    connect.execute(ConnectCommand(connection_id=CONNECTION_ID, token="good-token"))


# AC-1
def test_given_a_valid_token_when_connecting_then_the_connection_is_stored_for_600_s_and_its_id_returned(
    connect: Connect, repository: InMemoryConnectionRepository, sender: InMemoryMessageSender
) -> None:
    result = connect.execute(ConnectCommand(connection_id=CONNECTION_ID, token="good-token"))

    assert result.connection_id == CONNECTION_ID
    assert result.user_id == USER_ID
    assert repository.get(CONNECTION_ID) == Connection(
        connection_id=CONNECTION_ID, user_id=USER_ID, connected_at=START
    )
    assert repository.ttl(CONNECTION_ID) == 600
    assert sender.sent == {}, "$connect must never post to the connection (API Gateway answers 410)"


# AC-2 and the named rejection cases
@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("forged-token", "bad_signature"),
        ("expired-token", "expired"),
        ("other-client-token", "wrong_client"),
        ("id-token", "wrong_token_use"),
    ],
)
def test_given_an_invalid_token_when_connecting_then_invalid_token_and_nothing_stored(
    connect: Connect, repository: InMemoryConnectionRepository, token: str, reason: str
) -> None:
    with pytest.raises(InvalidTokenError) as raised:
        connect.execute(ConnectCommand(connection_id=CONNECTION_ID, token=token))

    assert raised.value.reason == reason
    assert len(repository) == 0


# AC-5
@pytest.mark.parametrize("token", [None, ""])
def test_given_no_token_when_connecting_then_missing_without_asking_the_verifier(
    connect: Connect,
    repository: InMemoryConnectionRepository,
    verifier: InMemoryTokenVerifier,
    token: str | None,
) -> None:
    with pytest.raises(InvalidTokenError) as raised:
        connect.execute(ConnectCommand(connection_id=CONNECTION_ID, token=token))

    assert raised.value.reason == "missing"
    assert verifier.calls == 0
    assert len(repository) == 0


def test_given_the_jwks_is_unreachable_when_connecting_then_verifier_unavailable_and_nothing_stored(
    connect: Connect, repository: InMemoryConnectionRepository
) -> None:
    with pytest.raises(VerifierUnavailableError):
        connect.execute(ConnectCommand(connection_id=CONNECTION_ID, token="jwks-down-token"))
    assert len(repository) == 0


def test_given_the_store_is_down_when_connecting_then_store_unavailable(
    connect: Connect, repository: InMemoryConnectionRepository
) -> None:
    repository.available = False
    with pytest.raises(StoreUnavailableError):
        connect.execute(ConnectCommand(connection_id=CONNECTION_ID, token="good-token"))


def test_the_ttl_is_configurable(
    verifier: InMemoryTokenVerifier, repository: InMemoryConnectionRepository, clock: FixedClock
) -> None:
    # (CONNECTION_TTL_SECONDS is validated once, by Settings: 1 s to 7 days.)
    Connect(verifier=verifier, repository=repository, clock=clock, ttl_seconds=30).execute(
        ConnectCommand(connection_id=CONNECTION_ID, token="good-token")
    )
    assert repository.ttl(CONNECTION_ID) == 30


# AC-3
def test_given_a_connection_when_disconnecting_then_its_record_is_deleted(
    connect: Connect, repository: InMemoryConnectionRepository
) -> None:
    connected(connect)

    result = Disconnect(repository=repository).execute(
        DisconnectCommand(connection_id=CONNECTION_ID)
    )

    assert result.connection_id == CONNECTION_ID
    with pytest.raises(ConnectionNotFoundError):
        repository.get(CONNECTION_ID)


def test_given_no_record_when_disconnecting_then_it_succeeds(
    repository: InMemoryConnectionRepository,
) -> None:
    Disconnect(repository=repository).execute(DisconnectCommand(connection_id="never-stored"))
    assert len(repository) == 0


# AC-4
def test_given_a_connection_when_pinging_then_the_ttl_is_back_to_600_s_and_the_pong_is_the_reply(
    connect: Connect,
    heartbeat: Heartbeat,
    repository: InMemoryConnectionRepository,
    sender: InMemoryMessageSender,
    clock: FixedClock,
) -> None:
    connected(connect)
    clock.advance(300)
    assert repository.ttl(CONNECTION_ID) == 300

    result = heartbeat.execute(HeartbeatCommand(connection_id=CONNECTION_ID, ping_id="42"))

    assert result.outcome is HeartbeatOutcome.PONG
    assert repository.ttl(CONNECTION_ID) == 600
    assert repository.get(CONNECTION_ID).connected_at == START, "a ping must not change connectedAt"
    assert (result.connection_id, result.ping_id) == (CONNECTION_ID, "42")
    assert result.server_time == datetime(2026, 1, 3, 0, 5, tzinfo=UTC), "the pong's serverTime"
    assert sender.sent == {}, "the pong is the route response, never a Management API post"


def test_given_a_ping_without_id_then_the_pong_has_no_id(
    connect: Connect, heartbeat: Heartbeat
) -> None:
    connected(connect)
    result = heartbeat.execute(HeartbeatCommand(connection_id=CONNECTION_ID))
    assert result.ping_id is None
    assert result.server_time is not None


def test_given_an_expired_record_when_pinging_then_error_sent_connection_closed_and_nothing_recreated(
    connect: Connect,
    heartbeat: Heartbeat,
    repository: InMemoryConnectionRepository,
    sender: InMemoryMessageSender,
    clock: FixedClock,
) -> None:
    connected(connect)
    clock.advance(600)  # the TTL ran out: the record is gone

    result = heartbeat.execute(HeartbeatCommand(connection_id=CONNECTION_ID, ping_id="7"))

    assert result.outcome is HeartbeatOutcome.EXPIRED
    assert result.server_time is None, "the connection is closing: no pong"
    assert json.loads(sender.sent[CONNECTION_ID][0]) == {
        "action": "error",
        "code": "connection_expired",
        "message": "this connection has no live record; reconnect with a fresh token",
        "id": "7",
    }
    assert sender.closed == [CONNECTION_ID]
    assert len(repository) == 0, "a ping must never recreate a missing record"


def test_given_a_never_stored_connection_that_is_already_gone_when_pinging_then_it_is_closed_quietly(
    heartbeat: Heartbeat, sender: InMemoryMessageSender
) -> None:
    sender.gone.add(CONNECTION_ID)
    result = heartbeat.execute(HeartbeatCommand(connection_id=CONNECTION_ID))
    assert result.outcome is HeartbeatOutcome.EXPIRED
    assert sender.closed == [CONNECTION_ID]


def test_given_the_store_is_down_when_pinging_then_the_reply_is_still_a_pong(
    connect: Connect,
    heartbeat: Heartbeat,
    repository: InMemoryConnectionRepository,
    sender: InMemoryMessageSender,
) -> None:
    connected(connect)
    repository.available = False

    result = heartbeat.execute(HeartbeatCommand(connection_id=CONNECTION_ID))

    assert result.outcome is HeartbeatOutcome.PONG_UNRECORDED
    assert result.server_time is not None, "a pong all the same"
    assert sender.sent == {}
    assert sender.closed == []


class CountingReconciler(StoreReconciler):
    """A reconciler that replays what it is told to, and counts its runs."""

    def __init__(self, report: ReconcileReport) -> None:
        self.report = report
        self.runs = 0

    def reconcile(self) -> ReconcileReport:
        self.runs += 1
        return self.report


def test_given_pending_deletes_when_reconciling_then_the_result_counts_what_was_replayed() -> None:
    reconciler = CountingReconciler(
        ReconcileReport(primary_deletes=2, secondary_deletes=1, left_in_process=3)
    )

    result = Reconcile(reconciler=reconciler).execute(ReconcileCommand())

    assert (result.primary_deletes, result.secondary_deletes, result.left_in_process) == (2, 1, 3)
    assert reconciler.runs == 1


def test_given_records_of_two_users_when_asking_the_in_memory_directory_then_only_the_live_ones_of_that_user():
    from datetime import UTC, datetime

    from adapters.in_memory.clock import FixedClock
    from adapters.in_memory.connection_repository import InMemoryConnectionRepository
    from domain.connection import Connection

    clock = FixedClock(datetime(2026, 1, 3, tzinfo=UTC))
    repository = InMemoryConnectionRepository(clock)
    for connection_id, user_id, ttl in (
        ("a1", "alice", 600),
        ("a2", "alice", 10),
        ("b1", "bob", 600),
    ):
        repository.save(
            Connection(connection_id=connection_id, user_id=user_id, connected_at=clock.now()), ttl
        )
    repository.delete("a1")
    repository.save(Connection(connection_id="a3", user_id="alice", connected_at=clock.now()), 600)
    clock.advance(11)

    assert [c.connection_id for c in repository.connections_of("alice")] == ["a3"]
    assert repository.connections_of("carol") == []
