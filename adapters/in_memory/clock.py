"""A clock that only moves when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from application.ports import Clock


class FixedClock(Clock):
    """A settable clock for tests. ``now()`` returns ``moment`` until ``advance`` moves it.

    Raises:
        ValueError: on a naive starting moment.
    """

    def __init__(self, moment: datetime | None = None) -> None:
        moment = moment or datetime(2026, 1, 3, tzinfo=UTC)
        if moment.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._moment = moment.astimezone(UTC)

    def now(self) -> datetime:
        """The fixed instant (aware UTC)."""
        return self._moment

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (may be fractional)."""
        self._moment += timedelta(seconds=seconds)
