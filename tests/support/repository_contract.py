"""The behaviour every ``ConnectionRepository`` adapter must show, as a reusable test class.

A test module subclasses :class:`ConnectionRepositoryContract` and provides three fixtures:

- ``repository``: the adapter under test, on an empty store; it is also the
  ``ConnectionDirectory`` (``connections_of``);
- ``remaining_ttl``: a callable ``connection_id -> float | None`` giving the seconds the
  store says the record has left (``None`` when it holds no live record);
- ``expire_record``: a callable ``connection_id -> None`` that makes the stored record's TTL
  end now, behind the adapter's back, as the store itself would (Redis: the key goes, its
  directory entry and slot stay; DynamoDB: ``expiresAt`` passes, the item stays).

The same suite then runs against every implementation: standalone Redis, a 3-master Redis
Cluster (also over TLS with AUTH), DynamoDB (moto), the failover composition and the
in-memory fake.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import pytest

from application.ports import ConnectionDirectory, ConnectionRepository
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError

RemainingTtl = Callable[[str], "float | None"]
ExpireRecord = Callable[[str], None]


class DirectoryRepository(ConnectionRepository, ConnectionDirectory, Protocol):
    """A connection store that is also the directory of its connections."""


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


def ids_of(connections: list[Connection]) -> list[str]:
    """The connectionIds of a listing, sorted."""
    return sorted(connection.connection_id for connection in connections)


class ConnectionDirectoryContract:
    """Given an empty store, ``connections_of`` lists exactly each user's live connections."""

    def test_given_no_connection_then_a_user_has_none(
        self, repository: DirectoryRepository
    ) -> None:
        repository.save(a_connection("someone-elses="), 600)
        assert repository.connections_of("nobody") == []
        assert repository.connections_of("") == [], "an empty userId names nobody"

    def test_given_users_with_connections_then_each_gets_exactly_theirs_unchanged(
        self, repository: DirectoryRepository
    ) -> None:
        # userIds one of which is a prefix of another, with a colon, and not ASCII.
        users = ["user-1", "user-10", "a:b", "a", "ü-7"]
        mine = {user: [f"{index}-{user}=" for index in range(3)] for user in users}
        mine["user-1"] += list(AWKWARD_IDS)
        for user, ids in mine.items():
            for connection_id in ids:
                repository.save(a_connection(connection_id, user_id=user), 600)

        for user, ids in mine.items():
            listed = repository.connections_of(user)
            assert ids_of(listed) == sorted(ids)
            assert all(
                connection == a_connection(connection.connection_id, user) for connection in listed
            )

    def test_given_ten_connections_when_some_are_deleted_then_only_the_others_are_listed(
        self, repository: DirectoryRepository
    ) -> None:
        ids = [f"ten-{index}=" for index in range(10)]
        for connection_id in ids:
            repository.save(a_connection(connection_id, user_id="alice"), 600)
        assert ids_of(repository.connections_of("alice")) == sorted(ids)

        for connection_id in ids[:4]:
            repository.delete(connection_id)
        repository.refresh(ids[4], 600)  # a ping keeps it listed

        assert ids_of(repository.connections_of("alice")) == sorted(ids[4:])

    def test_given_an_expired_record_then_it_is_never_listed(
        self, repository: DirectoryRepository, expire_record: ExpireRecord
    ) -> None:
        repository.save(a_connection("gone=", user_id="alice"), 600)
        repository.save(a_connection("live=", user_id="alice"), 600)

        expire_record("gone=")

        assert ids_of(repository.connections_of("alice")) == ["live="]
        assert ids_of(repository.connections_of("alice")) == ["live="], "a read changes nothing"

    def test_given_a_record_saved_again_for_another_user_then_only_that_user_lists_it(
        self, repository: DirectoryRepository
    ) -> None:
        repository.save(a_connection("moved=", user_id="alice"), 600)
        repository.save(a_connection("moved=", user_id="bob"), 600)

        assert repository.connections_of("alice") == []
        assert repository.connections_of("bob") == [a_connection("moved=", user_id="bob")]
