"""What the failover (``failover.py``) and its reconciler (``reconciler.py``) need of their
two stores beyond the ``ConnectionRepository`` port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from application.ports import ConnectionDirectory, ConnectionRepository
from domain.connection import Connection


class PrimaryStore(ConnectionRepository, ConnectionDirectory, Protocol):
    """What the failover needs of its primary (Redis) beyond the port."""

    def superseded_among(self, connection_ids: Sequence[str]) -> frozenset[str]:
        """Which of ``connection_ids`` it answers for itself, whatever the other store
        holds: remembered deleted (a day) or holding a live record of (``get``'s answer)."""
        ...

    def count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        """Count the connection, whose record the secondary holds; never refuses it."""
        ...

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        """``delete`` each, in as few round trips as the store allows."""
        ...


class SecondaryStore(ConnectionRepository, Protocol):
    """What the failover needs of its secondary (DynamoDB) beyond the port."""

    def listing_of(
        self, user_id: str, primary_ids: Sequence[str]
    ) -> tuple[list[Connection], frozenset[str]]:
        """The user's live records here, and which of ``primary_ids`` (the primary's
        listing) have a tombstone here (their delete is due in the primary)."""
        ...

    def renew(self, connection_id: str, ttl_seconds: int) -> Connection:
        """``refresh``, returning the record."""
        ...

    def bury(self, connection_id: str, ttl_seconds: int) -> None:
        """Replace the connection's record (if any) by a tombstone: its primary delete is due."""
        ...

    def tombstones(self, limit: int) -> list[str]:
        """Up to ``limit`` connectionIds with a tombstone."""
        ...

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        """Remove the items (tombstones or records) of these closed connections; idempotent."""
        ...


class PendingSecondaryDeletes(Protocol):
    """Remembers, durably and beside the primary, the deletes the secondary still owes."""

    def remember_secondary_delete(self, connection_id: str) -> None:
        """Remember that the secondary still holds ``connection_id``."""
        ...

    def pending_secondary_deletes(self, limit: int) -> list[str]:
        """Up to ``limit`` connectionIds remembered by :meth:`remember_secondary_delete`."""
        ...

    def forget_secondary_deletes(self, connection_ids: Sequence[str]) -> None:
        """The secondary took these deletes."""
        ...
