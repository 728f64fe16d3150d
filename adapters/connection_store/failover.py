"""Redis first, DynamoDB when Redis fails: two connection stores behind one port.

The rules:

- ``save``: the primary (Redis); on its error or timeout, or while its circuit breaker is
  open, the secondary (DynamoDB). Every failover is logged and reported to ``on_failover``.
  A save neither store took is remembered as a delete (below): a store that failed may
  have written the record before its reply was lost, and the connection is refused.
- ``get`` / ``refresh``: the primary, then the secondary when the primary did not have the
  record or did not answer, so records written during an outage keep being found and
  refreshed after Redis comes back. A ping that refreshes such a record while Redis answers
  also counts its connection-limit slot there (it was admitted uncounted).
- "Not found" is definite only when every store answered: a record that may sit in a store
  that did not answer is ``StoreUnavailableError``, never ``ConnectionNotFoundError`` (the
  Heartbeat use case pongs on the first and closes the connection on the second).
- ``delete``: **never forgotten**. Redis through its breaker, like every operation, then
  DynamoDB. A delete a store could not take (it failed, or its breaker skipped it) is
  remembered in the other one, durably: a Redis delete as a *tombstone* in DynamoDB (which
  also replaces the DynamoDB copy), a DynamoDB delete in a Redis set. Only when both stores
  fail is it remembered in this process alone.
  :meth:`FailoverConnectionRepository.reconcile` replays them: when a breaker closes after
  an outage, and on a schedule (the reconciler Lambda; a timer in the local gateway), and
  the schedule asks Redis whatever the breakers say, so a replay never waits for traffic.
  Replays are idempotent; a tombstone names one connectionId, so it can only delete that
  connection's record and slot, never another's. While Redis's breaker is open a
  ``$disconnect`` costs one DynamoDB write instead of Redis's timeout and its retry (about
  0.6 s of Lambda time, and in the local gateway a worker the pings wait for: soak finding
  14); the price is a record that outlives its connection until the breaker closes or the
  schedule runs, when Redis came back before its breaker noticed.

Each store has a circuit breaker (pybreaker): after ``fail_max`` consecutive failures it
opens and calls skip that store without paying its timeout; after ``reset_timeout_seconds``
it half-opens and lets **one** trial call through (the others still skip), closing on its
success. A missing record or a limit refusal is an answer, not a failure.

**The last store in line is always asked.** When the primary was skipped or failed, the
secondary is called even while its own breaker is open: a client never gets a 503 (or a
delete is never left to this process alone) without a store having been asked. Otherwise,
after an outage of both, every ``$connect`` would be refused until a breaker half-opened
although the stores answer again. Such a call that gets an answer closes the secondary's
breaker; one that fails leaves it open. The price, while both stores are down, is the
secondary's timeout on each such call (the soak's ``both_down`` fault measures it).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final, Protocol

import attrs
import pybreaker

from application.ports import ConnectionRepository, StoreReconciler
from domain.connection import Connection, ReconcileReport
from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)

logger = logging.getLogger(__name__)

CIRCUIT_OPEN: Final = "circuit_open"
"""``FailoverEvent.reason`` when the breaker skipped the primary without calling it."""

PRIMARY_UNAVAILABLE: Final = "primary_unavailable"
"""``FailoverEvent.reason`` when the primary was called and failed (error or timeout)."""

RECONCILE_BATCH: Final = 200
"""Deletes read and replayed per batch (one Redis round trip, eight DynamoDB batch writes)."""

RECONCILE_MAX_BATCHES: Final = 10
"""Batches per kind of delete and per :meth:`FailoverConnectionRepository.reconcile`: a
backlog bigger than that is left for the next run (which comes at once: ``reconcile``
marks itself due)."""

IN_PROCESS_MEMORY: Final = 10_000
"""Deletes this process remembers (the oldest are dropped, logged): those both stores
failed, and a copy of those DynamoDB failed, which Redis holds but would lose with its data."""

_BOTH: Final = "both"
"""In-process: neither store took the delete."""

_SECONDARY: Final = "secondary"
"""In-process: the secondary's delete is due, and Redis did not take the reminder."""

_SECONDARY_COPY: Final = "secondary-copy"
"""In-process: the secondary's delete is due, and Redis holds the reminder too."""


