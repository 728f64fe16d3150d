"""The real clock."""

from __future__ import annotations

from datetime import UTC, datetime

from application.ports import Clock


class SystemClock(Clock):
    """The machine's wall clock, as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current instant in UTC (aware)."""
        return datetime.now(UTC)
