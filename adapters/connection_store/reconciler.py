"""Replays the deletes a connection store could not take (the failover's rules, in
``failover.py``): the tombstones in the secondary, the primary's set of the secondary's
deletes, and this process's journal (``journal.py``). Idempotent; never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from adapters.connection_store.breakers import Guard, Skipped
from adapters.connection_store.failover_roles import (
    PendingSecondaryDeletes,
    PrimaryStore,
    SecondaryStore,
)
from adapters.connection_store.journal import BOTH, DeleteJournal
from application.ports import StoreReconciler
from domain.connection import ReconcileReport
from domain.errors import StoreUnavailableError

logger = logging.getLogger("adapters.connection_store.failover")  # the failover's one logger

RECONCILE_BATCH: Final = 200
"""Deletes read and replayed per batch (one Redis round trip, eight DynamoDB batch writes)."""

RECONCILE_MAX_BATCHES: Final = 10
"""Batches per kind of delete and per :meth:`FailoverReconciler.reconcile`: a backlog bigger
than that is left for the next run (which comes at once: ``reconcile`` marks itself due)."""


class FailoverReconciler(StoreReconciler):
    """The ``StoreReconciler`` of a primary and a secondary store.

    Args:
        primary: the primary store (Redis), called without its breaker: the schedule asks
            it whatever the breaker says, so a replay never waits for traffic.
        secondary: the secondary store (DynamoDB), called through ``secondary_guard``.
        pending_deletes: the deletes the secondary owes, remembered beside the primary.
        journal: this process's deletes, and whether a replay is due.
    """

    def __init__(
        self,
        *,
        primary: PrimaryStore,
        secondary: SecondaryStore,
        pending_deletes: PendingSecondaryDeletes,
        secondary_guard: Guard,
        journal: DeleteJournal,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._pending_deletes = pending_deletes
        self._secondary_guard = secondary_guard
        self._journal = journal

    def reconcile(
        self, limit: int = RECONCILE_BATCH, max_batches: int = RECONCILE_MAX_BATCHES
    ) -> ReconcileReport:
        """Replay the deletes a store could not take, in batches of ``limit``; idempotent.

        In order: the tombstones in the secondary (the primary's deletes), the primary's
        list of the secondary's deletes, then what this process remembers (both stores had
        failed, or a copy of the list in case Redis lost it); each kind stops at a store
        that fails, or after ``max_batches`` batches (then the next operation a store
        answers runs the rest). Never raises.
        """
        primary_deletes, more_buried = _replay_batches(
            "tombstones", self._read_tombstones(limit), self._replay_tombstones, limit, max_batches
        )
        secondary_deletes, more_pending = _replay_batches(
            "pending deletes",
            lambda: self._pending_deletes.pending_secondary_deletes(limit),
            self._replay_pending,
            limit,
            max_batches,
        )
        in_process = self._replay_journal(limit * max_batches, limit)
        primary_deletes += in_process[0]
        secondary_deletes += in_process[1]
        left = self._journal.settle(more_buried or more_pending)
        if primary_deletes or secondary_deletes or left:
            logger.info(
                "connection stores reconciled",
                extra={
                    "primary_deletes": primary_deletes,
                    "secondary_deletes": secondary_deletes,
                    "left_in_process": left,
                },
            )
        return ReconcileReport(
            primary_deletes=primary_deletes,
            secondary_deletes=secondary_deletes,
            left_in_process=left,
        )

    def reconcile_if_due(self) -> None:
        """After an operation a store answered: replay what is due (at most once a second),
        one batch (inside an invocation; the next one later)."""
        if self._journal.take_due():
            self.reconcile(max_batches=1)

    def _read_tombstones(self, limit: int) -> Callable[[], list[str]]:
        def read() -> list[str]:
            with self._secondary_guard.calling():
                return self._secondary.tombstones(limit)

        return read

    def _replay_tombstones(self, buried: list[str]) -> None:
        self._primary.delete_many(buried)
        with self._secondary_guard.calling():
            self._secondary.delete_many(buried)

    def _replay_pending(self, pending: list[str]) -> None:
        with self._secondary_guard.calling():
            self._secondary.delete_many(pending)
        self._pending_deletes.forget_secondary_deletes(pending)
        self._journal.forget(pending)

    def _replay_journal(self, most: int, batch: int) -> tuple[int, int]:
        """Replay up to ``most`` deletes this process remembers; (primary, secondary) deletes."""
        remembered = self._journal.oldest(most)
        primary_deletes = secondary_deletes = 0
        try:
            both = [connection_id for connection_id, which in remembered if which == BOTH]
            if both:
                self._primary.delete_many(both)
                primary_deletes = len(both)
                self._journal.primary_done(both)
            ids = [connection_id for connection_id, _ in remembered]
            for first in range(0, len(ids), batch):
                chunk = ids[first : first + batch]
                with self._secondary_guard.calling():
                    self._secondary.delete_many(chunk)
                secondary_deletes += len(chunk)
                self._journal.forget(chunk)
        except (StoreUnavailableError, Skipped):
            pass  # kept: the next run tries again
        return primary_deletes, secondary_deletes


def _replay_batches(
    what: str,
    read: Callable[[], list[str]],
    replay: Callable[[list[str]], None],
    limit: int,
    max_batches: int,
) -> tuple[int, bool]:
    """Read and replay batches of up to ``limit`` deletes, ``max_batches`` at most.

    Returns the deletes replayed and whether the last batch read was full (more may
    remain). Stops at a store that fails (logged); never raises.
    """
    replayed, full = 0, False
    try:
        for _ in range(max_batches):
            batch = read()
            full = len(batch) >= limit
            if batch:
                replay(batch)
                replayed += len(batch)
            if not full:
                break
    except (StoreUnavailableError, Skipped) as exc:
        logger.info("%s not replayed now: %s", what, exc, extra={"reason": str(exc)})
    return replayed, full
