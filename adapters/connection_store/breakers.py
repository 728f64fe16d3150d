"""The circuit breakers that guard each connection store (pybreaker), and the one way a
store is called through its breaker (:class:`Guard`). Rules: ``failover.py``'s module text.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import pybreaker

from domain.errors import (
    ConnectionLimitExceededError,
    ConnectionNotFoundError,
    StoreUnavailableError,
)

logger = logging.getLogger("adapters.connection_store.failover")  # the failover's one logger

CIRCUIT_OPEN: Final = "circuit_open"
"""``FailoverEvent.reason`` when the breaker skipped the primary without calling it."""

PRIMARY_UNAVAILABLE: Final = "primary_unavailable"
"""``FailoverEvent.reason`` when the primary was called and failed (error or timeout)."""


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


def on_close(breaker: pybreaker.CircuitBreaker, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever ``breaker`` closes (its store answered again after an outage)."""
    breaker.add_listener(_Closed(callback))


class Skipped(Exception):
    """A store was not called or did not answer; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Guard:
    """One store's breaker, and at most one trial call at a time while it is not closed."""

    def __init__(self, breaker: pybreaker.CircuitBreaker) -> None:
        self.breaker = breaker
        self._trial = threading.Lock()

    @contextmanager
    def calling(self, *, last_resort: bool = False) -> Iterator[None]:
        """Run the block on a store through its breaker; one trial at a time when half-open.

        Args:
            last_resort: the store is the last one in line (module rules): where the
                breaker would skip it, the block runs anyway, outside the breaker, and an
                answer closes the breaker.

        Raises:
            Skipped: the breaker is open (or another trial is under way) and this is not
                the last resort, or the store failed (error or timeout).
            ConnectionNotFoundError, ConnectionLimitExceededError: the store's answers.
        """
        bypassed = False
        try:
            with contextlib.ExitStack() as stack:
                if self.breaker.current_state != pybreaker.STATE_CLOSED:
                    # Open or half-open: at most one call at a time goes to the breaker, so
                    # the call that half-opens it is the single trial; the others skip.
                    trial = self._trial
                    if trial.acquire(blocking=False):
                        stack.callback(trial.release)
                    elif last_resort:
                        bypassed = True
                    else:
                        raise Skipped(CIRCUIT_OPEN)
                if not bypassed:
                    try:
                        # ``calling()`` (unlike ``call()``) does not hold the breaker's lock
                        # while the block runs, so one slow call does not queue the local
                        # gateway's threads. An open breaker raises here, before the block;
                        # the block's failures reach the breaker before the handler below.
                        stack.enter_context(self.breaker.calling())
                    except pybreaker.CircuitBreakerError:
                        if not last_resort:
                            raise Skipped(CIRCUIT_OPEN) from None
                        bypassed = True
                try:
                    yield
                except (ConnectionNotFoundError, ConnectionLimitExceededError):
                    if bypassed:
                        self.breaker.close()  # an answer: the store is back
                    raise
                if bypassed:
                    self.breaker.close()
        except StoreUnavailableError as exc:
            logger.warning(
                "%s connection store failed: %s",
                self.breaker.name,
                exc.message,
                extra={"reason": exc.message, "store": self.breaker.name},
            )
            raise Skipped(PRIMARY_UNAVAILABLE) from exc
