"""The real clock, and the real wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from application.ports import Clock, Sleeper


class SystemClock(Clock):
    """The machine's wall clock, as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current instant in UTC (aware)."""
        return datetime.now(UTC)


class SystemSleeper(Sleeper):
    """Blocks the calling thread with ``time.sleep`` (the push's backoff between retries)."""

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` seconds."""
        time.sleep(seconds)
