"""What this process remembers of the deletes a connection store could not take.

The failover (``failover.py``) remembers a delete durably in the other store whenever it
can: a Redis delete as a tombstone in DynamoDB, a DynamoDB delete in a Redis set. This
journal holds the rest, in memory: the deletes both stores failed, and a copy of those
DynamoDB failed (Redis holds them, but would lose them with its data). The reconciler
(``reconciler.py``) replays it; it also keeps whether a replay is due.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from typing import Final

logger = logging.getLogger("adapters.connection_store.failover")  # the failover's one logger

IN_PROCESS_MEMORY: Final = 10_000
"""Deletes this process remembers (the oldest are dropped, logged): those both stores
failed, and a copy of those DynamoDB failed, which Redis holds but would lose with its data."""

BOTH: Final = "both"
"""Neither store took the delete."""

SECONDARY: Final = "secondary"
"""The secondary's delete is due, and Redis did not take the reminder."""

SECONDARY_COPY: Final = "secondary-copy"
"""The secondary's delete is due, and Redis holds the reminder too."""

REPLAY_INTERVAL_SECONDS: Final = 1.0
"""An operation a store answered replays what is due at most this often."""


class DeleteJournal:
    """The in-process deletes (connectionId -> which store still owes it), oldest first, and
    whether a replay is due; thread-safe."""

    def __init__(self, capacity: int = IN_PROCESS_MEMORY) -> None:
        self._entries: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._due = False
        self._last_replay = 0.0

    def remember(self, connection_id: str, which: str) -> None:
        """Remember a delete (``BOTH``, ``SECONDARY`` or ``SECONDARY_COPY``); past the
        capacity the oldest is dropped (logged, unless Redis still holds it)."""
        with self._lock:
            self._entries[connection_id] = which
            self._entries.move_to_end(connection_id)
            if which != SECONDARY_COPY:  # a copy waits for the breaker or the schedule
                self._due = True
            while len(self._entries) > self._capacity:
                dropped, kind = self._entries.popitem(last=False)
                if kind == SECONDARY_COPY:  # Redis still holds it
                    continue
                logger.error(
                    "a delete neither store took is forgotten: its record lives until its TTL",
                    extra={"connection_id": dropped},
                )

    def oldest(self, most: int) -> list[tuple[str, str]]:
        """Up to ``most`` remembered deletes, oldest first."""
        with self._lock:
            return list(self._entries.items())[:most]

    def remembered_among(self, connection_ids: Sequence[str]) -> frozenset[str]:
        """Which of ``connection_ids`` have a delete remembered here (of any kind)."""
        with self._lock:
            return frozenset(i for i in connection_ids if i in self._entries)

    def primary_done(self, connection_ids: Sequence[str]) -> None:
        """The primary took these ``BOTH`` deletes: the secondary's remain."""
        with self._lock:
            for connection_id in connection_ids:
                if connection_id in self._entries:
                    self._entries[connection_id] = SECONDARY

    def forget(self, connection_ids: Sequence[str]) -> None:
        """Both stores took these deletes."""
        with self._lock:
            for connection_id in connection_ids:
                self._entries.pop(connection_id, None)

    def mark_due(self) -> None:
        """A replay is due (a breaker closed, or a backlog is left)."""
        with self._lock:
            self._due = True

    def take_due(self) -> bool:
        """Whether to replay now: due, and the last replay is :data:`REPLAY_INTERVAL_SECONDS`
        old; taking it clears the flag."""
        if not self._due:
            return False
        now = time.monotonic()
        with self._lock:
            if not self._due or now - self._last_replay < REPLAY_INTERVAL_SECONDS:
                return False
            self._due = False
            self._last_replay = now
            return True

    def settle(self, more: bool) -> int:
        """After a replay: due again when ``more`` is left in the stores or a delete the
        stores do not also hold is left here; the count of deletes left here."""
        with self._lock:
            self._due = more or any(which != SECONDARY_COPY for which in self._entries.values())
            return len(self._entries)
