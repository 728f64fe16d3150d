"""A dictionary with expiry, standing in for Redis in unit tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from application.ports import Clock, ConnectionDirectory, ConnectionRepository
from domain.connection import Connection
from domain.errors import ConnectionNotFoundError, StoreUnavailableError


class InMemoryConnectionRepository(ConnectionRepository, ConnectionDirectory):
    """Records with TTLs measured on the given :class:`Clock` (seconds).

    ``available = False`` makes every call raise ``StoreUnavailableError``, to test outages.
    It also plays either store of the failover repository: the primary's slot counting
    (``counted``: connectionId -> userId, never for a connection it deleted), memory of the
    deleted (``closed``) and list of the other store's pending deletes (``pending``), the
    secondary's ``renew``, tombstones (``buried``) and ``listing_of``. Thread-safe.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._records: dict[str, tuple[Connection, datetime]] = {}
        self._lock = threading.Lock()
        self.available = True
        self.counted: dict[str, str] = {}
        self.closed: set[str] = set()
        self.pending: list[str] = []
        self.buried: list[str] = []

    def _check(self) -> None:
        if not self.available:
            raise StoreUnavailableError("in-memory store switched off")

    def _live(self, connection_id: str) -> tuple[Connection, datetime] | None:
        entry = self._records.get(connection_id)
        if entry is not None and entry[1] <= self._clock.now():
            del self._records[connection_id]
            return None
        return entry

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Store the record until ``now + ttl_seconds``."""
        with self._lock:
            self._check()
            expires = self._clock.now() + timedelta(seconds=ttl_seconds)
            self._records[connection.connection_id] = (connection, expires)

    def get(self, connection_id: str) -> Connection:
        """The live record; raises ``ConnectionNotFoundError`` when absent or expired."""
        with self._lock:
            self._check()
            entry = self._live(connection_id)
            if entry is None:
                raise ConnectionNotFoundError()
            return entry[0]

    def connections_of(self, user_id: str) -> list[Connection]:
        """The live records of ``user_id`` (a scan of the dictionary: a test fake's price)."""
        with self._lock:
            self._check()
            return [
                entry[0]
                for connection_id in list(self._records)
                if (entry := self._live(connection_id)) is not None and entry[0].user_id == user_id
            ]

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Push the expiry of a live record to ``now + ttl_seconds``; never creates one."""
        with self._lock:
            self._check()
            entry = self._live(connection_id)
            if entry is None:
                raise ConnectionNotFoundError()
            self._records[connection_id] = (
                entry[0],
                self._clock.now() + timedelta(seconds=ttl_seconds),
            )

    def delete(self, connection_id: str) -> None:
        """Remove the record if present (and its count); remember the connection closed."""
        with self._lock:
            self._check()
            self._records.pop(connection_id, None)
            self.counted.pop(connection_id, None)
            self.closed.add(connection_id)

    def count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        """Count the connection in ``counted`` unless it was deleted here."""
        with self._lock:
            self._check()
            if connection.connection_id not in self.closed:
                self.counted[connection.connection_id] = connection.user_id

    def remember_secondary_delete(self, connection_id: str) -> None:
        """Add to ``pending``."""
        with self._lock:
            self._check()
            self.pending.append(connection_id)

    def pending_secondary_deletes(self, limit: int) -> list[str]:
        """The first ``limit`` of ``pending``."""
        with self._lock:
            self._check()
            return self.pending[:limit]

    def forget_secondary_deletes(self, connection_ids: Sequence[str]) -> None:
        """Remove from ``pending``."""
        with self._lock:
            self._check()
            self.pending = [pending for pending in self.pending if pending not in connection_ids]

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        """``delete`` each, and remove their tombstones from ``buried``."""
        for connection_id in connection_ids:
            self.delete(connection_id)
        with self._lock:
            self.buried = [buried for buried in self.buried if buried not in connection_ids]

    def renew(self, connection_id: str, ttl_seconds: int) -> Connection:
        """``refresh``, returning the record."""
        self.refresh(connection_id, ttl_seconds)
        return self.get(connection_id)

    def bury(self, connection_id: str, ttl_seconds: int) -> None:
        """Replace the record (if any) by a tombstone in ``buried``."""
        with self._lock:
            self._check()
            self._records.pop(connection_id, None)
            if connection_id not in self.buried:
                self.buried.append(connection_id)

    def tombstones(self, limit: int) -> list[str]:
        """The first ``limit`` of ``buried``."""
        with self._lock:
            self._check()
            return self.buried[:limit]

    def listing_of(
        self, user_id: str, primary_ids: Sequence[str]
    ) -> tuple[list[Connection], frozenset[str]]:
        """``connections_of``, and which of ``primary_ids`` are in ``buried``."""
        listed = self.connections_of(user_id)
        with self._lock:
            return listed, frozenset(i for i in primary_ids if i in self.buried)

    def superseded_among(self, connection_ids: Sequence[str]) -> frozenset[str]:
        """Which of ``connection_ids`` were deleted here (``closed``) or have a live record."""
        with self._lock:
            self._check()
            return frozenset(
                i for i in connection_ids if i in self.closed or self._live(i) is not None
            )

    def ttl(self, connection_id: str) -> float | None:
        """Seconds left for a live record, ``None`` when absent (test helper)."""
        with self._lock:
            entry = self._live(connection_id)
            if entry is None:
                return None
            return (entry[1] - self._clock.now()).total_seconds()

    def expire_now(self, connection_id: str) -> None:
        """Make the record's TTL end now, as if it had run out (test helper)."""
        with self._lock:
            entry = self._records.get(connection_id)
            if entry is not None:
                self._records[connection_id] = (entry[0], self._clock.now())

    def __len__(self) -> int:
        with self._lock:
            for connection_id in list(self._records):
                self._live(connection_id)
            return len(self._records)
