"""The behaviour every ``ConnectionRepository`` adapter must show, as a reusable test class.

A test module subclasses :class:`ConnectionRepositoryContract` and provides two fixtures:

- ``repository``: the adapter under test, on an empty store;
- ``remaining_ttl``: a callable ``connection_id -> float | None`` giving the seconds the
  store says the record has left (``None`` when it holds no live record).

The same suite then runs against every implementation: standalone Redis, a 3-master Redis
Cluster (also over TLS with AUTH), DynamoDB (moto), the failover composition and the
in-memory fake.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from application.ports import ConnectionRepository
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError

RemainingTtl = Callable[[str], "float | None"]

CONNECTED_AT = datetime(2026, 1, 3, 0, 0, 0, tzinfo=UTC)

# API Gateway connection ids are base64-like: '=', '+' and '/' must survive untouched.
AWKWARD_IDS = ("L0SM9cOFvHcCIhw=", "a+b/c==", "Z" * 64)


def a_connection(connection_id: str = "L0SM9cOFvHcCIhw=", user_id: str = "user-1") -> Connection:
    """A connection record with a whole-second ``connected_at`` (the stored precision)."""
    return Connection(connection_id=connection_id, user_id=user_id, connected_at=CONNECTED_AT)


class ConnectionRepositoryContract:
    """Given an empty store, the port's guarantees hold (see ``application.ports``)."""

    def test_given_a_saved_record_when_read_then_it_is_returned_unchanged(
        self, repository: ConnectionRepository
    ) -> None:
        for connection_id in AWKWARD_IDS:
            repository.save(a_connection(connection_id), 600)
            assert repository.get(connection_id) == a_connection(connection_id)

    def test_given_a_saved_record_then_its_ttl_is_the_one_saved(
        self, repository: ConnectionRepository, remaining_ttl: RemainingTtl
    ) -> None:
        repository.save(a_connection(), 600)
        remaining = remaining_ttl("L0SM9cOFvHcCIhw=")
        assert remaining is not None and 590 <= remaining <= 600

    def test_given_nothing_stored_when_read_then_not_found(
        self, repository: ConnectionRepository
    ) -> None:
        with pytest.raises(ConnectionNotFoundError):
            repository.get("never-stored=")

    def test_given_a_record_when_saved_again_then_the_second_write_wins(
        self, repository: ConnectionRepository
    ) -> None:
        repository.save(a_connection(user_id="user-1"), 600)
        repository.save(a_connection(user_id="user-2"), 600)
        assert repository.get("L0SM9cOFvHcCIhw=").user_id == "user-2"

    def test_given_a_record_when_refreshed_then_its_ttl_is_reset_and_connected_at_kept(
        self, repository: ConnectionRepository, remaining_ttl: RemainingTtl
    ) -> None:
        repository.save(a_connection(), 30)
        repository.refresh("L0SM9cOFvHcCIhw=", 600)
        remaining = remaining_ttl("L0SM9cOFvHcCIhw=")
        assert remaining is not None and remaining > 30
        assert repository.get("L0SM9cOFvHcCIhw=").connected_at == CONNECTED_AT

    def test_given_no_record_when_refreshed_then_not_found_and_nothing_is_created(
        self, repository: ConnectionRepository, remaining_ttl: RemainingTtl
    ) -> None:
        with pytest.raises(ConnectionNotFoundError):
            repository.refresh("never-stored=", 600)
        assert remaining_ttl("never-stored=") is None
        with pytest.raises(ConnectionNotFoundError):
            repository.get("never-stored=")

    def test_given_a_record_when_deleted_then_it_is_gone_and_deleting_again_is_fine(
        self, repository: ConnectionRepository, remaining_ttl: RemainingTtl
    ) -> None:
        repository.save(a_connection(), 600)
        repository.delete("L0SM9cOFvHcCIhw=")
        assert remaining_ttl("L0SM9cOFvHcCIhw=") is None
        with pytest.raises(ConnectionNotFoundError):
            repository.get("L0SM9cOFvHcCIhw=")
        repository.delete("L0SM9cOFvHcCIhw=")
        repository.delete("never-stored=")

    def test_given_many_records_then_each_is_independent(
        self, repository: ConnectionRepository
    ) -> None:
        ids = [f"conn-{index}=" for index in range(24)]
        for index, connection_id in enumerate(ids):
            repository.save(a_connection(connection_id, user_id=f"user-{index}"), 600)
        for connection_id in ids[::2]:
            repository.delete(connection_id)
        for connection_id in ids[1::2]:
            repository.refresh(connection_id, 600)
        for index, connection_id in enumerate(ids):
            if index % 2 == 0:
                with pytest.raises(ConnectionNotFoundError):
                    repository.get(connection_id)
            else:
                assert repository.get(connection_id).user_id == f"user-{index}"