class PrimaryStore(ConnectionRepository, Protocol):
    """What the failover needs of its primary (Redis) beyond the port."""

    def count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        """Count the connection, whose record the secondary holds; never refuses it."""
        ...

    def remember_secondary_delete(self, connection_id: str) -> None:
        """Remember that the secondary still holds ``connection_id``."""
        ...

    def pending_secondary_deletes(self, limit: int) -> list[str]:
        """Up to ``limit`` connectionIds remembered by :meth:`remember_secondary_delete`."""
        ...

    def forget_secondary_deletes(self, connection_ids: Sequence[str]) -> None:
        """The secondary took these deletes."""
        ...

    def delete_many(self, connection_ids: Sequence[str]) -> None:
        """``delete`` each, in as few round trips as the store allows."""
        ...


class SecondaryStore(ConnectionRepository, Protocol):
    """What the failover needs of its secondary (DynamoDB) beyond the port."""

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


@attrs.frozen(slots=True, kw_only=True)
class FailoverEvent:
    """One operation served by the secondary store because the primary could not serve it.

    Attributes:
        operation: ``"save"``, ``"get"``, ``"refresh"`` or ``"delete"``.
        reason: :data:`CIRCUIT_OPEN` or :data:`PRIMARY_UNAVAILABLE`.
        connection_id: the connection concerned.
    """

    operation: str
    reason: str
    connection_id: str


FailoverListener = Callable[[FailoverEvent], None]


def create_circuit_breaker(
    *, fail_max: int = 3, reset_timeout_seconds: float = 10.0, name: str = "redis"
) -> pybreaker.CircuitBreaker:
    """The breaker that guards one store.

    Args:
        fail_max: consecutive failures (errors or timeouts) that open the circuit.
        reset_timeout_seconds: how long it stays open before half-opening, seconds.
        name: shown in the breaker's log lines.

    ``ConnectionNotFoundError`` and ``ConnectionLimitExceededError`` are excluded (answers,
    not failures). Real state changes are logged: opening at ERROR level (the alarm's
    signal), closing at INFO; pybreaker's repeated "open -> open" (late failures of calls
    already in flight) are not. The bounds of both settings are checked once, by
    ``Settings``.
    """
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout_seconds,
        exclude=[ConnectionNotFoundError, ConnectionLimitExceededError],
        listeners=[_BreakerLogger()],
        name=name,
        throw_new_error_on_trip=False,
    )


class _BreakerLogger(pybreaker.CircuitBreakerListener):
    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old_name = old_state.name if old_state else None
        if old_name == new_state.name:
            return
        level = logging.ERROR if new_state.name == pybreaker.STATE_OPEN else logging.INFO
        logger.log(
            level,
            "circuit breaker %s: %s -> %s",
            cb.name,
            old_name,
            new_state.name,
            extra={"breaker": cb.name, "from_state": old_name, "to_state": new_state.name},
        )


class _Closed(pybreaker.CircuitBreakerListener):
    """Calls back when a breaker closes (the store answered again after an outage)."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if (
            new_state.name == pybreaker.STATE_CLOSED
            and old_state is not None
            and old_state.name != pybreaker.STATE_CLOSED
        ):
            self._callback()


class _Skipped(Exception):
    """A store was not called or did not answer; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FailoverConnectionRepository(ConnectionRepository, StoreReconciler):
    """A ``ConnectionRepository`` over a primary and a secondary store; see the module rules.

    Args:
        primary: the fast store (``RedisConnectionRepository``, records and limits).
        secondary: the fallback (``DynamoDbConnectionRepository``).
        breaker: guards the primary (:func:`create_circuit_breaker`); one per process.
        secondary_breaker: guards the secondary; ``None`` builds one with the defaults.
        tombstone_ttl_seconds: how long a remembered delete lives in the other store: the
            record's TTL (after it, the record it stands for has expired anyway).
        on_failover: called once per failover with a :class:`FailoverEvent` (metrics). It
            must not raise; if it does, the error is logged and the operation goes on.

    Raises (per operation):
        StoreUnavailableError: see the module rules; ``ConnectionNotFoundError`` only when
            both stores answered without the record.
        ConnectionLimitExceededError: from the primary's ``save`` (an answer, not a failure:
            the record is not written anywhere).
    """

    def __init__(
        self,
        *,
        primary: PrimaryStore,
        secondary: SecondaryStore,
        breaker: pybreaker.CircuitBreaker,
        secondary_breaker: pybreaker.CircuitBreaker | None = None,
        tombstone_ttl_seconds: int = 600,
        on_failover: FailoverListener | None = None,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._breaker = breaker
        self._secondary_breaker = secondary_breaker or create_circuit_breaker(name="dynamodb")
        self._tombstone_ttl_seconds = tombstone_ttl_seconds
        self._on_failover = on_failover
        self._trials = {
            id(breaker): threading.Lock(),
            id(self._secondary_breaker): threading.Lock(),
        }
        self._in_process: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._reconcile_due = False
        self._last_reconcile = 0.0
        for watched in (breaker, self._secondary_breaker):
            watched.add_listener(_Closed(self._mark_reconcile_due))

    @property
    def breaker(self) -> pybreaker.CircuitBreaker:
        """The circuit breaker guarding the primary."""
        return self._breaker

    def save(self, connection: Connection, ttl_seconds: int) -> None:
        """Primary; on failure or an open circuit, secondary.

        Raises:
            StoreUnavailableError: neither store took the record. One of them may still
                hold it (a write whose reply was lost): this process remembers a delete
                for it, which :meth:`reconcile` replays (module rules), so a refused
                ``$connect`` leaves no record or slot behind.
            ConnectionLimitExceededError: the primary refused it over a limit.
        """
        try:
            with self._guarded(self._breaker):
                self._primary.save(connection, ttl_seconds)
            self._reconcile_if_due()
            return
        except _Skipped as skipped:
            self._report("save", skipped.reason, connection.connection_id)
        try:
            with self._guarded(self._secondary_breaker, last_resort=True):
                self._secondary.save(connection, ttl_seconds)
        except _Skipped:
            # A store that failed may have written the record before failing (its reply
            # lost to a timeout or a kill): the connection is refused, so its record and
            # slot go the way a $disconnect's would, replayed by this process.
            self._remember_in_process(connection.connection_id, _BOTH)
            raise StoreUnavailableError("neither connection store took the record") from None

    def get(self, connection_id: str) -> Connection:
        """Primary, then secondary when the primary did not have it or did not answer.

        Raises:
            ConnectionNotFoundError: both stores answered and neither has a live record.
            StoreUnavailableError: a store that may hold the record did not answer.
        """
        primary_answered = True
        try:
            with self._guarded(self._breaker):
                return self._primary.get(connection_id)
        except ConnectionNotFoundError:
            pass
        except _Skipped as skipped:
            primary_answered = False
            self._report("get", skipped.reason, connection_id)
        try:
            with self._guarded(self._secondary_breaker, last_resort=not primary_answered):
                return self._secondary.get(connection_id)
        except ConnectionNotFoundError:
            _not_found_unless_unanswered(primary_answered)
            raise
        except _Skipped:
            raise StoreUnavailableError("no store answered") from None

    def refresh(self, connection_id: str, ttl_seconds: int) -> None:
        """Refresh where the record lives: primary, then secondary; never creates one.

        A record found in the secondary while the primary answers gets its slot counted in
        the primary (best effort: a failure is logged, the refresh stands).

        Raises:
            ConnectionNotFoundError: both stores answered and neither has a live record.
            StoreUnavailableError: a store that may hold the record did not answer.
        """
        primary_answered = True
        try:
            with self._guarded(self._breaker):
                self._primary.refresh(connection_id, ttl_seconds)
            self._reconcile_if_due()
            return
        except ConnectionNotFoundError:
            pass
        except _Skipped as skipped:
            primary_answered = False
            self._report("refresh", skipped.reason, connection_id)
        try:
            with self._guarded(self._secondary_breaker, last_resort=not primary_answered):
                connection = self._secondary.renew(connection_id, ttl_seconds)
        except ConnectionNotFoundError:
            _not_found_unless_unanswered(primary_answered)
            raise
        except _Skipped:
            raise StoreUnavailableError("no store answered") from None
        if primary_answered:
            self._count_slot(connection, ttl_seconds)

    def delete(self, connection_id: str) -> None:
        """Delete from both stores; a delete a store could not take is remembered (module rules).

        Raises:
            StoreUnavailableError: neither store could take the delete or remember it; this
                process remembers it and :meth:`reconcile` retries it.
        """
        try:
            with self._guarded(self._breaker):
                self._primary.delete(connection_id)
        except _Skipped as skipped:
            self._report("delete", skipped.reason, connection_id)
            try:
                with self._guarded(self._secondary_breaker, last_resort=True):
                    self._secondary.bury(connection_id, self._tombstone_ttl_seconds)
            except _Skipped:
                self._remember_in_process(connection_id, _BOTH)
                raise StoreUnavailableError(
                    "neither store took the delete; this process will retry it"
                ) from None
            return
        try:
            with self._guarded(self._secondary_breaker):
                self._secondary.delete(connection_id)
        except _Skipped:
            # Redis remembers it durably across Lambda environments, this process against
            # Redis losing its data (a restart without its data, a node replaced).
            try:
                self._primary.remember_secondary_delete(connection_id)
            except StoreUnavailableError:
                self._remember_in_process(connection_id, _SECONDARY)
            else:
                self._remember_in_process(connection_id, _SECONDARY_COPY)
        self._reconcile_if_due()

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

        def read_tombstones() -> list[str]:
            with self._guarded(self._secondary_breaker):
                return self._secondary.tombstones(limit)

        def replay_tombstones(buried: list[str]) -> None:
            self._primary.delete_many(buried)
            with self._guarded(self._secondary_breaker):
                self._secondary.delete_many(buried)

        def replay_pending(pending: list[str]) -> None:
            with self._guarded(self._secondary_breaker):
                self._secondary.delete_many(pending)
            self._primary.forget_secondary_deletes(pending)
            self._forget_in_process(pending)

        primary_deletes, more_buried = self._replay_batches(
            "tombstones", read_tombstones, replay_tombstones, limit, max_batches
        )
        secondary_deletes, more_pending = self._replay_batches(
            "pending deletes",
            lambda: self._primary.pending_secondary_deletes(limit),
            replay_pending,
            limit,
            max_batches,
        )
        more = more_buried or more_pending
        in_process = self._replay_in_process(limit * max_batches, limit)
        primary_deletes += in_process[0]
        secondary_deletes += in_process[1]
        with self._lock:
            left = len(self._in_process)
            self._reconcile_due = more or any(
                which != _SECONDARY_COPY for which in self._in_process.values()
            )
        report = ReconcileReport(
            primary_deletes=primary_deletes,
            secondary_deletes=secondary_deletes,
            left_in_process=left,
        )
        if primary_deletes or secondary_deletes or left:
            logger.info(
                "connection stores reconciled",
                extra={
                    "primary_deletes": primary_deletes,
                    "secondary_deletes": secondary_deletes,
                    "left_in_process": left,
                },
            )
        return report

    @staticmethod
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
        except (StoreUnavailableError, _Skipped) as exc:
            logger.info("%s not replayed now: %s", what, exc, extra={"reason": str(exc)})
        return replayed, full

    def _replay_in_process(self, most: int, batch: int) -> tuple[int, int]:
        """Replay up to ``most`` deletes this process remembers; (primary, secondary) deletes."""
        with self._lock:
            remembered = list(self._in_process.items())[:most]
        primary_deletes = secondary_deletes = 0
        try:
            both = [connection_id for connection_id, which in remembered if which == _BOTH]
            if both:
                self._primary.delete_many(both)
                primary_deletes = len(both)
                with self._lock:
                    for connection_id in both:
                        if connection_id in self._in_process:
                            self._in_process[connection_id] = _SECONDARY
            ids = [connection_id for connection_id, _ in remembered]
            for first in range(0, len(ids), batch):
                chunk = ids[first : first + batch]
                with self._guarded(self._secondary_breaker):
                    self._secondary.delete_many(chunk)
                secondary_deletes += len(chunk)
                self._forget_in_process(chunk)
        except (StoreUnavailableError, _Skipped):
            pass  # kept: the next run tries again
        return primary_deletes, secondary_deletes

    def _forget_in_process(self, connection_ids: Sequence[str]) -> None:
        with self._lock:
            for connection_id in connection_ids:
                self._in_process.pop(connection_id, None)

    @contextmanager
    def _guarded(
        self, breaker: pybreaker.CircuitBreaker, *, last_resort: bool = False
    ) -> Iterator[None]:
        """Run the block on a store through its breaker; one trial at a time when half-open.

        Args:
            last_resort: the store is the last one in line (module rules): where the
                breaker would skip it, the block runs anyway, outside the breaker, and an
                answer closes the breaker.

        Raises:
            _Skipped: the breaker is open (or another trial is under way) and this is not
                the last resort, or the store failed (error or timeout).
            ConnectionNotFoundError, ConnectionLimitExceededError: the store's answers.
        """
        bypassed = False
        try:
            with contextlib.ExitStack() as stack:
                if breaker.current_state != pybreaker.STATE_CLOSED:
                    # Open or half-open: at most one call at a time goes to the breaker, so
                    # the call that half-opens it is the single trial; the others skip.
                    trial = self._trials[id(breaker)]
                    if trial.acquire(blocking=False):
                        stack.callback(trial.release)
                    elif last_resort:
                        bypassed = True
                    else:
                        raise _Skipped(CIRCUIT_OPEN)
                if not bypassed:
                    try:
                        # ``calling()`` (unlike ``call()``) does not hold the breaker's lock
                        # while the block runs, so one slow call does not queue the local
                        # gateway's threads. An open breaker raises here, before the block;
                        # the block's failures reach the breaker before the handler below.
                        stack.enter_context(breaker.calling())
                    except pybreaker.CircuitBreakerError:
                        if not last_resort:
                            raise _Skipped(CIRCUIT_OPEN) from None
                        bypassed = True
                try:
                    yield
                except (ConnectionNotFoundError, ConnectionLimitExceededError):
                    if bypassed:
                        breaker.close()  # an answer: the store is back
                    raise
                if bypassed:
                    breaker.close()
        except StoreUnavailableError as exc:
            logger.warning(
                "%s connection store failed: %s",
                breaker.name,
                exc.message,
                extra={"reason": exc.message, "store": breaker.name},
            )
            raise _Skipped(PRIMARY_UNAVAILABLE) from exc

    def _count_slot(self, connection: Connection, ttl_seconds: int) -> None:
        try:
            with self._guarded(self._breaker):
                self._primary.count_slot(connection, ttl_seconds)
        except _Skipped:
            logger.warning(
                "connection limits not enforced: the slot was not counted",
                extra={"connection_id": connection.connection_id, "operation": "refresh"},
            )

    def _remember_in_process(self, connection_id: str, which: str) -> None:
        with self._lock:
            self._in_process[connection_id] = which
            self._in_process.move_to_end(connection_id)
            if which != _SECONDARY_COPY:  # a copy waits for the breaker or the schedule
                self._reconcile_due = True
            while len(self._in_process) > IN_PROCESS_MEMORY:
                dropped, kind = self._in_process.popitem(last=False)
                if kind == _SECONDARY_COPY:  # Redis still holds it
                    continue
                logger.error(
                    "a delete neither store took is forgotten: its record lives until its TTL",
                    extra={"connection_id": dropped},
                )

    def _mark_reconcile_due(self) -> None:
        with self._lock:
            self._reconcile_due = True

    def _reconcile_if_due(self) -> None:
        """After an operation a store answered: replay what is due (at most once a second)."""
        if not self._reconcile_due:
            return
        now = time.monotonic()
        with self._lock:
            if not self._reconcile_due or now - self._last_reconcile < 1.0:
                return
            self._reconcile_due = False
            self._last_reconcile = now
        self.reconcile(max_batches=1)  # inside an invocation: one batch, the next one later

    def _report(self, operation: str, reason: str, connection_id: str) -> None:
        logger.warning(
            "connection store failover: %s went to the secondary store (%s)",
            operation,
            reason,
            extra={"operation": operation, "reason": reason, "connection_id": connection_id},
        )
        if self._on_failover is None:
            return
        try:
            self._on_failover(
                FailoverEvent(operation=operation, reason=reason, connection_id=connection_id)
            )
        except Exception:
            logger.exception("failover listener failed", extra={"operation": operation})


def _not_found_unless_unanswered(primary_answered: bool) -> None:
    """A secondary's "not found" is definite only when the primary answered too.

    Raises:
        StoreUnavailableError: the primary did not answer, so it may hold the record.
    """
    if not primary_answered:
        raise StoreUnavailableError(
            "not in the secondary store, and the primary did not answer"
        ) from None
